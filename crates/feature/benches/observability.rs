//! What observability costs evaluation, and how fast the analytics queue accepts events.
//!
//! ```text
//! cargo bench -p feature --bench observability --features prometheus
//! ```
//!
//! - `evaluation/*`: one `client.bool`, on a flag with a targeting rule and on a constant
//!   flag: bare (no metrics, no events), with no-op hooks that take every event, with
//!   Prometheus metrics + health statistics, with the
//!   analytics pipeline (default sampling: 1 evaluation event in 100), with both, and with both
//!   and an exporter that never answers.
//! - `pipeline/*`: events offered to the analytics queue per second (every event kept).
//! - `counting/*`: recording evaluations from one and from two threads (per-thread counters
//!   vs a single shared atomic), and whole evaluations with [`EvaluationStats`], to show that
//!   counting scales with cores (throughput is for all threads together).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use feature::analytics::exporters::{AnalyticsExporter, ExportError};
use feature::analytics::{AnalyticsEvent, AnalyticsPipeline, PipelineConfig};
use feature::metrics::prometheus::PrometheusMetrics;
use feature::metrics::{EvaluationRecord, EvaluationStats, MetricsConfig, Tee};
use feature::{Client, Context, EventSink, FlagDocument, MemoryProvider, Metrics, ReasonKind};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FLAGS: &str = r#"
flags:
  new-checkout:
    type: bool
    default: false
    variants: [{value: false}, {value: true}]
    rules:
      - id: pro-users
        clauses: [{attribute: plan, operator: in, values: [pro, enterprise]}]
        variation: 1
  simple:
    type: bool
    default: true
"#;

/// Accepts and forgets (a healthy, infinitely fast destination).
struct Discard;

#[async_trait]
impl AnalyticsExporter for Discard {
    async fn export(&self, events: &[AnalyticsEvent]) -> Result<(), ExportError> {
        black_box(events.len());
        Ok(())
    }
}

/// Never answers (a dead endpoint).
struct Dead;

#[async_trait]
impl AnalyticsExporter for Dead {
    async fn export(&self, _events: &[AnalyticsEvent]) -> Result<(), ExportError> {
        std::future::pending::<()>().await;
        Ok(())
    }
}

fn document() -> FlagDocument {
    feature::engine::parse_document(FLAGS, feature::engine::Format::Yaml)
        .expect("bench flags parse")
        .document
}

fn client(
    rt: &tokio::runtime::Runtime,
    metrics: bool,
    events: Option<&AnalyticsPipeline>,
) -> Client {
    let mut b = Client::builder().provider(MemoryProvider::with_document(document()));
    if metrics {
        let m = PrometheusMetrics::new(&MetricsConfig::default()).expect("metrics");
        m.register(&prometheus::Registry::new()).expect("register");
        b = b.metrics(Tee(m, EvaluationStats::new()));
    }
    if let Some(events) = events {
        b = b.events(events.clone());
    }
    rt.block_on(b.build()).expect("client")
}

/// Takes every event (it states no sample rate, so the client asks it each time) and does
/// nothing: what building an event on every evaluation costs.
struct NoopSink;

impl EventSink for NoopSink {
    fn evaluation(&self, e: &feature::EvaluationEvent<'_>) {
        black_box(e);
    }
    fn track(&self, _: &Context, _: &str, _: &feature::analytics::TrackData) {}
}

fn noop_client(rt: &tokio::runtime::Runtime) -> Client {
    let b = Client::builder()
        .provider(MemoryProvider::with_document(document()))
        .metrics(feature::NoopMetrics)
        .events(NoopSink);
    rt.block_on(b.build()).expect("client")
}

