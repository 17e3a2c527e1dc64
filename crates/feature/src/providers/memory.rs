//! A provider holding flags in memory, changed from code: for tests, demos and for services
//! that compute their flags themselves.

use async_trait::async_trait;
use feature_core::model::Segment;
use feature_core::provider::{Provider, ProviderError, ProviderState, ProviderStatus, Sink};
use feature_core::{compile, Flag, FlagDocument};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

#[derive(Default)]
struct State {
    doc: FlagDocument,
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
        self.change(|doc| {
            doc.flags.insert(flag.key.clone(), flag.into());
        });
    }

    /// Removes a flag.
    pub fn remove_flag(&self, key: &str) {
        self.change(|doc| {
            doc.flags.remove(key);
        });
    }

    /// Adds or replaces a segment.
    pub fn set_segment(&self, segment: Segment) {
        self.change(|doc| {
            doc.segments.insert(segment.key.clone(), segment.into());
        });
    }

    /// Replaces every flag and segment.
    pub fn replace(&self, doc: FlagDocument) {
        self.change(|d| *d = doc);
    }

    /// A copy of the current document.
    pub fn document(&self) -> FlagDocument {
        self.lock().doc.clone()
    }

    fn change(&self, f: impl FnOnce(&mut FlagDocument)) {
        let mut st = self.lock();
        f(&mut st.doc);
        st.last_refresh = Some(SystemTime::now());
        if st.sinks.is_empty() {
            return;
        }
        let snapshot = compile(st.doc.clone());
        // Publishing under the lock keeps concurrent changes in order.
        for s in &st.sinks {
            s.publish(snapshot.clone());
        }
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
        sink.publish(compile(st.doc.clone()));
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
    }
}
