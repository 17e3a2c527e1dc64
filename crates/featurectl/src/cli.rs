//! The command line: every command, option and its `--help` text.

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Validate, evaluate, explain and import feature flags.
///
/// Exit status: 0 success, 1 validation problems, 2 usage, I/O or bad input.
#[derive(Debug, Parser)]
#[command(name = "featurectl", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check flag files and print every problem as `file:line:column: flag: message`.
    ///
    /// Exits 0 when every file is valid (no errors and no warnings), 1 when any file has a
    /// problem, 2 when a file cannot be read. With --server, the flag server checks each file
    /// (`POST /api/v1/validate`) and its diagnostics are printed the same way.
    Validate(ValidateArgs),
    /// Evaluate flags of a file for one or more contexts.
    ///
    /// Prints the served value (or, with --json, one JSON object per evaluation). Problems of
    /// the file are printed on stderr; its malformed flags evaluate to ERROR/MALFORMED_FLAG.
    Eval(EvalArgs),
    /// Convert flags exported from another system into this project's YAML format.
    ///
    /// The YAML written is read back and checked; its diagnostics are printed on stderr.
    Import(ImportArgs),
    /// Make a store hold what a flag file says, and print what changed (`+` created,
    /// `~` updated with the fields that differ, `-` deleted).
    ///
    /// The file is checked first: with any error nothing is written. The changes are made all
    /// or nothing (one PostgreSQL transaction, one Redis script), each in the name of --actor
    /// and recorded in the store's audit log: if an item changed, appeared or disappeared since
    /// it was read, or the store refuses or fails on any change, the push fails and the store
    /// is left as it was.
    ///
    /// With --server, the changes go through the flag server's API one item at a time, each
    /// conditional on the version read (If-Match, or If-None-Match: * for creates), in the
    /// name of the token: a server push is per item, not all or nothing. If an item changed
    /// meanwhile (412) or the server refuses a change, the push stops there: the changes
    /// printed before the error were made, the rest were not, and the other edit survives.
    Push(PushArgs),
    /// Print the audit log of a flag: who changed it, when, and how (newest first).
    History(HistoryArgs),
    /// Print a flag (or segment) of a flag server with its version: YAML in the flag file's
    /// format, or with --json the server's JSON.
    Get(GetArgs),
    /// Switch a flag's targeting on, on a flag server.
    ///
    /// The flag's ETag is read and sent as If-Match; if someone changed the flag in between
    /// (412), it is read again and the switch retried once, then the conflict is reported.
    Enable(SwitchArgs),
    /// Switch a flag's targeting off (it serves its off variation), on a flag server.
    ///
    /// The flag's ETag is read and sent as If-Match; if someone changed the flag in between
    /// (412), it is read again and the switch retried once, then the conflict is reported.
    Disable(SwitchArgs),
    /// Create or upgrade a PostgreSQL flag table's schema (run as the migrator role, the
    /// owner; services run as the reader role and do not migrate). Harmless when up to date.
    ///
    /// With --print-grants, print the GRANT statements of the reader, writer and migrator
    /// roles instead, without connecting.
    Migrate(MigrateArgs),
    /// Run the flag server: the admin REST API (`/api/v1`), `/health` and `/metrics` over a
    /// store, or read-only over a flag file.
    ///
    /// Every route but /health needs `Authorization: Bearer <token>` (`featurectl token
    /// create`); FEATURE_SERVER_ADMIN_TOKEN (at least 16 characters) is accepted as an admin
    /// token named `bootstrap`. Stops gracefully on SIGINT or SIGTERM. Request logs go to
    /// stderr (RUST_LOG filters them).
    Serve(ServeArgs),
    /// Check the audit log of a PostgreSQL flag table.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Create, list and revoke the flag server's API tokens.
    #[command(subcommand)]
    Token(crate::token::TokenCommand),
}

