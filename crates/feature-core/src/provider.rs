//! The provider contract: where flags come from.
//!
//! A [`Provider`] either feeds compiled [`Snapshot`]s into a [`Sink`] (memory, file, PostgreSQL,
//! Redis: the client evaluates them in-process), or hands the client an [`Engine`] that answers
//! evaluations itself (a foreign SDK such as LaunchDarkly's or Unleash's). The trait lives here,
//! below every backend crate, so that a backend depends only on this pure crate and the `feature`
//! facade can re-export backends behind Cargo features without a dependency cycle.
//!
//! Providers never make an evaluation wait: they publish whole snapshots, and the client swaps
//! them in atomically.

use crate::metrics::Metrics;
use crate::{Context, Evaluation, Snapshot, ValueKind};
use serde_json::Value;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

/// A boxed error from a backend library.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of providers: loading, watching and talking to stores.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A document could not be parsed.
    #[error(transparent)]
    Parse(#[from] crate::ParseError),
    /// A document parsed but has errors; the previous snapshot is kept.
    #[error("{} problem(s), first: {}", .0.len(), .0.first().map(ToString::to_string).unwrap_or_default())]
    Invalid(Vec<crate::Diagnostic>),
    /// The store or service failed.
    #[error("{provider}: {operation} failed: {source}")]
    Backend {
        /// Provider name.
        provider: &'static str,
        /// What was being done (`load`, `listen`, `write`, ...).
        operation: &'static str,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// An operation did not finish in time.
    #[error("{provider}: {operation} timed out")]
    Timeout {
        /// Provider name.
        provider: &'static str,
        /// What was being done.
        operation: &'static str,
    },
    /// The provider was closed.
    #[error("provider closed")]
    Closed,
}

/// How a provider is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderState {
    /// Not yet delivered a first snapshot.
    Starting,
    /// Delivering current data.
    Ready,
    /// Serving the last good snapshot; the source is unreachable or its latest data is invalid.
    Degraded,
    /// Never delivered data (the client serves defaults with `CLIENT_NOT_READY`).
    Unavailable,
    /// Closed.
    Closed,
}

impl ProviderState {
    /// Lower-case name: `starting`, `ready`, `degraded`, `unavailable`, `closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderState::Starting => "starting",
            ProviderState::Ready => "ready",
            ProviderState::Degraded => "degraded",
            ProviderState::Unavailable => "unavailable",
            ProviderState::Closed => "closed",
        }
    }
}

/// A provider's state with the details health checks report.
#[derive(Debug, Clone)]
pub struct ProviderStatus {
    /// The state.
    pub state: ProviderState,
    /// When data was last delivered.
    pub last_refresh: Option<SystemTime>,
    /// The last error, with when it happened.
    pub last_error: Option<(Arc<ProviderError>, SystemTime)>,
    /// Whether the provider is connected to its store (always true for local sources).
    pub connected: bool,
}

impl Default for ProviderStatus {
    fn default() -> Self {
        ProviderStatus {
            state: ProviderState::Starting,
            last_refresh: None,
            last_error: None,
            connected: false,
        }
    }
}

impl fmt::Display for ProviderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.state.as_str())?;
        if let Some((e, _)) = &self.last_error {
            write!(f, " (last error: {e})")?;
        }
        Ok(())
    }
}

/// Where a provider publishes snapshots. Implemented by the client.
pub trait Sink: Send + Sync + 'static {
    /// Replaces the flags the client evaluates. Cheap: an atomic swap and a change notice.
    fn publish(&self, snapshot: Snapshot);

    /// The metrics the provider reports its latency and errors to.
    fn metrics(&self) -> &dyn Metrics;

    /// Names the flags that changed, for providers whose [`Engine`] answers evaluations: their
    /// snapshots are empty, so the client cannot tell from them what changed. The client
    /// passes the names on to its subscribers. The default does nothing.
    fn changed(&self, keys: Vec<String>) {
        let _ = keys;
    }

    /// An event of the provider's engine about an evaluation of `context` (Unleash's
    /// impression events, named `impression`), for the client's event sink, which receives it
    /// as a custom event (`track`) with `data`. Must not block. The default drops it.
    fn event(&self, context: &Context, name: &str, data: Value) {
        let _ = (context, name, data);
    }
}

/// A foreign evaluation engine: a provider that evaluates flags itself.
pub trait Engine: Send + Sync + 'static {
    /// Evaluates `key` for `ctx`, expecting a value of `kind`; `default` is served on failure.
    fn evaluate(&self, key: &str, ctx: &Context, kind: ValueKind, default: &Value) -> Evaluation;

    /// The keys of every flag the engine knows.
    fn keys(&self) -> Vec<String>;

    /// Evaluates like [`Engine::evaluate`] without counting the evaluation as usage that the
    /// engine reports to its server: for listings of every flag (`all_flags`), which are not
    /// uses of the flags. The default evaluates.
    fn evaluate_uncounted(
        &self,
        key: &str,
        ctx: &Context,
        kind: ValueKind,
        default: &Value,
    ) -> Evaluation {
        self.evaluate(key, ctx, kind, default)
    }
}

/// A source of flags. See the [module docs](crate::provider).
#[async_trait::async_trait]
pub trait Provider: Send + Sync + 'static {
    /// Short name used in logs, metrics and health (`memory`, `file`, `postgres`, ...).
    fn name(&self) -> &'static str;

    /// Starts the provider: publishes the first snapshot to `sink` (or fails), then keeps it
    /// current in the background until [`Provider::close`].
    async fn start(&self, sink: Arc<dyn Sink>) -> Result<(), ProviderError>;

    /// The provider's current status.
    fn status(&self) -> ProviderStatus;

    /// Stops background work. Idempotent.
    async fn close(&self) {}

    /// A foreign engine answering evaluations itself, for providers that wrap another SDK.
    fn engine(&self) -> Option<Arc<dyn Engine>> {
        None
    }
}

/// A URL as it may be shown in logs, errors and `Debug` output: the user information
/// (`user:password@`) is replaced by `***`, and the values of query parameters that name a
/// secret (`password`, `token`, `secret`, `key`, ...) by `***`. Text that is not a URL comes
/// back unchanged, except that anything before an `@` in it is hidden too.
///
/// ```
/// use feature_core::provider::redact_url;
/// assert_eq!(redact_url("postgres://app:pw@db:5432/flags"), "postgres://***@db:5432/flags");
/// assert_eq!(redact_url("redis://127.0.0.1:6379/0"), "redis://127.0.0.1:6379/0");
/// assert_eq!(redact_url("postgres://db/f?user=app&password=pw"), "postgres://db/f?user=app&password=***");
/// ```
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => format!("***{}", &authority[at..]),
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        None => tail.to_owned(),
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if names_a_secret(k) => format!("{k}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
    };
    format!("{scheme}{authority}{tail}")
}

/// Whether a parameter name says its value is a secret.
fn names_a_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "pass",
        "pwd",
        "token",
        "secret",
        "key",
        "auth",
        "credential",
    ]
    .iter()
    .any(|s| name.contains(s))
}
