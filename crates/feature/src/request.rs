//! Flags for the request being served: a client and a context bound to the current task.
//!
//! [`scope`] runs a future with a [`Client`] and a [`Context`]; inside it, the free functions
//! [`bool`](crate::bool), [`string`](crate::string), [`int`](crate::int),
//! [`float`](crate::float), [`json`](crate::json) and [`variation`](crate::variation) evaluate
//! flags for that context without passing it around: a handler reads `feature::bool("new-feature", false)`.
//! The HTTP and gRPC middleware (features `http` and `grpc`) open this scope around every
//! request; [`RequestFlags`] is the same pair as a value, for request extensions.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use feature::{Client, Context, Flag, MemoryProvider};
//!
//! let provider = MemoryProvider::new();
//! provider.set_flag(Flag::boolean("new-feature", true));
//! let client = Client::builder().provider(provider).build().await?;
//!
//! async fn handler() -> &'static str {
//!     // No client, no context in sight: both come from the scope.
//!     if feature::bool("new-feature", false) { "new" } else { "old" }
//! }
//!
//! let answer = feature::scope(client.clone(), Context::new("user-123"), handler()).await;
//! assert_eq!(answer, "new");
//! // Outside any scope the caller's default comes back.
//! assert_eq!(handler().await, "old");
//! # Ok(()) }
//! ```
//!
//! ## Outside a scope
//!
//! The free functions never fail: outside a scope they return the caller's default, and
//! [`variation`](crate::variation) returns an [`Evaluation`] with value `null`, no variation
//! and reason `ERROR` / [`ErrorKind::UserNotSpecified`] (`USER_NOT_SPECIFIED`: there is no
//! context to evaluate for). Nothing is recorded in metrics or events then, since there is
//! no client to record them.
//!
//! ## Spawned tasks
//!
//! A task-local does not follow `tokio::spawn`: a task spawned by a handler starts outside
//! the scope. Carry the scope along with [`current_flags`] and [`RequestFlags::scope`]:
//!
//! ```
//! # async fn handler() {
//! if let Some(flags) = feature::current_flags() {
//!     tokio::spawn(flags.scope(async {
//!         let _ = feature::bool("new-feature", false); // evaluated for the request's context
//!     }));
//! }
//! # }
//! ```

use crate::analytics::TrackData;
use crate::client::JsonError;
use crate::Client;
use feature_core::{Context, ErrorKind, Evaluation, ReasonKind, ValueKind};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

tokio::task_local! {
    static FLAGS: RequestFlags;
}

/// A [`Client`] and the [`Context`] of one request: evaluates flags for that context.
///
/// Cheap to clone (one `Arc`). The middleware puts one in every request's extensions and in
/// the task-local scope; build one yourself to open a scope with [`RequestFlags::scope`].
/// Without per-request overrides, every method gives exactly what the client gives for the
/// same context.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use feature::{Client, Context, Flag, MemoryProvider, RequestFlags};
///
/// let provider = MemoryProvider::new();
/// provider.set_flag(Flag::boolean("new-feature", true));
/// let client = Client::builder().provider(provider).build().await?;
///
/// let flags = RequestFlags::new(client.clone(), Context::new("user-123"));
/// assert!(flags.bool("new-feature", false));
/// assert_eq!(flags.context().key(), "user-123");
/// assert_eq!(flags.variation("new-feature"), client.variation(&Context::new("user-123"), "new-feature"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RequestFlags {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    client: Client,
    context: Context,
    /// Per-request overrides (development only); `None` on the normal path.
    overrides: Option<BTreeMap<String, Value>>,
}

impl fmt::Debug for RequestFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestFlags")
            .field("context", &self.inner.context)
            .field("overrides", &self.inner.overrides)
            .finish_non_exhaustive()
    }
}

impl RequestFlags {
    /// Flags of `client` evaluated for `context`.
    pub fn new(client: Client, context: Context) -> Self {
        RequestFlags {
            inner: Arc::new(Inner {
                client,
                context,
                overrides: None,
            }),
        }
    }