/// `featurectl audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the audit log's hash chain and report the first broken link: an edited row,
    /// rows deleted (at the start, the middle or the end, or a TRUNCATE), a disabled audit
    /// trigger, or a flag changed without an audit row.
    ///
    /// Exits 0 when intact (and prints the last row's id and hash: keep it elsewhere to
    /// detect a rewrite of the whole log later), 1 when broken, 2 when it cannot check.
    Verify(AuditVerifyArgs),
}

/// Options of `featurectl serve`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").args(["store", "file", "demo", "upstream"])))]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(
        long,
        value_name = "ADDR",
        env = "FEATURE_SERVER_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: String,
    /// The store: sqlite://PATH (the default: sqlite://feature.db, created when missing),
    /// postgres://USER:PASS@HOST/DB or redis://HOST:PORT. Prefer the environment variable: a
    /// password on the command line is visible to every user of the machine.
    #[arg(
        long,
        value_name = "URL",
        env = "FEATURE_SERVER_STORE",
        hide_env_values = true,
        conflicts_with = "file"
    )]
    pub store: Option<String>,
    /// Serve this flag file, read-only (reloaded when it changes; writes answer 405).
    #[arg(long, value_name = "FLAGS.yaml", env = "FEATURE_SERVER_FILE")]
    pub file: Option<PathBuf>,
    /// Try it out: a SQLite store in a new temporary directory (removed at exit), seeded with
    /// the bundled example flags; prints the web UI's URL and a one-time admin token.
    #[arg(long, conflicts_with_all = ["store", "file", "upstream"])]
    pub demo: bool,
    /// Relay another flag server, read-only: follow its SDK stream (`https://flags.example`)
    /// with the token in FEATURE_TOKEN, and serve its flags (SDK stream, OFREP) to clients.
    #[arg(
        long,
        value_name = "URL",
        env = "FEATURE_SERVER_UPSTREAM",
        conflicts_with_all = ["store", "file"]
    )]
    pub upstream: Option<String>,
    /// PostgreSQL table.
    #[arg(
        long,
        value_name = "NAME",
        env = "FEATURE_SERVER_TABLE",
        default_value = "feature_flags"
    )]
    pub table: String,
    /// Redis key prefix.
    #[arg(
        long,
        value_name = "PREFIX",
        env = "FEATURE_SERVER_PREFIX",
        default_value = "feature"
    )]
    pub prefix: String,
    /// Largest request body accepted, in bytes.
    #[arg(
        long,
        value_name = "BYTES",
        env = "FEATURE_SERVER_BODY_LIMIT",
        default_value_t = 1024 * 1024
    )]
    pub body_limit: usize,
    /// Time limit of a request, in seconds.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "FEATURE_SERVER_REQUEST_TIMEOUT",
        default_value_t = 30
    )]
    pub request_timeout: u64,
    /// An origin allowed by CORS (repeat, or separate with commas); none: CORS off.
    #[arg(
        long = "cors-origin",
        value_name = "ORIGIN",
        env = "FEATURE_SERVER_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// Request logs as JSON lines instead of text.
    #[arg(long, env = "FEATURE_SERVER_LOG_JSON")]
    pub log_json: bool,
}

/// Options of `featurectl migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The store: postgres://USER:PASS@HOST/DB. Prefer the environment variable: a password
    /// on the command line is visible to every user of the machine.
    #[arg(
        long,
        value_name = "URL",
        env = "FEATURE_STORE_URL",
        hide_env_values = true,
        required_unless_present = "print_grants"
    )]
    pub store: Option<String>,
    /// PostgreSQL table.
    #[arg(long, value_name = "NAME", default_value = "feature_flags")]
    pub table: String,
    /// Print the GRANT statements for the roles below instead of migrating.
    #[arg(long)]
    pub print_grants: bool,
    /// With --print-grants: the schema of the table.
    #[arg(long, value_name = "NAME", default_value = "public")]
    pub schema: String,
    /// With --print-grants: the role of the service instances (reads, listens).
    #[arg(long, value_name = "ROLE", default_value = "feature_reader")]
    pub reader: String,
    /// With --print-grants: the role of admin tools (writes flags).
    #[arg(long, value_name = "ROLE", default_value = "feature_writer")]
    pub writer: String,
    /// With --print-grants: the role that migrates (owns the tables).
    #[arg(long, value_name = "ROLE", default_value = "feature_migrator")]
    pub migrator: String,
}