/// Interleaved rounds of every variant, so that a busy moment of a shared machine slows them
/// alike: the median over rounds of each variant's time divided by bare's, per flag.
fn interleaved(variants: &[(&str, Client)], user: &Context) {
    const ROUNDS: usize = 41;
    const N: u32 = 200_000;
    for flag in ["new-checkout", "simple"] {
        let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
        let mut nanos: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
        for _ in 0..ROUNDS {
            let mut round = Vec::with_capacity(variants.len());
            for (_, client) in variants {
                let t = Instant::now();
                for _ in 0..N {
                    black_box(client.bool(black_box(user), flag, false));
                }
                round.push(t.elapsed().as_secs_f64() * 1e9 / f64::from(N));
            }
            for (i, ns) in round.iter().enumerate() {
                ratios[i].push(ns / round[0]);
                nanos[i].push(*ns);
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        for (i, (name, _)) in variants.iter().enumerate() {
            eprintln!(
                "interleaved {flag:>12} {name:<34} {:>6.1} ns  {:>5.2}x bare",
                median(&mut nanos[i]),
                median(&mut ratios[i])
            );
        }
    }
}

fn evaluation(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let user = Context::new("user-123")
        .with_attribute("plan", "pro")
        .with_email("jo@example.com");
    let healthy = AnalyticsPipeline::start(Discard, PipelineConfig::default()).expect("pipeline");
    let dead = AnalyticsPipeline::start(
        Dead,
        PipelineConfig {
            capacity: 1024,
            close_timeout: Duration::from_millis(10),
            ..PipelineConfig::default()
        },
    )
    .expect("pipeline");
    let variants = [
        ("bare", client(&rt, false, None)),
        ("noop-metrics+noop-events", noop_client(&rt)),
        ("prometheus+stats", client(&rt, true, None)),
        ("analytics", client(&rt, false, Some(&healthy))),
        (
            "prometheus+stats+analytics",
            client(&rt, true, Some(&healthy)),
        ),
        (
            "prometheus+stats+dead-exporter",
            client(&rt, true, Some(&dead)),
        ),
    ];
    let mut g = c.benchmark_group("evaluation");
    for flag in ["new-checkout", "simple"] {
        for (name, client) in &variants {
            g.bench_function(BenchmarkId::new(*name, flag), |b| {
                b.iter(|| client.bool(black_box(&user), flag, false))
            });
        }
    }
    g.finish();
    interleaved(&variants, &user);
    eprintln!("healthy pipeline: {:?}", healthy.stats());
    eprintln!("dead pipeline: {:?}", dead.stats());
}

fn pipeline(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    const CHUNK: u64 = 100_000;
    let user = Context::new("user-123")
        .with_attribute("plan", "pro")
        .with_email("jo@example.com");
    let value = serde_json::json!(true);
    let event = feature::EvaluationEvent {
        key: "new-checkout",
        context: &user,
        value: &value,
        variation: Some(1),
        reason: ReasonKind::RuleMatch,
        default: Default::default(),
        rule_index: None,
        rule_id: Some("pro-users"),
        in_experiment: false,
        error: None,
        prerequisite_key: None,
    };
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(1));
    // `accept`: the worker sleeps while the events are offered (a batch never fills), so this
    // is what the queue accepts per second from one thread. `sustained`: batches of 500 are
    // exported while events are offered, the worker competing for the same cores.
    for (name, batch_size) in [("accept", CHUNK as usize + 1), ("sustained", 500)] {
        let pipeline = AnalyticsPipeline::start(
            Discard,
            PipelineConfig {
                capacity: CHUNK as usize + 1,
                batch_size,
                evaluation_sample_rate: 1.0,
                ..PipelineConfig::default()
            },
        )
        .expect("pipeline");
        let offer_chunks = |iters: u64, offer: &dyn Fn()| {
            // Time only the offers; drain the queue between chunks, untimed, so nothing is
            // dropped.
            let mut spent = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK);
                let t = Instant::now();
                for _ in 0..n {
                    offer();
                }
                spent += t.elapsed();
                rt.block_on(pipeline.flush());
                left -= n;
            }
            spent
        };
        g.bench_function(BenchmarkId::new("evaluation", name), |b| {
            b.iter_custom(|iters| offer_chunks(iters, &|| pipeline.evaluation(black_box(&event))))
        });
        g.bench_function(BenchmarkId::new("track", name), |b| {
            b.iter_custom(|iters| {
                offer_chunks(iters, &|| {
                    pipeline.track(
                        black_box(&user),
                        "checkout",
                        &feature::analytics::TrackData::default(),
                    )
                })
            })
        });
        // A different context on each event: each is copied (no reuse of the last one).
        let users: Vec<Context> = (0..1000)
            .map(|i| {
                Context::new(format!("user-{i}"))
                    .with_attribute("plan", "pro")
                    .with_email("jo@example.com")
            })
            .collect();
        let next = std::cell::Cell::new(0usize);
        g.bench_function(BenchmarkId::new("evaluation-distinct-users", name), |b| {
            b.iter_custom(|iters| {
                offer_chunks(iters, &|| {
                    let i = next.get();
                    next.set((i + 1) % users.len());
                    pipeline.evaluation(&feature::EvaluationEvent {
                        context: &users[i],
                        ..event
                    })
                })
            })
        });
        if batch_size == 500 {
            // Offers and the worker's conversion and export, all timed: what one producer
            // thread sustains end to end.
            g.bench_function(
                BenchmarkId::new("evaluation-distinct-users", "end-to-end"),
                |b| {
                    b.iter_custom(|iters| {
                        let t = Instant::now();
                        let mut left = iters;
                        while left > 0 {
                            let n = left.min(CHUNK);
                            for _ in 0..n {
                                let i = next.get();
                                next.set((i + 1) % users.len());
                                pipeline.evaluation(&feature::EvaluationEvent {
                                    context: &users[i],
                                    ..event
                                });
                            }
                            rt.block_on(pipeline.flush());
                            left -= n;
                        }
                        t.elapsed()
                    })
                },
            );
        }
        let stats = pipeline.stats();
        eprintln!("pipeline {name}: {stats:?}");
        assert_eq!(
            stats.dropped, 0,
            "the bench must measure accepted events only"
        );
    }
    g.finish();
}

