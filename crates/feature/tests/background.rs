//! Background work of providers: it stops when the last client handle is dropped without
//! `close`, it never runs parsing and compiling on the async workers, and when it dies the
//! provider's status says so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use async_trait::async_trait;
use feature::engine::Snapshot;
use feature::providers::Sink;
use feature::{Client, Context, FileProvider, Metrics, NoopMetrics, Provider, ProviderState};
use feature::{ProviderError, ProviderStatus};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ON: &str = "flags:\n  beta:\n    type: bool\n    default: true\n";
const OFF: &str = "flags:\n  beta:\n    type: bool\n    default: false\n";
const WAIT: Duration = Duration::from_secs(5);

/// Counts the file provider's reloads (it records the latency of each).
#[derive(Default)]
struct Reloads(AtomicU64);

impl Metrics for Reloads {
    fn record_provider_latency(&self, provider: &str, operation: &str, _duration: Duration) {
        if (provider, operation) == ("file", "reload") {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ok() {
        assert!(Instant::now() < deadline, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A client dropped without `close` stops its file watcher: the runtime's task count comes
/// back to where it was, and an edit after the drop is not read any more.
#[tokio::test]
async fn dropping_the_last_client_handle_stops_the_file_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("features.yaml");
    std::fs::write(&path, OFF).unwrap();
    let runtime = tokio::runtime::Handle::current().metrics();
    let baseline = runtime.num_alive_tasks();
    let reloads = Arc::new(Reloads::default());

    let client = Client::builder()
        .provider(FileProvider::new(&path))
        .shared_metrics(reloads.clone())
        .build()
        .await
        .unwrap();
    let other_handle = client.clone();
    assert!(runtime.num_alive_tasks() > baseline, "no watcher task");
    std::fs::write(&path, ON).unwrap();
    until("a reload", || reloads.0.load(Ordering::SeqCst) == 1).await;
    assert!(client.bool(&Context::new("u"), "beta", false));

    drop(client);
    // Another handle keeps everything running.
    std::fs::write(&path, OFF).unwrap();
    until("a second reload", || reloads.0.load(Ordering::SeqCst) == 2).await;
    assert!(!other_handle.bool(&Context::new("u"), "beta", true));

    drop(other_handle);
    until("the watcher's end", || {
        runtime.num_alive_tasks() == baseline
    })
    .await;
    std::fs::write(&path, ON).unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        reloads.0.load(Ordering::SeqCst),
        2,
        "the file was reloaded after the last client handle was dropped"
    );
    assert_eq!(runtime.num_alive_tasks(), baseline);
}

/// A large file is read, parsed and compiled on a blocking thread: on a single-threaded
/// runtime, another task keeps running while the client starts.
#[tokio::test(flavor = "current_thread")]
async fn loading_a_large_file_does_not_block_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("features.yaml");
    let mut text = String::from("flags:\n");
    for i in 0..20_000 {
        writeln!(text, "  flag-{i}:\n    type: bool\n    default: true").unwrap();
    }
    std::fs::write(&path, text).unwrap();
    let ticks = Arc::new(AtomicU64::new(0));
    let ticker = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            loop {
                ticks.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        })
    };
    let client = Client::builder()
        .provider(FileProvider::new(&path).watch(false))
        .build()
        .await
        .unwrap();
    let during = ticks.load(Ordering::SeqCst);
    ticker.abort();
    assert_eq!(client.snapshot().len(), 20_000);
    assert!(
        during > 0,
        "the other task never ran while the file was loaded"
    );
    client.close().await;
}

/// A sink that fails (panics) on the second publication.
struct BreakingSink {
    published: AtomicU64,
}

impl Sink for BreakingSink {
    fn publish(&self, _snapshot: Snapshot) {
        if self.published.fetch_add(1, Ordering::SeqCst) == 1 {
            panic!("the sink broke");
        }
    }

    fn metrics(&self) -> &dyn Metrics {
        &NoopMetrics
    }
}

/// The watcher task dying turns the provider `Unavailable` with the reason; it does not stay
/// `Ready` with nothing reading the file.
#[tokio::test]
async fn a_watcher_that_dies_makes_the_provider_unavailable_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("features.yaml");
    std::fs::write(&path, OFF).unwrap();
    let p = FileProvider::new(&path);
    let sink = Arc::new(BreakingSink {
        published: AtomicU64::new(0),
    });
    p.start(sink.clone()).await.unwrap();
    assert_eq!(p.status().state, ProviderState::Ready);
    std::fs::write(&path, ON).unwrap();
    until("Unavailable", || {
        p.status().state == ProviderState::Unavailable
    })
    .await;
    let st = p.status();
    assert!(!st.connected);
    assert!(st.to_string().contains("the sink broke"), "{st}");
    assert!(st.to_string().contains("watcher stopped"), "{st}");
    p.close().await;
    assert_eq!(p.status().state, ProviderState::Closed);
}

/// A provider started again (shared by two clients) replaces its watcher: the old one's end
/// is not a failure, and edits keep being read once, by the new one.
#[tokio::test]
async fn a_provider_started_again_keeps_one_working_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("features.yaml");
    std::fs::write(&path, OFF).unwrap();
    let reloads = Arc::new(Reloads::default());
    let provider = Arc::new(FileProvider::new(&path));
    let first = Client::builder()
        .shared_provider(provider.clone())
        .shared_metrics(reloads.clone())
        .build()
        .await
        .unwrap();
    let second = Client::builder()
        .shared_provider(provider.clone())
        .shared_metrics(reloads.clone())
        .build()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        provider.status().state,
        ProviderState::Ready,
        "{}",
        provider.status()
    );
    std::fs::write(&path, ON).unwrap();
    until("a reload", || reloads.0.load(Ordering::SeqCst) >= 1).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        reloads.0.load(Ordering::SeqCst),
        1,
        "one watcher reads each edit"
    );
    assert_eq!(
        provider.status().state,
        ProviderState::Ready,
        "{}",
        provider.status()
    );
    assert!(second.bool(&Context::new("u"), "beta", false));
    drop(first);
    drop(second);
}

/// A provider whose close needs the runtime (a timer, as a last report over the network would).
struct ClosesWithATimer(Arc<AtomicU64>);

#[async_trait]
impl Provider for ClosesWithATimer {
    fn name(&self) -> &'static str {
        "timer"
    }
    async fn start(&self, _sink: Arc<dyn Sink>) -> Result<(), ProviderError> {
        Ok(())
    }
    fn status(&self) -> ProviderStatus {
        ProviderStatus::default()
    }
    async fn close(&self) {
        tokio::time::sleep(Duration::from_millis(1)).await;
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A client dropped after its runtime is gone still closes its provider, without panicking.
#[test]
fn a_client_dropped_outside_any_runtime_closes_its_provider() {
    let closed = Arc::new(AtomicU64::new(0));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt
        .block_on(
            Client::builder()
                .provider(ClosesWithATimer(closed.clone()))
                .build(),
        )
        .unwrap();
    drop(rt);
    drop(client);
    assert_eq!(closed.load(Ordering::SeqCst), 1);
}
