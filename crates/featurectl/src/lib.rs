//! # featurectl
//!
//! The command line of the `feature` toolkit, built on `feature-core`:
//!
//! | command | what it does |
//! |---|---|
//! | `featurectl validate FILE...` | parse, compile and lint flag files; print every problem as `file:line:column: flag: message` |
//! | `featurectl eval --file FILE [--flag KEY] (--context JSON \| --contexts FILE.jsonl)` | evaluate flags, as values or (`--json`) one JSON object per evaluation, optionally with `--explain` |
//! | `featurectl import --from launchdarkly FILE.json [-o OUT.yaml]` | convert LaunchDarkly flags and segments into this project's YAML |
//! | `featurectl migrate [--print-grants]` | create or upgrade a PostgreSQL flag table (as the migrator role), or print the GRANTs of the reader, writer and migrator roles |
//! | `featurectl token create --name NAME --scope SCOPE` (`list`, `revoke ID`) | the flag server's API tokens, in its store; a new token is printed once |
//! | `featurectl serve [--listen ADDR] (--store URL \| --file FLAGS.yaml \| --demo)` | the flag server (`feature-server`): the admin REST API, the web UI at `/ui` (`feature-ui`), `/health`, `/metrics`; default store `sqlite://feature.db`; read-only over a file; `--demo`: a temporary SQLite store seeded with the example flags |
//! | `featurectl push FILE --server URL`, `history KEY --server URL`, `validate FILE --server URL` | the same against a flag server's API (token from `FEATURE_TOKEN`); a server push is per item, not all or nothing |
//! | `featurectl get KEY [--segment] [--json]`, `enable KEY`, `disable KEY` | read a flag or segment of a flag server with its version; switch a flag on or off (If-Match, one retry after a 412) |
//! | `featurectl audit verify` | recompute a PostgreSQL audit log's hash chain; report the first broken link |
//!
//! Exit status: 0 success, 1 validation problems, 2 usage, I/O or bad input.
//!
//! The commands are a library so that tests can use the very functions the binary uses (for
//! instance [`import::to_yaml`]).

pub mod cli;
pub mod demo;
pub mod eval;
pub mod import;
pub mod lint;
pub mod load;
pub mod remote;
pub mod serve;
pub mod store;
pub mod token;
pub mod validate;

use cli::{Cli, Command};
use std::io::{BufWriter, ErrorKind, Write};
use std::process::ExitCode;

/// Runs a parsed command line and returns the process's exit status. Errors are printed on
/// stderr as `featurectl: error: ...` and give status 2; a closed stdout (`| head`) ends the
/// command quietly.
pub fn run(cli: &Cli) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = match &cli.command {
        Command::Validate(a) if a.server.is_some() => remote::run_validate(a, &mut out),
        Command::Validate(a) => validate::run(a, &mut out),
        Command::Eval(a) => eval::run(a, &mut out),
        Command::Import(a) => import::run(a, &mut out),
        Command::Push(a) if a.server.is_some() => remote::run_push(a, &mut out),
        Command::Push(a) => store::run_push(a, &mut out),
        Command::History(a) if a.server.is_some() => remote::run_history(a, &mut out),
        Command::History(a) => store::run_history(a, &mut out),
        Command::Get(a) => remote::run_get(a, &mut out),
        Command::Enable(a) => remote::run_switch(&a.key, &a.server, true, &mut out),
        Command::Disable(a) => remote::run_switch(&a.key, &a.server, false, &mut out),
        Command::Serve(a) => serve::run(a),
        Command::Migrate(a) => store::run_migrate(a, &mut out),
        Command::Audit(cli::AuditCommand::Verify(a)) => store::run_audit_verify(a, &mut out),
        Command::Token(c) => token::run(c, &mut out),
    }
    .and_then(|code| {
        out.flush()?;
        Ok(code)
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = out.flush();
            eprintln!("featurectl: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == ErrorKind::BrokenPipe)
    })
}
