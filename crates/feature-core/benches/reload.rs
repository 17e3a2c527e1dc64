//! Incremental reload: compiling a 100 000-flag document whole, against compiling it again
//! after one change ([`feature_core::recompile`]).
//!
//! Each flag is one rule of two clauses serving a 50/50 rollout (the large-document shape);
//! every tenth flag also matches one of 100 segments. Prints the median and the slowest of
//! several runs of each case.
//!
//! `cargo bench -p feature-core --bench reload` (BENCH_FLAGS sets the size, BENCH_CASES keeps
//! the cases whose name holds it, BENCH_RUNS sets how many runs each case makes).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature_core::model::{Flag, FlagDocument, Segment};
use feature_core::{compile, recompile, Change, Snapshot};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SEGMENTS: usize = 100;

fn flag(i: usize, enabled: bool) -> Flag {
    let mut clauses = vec![
        json!({"attribute": "plan", "operator": "in", "values": ["pro", format!("team-{}", i % 100)]}),
        json!({"attribute": "country", "operator": "eq", "values": ["DE"]}),
    ];
    if i.is_multiple_of(10) {
        clauses.push(json!({"attribute": "", "operator": "segmentMatch",
            "values": [format!("segment-{:03}", i / 10 % SEGMENTS)]}));
    }
    serde_json::from_value(json!({
        "type": "bool", "default": false, "enabled": enabled,
        "rules": [{"id": format!("r{i}"), "clauses": clauses, "rollout": {"bucketBy": "key",
            "variations": [{"variation": 0, "weight": 50000}, {"variation": 1, "weight": 50000}]}}],
        "fallthrough": {"variation": 0},
    }))
    .unwrap()
}

fn segment(i: usize, extra: bool) -> Segment {
    let mut included: Vec<String> = (0..20).map(|k| format!("user-{i}-{k}")).collect();
    if extra {
        included.push("someone-new".into());
    }
    serde_json::from_value(json!({"included": included})).unwrap()
}

fn document(n: usize) -> FlagDocument {
    let mut doc = FlagDocument::default();
    for i in 0..n {
        doc.flags
            .insert(format!("flag-{i:06}"), Arc::new(flag(i, true)));
    }
    for i in 0..SEGMENTS {
        doc.segments
            .insert(format!("segment-{i:03}"), Arc::new(segment(i, false)));
    }
    doc
}

/// Runs `f` `runs` times; prints the median and the slowest. Only the cases whose name
/// holds BENCH_CASES, when it is set.
fn time<T>(name: &str, runs: usize, mut f: impl FnMut(usize) -> T) {
    if std::env::var("BENCH_CASES").is_ok_and(|only| !name.contains(&only)) {
        return;
    }
    let runs = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(runs);
    let mut lat: Vec<Duration> = Vec::with_capacity(runs);
    for i in 0..runs {
        let t = Instant::now();
        let out = f(i);
        lat.push(t.elapsed());
        // Freed outside the timing, as the engine frees the previous snapshot off the clock.
        drop(out);
    }
    lat.sort();
    println!(
        "{name}: median {:.3} ms, max {:.3} ms ({runs} runs)",
        lat[runs / 2].as_secs_f64() * 1e3,
        lat[runs - 1].as_secs_f64() * 1e3
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = std::env::var("BENCH_FLAGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let doc = Arc::new(document(n));
    println!("{n} flags, {SEGMENTS} segments");
    time("full compile", 5, |_| {
        feature_core::compile_with(doc.clone(), Vec::new())
    });
    let base: Snapshot = compile(FlagDocument::clone(&doc));
    let mid = n / 2;
    // Every run changes the base snapshot the same way, so that none is a no-op.
    time("one flag edited", 21, |_| {
        let f = Arc::new(flag(mid, false));
        recompile(&base, [Change::Flag(format!("flag-{mid:06}"), Some(f))])
    });
    time(
        "one segment edited (1/1000 of the flags match it)",
        21,
        |_| {
            let s = Arc::new(segment(7, true));
            recompile(&base, [Change::Segment("segment-007".into(), Some(s))])
        },
    );
    time("one flag added (every position after it moves)", 21, |i| {
        let f = Arc::new(flag(i, true));
        recompile(&base, [Change::Flag(format!("flag-{mid:06}-new"), Some(f))])
    });
    time("a flag set to what it is (nothing to compile)", 21, |_| {
        let f = Arc::new(flag(mid, true));
        recompile(&base, [Change::Flag(format!("flag-{mid:06}"), Some(f))])
    });
    time("one flag removed", 21, |_| {
        recompile(&base, [Change::Flag(format!("flag-{mid:06}"), None)])
    });
    let next = recompile(
        &base,
        [Change::Flag(
            format!("flag-{mid:06}"),
            Some(Arc::new(flag(mid, false))),
        )],
    )
    .snapshot;
    time(
        "changed keys, one flag edited (known from the compile)",
        21,
        |_| next.changed_keys(&base),
    );
    let full_next = compile(FlagDocument::clone(&doc));
    time(
        "the changed keys of two separately compiled snapshots (compared)",
        5,
        |_| full_next.changed_keys(&base),
    );
}