    /// Adds per-request overrides: each key serves its value (reason `OVERRIDE`) for this
    /// request only, ahead of the client's own overrides and flags. Meant for development
    /// (the middleware fills them only behind its explicit development switch). Evaluations
    /// answered by a per-request override are not reported to the client's metrics or events.
    pub fn with_overrides<K: Into<String>, V: Into<Value>>(
        mut self,
        overrides: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut overrides = overrides
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .peekable();
        if overrides.peek().is_none() {
            return self;
        }
        let inner = Arc::make_mut(&mut self.inner);
        inner
            .overrides
            .get_or_insert_with(BTreeMap::new)
            .extend(overrides);
        self
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The request's context.
    pub fn context(&self) -> &Context {
        &self.inner.context
    }

    /// The per-request overrides (empty unless set with [`RequestFlags::with_overrides`]).
    pub fn overrides(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.inner
            .overrides
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v))
    }

    #[inline]
    fn override_for(&self, key: &str) -> Option<&Value> {
        match &self.inner.overrides {
            None => None,
            Some(o) => o.get(key),
        }
    }

    /// Evaluates a boolean flag ([`Client::bool`]).
    #[inline]
    pub fn bool(&self, key: &str, default: bool) -> bool {
        match self.override_for(key) {
            None => self.inner.client.bool(&self.inner.context, key, default),
            Some(v) => v.as_bool().unwrap_or(default),
        }
    }

    /// Evaluates a string flag ([`Client::string`]).
    #[inline]
    pub fn string(&self, key: &str, default: &str) -> String {
        match self.override_for(key) {
            None => self.inner.client.string(&self.inner.context, key, default),
            Some(v) => v.as_str().unwrap_or(default).to_owned(),
        }
    }

    /// Evaluates an integer flag ([`Client::int`]: fractions are truncated toward zero).
    #[inline]
    pub fn int(&self, key: &str, default: i64) -> i64 {
        match self.override_for(key) {
            None => self.inner.client.int(&self.inner.context, key, default),
            Some(v) => v
                .as_i64()
                .or_else(|| v.as_f64().map(|f| f.trunc() as i64))
                .unwrap_or(default),
        }
    }

    /// Evaluates a number flag ([`Client::float`]).
    #[inline]
    pub fn float(&self, key: &str, default: f64) -> f64 {
        match self.override_for(key) {
            None => self.inner.client.float(&self.inner.context, key, default),
            Some(v) => v.as_f64().unwrap_or(default),
        }
    }

    /// Evaluates a JSON flag into `T` ([`Client::json`]).
    pub fn json<T: DeserializeOwned>(&self, key: &str, default: T) -> T {
        match self.override_for(key) {
            None => self.inner.client.json(&self.inner.context, key, default),
            Some(v) => serde_json::from_value(v.clone()).unwrap_or(default),
        }
    }

    /// Evaluates a JSON flag into `T`, or says why it cannot ([`Client::try_json`]).
    pub fn try_json<T: DeserializeOwned>(&self, key: &str) -> Result<T, JsonError> {
        match self.override_for(key) {
            None => self.inner.client.try_json(&self.inner.context, key),
            Some(v) => {
                let eval = self.variation(key);
                T::deserialize(v).map_err(|source| JsonError::Decode {
                    evaluation: Box::new(eval),
                    source,
                })
            }
        }
    }

    /// Evaluates a flag with every detail ([`Client::variation`]).
    pub fn variation(&self, key: &str) -> Evaluation {
        self.variation_with(key, ValueKind::Any, Value::Null)
    }

    /// Evaluates a flag with every detail, checking the value's kind
    /// ([`Client::variation_with`]).
    pub fn variation_with(&self, key: &str, kind: ValueKind, default: Value) -> Evaluation {
        match self.override_for(key) {
            None => self
                .inner
                .client
                .variation_with(&self.inner.context, key, kind, default),
            Some(v) => {
                crate::client::override_eval(&self.inner.client.snapshot(), key, v, kind, default)
            }
        }
    }

    /// Every flag's value for the request's context ([`Client::all_flags`]), per-request
    /// overrides included.
    pub fn all_flags(&self) -> BTreeMap<String, Value> {
        let mut all = self.inner.client.all_flags(&self.inner.context);
        for (k, v) in self.overrides() {
            all.insert(k.to_owned(), v.clone());
        }
        all
    }

    /// Records a custom event for the request's context ([`Client::track`]).
    pub fn track(&self, event: &str, data: impl Into<TrackData>) {
        self.inner.client.track(&self.inner.context, event, data);
    }

    /// Runs `future` with these flags as the current scope (see [`scope`]).
    pub fn scope<F: Future>(self, future: F) -> impl Future<Output = F::Output> {
        FLAGS.scope(self, future)
    }

    /// Runs `f` with these flags as the current scope, synchronously.
    pub fn sync_scope<R>(self, f: impl FnOnce() -> R) -> R {
        FLAGS.sync_scope(self, f)
    }
}

