//! Unleash client API payloads (full `features` responses and delta events): load, then ask
//! for every toggle named in the payload. The engine must not panic out of its API; a toggle
//! that is not enabled serves a disabled variant.

use feature_core::Context;
use feature_fuzz::contexts_in;
use feature_unleash::UnleashEngine;
use serde_json::Value;

/// The toggle names a payload mentions (`features[].name`, `events[].feature.name`).
fn names(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut add = |f: &Value| {
        if let Some(n) = f.get("name").and_then(Value::as_str) {
            out.push(n.to_owned());
        }
    };
    for f in value
        .get("features")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        add(f);
    }
    for e in value
        .get("events")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(f) = e.get("feature") {
            add(f);
        }
        if let Some(n) = e.get("featureName") {
            add(&serde_json::json!({ "name": n }));
        }
    }
    out
}

fn main() {
    let fixed = [
        Context::new("user-1"),
        Context::new("user-2")
            .with_attribute("sessionId", "s-1")
            .with_attribute("remoteAddress", "10.0.0.1")
            .with_attribute("environment", "production")
            .with_attribute("customField", "x"),
    ];
    // The engine catches a panic of the Unleash engine it wraps (and reports the toggle as
    // not compiled); only a panic that escapes this crate's API is a fault here.
    afl::fuzz_nohook!(|data: &[u8]| {
        let engine = UnleashEngine::new().with_app_name("fuzz");
        if engine.load_json(data).is_err() {
            return;
        }
        let Ok(value) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        let mut ctxs = contexts_in(&value);
        ctxs.extend(fixed.iter().cloned());
        for name in names(&value) {
            for ctx in &ctxs {
                let enabled = engine.is_enabled(&name, ctx);
                let variant = engine.variant(&name, ctx);
                if enabled != Some(true) {
                    assert!(!variant.enabled, "toggle {name:?} off but variant enabled");
                }
            }
        }
    });
}
