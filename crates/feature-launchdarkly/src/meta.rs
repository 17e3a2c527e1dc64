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

/// How many shards a [`FlagMetaMap`] holds its flags in (a power of two).
const SHARDS: usize = 256;

/// One shard of a [`FlagMetaMap`].
type Shard = FxHashMap<Box<str>, FlagEventMeta>;

/// The settings of every flag of one data set, by flag key.
///
/// The flags are spread over 256 shards, each shared behind an `Arc`: a copy of the table
/// shares every shard, and changing one flag of a copy copies the one shard that flag is in.
/// A streaming patch to a set of 100 000 flags therefore copies about 400 settings, not
/// 100 000, while a lookup stays one hash-table probe.
///
/// ```
/// use feature_launchdarkly::{FlagEventMeta, FlagMetaMap};
///
/// let mut table = FlagMetaMap::default();
/// table.insert("new-checkout".into(), FlagEventMeta { version: 3, ..Default::default() });
/// let mut next = table.clone(); // shares the shards
/// next.insert("dark-mode".into(), FlagEventMeta::default());
/// assert_eq!(table.len(), 1);
/// assert_eq!(next.get("new-checkout").map(|m| m.version), Some(3));
/// assert_eq!(next.len(), 2);
/// ```
#[derive(Clone, Default)]
pub struct FlagMetaMap {
    /// Empty until the first insertion, then [`SHARDS`] shards.
    shards: Vec<Arc<Shard>>,
    len: usize,
}

impl FlagMetaMap {
    /// An empty table.
    pub fn new() -> FlagMetaMap {
        FlagMetaMap::default()
    }

    /// The shard of `key`: a hash seeded apart from the one the shard's own table uses, so
    /// that the keys of one shard still spread over its table.
    #[inline]
    fn shard_of(key: &str) -> usize {
        let mut h = rustc_hash::FxHasher::default();
        std::hash::Hasher::write_u64(&mut h, 0x9E37_79B9_7F4A_7C15);
        std::hash::Hasher::write(&mut h, key.as_bytes());
        (std::hash::Hasher::finish(&h) >> (u64::BITS - SHARDS.trailing_zeros())) as usize
    }

    /// The settings of flag `key`.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&FlagEventMeta> {
        self.shards.get(Self::shard_of(key))?.get(key)
    }

    /// The key as held and the settings of flag `key`.
    pub fn get_key_value(&self, key: &str) -> Option<(&str, &FlagEventMeta)> {
        let (k, m) = self.shards.get(Self::shard_of(key))?.get_key_value(key)?;
        Some((k, m))
    }

    /// Whether the table holds flag `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets the settings of flag `key`; returns those it replaces. Copies the key's shard
    /// when a copy of the table shares it.
    pub fn insert(&mut self, key: Box<str>, meta: FlagEventMeta) -> Option<FlagEventMeta> {
        if self.shards.is_empty() {
            self.shards = (0..SHARDS).map(|_| Arc::default()).collect();
        }
        let shard = Arc::make_mut(&mut self.shards[Self::shard_of(&key)]);
        let old = shard.insert(key, meta);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes flag `key`; returns its settings. Copies the key's shard when a copy of the
    /// table shares it (and only when it holds the key).
    pub fn remove(&mut self, key: &str) -> Option<FlagEventMeta> {
        let shard = self.shards.get_mut(Self::shard_of(key))?;
        if !shard.contains_key(key) {
            return None;
        }
        let old = Arc::make_mut(shard).remove(key);
        self.len -= 1;
        old
    }

    /// How many flags the table holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds no flag.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every flag and its settings, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &FlagEventMeta)> {
        self.shards
            .iter()
            .flat_map(|s| s.iter().map(|(k, m)| (&**k, m)))
    }

    /// Every flag key, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(k, _)| k)
    }
}