/// The task-local: for the middleware, which needs the concrete future type.
#[cfg(any(feature = "http", feature = "grpc"))]
pub(crate) fn scoped<F: Future>(
    flags: RequestFlags,
    future: F,
) -> tokio::task::futures::TaskLocalFuture<RequestFlags, F> {
    FLAGS.scope(flags, future)
}

/// Runs `future` with `client` and `ctx` as the current scope: inside it, [`bool()`],
/// [`string`], [`int`], [`float`], [`json`], [`variation`] and [`current_context`] evaluate
/// for `ctx`. Scopes nest (the innermost wins) and end with the future.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), feature::ClientError> {
/// use feature::{Client, Context};
/// let client = Client::builder().build().await?;
/// let key = feature::scope(client, Context::new("user-1"), async {
///     feature::current_context().map(|c| c.key().to_owned())
/// }).await;
/// assert_eq!(key.as_deref(), Some("user-1"));
/// assert!(feature::current_context().is_none());
/// # Ok(()) }
/// ```
pub fn scope<F: Future>(
    client: Client,
    ctx: Context,
    future: F,
) -> impl Future<Output = F::Output> {
    RequestFlags::new(client, ctx).scope(future)
}

/// The current scope's flags, if any (a cheap clone).
pub fn current_flags() -> Option<RequestFlags> {
    FLAGS.try_with(RequestFlags::clone).ok()
}

/// The current scope's context (a clone), if any. [`current_flags`] avoids the clone.
pub fn current_context() -> Option<Context> {
    FLAGS.try_with(|f| f.context().clone()).ok()
}

/// Flag reads through the free functions outside any request scope, since the process started.
static OUTSIDE_SCOPE: AtomicU64 = AtomicU64::new(0);

/// Counts a read outside a scope (logging the first, at debug level) and gives `default`.
#[cold]
fn outside_scope_read<T>(key: &str, default: T) -> T {
    if OUTSIDE_SCOPE.fetch_add(1, Ordering::Relaxed) == 0 {
        tracing::debug!(
            target: "feature::request",
            flag = key,
            "flag read outside a request scope: the caller's default is served \
             (a spawned task carries the scope with feature::carry_scope)"
        );
    }
    default
}

/// How many flag reads through the free functions ([`bool()`], [`string()`], ...) happened
/// outside any request scope (each served the caller's default): a number that should stay 0.
pub fn outside_scope_reads() -> u64 {
    OUTSIDE_SCOPE.load(Ordering::Relaxed)
}

/// Makes `future` run in the current request scope, if there is one. A task spawned while
/// serving a request does not inherit the request's scope (it is task-local); wrap the task:
///
/// ```no_run
/// # async fn f() {
/// tokio::spawn(feature::carry_scope(async {
///     // The request's flags and context, as in the handler.
///     feature::bool("new-checkout", false)
/// }));
/// # }
/// ```
pub fn carry_scope<F: Future>(future: F) -> impl Future<Output = F::Output> {
    let flags = current_flags();
    async move {
        match flags {
            Some(f) => f.scope(future).await,
            None => future.await,
        }
    }
}

/// Evaluates a boolean flag for the current scope's context; `default` outside a scope.
#[inline]
pub fn bool(key: &str, default: bool) -> bool {
    FLAGS
        .try_with(|f| f.bool(key, default))
        .unwrap_or_else(|_| outside_scope_read(key, default))
}

/// Evaluates a string flag for the current scope's context; `default` outside a scope.
pub fn string(key: &str, default: &str) -> String {
    FLAGS
        .try_with(|f| f.string(key, default))
        .unwrap_or_else(|_| outside_scope_read(key, default.to_owned()))
}

