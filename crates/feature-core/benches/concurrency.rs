//! Concurrency: evaluating threads while another thread swaps in new snapshots.
//!
//! Each evaluation is what `client.bool(..)` does (`ArcSwap::load()`, evaluation, extraction),
//! cycling through scenarios (a)–(e) (the rollout over 1024 keys). A third thread stores a new
//! snapshot every millisecond, alternating between two compiled snapshots, for the whole run.
//! The benchmark is run with one and with two evaluating threads; criterion reports the
//! throughput of each, and the run ends with the scaling (two threads' throughput over one's).
//!
//! Run with `cargo bench -p feature-core --bench concurrency`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run
#![allow(missing_docs)] // criterion's macros generate undocumented items

mod common;

use arc_swap::ArcSwap;
use common::*;
use criterion::{BenchmarkId, Criterion, Throughput};
use feature_core::{Context, Snapshot};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How often the swapping thread stores a new snapshot.
const SWAP_EVERY: Duration = Duration::from_millis(1);

/// Evaluation `i` of the mixed workload.
#[inline]
fn evaluate(shared: &ArcSwap<Snapshot>, ctx: &Context, rollout: &[Context], i: usize) -> bool {
    let snapshot = shared.load();
    match i % 6 {
        0 => bool_of(&snapshot, "a-bool", ctx, false),
        1 => bool_of(&snapshot, "b-rules", ctx, false),
        2 => bool_of(
            &snapshot,
            "c-rollout",
            &rollout[i & (ROLLOUT_KEYS - 1)],
            false,
        ),
        3 => bool_of(&snapshot, "d1-regex", ctx, false),
        4 => bool_of(&snapshot, "d2-semver", ctx, false),
        _ => bool_of(&snapshot, "e-prereq", ctx, false),
    }
}

struct Setup {
    shared: ArcSwap<Snapshot>,
    snapshots: [Arc<Snapshot>; 2],
    ctx: Context,
    rollout: Vec<Context>,
}

/// Nanoseconds the calling thread has spent running on a CPU (Linux; `None` elsewhere).
fn cpu_time_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// Runs `iters` evaluations on each of `threads` threads while snapshots are swapped; returns
/// the wall time from the start signal until the last evaluating thread is done, and the CPU
/// time the evaluating threads got meanwhile (when the platform tells).
fn run(setup: &Setup, threads: usize, iters: u64) -> (Duration, Option<u64>) {
    let stop = AtomicBool::new(false);
    let start = Barrier::new(threads + 1);
    thread::scope(|s| {
        let swapper = s.spawn(|| {
            let mut swaps = 0usize;
            while !stop.load(Ordering::Relaxed) {
                thread::sleep(SWAP_EVERY);
                setup.shared.store(Arc::clone(&setup.snapshots[swaps % 2]));
                swaps += 1;
            }
        });
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let start = &start;
                s.spawn(move || {
                    // Warm this thread up (arc-swap registration, regex cache) before the start.
                    for i in 0..64 {
                        black_box(evaluate(&setup.shared, &setup.ctx, &setup.rollout, i));
                    }
                    start.wait();
                    let cpu = cpu_time_ns();
                    let offset = t * 7919;
                    for i in 0..iters as usize {
                        black_box(evaluate(
                            &setup.shared,
                            black_box(&setup.ctx),
                            &setup.rollout,
                            i + offset,
                        ));
                    }
                    Some(cpu_time_ns()? - cpu?)
                })
            })
            .collect();
        start.wait();
        let began = Instant::now();
        let cpu: Option<u64> = workers
            .into_iter()
            .map(|w| w.join().expect("an evaluating thread panicked"))
            .sum();
        let wall = began.elapsed();
        stop.store(true, Ordering::Relaxed);
        swapper.join().expect("the swapping thread panicked");
        (wall, cpu)
    })
}

/// Per sample: wall nanoseconds per round (one evaluation on each thread), and CPU nanoseconds
/// per evaluation, by number of threads.
static SAMPLES: Mutex<[Vec<(f64, f64)>; 2]> = Mutex::new([Vec::new(), Vec::new()]);

fn concurrency(c: &mut Criterion) {
    let snapshot = snapshot();
    let setup = Setup {
        shared: ArcSwap::from_pointee(snapshot.clone()),
        snapshots: [Arc::new(snapshot.clone()), Arc::new(snapshot)],
        ctx: context(),
        rollout: rollout_contexts(),
    };
    let mut g = c.benchmark_group("concurrency_swapping_every_1ms");
    for threads in [1usize, 2] {
        g.throughput(Throughput::Elements(threads as u64));
        g.bench_with_input(
            BenchmarkId::new("evaluating_threads", threads),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| {
                    let (wall, cpu) = run(&setup, threads, iters);
                    let evaluations = (iters as usize * threads) as f64;
                    SAMPLES.lock().expect("samples")[threads - 1].push((
                        wall.as_secs_f64() * 1e9 / iters as f64,
                        cpu.map_or(f64::NAN, |c| c as f64 / evaluations),
                    ));
                    wall
                })
            },
        );
    }
    g.finish();
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    concurrency(&mut c);
    c.final_summary();
    let samples = SAMPLES.lock().expect("samples");
    if samples.iter().all(|s| !s.is_empty()) {
        let wall = |t: usize| median(&samples[t].iter().map(|s| s.0).collect::<Vec<_>>());
        let cpu = |t: usize| median(&samples[t].iter().map(|s| s.1).collect::<Vec<_>>());
        let (one, two) = (wall(0), wall(1));
        println!(
            "\nsnapshots swapped every {SWAP_EVERY:?}: 1 evaluating thread {:.1} M evaluations/s, \
             2 evaluating threads {:.1} M/s: {:.2}x the single-thread throughput",
            1e3 / one,
            2e3 / two,
            2.0 * one / two
        );
        println!(
            "CPU time per evaluation: {:.1} ns with 1 thread, {:.1} ns with 2 \
             (per-thread efficiency {:.2}; scaling with two idle cores would be {:.2}x)",
            cpu(0),
            cpu(1),
            cpu(0) / cpu(1),
            2.0 * cpu(0) / cpu(1)
        );
    }
}