impl PartialEq for FlagMetaMap {
    fn eq(&self, other: &FlagMetaMap) -> bool {
        self.len == other.len && self.iter().all(|(k, m)| other.get(k) == Some(m))
    }
}

impl Eq for FlagMetaMap {}

impl std::fmt::Debug for FlagMetaMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl FromIterator<(Box<str>, FlagEventMeta)> for FlagMetaMap {
    fn from_iter<I: IntoIterator<Item = (Box<str>, FlagEventMeta)>>(items: I) -> FlagMetaMap {
        let mut table = FlagMetaMap::default();
        table.extend(items);
        table
    }
}

impl Extend<(Box<str>, FlagEventMeta)> for FlagMetaMap {
    fn extend<I: IntoIterator<Item = (Box<str>, FlagEventMeta)>>(&mut self, items: I) {
        for (k, m) in items {
            self.insert(k, m);
        }
    }
}

impl<'a> IntoIterator for &'a FlagMetaMap {
    type Item = (&'a str, &'a FlagEventMeta);
    type IntoIter = Box<dyn Iterator<Item = Self::Item> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

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

    fn version(v: u64) -> FlagEventMeta {
        FlagEventMeta {
            version: v,
            ..FlagEventMeta::default()
        }
    }

    /// How many shards of `b` are not shared with `a`.
    fn copied(a: &FlagMetaMap, b: &FlagMetaMap) -> usize {
        a.shards
            .iter()
            .zip(&b.shards)
            .filter(|(x, y)| !Arc::ptr_eq(x, y))
            .count()
    }

    #[test]
    fn a_changed_copy_copies_one_shard_and_leaves_the_original_alone() {
        let table: FlagMetaMap = (0..10_000)
            .map(|i| (format!("flag-{i}").into(), version(i)))
            .collect();
        assert_eq!(table.len(), 10_000);
        // Spread over every shard, none holding much more than its share.
        assert!(table.shards.iter().all(|s| (15..80).contains(&s.len())));

        let mut next = table.clone();
        assert_eq!(copied(&table, &next), 0);
        assert_eq!(next.insert("flag-7".into(), version(70)), Some(version(7)));
        assert_eq!(copied(&table, &next), 1);
        assert_eq!(next.remove("flag-8"), Some(version(8)));
        assert_eq!(next.remove("no-such-flag"), None);
        assert!(copied(&table, &next) <= 2);
        assert_eq!(next.insert("flag-new".into(), version(1)), None);
        assert!(copied(&table, &next) <= 3);

        assert_eq!((table.len(), next.len()), (10_000, 10_000));
        assert_eq!(table.get("flag-7"), Some(&version(7)));
        assert_eq!(next.get("flag-7"), Some(&version(70)));
        assert_eq!(table.get("flag-8"), Some(&version(8)));
        assert_eq!(next.get("flag-8"), None);
        assert!(!table.contains_key("flag-new") && next.contains_key("flag-new"));
        assert_eq!(
            next.get_key_value("flag-new"),
            Some(("flag-new", &version(1)))
        );
        assert_eq!(next.iter().count(), 10_000);
        assert_ne!(table, next);
    }

    #[test]
    fn tables_with_the_same_flags_are_equal_whatever_their_history() {
        let a: FlagMetaMap = [("a".into(), version(1)), ("b".into(), version(2))]
            .into_iter()
            .collect();
        let mut b = FlagMetaMap::new();
        b.insert("b".into(), version(9));
        b.insert("c".into(), version(3));
        b.insert("a".into(), version(1));
        assert_ne!(a, b);
        b.insert("b".into(), version(2));
        b.remove("c");
        assert_eq!(a, b);
        assert_eq!(b.len(), 2);
        assert!(FlagMetaMap::new().is_empty());
        assert_eq!(FlagMetaMap::new(), FlagMetaMap::default());
        let mut keys: Vec<&str> = b.keys().collect();
        keys.sort_unstable();
        assert_eq!(keys, ["a", "b"]);
    }
}
