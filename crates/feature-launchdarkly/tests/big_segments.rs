//! Big (unbounded) segments: this engine has no big-segment store, so, as LaunchDarkly's SDKs
//! without one, such a segment never matches, the evaluations that reach it say so
//! (`bigSegmentsStatus: NOT_CONFIGURED`, compared with LaunchDarkly's SDK in the `feature`
//! crate's tests/launchdarkly_events.rs), and the provider logs one warning per flag, however
//! often the data is published.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature_core::provider::Provider;
use feature_core::{Context, ReasonKind};
use feature_launchdarkly::{LaunchDarklyProvider, Mode};
use feature_store::testing::RecordingSink;
use serde_json::json;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Counts the warning events that mention a big segment.
struct Warnings(Arc<AtomicUsize>);

struct Message(bool);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" && format!("{value:?}").contains("big (unbounded) segment") {
            self.0 = true;
        }
    }
}

impl tracing::Subscriber for Warnings {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        *m.level() == tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        let mut m = Message(false);
        e.record(&mut m);
        if m.0 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn a_big_segment_never_matches_and_is_reported_once_per_flag() {
    let warnings = Arc::new(AtomicUsize::new(0));
    let _guard = tracing::subscriber::set_default(Warnings(warnings.clone()));

    // Each poll serves a newer version, so each poll publishes.
    let version = Arc::new(AtomicU64::new(1));
    let app = axum::Router::new().route(
        "/sdk/latest-all",
        axum::routing::get(move || {
            let v = version.fetch_add(1, Ordering::SeqCst);
            async move {
                json!({
                    "flags": {"f": {"key": "f", "version": v, "on": true, "salt": "s",
                        "variations": ["member", "other"], "offVariation": 0,
                        "rules": [{"id": "r", "variation": 0, "clauses": [
                            {"attribute": "", "op": "segmentMatch", "values": ["big"]}]}],
                        "fallthrough": {"variation": 1}}},
                    "segments": {"big": {"key": "big", "version": 1, "unbounded": true,
                        "generation": 1, "included": ["alice"]}}
                })
                .to_string()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let p = LaunchDarklyProvider::builder("sdk-key")
        .base_uri(&uri)
        .mode(Mode::Polling {
            interval: Duration::from_millis(30),
        })
        .build()
        .unwrap();
    let sink = RecordingSink::new();
    p.start(sink.clone()).await.unwrap();
    while sink.publications() < 4 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    p.close().await;
    assert_eq!(warnings.load(Ordering::SeqCst), 1, "one warning for flag f");

    // Listed inline, and still not a member: the members are in the big-segment store.
    let alice = Context::new("alice");
    let d = sink.snapshot().unwrap().evaluate("f", &alice).reason_kind();
    assert_eq!(d, ReasonKind::Fallthrough);
    let meta = p.flag_metadata().get("f").unwrap();
    assert!(meta.reaches_big_segment(ReasonKind::Fallthrough, None, &alice));
    let org = Context::of_kind("org", "o").unwrap();
    assert!(
        !meta.reaches_big_segment(ReasonKind::Fallthrough, None, &org),
        "a context without the segment's kind never reaches it"
    );
}
