//! The store provider engine ([`SyncProvider`]) against a [`Source`] written here: the engine
//! is what every store provider shares, and these tests cover what needs a source that
//! misbehaves on purpose (a third-party [`Source`] may panic) or holds a large document.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use async_trait::async_trait;
use feature_core::metrics::Metrics;
use feature_core::provider::{Provider, ProviderError, ProviderState};
use feature_store::testing::RecordingSink;
use feature_store::{
    Event, ItemKind, Loaded, Notice, Row, Source, SyncOptions, SyncOptionsError, SyncProvider,
    TaskError,
};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

/// Serves `rows`; re-reading single items panics (a broken third-party source).
struct TestSource {
    rows: Vec<Row>,
    notices: Mutex<Option<mpsc::Sender<Event>>>,
}

impl TestSource {
    fn new(flags: usize) -> TestSource {
        let rows = (0..flags)
            .map(|i| Row {
                kind: ItemKind::Flag,
                key: format!("flag-{i}"),
                definition: json!({"type": "bool", "default": true}),
                version: 1,
                updated_at: None,
                updated_by: None,
            })
            .collect();
        TestSource {
            rows,
            notices: Mutex::new(None),
        }
    }

    async fn notify(&self, key: &str) {
        let tx = self.notices.lock().unwrap().clone().expect("connected");
        tx.send(Event::Changed(Notice {
            kind: ItemKind::Flag,
            key: key.to_owned(),
            revision: Some(2),
        }))
        .await
        .unwrap();
    }
}

#[async_trait]
impl Source for TestSource {
    type Session = ();

    fn name(&self) -> &'static str {
        "test"
    }

    fn origin(&self) -> String {
        "test".to_owned()
    }

    async fn connect(&self) -> Result<((), mpsc::Receiver<Event>), ProviderError> {
        let (tx, rx) = mpsc::channel(16);
        *self.notices.lock().unwrap() = Some(tx);
        Ok(((), rx))
    }

    async fn load_all(
        &self,
        _session: &mut (),
        _metrics: &dyn Metrics,
    ) -> Result<Loaded, ProviderError> {
        Ok(Loaded {
            rows: self.rows.clone(),
            revision: Some(1),
        })
    }

    async fn load_keys(
        &self,
        _session: &mut (),
        _keys: &[(ItemKind, String)],
        _metrics: &dyn Metrics,
    ) -> Result<Vec<(ItemKind, String, Option<Row>)>, ProviderError> {
        panic!("the source broke")
    }

    async fn revision(&self, _session: &mut ()) -> Result<Option<u64>, ProviderError> {
        Ok(Some(1))
    }
}

fn options() -> SyncOptions {
    SyncOptions {
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        ..SyncOptions::default()
    }
}

/// The engine task dying (here: the source panics on a change notice) turns the provider
/// `Unavailable` with the reason; it does not stay `Ready` with nothing following the store.
#[tokio::test]
async fn an_engine_task_that_dies_makes_the_provider_unavailable_with_the_reason() {
    let p = SyncProvider::new(TestSource::new(1), options());
    let sink = RecordingSink::new();
    p.start(sink.clone()).await.unwrap();
    assert_eq!(p.status().state, ProviderState::Ready);
    assert_eq!(sink.value("flag-0"), Some(json!(true)));

    p.source().notify("flag-0").await;
    let deadline = Instant::now() + WAIT;
    while p.status().state != ProviderState::Unavailable {
        assert!(Instant::now() < deadline, "still {}", p.status());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let st = p.status();
    assert!(!st.connected);
    let (err, _) = st.last_error.clone().expect("the status says why");
    let source = std::error::Error::source(&*err)
        .and_then(|s| s.downcast_ref::<TaskError>())
        .expect("the task error is the source");
    assert_eq!(source, &TaskError::Panicked("the source broke".to_owned()));
    assert!(st.to_string().contains("the source broke"), "{st}");
    // The flags published before keep serving.
    assert_eq!(sink.value("flag-0"), Some(json!(true)));

    p.close().await;
    assert_eq!(p.status().state, ProviderState::Closed);
}

/// A zero refresh interval (which made the engine's timer panic, killing the task behind a
/// `Ready` status) or timeout is refused by `start` with a typed error.
#[tokio::test]
async fn zero_intervals_are_refused_at_start() {
    for (option, opts) in [
        (
            "refresh_interval",
            SyncOptions {
                refresh_interval: Duration::ZERO,
                ..options()
            },
        ),
        (
            "timeout",
            SyncOptions {
                timeout: Duration::ZERO,
                ..options()
            },
        ),
    ] {
        assert_eq!(opts.validate(), Err(SyncOptionsError::Zero { option }));
        let p = SyncProvider::new(TestSource::new(1), opts);
        let sink = RecordingSink::new();
        let err = p.start(sink.clone()).await.unwrap_err();
        let source = std::error::Error::source(&err)
            .and_then(|s| s.downcast_ref::<SyncOptionsError>())
            .expect("the options error is the source");
        assert_eq!(source, &SyncOptionsError::Zero { option });
        assert!(err.to_string().contains(option), "{err}");
        assert_eq!(p.status().state, ProviderState::Unavailable);
        assert!(sink.snapshot().is_none());
    }
}

/// Rows are parsed and compiled on a blocking thread: on a single-threaded runtime, another
/// task keeps running while a large document is built at start.
#[tokio::test(flavor = "current_thread")]
async fn building_a_large_document_does_not_block_the_runtime() {
    let p = SyncProvider::new(TestSource::new(20_000), options());
    let sink = RecordingSink::new();
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
    p.start(sink.clone()).await.unwrap();
    let during = ticks.load(Ordering::SeqCst);
    ticker.abort();
    assert_eq!(sink.snapshot().unwrap().len(), 20_000);
    assert!(
        during > 0,
        "the other task never ran while the document was built"
    );
    p.close().await;
}