/// Options of `featurectl audit verify`.
#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// The store: postgres://USER:PASS@HOST/DB (the reader role suffices). Prefer the
    /// environment variable: a password on the command line is visible to every user of the
    /// machine.
    #[arg(
        long,
        value_name = "URL",
        env = "FEATURE_STORE_URL",
        hide_env_values = true
    )]
    pub store: String,
    /// PostgreSQL table.
    #[arg(long, value_name = "NAME", default_value = "feature_flags")]
    pub table: String,
}

/// Options of `featurectl push`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["to", "server"])))]
pub struct PushArgs {
    /// The flag file (`.json` is read as JSON, anything else as YAML).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The store: postgres://USER:PASS@HOST/DB, redis://HOST:PORT or sqlite://PATH. Prefer the environment
    /// variable: a password on the command line is visible to every user of the machine.
    #[arg(
        long,
        value_name = "URL",
        env = "FEATURE_STORE_URL",
        hide_env_values = true
    )]
    pub to: Option<String>,
    /// The flag server, e.g. http://127.0.0.1:8080, instead of a store URL. The token is
    /// read from FEATURE_TOKEN only: a token given on the command line would be visible to
    /// every user of the machine (process list) and kept in shell history.
    #[arg(long, value_name = "URL", env = "FEATURE_SERVER_URL")]
    pub server: Option<String>,
    /// Print the changes without making them.
    #[arg(long)]
    pub dry_run: bool,
    /// Who makes the changes, as recorded in the audit log (with --server: the token's name).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "featurectl",
        conflicts_with = "server"
    )]
    pub actor: String,
    /// Keep flags and segments that the store has and the file does not.
    #[arg(long)]
    pub no_delete: bool,
    /// PostgreSQL table.
    #[arg(long, value_name = "NAME", default_value = "feature_flags")]
    pub table: String,
    /// Redis key prefix.
    #[arg(long, value_name = "PREFIX", default_value = "feature")]
    pub prefix: String,
}

/// Options of `featurectl history`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["from", "server"])))]
pub struct HistoryArgs {
    /// The flag (or, with --segment, segment) key.
    #[arg(value_name = "KEY")]
    pub key: String,
    /// The store: postgres://USER:PASS@HOST/DB (or redis://HOST:PORT). Prefer the environment
    /// variable: a password on the command line is visible to every user of the machine.
    #[arg(
        long,
        value_name = "URL",
        env = "FEATURE_STORE_URL",
        hide_env_values = true
    )]
    pub from: Option<String>,
    /// The flag server, e.g. http://127.0.0.1:8080, instead of a store URL. The token is
    /// read from FEATURE_TOKEN only: a token given on the command line would be visible to
    /// every user of the machine (process list) and kept in shell history.
    #[arg(long, value_name = "URL", env = "FEATURE_SERVER_URL")]
    pub server: Option<String>,
    /// Show at most this many changes.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: usize,
    /// The key names a segment.
    #[arg(long)]
    pub segment: bool,
    /// One JSON object per change, with the definitions before and after.
    #[arg(long)]
    pub json: bool,
    /// PostgreSQL table.
    #[arg(long, value_name = "NAME", default_value = "feature_flags")]
    pub table: String,
    /// Redis key prefix.
    #[arg(long, value_name = "PREFIX", default_value = "feature")]
    pub prefix: String,
}

