//! The analytics pipeline and its exporters: nothing lost on close, never blocking, sampling,
//! redaction, batching, file rotation, webhook retries against a real local HTTP server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use async_trait::async_trait;
use feature::analytics::exporters::{AnalyticsExporter, ExportError, FileExporter, StdoutExporter};
use feature::analytics::{AnalyticsEvent, AnalyticsPipeline, EventKind, PipelineConfig, Redaction};
use feature::{Client, Context, EventSink, Flag, MemoryProvider};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Keeps every batch it is given (a healthy exporter).
#[derive(Clone, Default)]
struct Collect {
    batches: Arc<Mutex<Vec<Vec<AnalyticsEvent>>>>,
}

impl Collect {
    fn events(&self) -> Vec<AnalyticsEvent> {
        self.batches
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .cloned()
            .collect()
    }
    fn sizes(&self) -> Vec<usize> {
        self.batches.lock().unwrap().iter().map(Vec::len).collect()
    }
}

#[async_trait]
impl AnalyticsExporter for Collect {
    async fn export(&self, events: &[AnalyticsEvent]) -> Result<(), ExportError> {
        self.batches.lock().unwrap().push(events.to_vec());
        Ok(())
    }
}

/// Never finishes an export (a dead endpoint without timeouts).
struct Dead;

#[async_trait]
impl AnalyticsExporter for Dead {
    async fn export(&self, _events: &[AnalyticsEvent]) -> Result<(), ExportError> {
        std::future::pending::<()>().await;
        Ok(())
    }
}

fn config(sample: f64) -> PipelineConfig {
    PipelineConfig {
        evaluation_sample_rate: sample,
        ..PipelineConfig::default()
    }
}

async fn client_with(pipeline: &AnalyticsPipeline) -> Client {
    let flags = MemoryProvider::new();
    flags.set_flag(Flag::boolean("beta", true));
    Client::builder()
        .provider(flags)
        .events(pipeline.clone())
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_on_close_with_a_healthy_exporter() {
    let sink = Collect::default();
    let pipeline = AnalyticsPipeline::start(
        sink.clone(),
        PipelineConfig {
            capacity: 100_000,
            batch_size: 128,
            flush_interval: Duration::from_secs(3600),
            ..config(1.0)
        },
    )
    .unwrap();
    let client = client_with(&pipeline).await;
    let n = 20_000;
    for i in 0..n {
        let user = Context::new(format!("user-{i}"));
        if i % 10 == 0 {
            client.track(&user, "checkout", serde_json::json!({"i": i}));
        } else {
            client.bool(&user, "beta", false);
        }
    }
    client.close().await;
    let events = sink.events();
    assert_eq!(events.len(), n, "stats: {:?}", pipeline.stats());
    let stats = pipeline.stats();
    assert_eq!(
        (stats.accepted, stats.dropped, stats.exported, stats.failed),
        (n as u64, 0, n as u64, 0)
    );
    // In order, each one once.
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.user_key, format!("user-{i}"));
        if i % 10 == 0 {
            assert_eq!(e.kind, EventKind::Custom);
            assert_eq!(e.event.as_deref(), Some("checkout"));
            assert_eq!(e.data, Some(serde_json::json!({"i": i})));
        } else {
            assert_eq!(e.kind, EventKind::Evaluation);
            assert_eq!(e.flag_key, "beta");
            assert_eq!(e.value, serde_json::json!(true));
        }
    }
    assert!(sink.sizes().iter().all(|&s| s <= 128));
    // After close, events are dropped and counted, never queued.
    client.track(&Context::new("late"), "after-close", ());
    pipeline.track(
        &Context::new("late"),
        "after-close",
        &feature::analytics::TrackData::default(),
    );
    assert_eq!(pipeline.stats().dropped, 2);
}

#[tokio::test]
async fn experiments_and_custom_events_survive_sampling() {
    let sink = Collect::default();
    let pipeline = AnalyticsPipeline::start(sink.clone(), config(0.0)).unwrap();
    let user = Context::new("u1");
    let value = serde_json::json!("b");
    let base = feature::EvaluationEvent {
        key: "plain",
        context: &user,
        value: &value,
        variation: Some(1),
        reason: feature::ReasonKind::Fallthrough,
        default: Default::default(),
        rule_index: None,
        rule_id: None,
        in_experiment: false,
        error: None,
        prerequisite_key: None,
    };
    for _ in 0..1000 {
        offer(&pipeline, &base);
    }
    for _ in 0..7 {
        offer(
            &pipeline,
            &feature::EvaluationEvent {
                key: "exp",
                in_experiment: true,
                rule_id: Some("r1"),
                ..base
            },
        );
    }
    pipeline.track(&user, "clicked", &feature::analytics::TrackData::default());
    pipeline.close().await;
    let events = sink.events();
    assert_eq!(events.len(), 8);
    assert!(events[..7]
        .iter()
        .all(|e| e.flag_key == "exp" && e.in_experiment && e.rule_id.as_deref() == Some("r1")));
    assert_eq!(events[7].event.as_deref(), Some("clicked"));
}

