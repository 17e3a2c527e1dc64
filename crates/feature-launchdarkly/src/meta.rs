//! What LaunchDarkly's analytics events and bootstrap state need of each flag, beyond what
//! evaluation needs: kept beside the snapshot, so that the toolkit's flag model does not grow
//! LaunchDarkly-only fields.

use arc_swap::{ArcSwap, Guard};
use rustc_hash::FxHashMap;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Which client-side SDKs may see a flag (LaunchDarkly's `clientSideAvailability`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientSideAvailability {
    /// Visible to client-side SDKs that use the environment id (JavaScript).
    pub using_environment_id: bool,
    /// Visible to mobile SDKs (mobile key).
    pub using_mobile_key: bool,
}

/// The event and bootstrap settings of one LaunchDarkly flag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagEventMeta {
    /// The flag's version (`version`), reported in summaries and feature events.
    pub version: u64,
    /// `trackEvents`: every evaluation sends a full `feature` event.
    pub track_events: bool,
    /// `trackEventsFallthrough`: evaluations that fall through send a full `feature` event,
    /// with their reason.
    pub track_events_fallthrough: bool,
    /// `debugEventsUntilDate` (milliseconds since the epoch): `debug` events are sent until then.
    pub debug_events_until_date: Option<u64>,
    /// Each rule's `trackEvents`, by rule index.
    pub rule_track_events: Vec<bool>,
    /// The keys of the flag's prerequisites, in order.
    pub prerequisites: Vec<String>,
    /// For each rule, the context kinds of the big (unbounded) segments it references,
    /// directly or through other segments' rules (empty: none). This engine cannot evaluate
    /// big segments: like LaunchDarkly's SDKs without a big-segment store, it never matches
    /// them and reports `bigSegmentsStatus: NOT_CONFIGURED`.
    pub big_segment_rules: Vec<Vec<String>>,
    /// `clientSide`: the flag is made available to client-side SDKs (what
    /// `all_flags_state`'s client-side-only option keeps).
    pub client_side: bool,
    /// `clientSideAvailability` as sent (defaults: environment id from `clientSide`, mobile
    /// key on, as LaunchDarkly reads a flag without it).
    pub client_side_availability: ClientSideAvailability,
}

impl FlagEventMeta {
    /// Reads the settings of one LaunchDarkly flag (fields absent or of another type read as
    /// off).
    pub fn of(flag: &Value) -> FlagEventMeta {
        let empty = Map::new();
        let o = flag.as_object().unwrap_or(&empty);
        let flag_of = |name: &str| o.get(name).and_then(Value::as_bool).unwrap_or(false);
        let availability = o.get("clientSideAvailability").and_then(Value::as_object);
        let client_side_availability = match availability {
            Some(a) => ClientSideAvailability {
                using_environment_id: a
                    .get("usingEnvironmentId")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                using_mobile_key: a
                    .get("usingMobileKey")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            },
            None => ClientSideAvailability {
                using_environment_id: flag_of("clientSide"),
                using_mobile_key: true,
            },
        };
        FlagEventMeta {
            version: o.get("version").and_then(Value::as_u64).unwrap_or(0),
            track_events: flag_of("trackEvents"),
            track_events_fallthrough: flag_of("trackEventsFallthrough"),
            debug_events_until_date: o.get("debugEventsUntilDate").and_then(Value::as_u64),
            rule_track_events: o
                .get("rules")
                .and_then(Value::as_array)
                .map(|rules| {
                    rules
                        .iter()
                        .map(|r| r.get("trackEvents").and_then(Value::as_bool) == Some(true))
                        .collect()
                })
                .unwrap_or_default(),
            // What LaunchDarkly's SDKs read for `client_side_only` (its data always carries it
            // beside `clientSideAvailability`).
            prerequisites: o
                .get("prerequisites")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .filter_map(|p| p.get("key").and_then(Value::as_str))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            big_segment_rules: Vec::new(),
            client_side: flag_of("clientSide"),
            client_side_availability,
        }
    }

