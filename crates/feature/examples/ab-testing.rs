//! A/B testing: a three-way experiment on the checkout button colour, with the variant and the
//! experiment flag in every evaluation, and a tracked event per exposure.
//!
//! Run: `cargo run --example ab-testing`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature::analytics::{EvaluationEvent, EventSink, TrackData};
use feature::{Client, Context, FileProvider};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Counts tracked exposures per variant, standing in for an analytics exporter.
#[derive(Default, Clone)]
struct Exposures(Arc<Mutex<BTreeMap<String, usize>>>);

impl EventSink for Exposures {
    fn evaluation(&self, _: &EvaluationEvent<'_>) {}

    fn track(&self, _: &Context, name: &str, data: &TrackData) {
        let variant = (data.data.as_ref())
            .and_then(|d| d["variant"].as_str())
            .unwrap_or("?");
        if let Ok(mut m) = self.0.lock() {
            *m.entry(format!("{name}/{variant}")).or_default() += 1;
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/flags/ab-testing.yaml");
    let exposures = Exposures::default();
    let client = Client::builder()
        .provider(FileProvider::new(path).watch(false))
        .events(exposures.clone())
        .build()
        .await?;

    for i in 0..3_000 {
        let user = Context::new(format!("user-{i}"));
        let eval = client.variation(&user, "checkout-button-color");
        let color = eval.value.as_str().unwrap_or("blue").to_owned();
        if eval.in_experiment() {
            client.track(&user, "checkout-button-view", json!({"variant": color}));
        }
        if i < 3 {
            println!(
                "{} sees {color} (variation {:?}, in experiment: {})",
                user.key(),
                eval.variation_index,
                eval.in_experiment()
            );
        }
    }
    client.close().await;
    let counts = exposures.0.lock().map(|m| m.clone()).unwrap_or_default();
    for (k, n) in counts {
        println!("{k}: {n}");
    }
    Ok(())
}
