//! A provider holding flags in memory, changed from code: for tests, demos and for services
//! that compute their flags themselves.
//!
//! A change of one flag or segment is compiled from the snapshot published last
//! ([`feature_core::recompile`]): its cost follows the change, not the number of flags.

use async_trait::async_trait;
use feature_core::model::Segment;
use feature_core::provider::{Provider, ProviderError, ProviderState, ProviderStatus, Sink};
use feature_core::{compile, recompile, Change, Flag, FlagDocument, Snapshot};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

#[derive(Default)]
struct State {
    doc: FlagDocument,
    /// The snapshot published last, compiled from `doc`: a change is compiled from it. `None`
    /// while nothing is published (no sink), when the next publication compiles `doc` whole.
    published: Option<Snapshot>,
    sinks: Vec<Arc<dyn Sink>>,
    last_refresh: Option<SystemTime>,
    closed: bool,
}

/// Flags in memory. Clones share the same flags, so keep a clone to change them at runtime:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use feature::{Client, Context, Flag, MemoryProvider};
/// let flags = MemoryProvider::new();
/// let client = Client::builder().provider(flags.clone()).build().await?;
/// let user = Context::new("u1");
/// assert!(!client.bool(&user, "beta", false));
/// flags.set_flag(Flag::boolean("beta", true));
/// assert!(client.bool(&user, "beta", false));
/// flags.remove_flag("beta");
/// assert!(!client.bool(&user, "beta", false));
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct MemoryProvider {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for MemoryProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryProvider")
            .field("flags", &self.lock().doc.flags.len())
            .finish()
    }
}

impl MemoryProvider {
    /// An empty provider.
    pub fn new() -> Self {
        Self::default()
    }

    /// A provider holding a document.
    pub fn with_document(doc: FlagDocument) -> Self {
        let p = Self::default();
        p.lock().doc = doc;
        p
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the document half-written (every
        // change is a single map operation), so a poisoned lock is still safe to use.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds or replaces a flag (its `key` names it).
    pub fn set_flag(&self, flag: Flag) {
        self.apply(Change::Flag(flag.key.clone(), Some(Arc::new(flag))));
    }

    /// Removes a flag.
    pub fn remove_flag(&self, key: &str) {
        self.apply(Change::Flag(key.to_owned(), None));
    }

    /// Adds or replaces a segment.
    pub fn set_segment(&self, segment: Segment) {
        self.apply(Change::Segment(
            segment.key.clone(),
            Some(Arc::new(segment)),
        ));
    }

    /// Replaces every flag and segment.
    pub fn replace(&self, doc: FlagDocument) {
        self.change(|d| *d = doc, None);
    }

    /// Sets or removes one item of the document and publishes the result.
    fn apply(&self, change: Change) {
        let edit = |doc: &mut FlagDocument| match &change {
            Change::Flag(key, Some(flag)) => {
                doc.flags.insert(key.clone(), flag.clone());
            }
            Change::Flag(key, None) => {
                doc.flags.remove(key);
            }
            Change::Segment(key, Some(segment)) => {
                doc.segments.insert(key.clone(), segment.clone());
            }
            Change::Segment(key, None) => {
                doc.segments.remove(key);
            }
        };
        self.change(edit, Some(change.clone()));
    }

    /// A copy of the current document.
    pub fn document(&self) -> FlagDocument {
        self.lock().doc.clone()
    }

    /// Applies `edit` to the document and publishes the result: compiled from the snapshot
    /// published last with `change` (the item `edit` changed) when there is both, else whole.
    fn change(&self, edit: impl FnOnce(&mut FlagDocument), change: Option<Change>) {
        let mut st = self.lock();
        edit(&mut st.doc);
        st.last_refresh = Some(SystemTime::now());
        let previous = st.published.take();
        if st.sinks.is_empty() {
            return;
        }
        let snapshot = match (previous, change) {
            (Some(previous), Some(change)) => recompile(&previous, [change]).snapshot,
            _ => compile(st.doc.clone()),
        };
        // Publishing under the lock keeps concurrent changes in order.
        for s in &st.sinks {
            s.publish(snapshot.clone());
        }
        st.published = Some(snapshot);
    }
}

#[async_trait]
impl Provider for MemoryProvider {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn start(&self, sink: Arc<dyn Sink>) -> Result<(), ProviderError> {
        let mut st = self.lock();
        if st.closed {
            return Err(ProviderError::Closed);
        }
        let snapshot = compile(st.doc.clone());
        sink.publish(snapshot.clone());
        st.published = Some(snapshot);
        st.sinks.push(sink);
        st.last_refresh = Some(SystemTime::now());
        Ok(())
    }

    fn status(&self) -> ProviderStatus {
        let st = self.lock();
        ProviderStatus {
            state: if st.closed {
                ProviderState::Closed
            } else {
                ProviderState::Ready
            },
            last_refresh: st.last_refresh,
            last_error: None,
            connected: true,
        }
    }

    async fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        st.sinks.clear();
        st.published = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use feature_core::metrics::{Metrics, NoopMetrics};
    use feature_core::Context;

    /// Keeps every published snapshot.
    #[derive(Default)]
    struct Recording(Mutex<Vec<Arc<Snapshot>>>);

    impl Sink for Recording {
        fn publish(&self, snapshot: Snapshot) {
            self.0.lock().unwrap().push(Arc::new(snapshot));
        }

        fn metrics(&self) -> &dyn Metrics {
            &NoopMetrics
        }
    }

    impl Recording {
        fn last(&self) -> Arc<Snapshot> {
            self.0
                .lock()
                .unwrap()
                .last()
                .cloned()
                .expect("a publication")
        }
    }

    fn value(s: &Snapshot, key: &str) -> Option<bool> {
        s.evaluate(key, &Context::new("u"))
            .value()
            .and_then(|v| v.as_bool())
    }

    #[tokio::test]
    async fn a_change_is_compiled_from_the_last_snapshot_and_shares_the_rest() {
        let flags = MemoryProvider::new();
        for i in 0..200 {
            flags.set_flag(Flag::boolean(format!("flag-{i:03}"), false));
        }
        let sink = Arc::new(Recording::default());
        flags.start(sink.clone()).await.unwrap();
        let before = sink.last();

        flags.set_flag(Flag::boolean("flag-100", true));
        let after = sink.last();
        assert_eq!(value(&after, "flag-100"), Some(true));
        // Every other compiled flag is the one published before (not compiled again).
        let shared = |key: &str| {
            std::ptr::eq(
                before.flag(key).expect("before"),
                after.flag(key).expect("after"),
            )
        };
        assert!(shared("flag-000") && shared("flag-199"));
        assert!(!shared("flag-100"));

        // Added, removed and whole replacements publish what a whole compile gives.
        flags.set_flag(Flag::boolean("new", true));
        flags.remove_flag("flag-000");
        let last = sink.last();
        assert_eq!(value(&last, "new"), Some(true));
        assert!(last.flag("flag-000").is_none());
        assert_eq!(last.len(), 200);
        let whole = compile(flags.document());
        for f in whole.flags() {
            assert_eq!(value(&last, f.key()), value(&whole, f.key()), "{}", f.key());
        }
        flags.replace(FlagDocument::default());
        assert!(sink.last().is_empty());
        flags.set_flag(Flag::boolean("again", true));
        assert_eq!(value(&sink.last(), "again"), Some(true));
    }
}