/// Options of `featurectl validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Flag files to check; `.json` files are read as JSON, anything else as YAML.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Do not fail because of warnings (they are still printed).
    #[arg(long)]
    pub allow_warnings: bool,
    /// Print `ok: FILE (N flags)` on stderr for every valid file, and the document path of
    /// every problem after its message.
    #[arg(short, long)]
    pub verbose: bool,
    /// Have this flag server check the files (e.g. http://127.0.0.1:8080). Not taken from
    /// FEATURE_SERVER_URL: validation stays local unless asked. The token is read from
    /// FEATURE_TOKEN only: a token given on the command line would be visible to every user
    /// of the machine (process list) and kept in shell history.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
}

/// Options of `featurectl get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The flag (or, with --segment, segment) key.
    #[arg(value_name = "KEY")]
    pub key: String,
    /// The key names a segment.
    #[arg(long)]
    pub segment: bool,
    /// Print the server's JSON (the definition with `key`, `version` and `updatedAt`).
    #[arg(long)]
    pub json: bool,
    /// The flag server, e.g. http://127.0.0.1:8080. The token is read from FEATURE_TOKEN
    /// only: a token given on the command line would be visible to every user of the machine
    /// (process list) and kept in shell history.
    #[arg(long, value_name = "URL", env = "FEATURE_SERVER_URL")]
    pub server: String,
}

/// Options of `featurectl enable` and `featurectl disable`.
#[derive(Debug, Args)]
pub struct SwitchArgs {
    /// The flag key.
    #[arg(value_name = "KEY")]
    pub key: String,
    /// The flag server, e.g. http://127.0.0.1:8080. The token (scope write) is read from
    /// FEATURE_TOKEN only: a token given on the command line would be visible to every user
    /// of the machine (process list) and kept in shell history.
    #[arg(long, value_name = "URL", env = "FEATURE_SERVER_URL")]
    pub server: String,
}

/// Options of `featurectl eval`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("who").required(true).args(["context", "contexts"])))]
pub struct EvalArgs {
    /// The flag file (`.json` is read as JSON, anything else as YAML).
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
    /// Evaluate only this flag; without it every flag is evaluated, in key order.
    #[arg(long, value_name = "KEY")]
    pub flag: Option<String>,
    /// The context as JSON, e.g. '{"key":"user-1","country":"NZ","plan":"pro"}'.
    #[arg(long, value_name = "JSON")]
    pub context: Option<String>,
    /// A file with one context JSON per line (blank lines are skipped; `-` reads stdin).
    /// Every line is checked before anything is evaluated: a line that is not a JSON object is
    /// reported with its line number and nothing is evaluated (exit 2).
    #[arg(long, value_name = "FILE.jsonl")]
    pub contexts: Option<PathBuf>,
    /// Print one compact JSON object per evaluation: key, value, variationIndex, reason,
    /// ruleId, inExperiment, prerequisiteFailed, errorKind (and explain with --explain).
    #[arg(long)]
    pub json: bool,
    /// Show every decision the evaluation took (rules, clauses, buckets, prerequisites).
    #[arg(long)]
    pub explain: bool,
    /// The caller's default as JSON, served when the flag serves nothing (errors, flags
    /// without a value for the case). Default: null. A string needs JSON quotes: '"blue"'.
    #[arg(long, value_name = "JSON")]
    pub default: Option<String>,
}

/// Options of `featurectl import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The system the flags come from.
    #[arg(long, value_enum, value_name = "SOURCE")]
    pub from: Source,
    /// The exported file (`-` reads stdin). For LaunchDarkly: a payload
    /// `{"flags": {...}, "segments": {...}}` as served to SDKs, or a single flag.
    #[arg(value_name = "FILE.json")]
    pub file: PathBuf,
    /// Write the YAML to this file instead of stdout.
    #[arg(short, long, value_name = "OUT.yaml")]
    pub output: Option<PathBuf>,
}

/// Systems flags can be imported from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Source {
    /// LaunchDarkly flag and segment JSON.
    #[value(name = "launchdarkly")]
    LaunchDarkly,
}
