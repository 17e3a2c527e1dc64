//! The client's side of the contract with providers whose own engine answers evaluations
//! (Unleash, LaunchDarkly's SDK): change notices and listings that are not uses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature::engine::provider::{
    Engine, Provider, ProviderError, ProviderState, ProviderStatus, Sink,
};
use feature::engine::Snapshot;
use feature::{Client, Context, Evaluation, Reason, ValueKind};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An engine with two flags that counts its evaluations, as Unleash's engine counts usage.
#[derive(Default)]
struct CountingEngine {
    counted: AtomicUsize,
    uncounted: AtomicUsize,
}

impl CountingEngine {
    fn answer(key: &str) -> Evaluation {
        Evaluation {
            key: key.to_owned(),
            value: json!(true),
            variation_index: None,
            variation_name: None,
            reason: Reason::TargetMatch,
        }
    }
}

impl Engine for CountingEngine {
    fn evaluate(&self, key: &str, _: &Context, _: ValueKind, _: &Value) -> Evaluation {
        self.counted.fetch_add(1, Ordering::SeqCst);
        CountingEngine::answer(key)
    }

    fn evaluate_uncounted(&self, key: &str, _: &Context, _: ValueKind, _: &Value) -> Evaluation {
        self.uncounted.fetch_add(1, Ordering::SeqCst);
        CountingEngine::answer(key)
    }

    fn keys(&self) -> Vec<String> {
        vec!["a".into(), "b".into()]
    }
}

struct EngineProvider {
    engine: Arc<CountingEngine>,
    sink: Arc<Mutex<Option<Arc<dyn Sink>>>>,
}

#[async_trait::async_trait]
impl Provider for EngineProvider {
    fn name(&self) -> &'static str {
        "engine"
    }

    async fn start(&self, sink: Arc<dyn Sink>) -> Result<(), ProviderError> {
        sink.publish(Snapshot::default());
        *self.sink.lock().unwrap() = Some(sink);
        Ok(())
    }

    fn status(&self) -> ProviderStatus {
        ProviderStatus {
            state: ProviderState::Ready,
            connected: true,
            ..ProviderStatus::default()
        }
    }

    fn engine(&self) -> Option<Arc<dyn Engine>> {
        Some(self.engine.clone() as Arc<dyn Engine>)
    }
}

#[tokio::test]
async fn all_flags_is_not_usage_and_engine_changes_reach_subscribers() {
    let engine = Arc::new(CountingEngine::default());
    let sink = Arc::new(Mutex::new(None));
    let client = Client::builder()
        .provider(EngineProvider {
            engine: engine.clone(),
            sink: sink.clone(),
        })
        .build()
        .await
        .unwrap();
    let ctx = Context::new("u");
    let all = client.all_flags(&ctx);
    assert_eq!(all.len(), 2);
    assert_eq!(
        engine.counted.load(Ordering::SeqCst),
        0,
        "listing is not use"
    );
    assert_eq!(engine.uncounted.load(Ordering::SeqCst), 2);
    assert!(client.bool(&ctx, "a", false));
    assert_eq!(engine.counted.load(Ordering::SeqCst), 1, "an evaluation is");

    // The engine's snapshots are empty: the provider names what changed.
    let mut changes = client.subscribe();
    let provider_sink = sink.lock().unwrap().clone().expect("started");
    provider_sink.changed(vec!["b".into()]);
    let change = tokio::time::timeout(Duration::from_secs(5), changes.recv())
        .await
        .expect("a change notice")
        .expect("open");
    assert_eq!(change.keys, ["b"]);
    client.close().await;
}

#[derive(Default)]
struct Tracked(Mutex<Vec<(String, String, Value)>>);

impl feature::EventSink for Tracked {
    fn evaluation(&self, _: &feature::EvaluationEvent<'_>) {}
    fn track(&self, context: &Context, name: &str, data: &feature::analytics::TrackData) {
        self.0.lock().unwrap().push((
            context.key().to_owned(),
            name.to_owned(),
            data.data.clone().unwrap_or(Value::Null),
        ));
    }
}

#[tokio::test]
async fn engine_events_reach_the_clients_event_sink() {
    let tracked = Arc::new(Tracked::default());
    let sink = Arc::new(Mutex::new(None));
    let client = Client::builder()
        .provider(EngineProvider {
            engine: Arc::new(CountingEngine::default()),
            sink: sink.clone(),
        })
        .shared_events(tracked.clone() as Arc<dyn feature::EventSink>)
        .build()
        .await
        .unwrap();
    let provider_sink = sink.lock().unwrap().clone().expect("started");
    provider_sink.event(
        &Context::new("u-1"),
        "impression",
        json!({"featureName": "a"}),
    );
    assert_eq!(
        *tracked.0.lock().unwrap(),
        [(
            "u-1".to_owned(),
            "impression".to_owned(),
            json!({"featureName": "a"})
        )]
    );
    client.close().await;
}