/// Runs `f(iters)` on `threads` threads at once; the wall time.
fn on_threads(threads: usize, iters: u64, f: impl Fn(u64) + Sync) -> Duration {
    let barrier = std::sync::Barrier::new(threads + 1);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                barrier.wait();
                f(iters);
            });
        }
        barrier.wait();
        let t = Instant::now();
        // The scope joins every thread before returning.
        t
    })
    .elapsed()
}

fn counting(c: &mut Criterion) {
    let value = serde_json::json!(true);
    let record = EvaluationRecord {
        key: "new-checkout",
        reason: ReasonKind::RuleMatch,
        error: None,
        variation: Some(1),
        value: Some(&value),
        duration: None,
        counted: false,
    };
    let stats = EvaluationStats::new();
    let prom = PrometheusMetrics::new(&MetricsConfig::default()).expect("metrics");
    let shared = Arc::new(AtomicU64::new(0));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let bare = client(&rt, false, None);
    let with_stats = rt
        .block_on(
            Client::builder()
                .provider(MemoryProvider::with_document(document()))
                .metrics(EvaluationStats::new())
                .build(),
        )
        .expect("client");
    let user = Context::new("user-123").with_attribute("plan", "pro");
    let mut g = c.benchmark_group("counting");
    for threads in [1usize, 2] {
        // Elements: evaluations recorded by all threads together.
        g.throughput(Throughput::Elements(threads as u64));
        g.bench_function(BenchmarkId::new("evaluation-stats", threads), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, |n| {
                    for _ in 0..n {
                        stats.record_evaluation(black_box(&record));
                    }
                })
            })
        });
        g.bench_function(BenchmarkId::new("prometheus", threads), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, |n| {
                    for _ in 0..n {
                        prom.record_evaluation(black_box(&record));
                    }
                })
            })
        });
        for (name, client) in [("client-bare", &bare), ("client-with-stats", &with_stats)] {
            g.bench_function(BenchmarkId::new(name, threads), |b| {
                b.iter_custom(|iters| {
                    on_threads(threads, iters, |n| {
                        for _ in 0..n {
                            black_box(client.bool(black_box(&user), "new-checkout", false));
                        }
                    })
                })
            });
        }
        g.bench_function(BenchmarkId::new("one-shared-atomic", threads), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, |n| {
                    for _ in 0..n {
                        shared.fetch_add(1, Ordering::Relaxed);
                        shared.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, evaluation, pipeline, counting);
criterion_main!(benches);