/// Evaluates an integer flag for the current scope's context; `default` outside a scope.
#[inline]
pub fn int(key: &str, default: i64) -> i64 {
    FLAGS
        .try_with(|f| f.int(key, default))
        .unwrap_or_else(|_| outside_scope_read(key, default))
}

/// Evaluates a number flag for the current scope's context; `default` outside a scope.
#[inline]
pub fn float(key: &str, default: f64) -> f64 {
    FLAGS
        .try_with(|f| f.float(key, default))
        .unwrap_or_else(|_| outside_scope_read(key, default))
}

/// Evaluates a JSON flag into `T` for the current scope's context; `default` outside a scope.
pub fn json<T: DeserializeOwned>(key: &str, default: T) -> T {
    match current_flags() {
        Some(f) => f.json(key, default),
        None => outside_scope_read(key, default),
    }
}

/// Evaluates a flag with every detail for the current scope's context. Outside a scope: value
/// `null`, no variation, reason `ERROR` with [`ErrorKind::UserNotSpecified`].
pub fn variation(key: &str) -> Evaluation {
    FLAGS
        .try_with(|f| f.variation(key))
        .unwrap_or_else(|_| outside_scope(key))
}

fn outside_scope(key: &str) -> Evaluation {
    let eval = outside_scope_read(
        key,
        Evaluation::error(key, Value::Null, ErrorKind::UserNotSpecified),
    );
    debug_assert_eq!(eval.reason.kind(), ReasonKind::Error);
    eval
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Flag, MemoryProvider};

    async fn client() -> Client {
        let provider = MemoryProvider::new();
        provider.set_flag(Flag::boolean("on", true));
        Client::builder().provider(provider).build().await.unwrap()
    }

    #[tokio::test]
    async fn outside_a_scope_defaults_come_back() {
        assert!(!crate::request::bool("on", false));
        assert_eq!(string("s", "d"), "d");
        assert_eq!(int("i", 7), 7);
        assert_eq!(float("f", 1.5), 1.5);
        assert_eq!(json::<Vec<u8>>("j", vec![1]), vec![1]);
        let e = variation("on");
        assert_eq!(e.value, Value::Null);
        assert_eq!(e.variation_index, None);
        assert_eq!(e.error_kind(), Some(ErrorKind::UserNotSpecified));
        assert!(current_context().is_none());
        assert!(current_flags().is_none());
    }

    #[tokio::test]
    async fn scopes_nest_and_end() {
        let c = client().await;
        let outer = RequestFlags::new(c.clone(), Context::new("outer"));
        outer
            .scope(async {
                assert_eq!(current_context().unwrap().key(), "outer");
                scope(c.clone(), Context::new("inner"), async {
                    assert_eq!(current_context().unwrap().key(), "inner");
                })
                .await;
                assert_eq!(current_context().unwrap().key(), "outer");
                assert!(crate::request::bool("on", false));
            })
            .await;
        assert!(current_context().is_none());
    }

    #[tokio::test]
    async fn per_request_overrides_win_and_check_kinds() {
        let c = client().await;
        let ctx = Context::new("u");
        let f = RequestFlags::new(c.clone(), ctx.clone())
            .with_overrides([("on", Value::Bool(false)), ("n", serde_json::json!(2.9))]);
        assert!(!f.bool("on", true));
        assert_eq!(f.int("n", 0), 2);
        assert_eq!(f.float("n", 0.0), 2.9);
        assert_eq!(f.string("n", "d"), "d");
        let e = f.variation("on");
        assert_eq!(e.reason, feature_core::Reason::Override);
        assert_eq!(e.variation_index, Some(0));
        let e = f.variation_with("on", ValueKind::String, Value::from("x"));
        assert_eq!(e.error_kind(), Some(ErrorKind::WrongType));
        assert_eq!(e.value, Value::from("x"));
        assert_eq!(f.all_flags().get("on"), Some(&Value::Bool(false)));
        // The client itself is untouched.
        assert!(c.bool(&ctx, "on", false));
        // Without overrides the value is the client's.
        let plain =
            RequestFlags::new(c.clone(), ctx.clone()).with_overrides(Vec::<(String, Value)>::new());
        assert_eq!(plain.overrides().count(), 0);
        assert_eq!(plain.variation("on"), c.variation(&ctx, "on"));
    }
}
