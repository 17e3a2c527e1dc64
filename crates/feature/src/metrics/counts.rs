//! Evaluation counts by flag, reason and value, kept for the Prometheus and OpenTelemetry
//! implementations and read when they are scraped; the counts clients hand over
//! ([`Metrics::attach_counts`](feature_core::metrics::Metrics::attach_counts)).

#![cfg_attr(not(any(feature = "prometheus", feature = "otel")), allow(dead_code))]

use super::config::{MetricsConfig, ALL_FLAGS, OTHER_FLAGS};
use super::stripe::Striped;
use arc_swap::ArcSwap;
use feature_core::metrics::{EvaluationCounts, EvaluationRecord, ValueClass};
use feature_core::ReasonKind;
use rustc_hash::FxHashMap;
use std::sync::{Arc, Mutex};

/// Number of reason slots ([`reason_slot`]).
pub(crate) const REASONS: usize = ReasonKind::ALL.len();
/// Number of value slots ([`value_slot`]).
pub(crate) const VALUES: usize = ValueClass::ALL.len();

/// The slot of a reason in per-reason counter arrays.
#[inline]
pub(crate) fn reason_slot(r: ReasonKind) -> usize {
    r.index()
}

/// The `reason` label of a slot.
pub(crate) fn reason_label(slot: usize) -> &'static str {
    ReasonKind::ALL.get(slot).map_or("OTHER", |r| r.as_str())
}

/// The slot of a served value: `false`, `true`, `default`, `other`.
#[inline]
pub(crate) fn value_slot(record: &EvaluationRecord<'_>) -> usize {
    ValueClass::of(record.reason, record.value).index()
}

/// The `value` label of a slot.
pub(crate) fn value_label(slot: usize) -> &'static str {
    ValueClass::ALL.get(slot).map_or("other", |c| c.as_str())
}

type Counts = Striped<{ REASONS * VALUES }>;

/// Evaluation counts handed over by clients
/// ([`Metrics::attach_counts`](feature_core::metrics::Metrics::attach_counts)), added up on read.
#[derive(Default)]
pub(crate) struct AttachedCounts(Mutex<Vec<Arc<dyn EvaluationCounts>>>);

impl std::fmt::Debug for AttachedCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachedCounts")
            .field("clients", &self.lock().len())
            .finish()
    }
}

impl AttachedCounts {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<dyn EvaluationCounts>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a client's counts.
    pub(crate) fn push(&self, counts: Arc<dyn EvaluationCounts>) {
        self.lock().push(counts);
    }

    /// Calls `f(reason, value, count)` for every client's counts.
    pub(crate) fn for_each(&self, mut f: impl FnMut(ReasonKind, ValueClass, u64)) {
        for c in self.lock().iter() {
            c.for_each_count(&mut f);
        }
    }
}

/// Evaluation counts by flag, reason and value: striped counters, read at scrape time.
pub(crate) struct EvalCounts {
    per_flag: bool,
    max_flag_keys: usize,
    /// Counts when per-flag labels are off.
    all: Counts,
    /// Counts kept by clients (per-flag labels off).
    attached: AttachedCounts,
    /// Counts per flag key when they are on.
    flags: ArcSwap<FxHashMap<Box<str>, Arc<Counts>>>,
    /// Serialises insertions into `flags`.
    write: Mutex<()>,
}

impl EvalCounts {
    pub(crate) fn new(config: &MetricsConfig) -> Self {
        EvalCounts {
            per_flag: config.per_flag,
            max_flag_keys: config.max_flag_keys,
            all: Counts::default(),
            attached: AttachedCounts::default(),
            flags: ArcSwap::from_pointee(FxHashMap::default()),
            write: Mutex::new(()),
        }
    }

    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
    pub(crate) fn per_flag(&self) -> bool {
        self.per_flag
    }

    /// Whether clients may count for these counts: only without per-flag labels.
    pub(crate) fn reads_counts(&self) -> bool {
        !self.per_flag
    }

    /// Keeps a client's counts, added to the all-flags series.
    pub(crate) fn attach(&self, counts: Arc<dyn EvaluationCounts>) {
        self.attached.push(counts);
    }

    /// Counts one evaluation (unless a client has counted it already).
    #[inline]
    pub(crate) fn record(&self, record: &EvaluationRecord<'_>) {
        if record.counted {
            return;
        }
        let slot = reason_slot(record.reason) * VALUES + value_slot(record);
        if self.per_flag {
            self.flag(record.key).0.add(slot, 1);
        } else {
            self.all.add(slot, 1);
        }
    }

    /// The counters of `key` (created on first sight) and whether it has its own label.
    fn flag(&self, key: &str) -> (Arc<Counts>, bool) {
        if let Some(c) = self.flags.load().get(key) {
            return (c.clone(), true);
        }
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let map = self.flags.load_full();
        if let Some(c) = map.get(key) {
            return (c.clone(), true);
        }
        let (label, own) = if map.len() < self.max_flag_keys {
            (key, true)
        } else {
            (OTHER_FLAGS, false)
        };
        if let Some(c) = map.get(label) {
            return (c.clone(), own);
        }
        let c = Arc::new(Counts::default());
        let mut next = FxHashMap::clone(&map);
        next.insert(label.into(), c.clone());
        self.flags.store(Arc::new(next));
        (c, own)
    }

    /// The `flag_key` label of `key`.
    pub(crate) fn label<'a>(&self, key: &'a str) -> &'a str {
        if !self.per_flag {
            return ALL_FLAGS;
        }
        if self.flag(key).1 {
            key
        } else {
            OTHER_FLAGS
        }
    }

    /// Calls `f(flag_key, reason, value, count)` for every series counted so far.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&str, &'static str, &'static str, u64)) {
        let mut put = |flag: &str, totals: &[u64]| {
            for (i, &n) in totals.iter().enumerate() {
                if n > 0 {
                    f(flag, reason_label(i / VALUES), value_label(i % VALUES), n);
                }
            }
        };
        let mut all = self.all.totals();
        self.attached.for_each(|reason, value, n| {
            let i = reason_slot(reason) * VALUES + value.index();
            if let Some(c) = all.get_mut(i) {
                *c = c.wrapping_add(n);
            }
        });
        put(ALL_FLAGS, &all);
        for (k, c) in self.flags.load().iter() {
            put(k, &c.totals());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_have_labels() {
        for r in ReasonKind::ALL {
            assert_eq!(reason_label(reason_slot(r)), r.as_str());
        }
    }
}
