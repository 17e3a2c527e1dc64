//! Times scenarios (a)–(e) on feature, Yggdrasil and LaunchDarkly in one run and prints the
//! medians and ratios as a Markdown table, after checking every engine's answers.
//!
//! ```text
//! cargo run -p feature-bench-peers --release                 # every scenario
//! cargo run -p feature-bench-peers --release -- a c d1       # some scenarios
//! cargo run -p feature-bench-peers --release -- --quick      # fewer, shorter samples
//! cargo run -p feature-bench-peers --release -- --profile feature d1 1000000
//! cargo run -p feature-bench-peers --release -- --threads 15     # scaling, 15 rounds
//! cargo run -p feature-bench-peers --release -- --steps 5        # (c) step by step
//! ```
//!
//! `--profile ENGINE SCENARIO N` runs N evaluations and nothing else, for a profiler
//! (`valgrind --tool=callgrind`, `perf record`); ENGINE `sha1-alone` runs the bucketing hash
//! of (c) alone, the floor (c) is compared with.

use feature_bench_peers::{
    check, compare, hash_floor_runner, rollout_steps, runner, table, Feature, FeatureArcSwap,
    FeatureKeyed, LaunchDarkly, Plan, Scenario, SnapshotKeyed, Yggdrasil,
};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--profile") {
        return profile(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("--steps") {
        let rounds = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(5);
        let plan = Plan {
            samples: 30,
            ..Plan::default()
        };
        let steps = match rollout_steps(rounds, plan) {
            Ok(steps) => steps,
            Err(e) => {
                eprintln!("the steps disagree with the client: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!(
            "(c) step by step, {rounds} interleaved rounds (median of the rounds' medians):\n"
        );
        println!("| step | ns | × the hash alone | added by the step (ns) |\n|---|---:|---:|---:|");
        let hash = steps[0].1;
        let mut before = hash;
        for (engine, ns) in &steps {
            println!(
                "| {engine} | {ns:.1} | {:.3}× | {:+.1} |",
                ns / hash,
                ns - before
            );
            before = *ns;
        }
        return ExitCode::SUCCESS;
    }
    if args.first().map(String::as_str) == Some("--threads") {
        let rounds = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(15);
        let (one, two, ratio) = feature_bench_peers::scaling(rounds, Duration::from_millis(300));
        println!(
            "{rounds} rounds of 300 ms, one then two reading threads, a third publishing every millisecond (medians):"
        );
        for r in [one, two] {
            println!(
                "{} thread(s): {:.1} M evaluations/s, {:.1} ns of CPU per evaluation",
                r.threads,
                r.per_second / 1e6,
                r.cpu_ns
            );
        }
        println!("two threads / one thread: {ratio:.2}× (target ≥ 1.9×)");
        return ExitCode::SUCCESS;
    }
    if let Err(e) = check() {
        eprintln!("engines disagree with the scenarios: {e}");
        return ExitCode::FAILURE;
    }
    let mut plan = Plan::default();
    let mut scenarios = Vec::new();
    for a in &args {
        match a.as_str() {
            "--quick" => {
                plan.samples = 15;
                plan.batch = Duration::from_millis(5);
                plan.warm_up = Duration::from_millis(100);
            }
            s => {
                match Scenario::parse(s) {
                    Some(s) => scenarios.push(s),
                    None => {
                        eprintln!("unknown argument {s:?}: expected a, b, c, d1, d2, e, --quick or --profile");
                        return ExitCode::FAILURE;
                    }
                }
            }
        }
    }
    if scenarios.is_empty() {
        scenarios = Scenario::ALL.to_vec();
    }
    println!(
        "All engines return the expected result in every scenario. Timing: {} samples of {:?} per engine, interleaved; medians.\n",
        plan.samples, plan.batch
    );
    let rows = compare(&scenarios, plan);
    print!("{}", table(&rows));
    let missed: Vec<&str> = rows
        .iter()
        .filter(|r| !r.met())
        .map(|r| r.scenario.label())
        .collect();
    if missed.is_empty() {
        println!("\nEvery target met.");
    } else {
        println!("\nTargets missed: {}", missed.join(", "));
    }
    ExitCode::SUCCESS
}

fn profile(args: &[String]) -> ExitCode {
    let (Some(engine), Some(scenario), n) = (
        args.first(),
        args.get(1).and_then(|s| Scenario::parse(s)),
        args.get(2)
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(1_000_000),
    ) else {
        eprintln!(
            "usage: --profile feature|feature-key|feature-arcswap|snapshot-key|yggdrasil|launchdarkly|sha1-alone a|b|c|d1|d2|e [N]"
        );
        return ExitCode::FAILURE;
    };
    let t = match engine.as_str() {
        "feature" => runner(&Feature::new(), scenario).run(n),
        "feature-key" => runner(&FeatureKeyed(Feature::new()), scenario).run(n),
        "feature-arcswap" => runner(&FeatureArcSwap::new(), scenario).run(n),
        "snapshot-key" => runner(&SnapshotKeyed::new(), scenario).run(n),
        "yggdrasil" => runner(&Yggdrasil::new(), scenario).run(n),
        "launchdarkly" => runner(&LaunchDarkly::new(), scenario).run(n),
        // The floor of (c), whatever the scenario given: the bucketing hash alone.
        "sha1-alone" => hash_floor_runner().run(n),
        other => {
            eprintln!("unknown engine {other:?}");
            return ExitCode::FAILURE;
        }
    };
    println!("{n} evaluations in {t:?}");
    ExitCode::SUCCESS
}