#[tokio::test]
async fn sampling_keeps_about_the_configured_share() {
    let sink = Collect::default();
    let pipeline = AnalyticsPipeline::start(
        sink.clone(),
        PipelineConfig {
            capacity: 100_000,
            ..config(0.25)
        },
    )
    .unwrap();
    let user = Context::new("u1");
    let value = serde_json::json!(true);
    let e = feature::EvaluationEvent {
        key: "k",
        context: &user,
        value: &value,
        variation: Some(1),
        reason: feature::ReasonKind::Fallthrough,
        default: Default::default(),
        rule_index: None,
        rule_id: None,
        in_experiment: false,
        error: None,
        prerequisite_key: None,
    };
    for _ in 0..40_000 {
        offer(&pipeline, &e);
    }
    pipeline.close().await;
    let kept = sink.events().len();
    // 10 000 expected; a binomial spread is ~87: these bounds are very generous.
    assert!((9_000..=11_000).contains(&kept), "kept {kept}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_samples_evaluations_at_the_pipelines_rate_from_every_thread() {
    let sink = Collect::default();
    let pipeline = AnalyticsPipeline::start(
        sink.clone(),
        PipelineConfig {
            capacity: 100_000,
            ..config(0.25)
        },
    )
    .unwrap();
    let client = client_with(&pipeline).await;
    // Threads that come and go (their counter lines pass to later threads) and one that
    // evaluates a lot: the share kept is the rate either way.
    for t in 0..400 {
        let client = client.clone();
        std::thread::spawn(move || {
            let user = Context::new(format!("u{t}"));
            for _ in 0..10 {
                assert!(client.bool(&user, "beta", false));
            }
        })
        .join()
        .unwrap();
    }
    let user = Context::new("main");
    for _ in 0..36_000 {
        client.bool(&user, "beta", false);
    }
    pipeline.close().await;
    let kept = sink.events().len();
    // 10 000 expected of 40 000 (binomial spread ~87).
    assert!((9_400..=10_600).contains(&kept), "kept {kept}");
}

#[test]
fn a_dead_exporter_never_slows_evaluation() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pipeline = AnalyticsPipeline::start(
        Dead,
        PipelineConfig {
            capacity: 64,
            batch_size: 16,
            close_timeout: Duration::from_millis(200),
            ..config(1.0)
        },
    )
    .unwrap();
    let client = rt.block_on(client_with(&pipeline));
    let user = Context::new("u1");
    let n = 200_000u64;
    let started = Instant::now();
    for _ in 0..n {
        assert!(client.bool(&user, "beta", false));
    }
    let took = started.elapsed();
    let stats = pipeline.stats();
    assert_eq!(stats.accepted, n);
    assert_eq!(stats.accounted(), n, "{stats:?}");
    // The queue holds 64 and the worker holds one batch it cannot deliver: the rest is dropped.
    assert!(stats.dropped >= n - (64 + 16), "{stats:?}");
    // A blocked evaluation would never finish; a generous bound for a slow CI machine.
    assert!(
        took < Duration::from_secs(20),
        "200k evaluations took {took:?}"
    );
    // close() gives up after close_timeout instead of hanging the application.
    let started = Instant::now();
    rt.block_on(client.close());
    assert!(started.elapsed() < Duration::from_secs(10));
    // ... and counts what it gave up on: nothing is pending, nothing unaccounted.
    let stats = pipeline.stats();
    assert_eq!((stats.accepted, stats.pending), (n, 0), "{stats:?}");
    assert_eq!(
        stats.exported + stats.failed + stats.dropped,
        n,
        "{stats:?}"
    );
    assert!((1..=64 + 16).contains(&stats.abandoned), "{stats:?}");
}

/// Holds every export for `hold`, then delivers it; counts what it delivered.
#[derive(Clone)]
struct Slow {
    hold: Duration,
    delivered: Arc<std::sync::atomic::AtomicU64>,
}

