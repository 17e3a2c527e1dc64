//! Writes a large flag document to standard output, for the loading benchmarks of
//! BENCHMARKS.md ("Large flag sets"): N flags, each one rule of two clauses serving a 50/50
//! rollout, and optionally one segment of K user keys.
//!
//! ```text
//! cargo run -p feature-bench-peers --release --bin large-document -- 100000 json > flags.json
//! cargo run -p feature-bench-peers --release --bin large-document -- 100000 yaml > flags.yaml
//! cargo run -p feature-bench-peers --release --bin large-document -- 0 json 1000000 > seg.json
//! ```

use feature_bench_peers::large::{write_document, Shape};
use std::io::{BufWriter, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags = args.first().and_then(|n| n.parse().ok());
    let json = match args.get(1).map(String::as_str) {
        Some("json") => true,
        Some("yaml") | None => false,
        Some(other) => {
            eprintln!("unknown format {other:?}: json or yaml");
            return ExitCode::FAILURE;
        }
    };
    let segment_keys = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(0);
    let Some(flags) = flags else {
        eprintln!("usage: large-document FLAGS [json|yaml] [SEGMENT_KEYS]");
        return ExitCode::FAILURE;
    };
    let shape = Shape {
        flags,
        segment_keys,
        json,
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    match write_document(&mut out, shape).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
