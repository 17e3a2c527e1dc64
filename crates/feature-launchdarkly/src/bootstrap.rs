//! What a server gives LaunchDarkly's client-side SDKs: the bootstrap state of every flag for
//! a context ([`all_flags_state`], the object LaunchDarkly's JavaScript SDK accepts as
//! `bootstrap`) and the secure mode hash of a context ([`secure_mode_hash`]).

use crate::events::reason_json;
use crate::meta::FlagMetaMap;
use feature_core::{Context, Snapshot};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// Options of [`all_flags_state`], as LaunchDarkly's SDKs name them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlagsStateOptions {
    /// Only the flags marked for client-side SDKs (`clientSide`).
    pub client_side_only: bool,
    /// Each flag's evaluation reason.
    pub with_reasons: bool,
    /// Version and reason only for flags with event tracking or debugging on (a smaller
    /// object; what client-side SDKs need for their events).
    pub details_only_for_tracked_flags: bool,
}

/// The state of every flag of `snapshot` for `ctx`, as LaunchDarkly's SDKs build it for the
/// JavaScript SDK's bootstrap: each flag's value, `$flagsState` with each flag's
/// `variation`, `version`, `reason` (with [`FlagsStateOptions::with_reasons`], or when the
/// evaluation is tracked as an experiment), `trackEvents`, `trackReason`,
/// `debugEventsUntilDate` and `prerequisites`, and `$valid`. `meta` is the provider's
/// [`FlagMetadata`](crate::FlagMetadata) table (`.load()`); flags it does not hold are left
/// out. Nothing is counted as an evaluation and no event is sent.
pub fn all_flags_state(
    snapshot: &Snapshot,
    meta: &FlagMetaMap,
    ctx: &Context,
    options: FlagsStateOptions,
) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut out = Map::new();
    let mut states = Map::new();
    for flag in snapshot.flags() {
        let key = flag.key();
        let Some(m) = meta.get(key) else { continue };
        if options.client_side_only && !m.client_side {
            continue;
        }
        let d = snapshot.evaluate(key, ctx);
        let reason = d.reason();
        let experiment = reason.in_experiment()
            || match d.reason_kind() {
                feature_core::ReasonKind::RuleMatch => {
                    d.rule_index().is_some_and(|i| m.rule_tracked(i))
                }
                feature_core::ReasonKind::Fallthrough => m.track_events_fallthrough,
                _ => false,
            };
        let track_events = m.track_events || experiment;
        out.insert(key.to_owned(), d.value().cloned().unwrap_or(Value::Null));
        let debugging = m.debug_events_until_date.is_some_and(|u| u > now);
        let omit_details =
            options.details_only_for_tracked_flags && !track_events && !experiment && !debugging;
        let mut s = Map::new();
        if (options.with_reasons || experiment) && !omit_details {
            s.insert(
                "reason".into(),
                reason_json(
                    d.reason_kind(),
                    d.rule_index(),
                    d.rule_id(),
                    reason.in_experiment(),
                    d.error_kind(),
                    d.prerequisite_key(),
                    m.reaches_big_segment(d.reason_kind(), d.rule_index(), ctx),
                ),
            );
        }
        if !omit_details {
            s.insert("version".into(), m.version.into());
        }
        let prerequisites = evaluated_prerequisites(snapshot, key, ctx);
        if !prerequisites.is_empty() {
            s.insert("prerequisites".into(), prerequisites.into());
        }
        if let Some(v) = d.variation_index() {
            s.insert("variation".into(), v.into());
        }
        if track_events {
            s.insert("trackEvents".into(), Value::Bool(true));
        }
        if experiment {
            s.insert("trackReason".into(), Value::Bool(true));
        }
        if let Some(u) = m.debug_events_until_date {
            s.insert("debugEventsUntilDate".into(), u.into());
        }
        states.insert(key.to_owned(), Value::Object(s));
    }
    out.insert("$flagsState".into(), Value::Object(states));
    out.insert("$valid".into(), Value::Bool(true));
    Value::Object(out)
}

/// The prerequisites LaunchDarkly's evaluator looks at for a flag that is on: in order, up
/// to and including the first that fails.
fn evaluated_prerequisites(snapshot: &Snapshot, key: &str, ctx: &Context) -> Vec<Value> {
    let mut out = Vec::new();
    let doc = snapshot.document();
    let Some(flag) = doc.flags.get(key) else {
        return out;
    };
    if !flag.enabled {
        return out;
    }
    for p in &flag.prerequisites {
        out.push(Value::String(p.key.clone()));
        let d = snapshot.evaluate(&p.key, ctx);
        let on = doc.flags.get(&p.key).is_some_and(|f| f.enabled);
        let ok = on && d.variation_index().map(|v| v as i64) == Some(p.variation);
        if !ok {
            break;
        }
    }
    out
}

/// The state LaunchDarkly's SDKs return when they cannot evaluate (`$valid: false`, no flags).
pub fn invalid_flags_state() -> Value {
    serde_json::json!({"$flagsState": {}, "$valid": false})
}

/// The secure mode hash of `ctx` for LaunchDarkly's client-side SDKs: HMAC-SHA256 of the
/// context's fully qualified key (see [`canonical_key`](crate::events::canonical_key)) with
/// the SDK key, in lower-case hex.
pub fn secure_mode_hash(sdk_key: &str, ctx: &Context) -> String {
    let mut key = String::new();
    crate::events::canonical_key(ctx, &mut key);
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(sdk_key.as_bytes()) else {
        return String::new();
    };
    mac.update(key.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