#[async_trait]
impl AnalyticsExporter for Slow {
    async fn export(&self, events: &[AnalyticsEvent]) -> Result<(), ExportError> {
        tokio::time::sleep(self.hold).await;
        self.delivered
            .fetch_add(events.len() as u64, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

fn track_n(pipeline: &AnalyticsPipeline, n: usize) {
    for i in 0..n {
        pipeline.track(
            &Context::new(format!("u{i}")),
            "checkout",
            &feature::analytics::TrackData::default(),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_that_times_out_counts_the_batch_the_exporter_still_holds() {
    let slow = Slow {
        hold: Duration::from_millis(1500),
        delivered: Arc::default(),
    };
    let pipeline = AnalyticsPipeline::start(
        slow.clone(),
        PipelineConfig {
            capacity: 1000,
            batch_size: 40,
            flush_interval: Duration::from_secs(3600),
            close_timeout: Duration::from_millis(200),
            ..config(1.0)
        },
    )
    .unwrap();
    // 100 events: the worker takes a full batch of 40 into a slow export; 60 stay queued.
    track_n(&pipeline, 100);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(pipeline.stats().pending, 100);
    let started = Instant::now();
    pipeline.close().await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "close waited {:?}",
        started.elapsed()
    );
    let stats = pipeline.stats();
    assert_eq!(
        (
            stats.accepted,
            stats.exported,
            stats.failed,
            stats.dropped,
            stats.abandoned,
            stats.pending
        ),
        (100, 0, 0, 100, 100, 0),
        "{stats:?}"
    );
    // The held batch finishes later: it is not counted twice, and nothing more is exported.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let later = pipeline.stats();
    assert_eq!(later, stats);
    assert!(slow.delivered.load(std::sync::atomic::Ordering::SeqCst) <= 40);
    // Events offered after the close are dropped, and still accounted for.
    track_n(&pipeline, 3);
    let after = pipeline.stats();
    assert_eq!(
        (after.accepted, after.dropped, after.pending),
        (103, 103, 0),
        "{after:?}"
    );
}

/// Fails every third batch, after a short pause; counts what it delivered and what it failed.
#[derive(Clone, Default)]
struct Flaky {
    calls: Arc<std::sync::atomic::AtomicU64>,
    delivered: Arc<std::sync::atomic::AtomicU64>,
    refused: Arc<std::sync::atomic::AtomicU64>,
}

#[async_trait]
impl AnalyticsExporter for Flaky {
    async fn export(&self, events: &[AnalyticsEvent]) -> Result<(), ExportError> {
        use std::sync::atomic::Ordering::SeqCst;
        tokio::time::sleep(Duration::from_micros(300)).await;
        let n = events.len() as u64;
        if self.calls.fetch_add(1, SeqCst) % 3 == 2 {
            self.refused.fetch_add(n, SeqCst);
            Err(ExportError::Closed("flaky"))
        } else {
            self.delivered.fetch_add(n, SeqCst);
            Ok(())
        }
    }
}

#[test]
fn the_counters_account_for_every_event_at_every_moment() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    let flaky = Flaky::default();
    let pipeline = AnalyticsPipeline::start(
        flaky.clone(),
        PipelineConfig {
            capacity: 256,
            batch_size: 32,
            flush_interval: Duration::from_millis(5),
            close_timeout: Duration::from_secs(20),
            ..config(1.0)
        },
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (per_thread, threads) = (30_000usize, 3usize);
    let monitor = {
        let (pipeline, stop) = (pipeline.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut checks = 0u64;
            while !stop.load(SeqCst) {
                let s = pipeline.stats();
                // Never more delivered, failed or dropped than accepted: the rest is pending
                // (in the queue, in a batch, or being offered while the counters are read).
                assert!(s.exported + s.failed + s.dropped <= s.accepted, "{s:?}");
                checks += 1;
            }
            checks
        })
    };
    let writers: Vec<_> = (0..threads)
        .map(|_| {
            let pipeline = pipeline.clone();
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    if i % 2 == 0 {
                        track_n(&pipeline, 1);
                    } else {
                        offer(
                            &pipeline,
                            &feature::EvaluationEvent {
                                key: "beta",
                                context: &Context::new("u"),
                                value: &serde_json::Value::Bool(true),
                                variation: Some(0),
                                reason: feature::ReasonKind::Fallthrough,
                                default: Default::default(),
                                rule_index: None,
                                rule_id: None,
                                in_experiment: true,
                                error: None,
                                prerequisite_key: None,
                            },
                        );
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(pipeline.close());
    stop.store(true, SeqCst);
    let checks = monitor.join().unwrap();
    assert!(checks > 100, "only {checks} checks");
    let s = pipeline.stats();
    let n = (per_thread * threads) as u64;
    assert_eq!(s.accepted, n, "{s:?}");
    assert_eq!(s.pending, 0, "{s:?}");
    assert_eq!(s.exported + s.failed + s.dropped, n, "{s:?}");
    // The counts are the exporter's own, and the small queue did overflow.
    assert_eq!(s.exported, flaky.delivered.load(SeqCst), "{s:?}");
    assert_eq!(s.failed, flaky.refused.load(SeqCst), "{s:?}");
    assert!(s.dropped > 0 && s.exported > 0 && s.failed > 0, "{s:?}");
    assert_eq!(s.abandoned, 0, "{s:?}");
}

/// Events offered while `close()` runs are all accounted for once it has returned and the
/// writers have stopped: exported, failed or dropped, none left pending for ever.
#[test]
fn events_offered_during_close_are_never_left_pending() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for round in 0..20 {
        let pipeline = AnalyticsPipeline::start(
            Flaky::default(),
            PipelineConfig {
                capacity: 1024,
                batch_size: 16,
                flush_interval: Duration::from_millis(1),
                close_timeout: Duration::from_secs(20),
                ..config(1.0)
            },
        )
        .unwrap();
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let pipeline = pipeline.clone();
                std::thread::spawn(move || track_n(&pipeline, 20_000))
            })
            .collect();
        rt.block_on(pipeline.close());
        for w in writers {
            w.join().unwrap();
        }
        let s = pipeline.stats();
        assert_eq!(s.accepted, 40_000, "round {round}: {s:?}");
        assert_eq!(s.pending, 0, "round {round}: {s:?}");
        assert_eq!(
            s.exported + s.failed + s.dropped,
            s.accepted,
            "round {round}: {s:?}"
        );
    }
}

#[tokio::test]
async fn batches_by_size_and_by_time() {
    let sink = Collect::default();
    let pipeline = AnalyticsPipeline::start(
        sink.clone(),
        PipelineConfig {
            batch_size: 10,
            flush_interval: Duration::from_millis(100),
            ..config(1.0)
        },
    )
    .unwrap();
    for i in 0..25 {
        pipeline.track(
            &Context::new(format!("u{i}")),
            "e",
            &feature::analytics::TrackData::default(),
        );
    }
    // The last 5 go out when the interval passes, without flush or close.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sink.events().len() < 25 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Full batches go out by size; the last 5 by time. (Normally [10, 10, 5]; a stall of the
    // test thread longer than the interval may split a batch, never lose or oversize one.)
    let sizes = sink.sizes();
    assert_eq!(sizes.iter().sum::<usize>(), 25, "{sizes:?}");
    assert!(sizes.iter().all(|&s| s <= 10), "{sizes:?}");
    assert!(sizes.iter().filter(|&&s| s == 10).count() >= 2, "{sizes:?}");
    pipeline.close().await;
}

#[tokio::test]
async fn flush_delivers_without_closing() {
    let sink = Collect::default();
    let pipeline = AnalyticsPipeline::start(
        sink.clone(),
        PipelineConfig {
            flush_interval: Duration::from_secs(3600),
            ..config(1.0)
        },
    )
    .unwrap();
    pipeline.track(
        &Context::new("a"),
        "e",
        &feature::analytics::TrackData::default(),
    );
    pipeline.flush().await;
    assert_eq!(sink.events().len(), 1);
    pipeline.track(
        &Context::new("b"),
        "e",
        &feature::analytics::TrackData::default(),
    );
    pipeline.close().await;
    assert_eq!(sink.events().len(), 2);
}

#[tokio::test]
async fn private_attributes_are_redacted_unless_allowed() {
    let sink = Collect::default();
    let pipeline = AnalyticsPipeline::start(
        sink.clone(),
        PipelineConfig {
            redaction: Redaction::default().allow("ip").private("plan"),
            ..config(1.0)
        },
    )
    .unwrap();
    let user = Context::new("u1")
        .with_email("jo@example.com")
        .with_ip("192.0.2.7")
        .with_attribute("plan", "pro")
        .with_country("FR");
    pipeline.track(&user, "e", &feature::analytics::TrackData::default());
    pipeline.close().await;
    let e = &sink.events()[0];
    let text = serde_json::to_string(e).unwrap();
    assert!(
        !text.contains("jo@example.com") && !text.contains("\"pro\""),
        "{text}"
    );
    let ctx = e.context.as_ref().unwrap();
    assert_eq!(ctx["ip"], "192.0.2.7");
    assert_eq!(ctx["country"], "FR");
    assert_eq!(ctx["key"], "u1");

    // Without configuration, e-mail and IP are both private.
    let sink = Collect::default();
    let pipeline = AnalyticsPipeline::start(sink.clone(), config(1.0)).unwrap();
    pipeline.track(&user, "e", &feature::analytics::TrackData::default());
    pipeline.close().await;
    let text = serde_json::to_string(&sink.events()[0]).unwrap();
    assert!(
        !text.contains("jo@example.com") && !text.contains("192.0.2.7"),
        "{text}"
    );
}

#[test]
fn bad_settings_are_rejected() {
    for c in [
        PipelineConfig {
            capacity: 0,
            ..config(1.0)
        },
        PipelineConfig {
            batch_size: 0,
            ..config(1.0)
        },
        config(1.5),
        config(-0.1),
    ] {
        assert!(AnalyticsPipeline::start(Collect::default(), c).is_err());
    }
}

fn event(i: usize) -> AnalyticsEvent {
    AnalyticsEvent {
        id: format!("event-{i}"),
        kind: EventKind::Evaluation,
        timestamp: chrono::DateTime::from_timestamp(1_700_000_000 + i as i64, 1000).unwrap(),
        flag_key: format!("flag-{}", i % 7),
        user_key: format!("user-{i}"),
        value: serde_json::json!(i.is_multiple_of(2)),
        variation_idx: Some(i % 2),
        reason: Some(feature::ReasonKind::RuleMatch),
        rule_id: Some("r".into()),
        in_experiment: i.is_multiple_of(3),
        context: None,
        event: None,
        data: None,
        metric_value: None,
    }
}

/// Contexts whose callers marked attributes private, in each way there is: LaunchDarkly context
/// JSON (`_meta.privateAttributes`, by path), old-style user JSON (`privateAttributeNames`),
/// the builder, and a multi-kind context. Every private value contains `SECRET`.
fn privately_marked_contexts() -> Vec<Context> {
    let ld = Context::from_json(&serde_json::json!({
        "kind": "user", "key": "ld-user", "email": "SECRET-MAIL@example.com",
        "address": {"city": "SECRET-CITY", "zip": "69001"}, "country": "FR",
        "_meta": {"privateAttributes": ["/address/city", "email"]}
    }))
    .unwrap();
    let old = Context::from_json(&serde_json::json!({
        "key": "old-user", "ip": "10.9.8.7", "custom": {"ssn": "SECRET-SSN", "plan": "pro"},
        "privateAttributeNames": ["ssn"]
    }))
    .unwrap();
    let built = Context::new("built-user")
        .with_attribute("token", "SECRET-TOKEN")
        .with_attribute(
            "device",
            serde_json::json!({"id": "SECRET-DEVICE", "os": "linux"}),
        )
        .with_private_attribute("token")
        .with_private_attribute("/device/id");
    let org = Context::from_json(&serde_json::json!({
        "kind": "org", "key": "acme", "billing": {"iban": "SECRET-IBAN", "tier": "gold"},
        "_meta": {"privateAttributes": ["/billing/iban"]}
    }))
    .unwrap();
    let multi = Context::multi([built.clone(), org]).unwrap();
    vec![ld, old, built, multi]
}

/// Tracks one event per context in [`privately_marked_contexts`], under a configuration that
/// makes nothing private itself (e-mail and IP allowed).
async fn export_privately_marked(exporter: impl AnalyticsExporter) -> AnalyticsPipeline {
    let pipeline = AnalyticsPipeline::start(
        exporter,
        PipelineConfig {
            redaction: Redaction::default().allow("email").allow("ip"),
            ..config(1.0)
        },
    )
    .unwrap();
    for ctx in privately_marked_contexts() {
        pipeline.track(
            &ctx,
            "private-check",
            &feature::analytics::TrackData::default(),
        );
    }
    pipeline.close().await;
    assert_eq!(pipeline.stats().exported, 4, "{:?}", pipeline.stats());
    pipeline
}

/// What every exporter's output must show: the events, their public attributes, and no
/// private value.
fn assert_private_values_absent(output: &str) {
    assert_eq!(output.matches("private-check").count(), 4, "{output}");
    assert!(!output.contains("SECRET"), "{output}");
    for public in [
        "69001",
        "10.9.8.7",
        "\"pro\"",
        "linux",
        "gold",
        "redactedAttributes",
    ] {
        assert!(output.contains(public), "{public} missing: {output}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_a_context_marks_private_never_reach_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    export_privately_marked(FileExporter::new(&path)).await;
    assert_private_values_absent(&std::fs::read_to_string(&path).unwrap());
}

#[test]
fn attributes_a_context_marks_private_never_reach_stdout() {
    // Runs itself as a child process whose standard output is read.
    const CHILD: &str = "FEATURE_TEST_STDOUT_PRIVATE_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(export_privately_marked(StdoutExporter::new()));
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "attributes_a_context_marks_private_never_reach_stdout",
            "--exact",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    assert_private_values_absent(&stdout);
}

#[tokio::test]
async fn file_exporter_writes_json_lines_and_rotates_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let exporter = FileExporter::new(&path).max_bytes(4096).max_files(3);
    let all: Vec<AnalyticsEvent> = (0..400).map(event).collect();
    for chunk in all.chunks(10) {
        exporter.export(chunk).await.unwrap();
    }
    exporter.close().await.unwrap();
    assert!(matches!(
        exporter.export(&all[..1]).await,
        Err(ExportError::Closed(_))
    ));
    // The current file and three rotated ones, each within the limit; older ones deleted.
    let mut read = Vec::new();
    for name in [
        "events.jsonl.3",
        "events.jsonl.2",
        "events.jsonl.1",
        "events.jsonl",
    ] {
        let p = dir.path().join(name);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.len() <= 4096, "{name}: {} bytes", text.len());
        read.extend(
            text.lines()
                .map(|l| serde_json::from_str::<AnalyticsEvent>(l).unwrap()),
        );
    }
    assert!(!dir.path().join("events.jsonl.4").exists());
    // What is kept is the newest events, in order, without gaps.
    let start = all.len() - read.len();
    assert!(start > 0);
    assert_eq!(read, all[start..]);
}

#[tokio::test]
async fn stdout_exporter_accepts_batches() {
    StdoutExporter::new().export(&[event(1)]).await.unwrap();
}

#[cfg(feature = "webhook")]
mod webhook {
    use super::*;
    use bytes::Bytes;
    use feature::analytics::exporters::webhook::{HttpExporter, RetryPolicy};
    use http_body_util::{BodyExt, Full};
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A real HTTP server on 127.0.0.1 answering `statuses` in turn (then the last forever),
    /// keeping the bodies it answered 2xx to.
    struct Server {
        url: String,
        requests: Arc<AtomicUsize>,
        delivered: Arc<Mutex<Vec<Vec<AnalyticsEvent>>>>,
        /// Every request as it arrived (answered or not): its idempotency key and events.
        received: Arc<Mutex<Vec<Received>>>,
    }

    type Received = (Option<String>, Vec<AnalyticsEvent>);

    async fn server(statuses: Vec<u16>, delay: Duration) -> Server {
        server_with(statuses, vec![delay]).await
    }

    /// Like `server`, request `n` answered after `delays[n]` (then the last delay forever).
    async fn server_with(statuses: Vec<u16>, delays: Vec<Duration>) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let delivered = Arc::new(Mutex::new(Vec::new()));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (r, d, rec) = (requests.clone(), delivered.clone(), received.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (r, d, rec, statuses, delays) = (
                    r.clone(),
                    d.clone(),
                    rec.clone(),
                    statuses.clone(),
                    delays.clone(),
                );
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (r, d, rec, statuses, delays) = (
                            r.clone(),
                            d.clone(),
                            rec.clone(),
                            statuses.clone(),
                            delays.clone(),
                        );
                        async move {
                            let n = r.fetch_add(1, Ordering::SeqCst);
                            let status = *statuses.get(n).or(statuses.last()).unwrap();
                            let delay = *delays.get(n).or(delays.last()).unwrap();
                            let key = req
                                .headers()
                                .get("idempotency-key")
                                .map(|v| v.to_str().unwrap().to_owned());
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            if let Ok(events) = serde_json::from_slice(&body) {
                                rec.lock().unwrap().push((key, events));
                            }
                            tokio::time::sleep(delay).await;
                            if (200..300).contains(&status) {
                                let events: Vec<AnalyticsEvent> =
                                    serde_json::from_slice(&body).unwrap();
                                d.lock().unwrap().push(events);
                            }
                            let mut resp = hyper::Response::new(Full::new(Bytes::new()));
                            *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Server {
            url,
            requests,
            delivered,
            received,
        }
    }

    fn quick_retries(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_millis(10),
            multiplier: 2.0,
            max_backoff: Duration::from_millis(50),
        }
    }

    #[tokio::test]
    async fn a_failing_endpoint_loses_nothing_before_the_retry_budget_is_spent() {
        let s = server(vec![503, 500, 429, 200], Duration::ZERO).await;
        let exporter = HttpExporter::new(&s.url).unwrap().retry(quick_retries(4));
        let batch: Vec<AnalyticsEvent> = (0..50).map(event).collect();
        exporter.export(&batch).await.unwrap();
        assert_eq!(s.requests.load(Ordering::SeqCst), 4);
        assert_eq!(*s.delivered.lock().unwrap(), vec![batch]);
    }

    #[tokio::test]
    async fn the_batch_fails_once_every_attempt_is_spent() {
        let s = server(vec![503], Duration::ZERO).await;
        let exporter = HttpExporter::new(&s.url).unwrap().retry(quick_retries(3));
        let err = exporter.export(&[event(1)]).await.unwrap_err();
        assert!(
            matches!(err, ExportError::Delivery { attempts: 3, .. }),
            "{err}"
        );
        assert_eq!(s.requests.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn client_errors_are_not_retried() {
        let s = server(vec![400], Duration::ZERO).await;
        let exporter = HttpExporter::new(&s.url).unwrap().retry(quick_retries(5));
        let err = exporter.export(&[event(1)]).await.unwrap_err();
        assert!(
            matches!(err, ExportError::Delivery { attempts: 1, .. }),
            "{err}"
        );
        assert_eq!(s.requests.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn slow_answers_time_out_and_are_retried() {
        // The server answers after 2 s; each attempt gives up after 100 ms.
        let s = server(vec![200], Duration::from_secs(2)).await;
        let exporter = HttpExporter::new(&s.url)
            .unwrap()
            .timeout(Duration::from_millis(100))
            .retry(quick_retries(2));
        let err = exporter.export(&[event(1)]).await.unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
        assert_eq!(s.requests.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_closed_port_is_retried_then_reported() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let exporter = HttpExporter::new(&format!("http://127.0.0.1:{port}/e"))
            .unwrap()
            .retry(quick_retries(3));
        let err = exporter.export(&[event(1)]).await.unwrap_err();
        assert!(
            matches!(err, ExportError::Delivery { attempts: 3, .. }),
            "{err}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_retry_after_a_timeout_carries_the_same_idempotency_key_and_event_ids() {
        // The first attempt arrives but its answer comes too late: the exporter retries, and
        // the endpoint sees the batch twice. Key and ids let it keep each event once.
        let s = server_with(vec![200], vec![Duration::from_millis(1500), Duration::ZERO]).await;
        let exporter = HttpExporter::new(&s.url)
            .unwrap()
            .timeout(Duration::from_millis(300))
            .retry(quick_retries(3));
        let pipeline = AnalyticsPipeline::start(
            exporter,
            PipelineConfig {
                batch_size: 50,
                flush_interval: Duration::from_secs(3600),
                ..config(1.0)
            },
        )
        .unwrap();
        track_n(&pipeline, 100);
        pipeline.close().await;
        let stats = pipeline.stats();
        assert_eq!((stats.exported, stats.failed), (100, 0), "{stats:?}");
        let received = s.received.lock().unwrap().clone();
        assert_eq!(received.len(), 3, "two attempts of batch 1, one of batch 2");
        let keys: Vec<&str> = received
            .iter()
            .map(|(k, _)| k.as_deref().expect("an idempotency-key header"))
            .collect();
        assert_eq!(keys[0], keys[1], "a retry keeps the batch's key");
        assert_ne!(keys[0], keys[2], "each batch has its own key");
        let ids = |events: &[AnalyticsEvent]| -> Vec<String> {
            events.iter().map(|e| e.id.clone()).collect()
        };
        assert_eq!(ids(&received[0].1), ids(&received[1].1));
        // Every event has an id, and dropping repeats by id leaves each event exactly once.
        let all: Vec<String> = received.iter().flat_map(|(_, e)| ids(e)).collect();
        assert_eq!(all.len(), 150);
        assert!(all.iter().all(|id| uuid_v7(id)), "{all:?}");
        let unique: std::collections::BTreeSet<&String> = all.iter().collect();
        assert_eq!(unique.len(), 100);
    }

    /// Whether `id` is a UUID of version 7 in its text form.
    fn uuid_v7(id: &str) -> bool {
        let b = id.as_bytes();
        id.len() == 36
            && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
            && b[14] == b'7'
            && id
                .chars()
                .filter(|c| *c != '-')
                .all(|c| c.is_ascii_hexdigit())
    }

    /// An HTTPS server on 127.0.0.1 with a fresh self-signed certificate: answers 200 and
    /// counts the events it received. Returns its URL, the certificate, and the count.
    async fn https_server() -> (String, rcgen::Certificate, Arc<AtomicUsize>) {
        use tokio_rustls::rustls;
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()),
        );
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://localhost:{}/events",
            listener.local_addr().unwrap().port()
        );
        let events = Arc::new(AtomicUsize::new(0));
        let counted = events.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, counted) = (acceptor.clone(), counted.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let counted = counted.clone();
                        async move {
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let events: Vec<AnalyticsEvent> =
                                serde_json::from_slice(&body).unwrap();
                            counted.fetch_add(events.len(), Ordering::SeqCst);
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                Bytes::new(),
                            )))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        (url, certified.cert, events)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn https_delivers_to_a_trusted_certificate_only() {
        use tokio_rustls::rustls;
        let (url, cert, received) = https_server().await;
        // The default exporter speaks HTTPS but does not trust a self-signed certificate.
        let default = HttpExporter::new(&url).unwrap().retry(quick_retries(1));
        let err = default.export(&[event(1)]).await.unwrap_err();
        assert!(matches!(err, ExportError::Delivery { .. }), "{err}");
        assert_eq!(received.load(Ordering::SeqCst), 0);
        // Trusting it, events are delivered.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let trusting = HttpExporter::with_tls(&url, tls).unwrap();
        let batch: Vec<AnalyticsEvent> = (0..20).map(event).collect();
        trusting.export(&batch).await.unwrap();
        assert_eq!(received.load(Ordering::SeqCst), 20);
    }

    #[test]
    fn plain_http_to_another_host_is_refused_by_default() {
        use feature::analytics::exporters::webhook::WebhookConfigError;
        let err = HttpExporter::new("http://events.example.com/e").unwrap_err();
        assert!(
            matches!(err, WebhookConfigError::InsecureUrl { .. }),
            "{err}"
        );
        assert!(HttpExporter::new("https://events.example.com/e").is_ok());
        assert!(HttpExporter::new("http://127.0.0.1:9/e").is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn attributes_a_context_marks_private_never_reach_the_webhook() {
        let s = server(vec![200], Duration::ZERO).await;
        export_privately_marked(HttpExporter::new(&s.url).unwrap()).await;
        let received = s.received.lock().unwrap().clone();
        let text: String = received
            .iter()
            .map(|(_, events)| serde_json::to_string(events).unwrap())
            .collect();
        assert_private_values_absent(&text);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pipeline_through_the_webhook_delivers_every_event() {
        let s = server(vec![503, 200], Duration::ZERO).await;
        let exporter = HttpExporter::new(&s.url).unwrap().retry(quick_retries(5));
        let pipeline = AnalyticsPipeline::start(
            exporter,
            PipelineConfig {
                batch_size: 100,
                ..config(1.0)
            },
        )
        .unwrap();
        for i in 0..1000 {
            pipeline.track(
                &Context::new(format!("u{i}")),
                "e",
                &feature::analytics::TrackData::default(),
            );
        }
        pipeline.close().await;
        let got: Vec<String> = s
            .delivered
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .map(|e| e.user_key.clone())
            .collect();
        let want: Vec<String> = (0..1000).map(|i| format!("u{i}")).collect();
        assert_eq!(got, want);
        assert_eq!(pipeline.stats().exported, 1000);
    }
}

/// What the client does for each evaluation: ask, then hand the event over.
fn offer(pipeline: &AnalyticsPipeline, e: &feature::EvaluationEvent<'_>) {
    if pipeline.wants_evaluation(e.in_experiment) {
        pipeline.evaluation(e);
    }
}

#[tokio::test]
async fn custom_events_carry_data_and_a_metric_value() {
    use feature::analytics::TrackData;
    let sink = Collect::default();
    let pipeline = AnalyticsPipeline::start(sink.clone(), config(1.0)).unwrap();
    let client = client_with(&pipeline).await;
    let user = Context::new("buyer");
    client.track(&user, "signup", ());
    client.track(&user, "view", serde_json::json!({"page": 2}));
    client.track(
        &user,
        "purchase",
        TrackData::metric(42.5).with_data(serde_json::json!({"items": 3})),
    );
    client.close().await;
    let got: Vec<_> = sink
        .events()
        .into_iter()
        .map(|e| (e.event.unwrap(), e.data, e.metric_value))
        .collect();
    assert_eq!(
        got,
        [
            ("signup".to_owned(), None, None),
            (
                "view".to_owned(),
                Some(serde_json::json!({"page": 2})),
                None
            ),
            (
                "purchase".to_owned(),
                Some(serde_json::json!({"items": 3})),
                Some(42.5)
            ),
        ]
    );
    let json = serde_json::to_value(&sink.events()[2]).unwrap();
    assert_eq!(json["metric_value"], serde_json::json!(42.5));
}