    /// Whether an evaluation reached a big segment, as far as its reason tells: a rule up to
    /// the one matched (all of them for a fall-through) references one of a kind `ctx` has.
    /// Rules before the one matched are counted whole (a big-segment clause after one that
    /// failed is counted too).
    pub fn reaches_big_segment(
        &self,
        reason: feature_core::ReasonKind,
        rule_index: Option<usize>,
        ctx: &feature_core::Context,
    ) -> bool {
        let upto = match reason {
            feature_core::ReasonKind::RuleMatch => rule_index.map_or(0, |i| i + 1),
            feature_core::ReasonKind::Fallthrough => self.big_segment_rules.len(),
            _ => 0,
        };
        self.big_segment_rules
            .iter()
            .take(upto)
            .flatten()
            .any(|kind| ctx.kinds().any(|k| k == kind))
    }

    /// Records the big segments each rule references (`big`: segment key → its context
    /// kind).
    pub(crate) fn note_big_segments(
        &mut self,
        flag: &Value,
        big: &std::collections::BTreeMap<String, String>,
    ) {
        if big.is_empty() {
            return;
        }
        self.big_segment_rules = flag
            .get("rules")
            .and_then(Value::as_array)
            .map(|rules| {
                rules
                    .iter()
                    .map(|r| {
                        let mut kinds: Vec<String> = segment_refs(r)
                            .filter_map(|k| big.get(k).cloned())
                            .collect();
                        kinds.sort();
                        kinds.dedup();
                        kinds
                    })
                    .collect()
            })
            .unwrap_or_default();
    }

    /// Whether an evaluation that matched rule `index` sends a full event.
    pub fn rule_tracked(&self, index: usize) -> bool {
        self.rule_track_events.get(index).copied().unwrap_or(false)
    }
}

/// The segment keys a rule's (or a segment rule's) `segmentMatch` clauses name.
pub(crate) fn segment_refs(rule: &Value) -> impl Iterator<Item = &str> {
    rule.get("clauses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c.get("op").and_then(Value::as_str) == Some("segmentMatch"))
        .flat_map(|c| {
            c.get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(Value::as_str)
}

/// The settings of every flag of one data set, by flag key.
pub type FlagMetaMap = FxHashMap<Box<str>, FlagEventMeta>;

/// The event settings of the flags the provider last published, shared with the event
/// processor and the bootstrap state: replaced whole, just before each snapshot, read
/// without a lock. Clones share the table.
#[derive(Clone, Default)]
pub struct FlagMetadata {
    table: Arc<ArcSwap<FlagMetaMap>>,
}

impl std::fmt::Debug for FlagMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlagMetadata")
            .field("flags", &self.table.load().len())
            .finish()
    }
}

impl FlagMetadata {
    /// An empty table (every flag unknown).
    pub fn new() -> FlagMetadata {
        FlagMetadata::default()
    }

    /// The current table: one atomic load, no lock, no allocation.
    pub fn load(&self) -> Guard<Arc<FlagMetaMap>> {
        self.table.load()
    }

    /// The settings of one flag, copied (for tests and tools; the event path uses
    /// [`FlagMetadata::load`]).
    pub fn get(&self, key: &str) -> Option<FlagEventMeta> {
        self.table.load().get(key).cloned()
    }

    /// Replaces the table (the provider does, before publishing a snapshot; tests may too).
    pub fn replace(&self, map: FlagMetaMap) {
        self.table.store(Arc::new(map));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_event_fields_of_a_flag_are_read() {
        let m = FlagEventMeta::of(&json!({
            "key": "f", "version": 7, "trackEvents": true, "trackEventsFallthrough": true,
            "debugEventsUntilDate": 1_900_000_000_000u64, "clientSide": true,
            "rules": [{"id": "a"}, {"id": "b", "trackEvents": true}]
        }));
        assert_eq!(m.version, 7);
        assert!(m.track_events && m.track_events_fallthrough && m.client_side);
        assert_eq!(m.debug_events_until_date, Some(1_900_000_000_000));
        assert!(!m.rule_tracked(0) && m.rule_tracked(1) && !m.rule_tracked(2));
        assert!(m.client_side_availability.using_mobile_key);
        let m = FlagEventMeta::of(&json!({"clientSideAvailability":
            {"usingEnvironmentId": true, "usingMobileKey": false}}));
        assert!(m.client_side_availability.using_environment_id);
        assert!(!m.client_side && !m.client_side_availability.using_mobile_key);
        let m = FlagEventMeta::of(&json!(3));
        assert!(!m.track_events && !m.client_side && m.version == 0);
    }
}
