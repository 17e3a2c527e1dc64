//! `featurectl validate`: every problem of every file on stdout, one per line.
//!
//! Stdout carries problems only: `file:line:column: flag: message` (see [`crate::load`]). A file
//! is valid when it parses and has no errors and no warnings (warnings are allowed with
//! `--allow-warnings`). A file that cannot be read is reported on stderr and checking goes on
//! with the other files.

use crate::cli::ValidateArgs;
use crate::load::{self, format_diagnostic, format_parse_error};
use std::io::Write;

/// Runs `featurectl validate`; returns the exit status: 0 when every file is valid, 1 when any
/// file has a problem, 2 when any file cannot be read.
pub fn run(args: &ValidateArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    let mut unreadable = false;
    let mut invalid = false;
    for path in &args.files {
        let name = path.display().to_string();
        let text = match load::read_text(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("featurectl: error: {e:#}");
                unreadable = true;
                continue;
            }
        };
        let loaded = match load::load_file_text(&text, path, &name) {
            Ok(l) => l,
            Err(e) => {
                writeln!(out, "{}", format_parse_error(&e))?;
                invalid = true;
                continue;
            }
        };
        for d in &loaded.diagnostics {
            writeln!(out, "{}", format_diagnostic(d, args.verbose))?;
        }
        let ok = loaded.errors() == 0 && (args.allow_warnings || loaded.warnings() == 0);
        if ok {
            if args.verbose {
                out.flush()?;
                eprintln!("ok: {name} ({} flags)", loaded.snapshot.len());
            }
        } else {
            invalid = true;
        }
    }
    Ok(if unreadable {
        2
    } else if invalid {
        1
    } else {
        0
    })
}
