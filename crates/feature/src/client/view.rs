//! The swapped view: what an evaluation reads with one atomic load (the provider's snapshot,
//! the local overrides, readiness), and the sink through which providers publish a new one.

use super::{FlagChange, Inner};
use feature_core::metrics::Metrics;
use feature_core::provider::Sink;
use feature_core::{ErrorKind, Evaluation, Reason, Snapshot, ValueKind};
use rustc_hash::FxHashMap;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::{Arc, Weak};

/// What evaluation reads: one atomic load gives a consistent snapshot and overrides.
#[derive(Debug)]
pub(super) struct View {
    /// The provider's latest snapshot (empty until it delivers).
    pub(super) snapshot: Arc<Snapshot>,
    /// Local overrides, which win over the snapshot.
    pub(super) overrides: FxHashMap<Box<str>, Value>,
    /// Whether the provider has delivered flags.
    pub(super) ready: bool,
    /// Whether a typed read may answer from the snapshot alone: ready, no overrides, and a
    /// client without a provider engine, metrics or events. One test on the read path
    /// instead of four.
    pub(super) direct: bool,
}

impl View {
    /// A view of `snapshot` and `overrides`, for a client that observes its evaluations or
    /// evaluates through its provider's engine (`observed_or_engine`) or does neither.
    pub(super) fn new(
        snapshot: Arc<Snapshot>,
        overrides: FxHashMap<Box<str>, Value>,
        ready: bool,
        observed_or_engine: bool,
    ) -> View {
        View {
            direct: ready && overrides.is_empty() && !observed_or_engine,
            snapshot,
            overrides,
            ready,
        }
    }
}

/// The evaluation of an override: its value (a `WRONG_TYPE` default when it is not of `kind`),
/// reason `OVERRIDE`, and the index of the flag's variant with that value, if any.
pub(crate) fn override_eval(
    snap: &Snapshot,
    key: &str,
    v: &Value,
    kind: ValueKind,
    default: Value,
) -> Evaluation {
    if !kind.admits(v) {
        return Evaluation::error(key, default, ErrorKind::WrongType);
    }
    let flag = snap.flag(key);
    let variation_index = flag.and_then(|f| f.variations().iter().position(|x| x == v));
    Evaluation {
        key: key.to_owned(),
        value: v.clone(),
        variation_index,
        variation_name: flag
            .zip(variation_index)
            .and_then(|(f, i)| f.variation_name(i))
            .map(str::to_owned),
        reason: Reason::Override,
    }
}

/// The client's side of the provider contract: swaps each published snapshot into the view.
pub(super) struct ClientSink {
    pub(super) inner: Weak<Inner>,
    pub(super) metrics: Arc<dyn Metrics>,
}

impl Sink for ClientSink {
    fn publish(&self, snapshot: Snapshot) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        if let Some(m) = &inner.metrics {
            m.record_flags(snapshot.len(), snapshot.enabled_count());
        }
        let snapshot = Arc::new(snapshot);
        // Read-copy-update: an override set while this snapshot is swapped in is kept (a plain
        // load then store would write back the overrides read before it).
        let old = inner.view.rcu(|current| {
            View::new(
                snapshot.clone(),
                current.overrides.clone(),
                true,
                inner.observed_or_engine(),
            )
        });
        // A snapshot compiled from the one it replaces knows what changed (proportional to
        // the change); otherwise both documents are compared.
        let keys = snapshot.changed_keys(&old.snapshot);
        if !keys.is_empty() {
            let _ = inner.changes.send(FlagChange {
                keys,
                resync: false,
            });
        }
    }

    fn metrics(&self) -> &dyn Metrics {
        self.metrics.as_ref()
    }

    fn changed(&self, keys: Vec<String>) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        if !keys.is_empty() {
            let _ = inner.changes.send(FlagChange {
                keys,
                resync: false,
            });
        }
    }

    fn event(&self, context: &feature_core::Context, name: &str, data: serde_json::Value) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        if let Some(events) = &inner.events {
            events.track(context, name, &crate::analytics::TrackData::data(data));
        }
    }
}

impl View {
    /// Every flag key the view knows: the snapshot's (readable or not) and the overrides'.
    pub(super) fn all_keys(&self) -> Vec<String> {
        let mut keys: BTreeSet<String> = self.snapshot.document().flags.keys().cloned().collect();
        keys.extend(self.snapshot.flags().map(|f| f.key().to_owned()));
        keys.extend(self.overrides.keys().map(|k| k.to_string()));
        keys.into_iter().collect()
    }
}
