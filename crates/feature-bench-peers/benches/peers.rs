//! Criterion benchmarks of scenarios (a)–(e) on feature, Yggdrasil and LaunchDarkly.
//!
//! `cargo bench -p feature-bench-peers` prints one group per scenario, one benchmark per
//! engine. For the ratio table, run the binary: `cargo run -p feature-bench-peers --release`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run
#![allow(missing_docs)] // criterion's macros generate undocumented items

use criterion::{criterion_group, criterion_main, Criterion};
use feature_bench_peers::{check, runner, Feature, LaunchDarkly, Scenario, Yggdrasil};
use std::time::Duration;

fn peers(c: &mut Criterion) {
    check().unwrap_or_else(|e| panic!("engines disagree with the scenarios: {e}"));
    let (ours, yggdrasil, launchdarkly) = (Feature::new(), Yggdrasil::new(), LaunchDarkly::new());
    for s in Scenario::ALL {
        let mut g = c.benchmark_group(s.id());
        let mut runners = [
            runner(&ours, s),
            runner(&yggdrasil, s),
            runner(&launchdarkly, s),
        ];
        for r in &mut runners {
            g.bench_function(r.engine, |b| b.iter_custom(|iters| r.run(iters)));
        }
        g.finish();
    }
}

/// The floor of scenario (d1): the regular expression alone, as the regex crate runs it (a lazy
/// DFA behind a per-thread cache; what feature and Yggdrasil use) and as a fully compiled DFA.
fn regex_floor(c: &mut Criterion) {
    use regex_automata::{dfa::regex::Regex as DfaRegex, Input};
    use std::hint::black_box;
    const PATTERN: &str = r"^[a-z0-9.]+@example\.com$";
    let lazy = regex::Regex::new(PATTERN).expect("valid");
    let full = DfaRegex::new(PATTERN).expect("valid");
    let mut g = c.benchmark_group("floor_d1_regex");
    g.bench_function("regex_is_match", |b| {
        b.iter(|| lazy.is_match(black_box("jo@example.com")))
    });
    g.bench_function("full_dfa_is_match", |b| {
        b.iter(|| full.is_match(Input::new(black_box("jo@example.com")).earliest(true)))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = peers, regex_floor
}
criterion_main!(benches);
