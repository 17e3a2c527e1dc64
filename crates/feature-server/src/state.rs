//! What every handler shares: the store (or the read-only source), the client, the tokens,
//! the options and the metrics.

use crate::auth::TokenCache;
use crate::metrics::HttpMetrics;
use feature::metrics::EvaluationStats;
use feature::Client;
use feature_store::tokens::TokenStore;
use feature_store::FlagStore;
use std::sync::Arc;
use std::time::Duration;

/// Where flags are read and written.
#[derive(Clone)]
pub(crate) enum Backend {
    /// A store: reads and writes.
    Store(Arc<dyn FlagStore>),
    /// A read-only source (a flag file, a hosted service): reads come from the client's
    /// snapshot; writes answer 405 with the reason.
    ReadOnly(String),
}

/// Options of the server (see [`ServerBuilder`](crate::ServerBuilder)).
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) body_limit: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) cors_origins: Vec<String>,
    pub(crate) token_cache_ttl: Duration,
    pub(crate) stream_heartbeat: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            cors_origins: Vec::new(),
            token_cache_ttl: Duration::from_secs(1),
            stream_heartbeat: Duration::from_secs(15),
        }
    }
}

/// Extra checks of `POST /api/v1/validate`, run after the compiler's: the snapshot, a locator
/// over the text sent → more located diagnostics (`featurectl serve` passes its lints).
pub type Linter = Arc<
    dyn Fn(&feature_core::Snapshot, &feature_core::Locator) -> Vec<feature_core::Diagnostic>
        + Send
        + Sync,
>;

pub(crate) struct Inner {
    pub(crate) linter: Option<Linter>,
    pub(crate) backend: Backend,
    pub(crate) tokens: Option<Arc<dyn TokenStore>>,
    pub(crate) bootstrap: Option<[u8; 32]>,
    pub(crate) client: Client,
    pub(crate) stats: EvaluationStats,
    pub(crate) registry: prometheus::Registry,
    pub(crate) http: HttpMetrics,
    pub(crate) cache: TokenCache,
    /// The last store probe of `/health` (when, reachable): one probe a second at most, shared
    /// by concurrent calls, so an open endpoint cannot load the store.
    pub(crate) probe: tokio::sync::Mutex<Option<(std::time::Instant, bool)>>,
    pub(crate) options: Options,
    pub(crate) hub: Arc<crate::sdk::Hub>,
}

/// The state behind every route: cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState(pub(crate) Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// The store, or the 405 problem of a read-only server.
    pub(crate) fn store(&self) -> Result<&Arc<dyn FlagStore>, crate::Problem> {
        match &self.backend {
            Backend::Store(s) => Ok(s),
            Backend::ReadOnly(reason) => Err(crate::Problem::read_only(reason)),
        }
    }
}
