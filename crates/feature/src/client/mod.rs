//! The client: evaluates flags against contexts, synchronously, lock-free and without ever
//! failing, and carries the hooks around each evaluation.
//!
//! - [`Client`] (this file): evaluation, overrides, subscription, close;
//! - [`ClientBuilder`] (`builder`): provider, overrides, metrics and events, start;
//! - `keyed`: the accessors of a [`FlagKey`](feature_core::FlagKey), which skip the key's
//!   lookup while the snapshot is unchanged;
//! - `view`: the snapshot and overrides an evaluation reads, swapped whole when a provider
//!   publishes or an override changes; `cache`: the per-thread copy of it that a read checks
//!   with one plain atomic load;
//! - `observe`: counting, timing and event sampling around an evaluation, fused on one
//!   per-thread counter line; `sampling`: the geometric sampling it and the analytics pipeline
//!   draw from.

mod builder;
mod cache;
mod keyed;
pub(crate) mod observe;
pub(crate) mod sampling;
mod view;

pub use builder::ClientBuilder;
pub use keyed::KeyedFlag;
use keyed::Locate;
pub(crate) use view::override_eval;

use crate::analytics::{EventSink, TrackData};
use crate::config::{Config, ConfigError};
use feature_core::metrics::{Metrics, NoopMetrics};
use feature_core::provider::{Engine, Provider, ProviderError, ProviderStatus};
use feature_core::{Context, ErrorKind, Evaluation, Snapshot, ValueKind};
use observe::Observer;
use rustc_hash::FxHashMap;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use view::View;

/// Why [`Client::try_json`] has no value of the type asked for.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// The flag is missing, in error, or serves nothing (its reason says which).
    #[error("flag {:?} served no value ({})", .0.key, .0.reason.kind())]
    NotServed(Box<Evaluation>),
    /// The flag's value does not deserialize into the type asked for.
    #[error("the value of flag {:?} does not deserialize into the type asked for", .evaluation.key)]
    Decode {
        /// The evaluation, with the value that did not fit.
        evaluation: Box<Evaluation>,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
}

impl JsonError {
    /// The evaluation behind the error: value, variation and reason.
    pub fn evaluation(&self) -> &Evaluation {
        match self {
            JsonError::NotServed(e) | JsonError::Decode { evaluation: e, .. } => e,
        }
    }
}

/// Errors starting a client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The provider could not deliver its first flags.
    #[error("provider {provider} failed to start: {source}")]
    Provider {
        /// The provider's name.
        provider: &'static str,
        /// Why.
        #[source]
        source: ProviderError,
    },
    /// The analytics exporter the configuration selects could not be built (its TLS or SASL
    /// settings, for instance).
    #[error("events exporter {exporter}: {source}")]
    Exporter {
        /// The exporter (`webhook`, `kafka`).
        exporter: &'static str,
        /// Why.
        #[source]
        source: crate::analytics::exporters::BoxError,
    },
    /// The analytics pipeline of the configured exporter could not be started.
    #[error("cannot start the analytics pipeline: {0}")]
    Events(#[source] crate::analytics::PipelineError),
    /// The provider did not deliver its first flags within the start timeout.
    #[error("provider {provider} did not start within {timeout:?}")]
    StartTimeout {
        /// The provider's name.
        provider: &'static str,
        /// The timeout.
        timeout: Duration,
    },
}

/// Flags that changed, sent to [`Client::subscribe`]rs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagChange {
    /// Keys of the flags whose definition or override changed (added and removed included),
    /// and of the flags that depend on them: through a prerequisite, or a segment they match
    /// (followed transitively), since what they serve may have changed too.
    pub keys: Vec<String>,
    /// `true` when the subscriber fell behind and notices were lost: `keys` then lists every
    /// flag the client knows, and the subscriber should re-read everything it cares about.
    pub resync: bool,
}

/// The client that fed a [`Subscription`] is gone: no more changes will come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the client was closed or dropped: no more flag changes")]
pub struct SubscriptionClosed;

/// Flag changes, from [`Client::subscribe`]. A subscriber slower than the changes is not cut
/// off: the notices it missed are replaced by one with [`FlagChange::resync`] set.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<FlagChange>,
    client: std::sync::Weak<Inner>,
}

impl Subscription {
    /// The next change; after a lag, a resync notice naming every flag known. Errs only once
    /// the client is gone.
    pub async fn recv(&mut self) -> Result<FlagChange, SubscriptionClosed> {
        match self.rx.recv().await {
            Ok(change) => Ok(change),
            Err(broadcast::error::RecvError::Lagged(_)) => {
                // Whatever was missed, the current view is the truth: skip to it.
                self.rx = self.rx.resubscribe();
                let inner = self.client.upgrade().ok_or(SubscriptionClosed)?;
                Ok(FlagChange {
                    keys: inner.view.load().all_keys(),
                    resync: true,
                })
            }
            Err(broadcast::error::RecvError::Closed) => Err(SubscriptionClosed),
        }
    }
}

/// What clones of a client share.
struct Inner {
    /// What evaluations read, swapped whole, read through a per-thread cache.
    view: cache::Published,
    provider: Arc<dyn Provider>,
    /// The provider's own evaluator, when it has one (then `view` holds overrides only).
    engine: Option<Arc<dyn Engine>>,
    metrics: Option<Arc<dyn Metrics>>,
    events: Option<Arc<dyn EventSink>>,
    /// Metrics and events around each evaluation (`None`: neither is set).
    observer: Option<Observer>,
    changes: broadcast::Sender<FlagChange>,
    closed: AtomicBool,
}

impl Inner {
    /// Whether evaluations go through the provider's engine or are observed (metrics,
    /// events): then a typed read cannot answer from the snapshot alone.
    fn observed_or_engine(&self) -> bool {
        observed_or_engine(&self.engine, &self.observer)
    }
}

/// [`Inner::observed_or_engine`] of a client's engine and observer.
fn observed_or_engine(engine: &Option<Arc<dyn Engine>>, observer: &Option<Observer>) -> bool {
    engine.is_some() || observer.is_some()
}

/// Evaluates feature flags. Cheap to clone (an `Arc`); `Send + Sync`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use feature::{Client, Context, Flag, MemoryProvider};
///
/// let provider = MemoryProvider::new();
/// provider.set_flag(Flag::boolean("new-dashboard", true));
/// let client = Client::builder().provider(provider).build().await?;
///
/// let user = Context::new("user-123").with_attribute("plan", "pro");
/// assert!(client.bool(&user, "new-dashboard", false));
/// assert_eq!(client.string(&user, "theme", "light"), "light"); // unknown flag: the default
/// client.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("provider", &self.inner.provider.name())
            .field("flags", &self.inner.view.load().snapshot.len())
            .finish()
    }
}

impl Client {
    /// A builder.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client from a [`Config`] (see [`Config::from_env`]): its provider, events exporter
    /// and switches. To add overrides, metrics or hooks, use
    /// `Client::builder().config(config)` ([`ClientBuilder::config`]).
    pub async fn new(config: Config) -> Result<Client, ClientError> {
        Client::builder().config(config).build().await
    }

    fn metrics(&self) -> &dyn Metrics {
        match &self.inner.metrics {
            Some(m) => m.as_ref(),
            None => &NoopMetrics,
        }
    }

    /// Evaluates a boolean flag.
    #[inline]
    pub fn bool(&self, ctx: &Context, key: &str, default: bool) -> bool {
        self.typed(ctx, key, ValueKind::Bool, Value::as_bool, || {
            Value::Bool(default)
        })
        .unwrap_or(default)
    }

    /// Evaluates a string flag (one allocation: the returned `String`).
    #[inline]
    pub fn string(&self, ctx: &Context, key: &str, default: &str) -> String {
        self.typed(
            ctx,
            key,
            ValueKind::String,
            |v| v.as_str().map(str::to_owned),
            || Value::String(default.to_owned()),
        )
        .unwrap_or_else(|| default.to_owned())
    }

    /// Evaluates an integer flag (a fractional number is truncated toward zero).
    #[inline]
    pub fn int(&self, ctx: &Context, key: &str, default: i64) -> i64 {
        self.typed(ctx, key, ValueKind::Int, as_int, || Value::from(default))
            .unwrap_or(default)
    }

    /// Evaluates a number flag.
    #[inline]
    pub fn float(&self, ctx: &Context, key: &str, default: f64) -> f64 {
        self.typed(ctx, key, ValueKind::Float, Value::as_f64, || {
            Value::from(default)
        })
        .unwrap_or(default)
    }

    /// Evaluates a JSON flag into `T`; `default` when the flag serves nothing or its value does
    /// not deserialize into `T` (reported as `WRONG_TYPE`). [`Client::try_json`] says which.
    pub fn json<T: DeserializeOwned>(&self, ctx: &Context, key: &str, default: T) -> T {
        self.try_json(ctx, key).unwrap_or(default)
    }

    /// Evaluates a JSON flag into `T`, or says why it cannot: the flag is missing, in error or
    /// serves nothing ([`JsonError::NotServed`]), or its value does not deserialize into `T`
    /// ([`JsonError::Decode`], counted as `WRONG_TYPE`). Either error carries the evaluation.
    ///
    /// ```no_run
    /// # async fn f(client: feature::Client, user: feature::Context) {
    /// #[derive(serde::Deserialize)]
    /// struct Limits { requests_per_minute: u32 }
    ///
    /// match client.try_json::<Limits>(&user, "rate-limits") {
    ///     Ok(limits) => println!("{}", limits.requests_per_minute),
    ///     Err(e) => eprintln!("rate limits off: {e} ({:?})", e.evaluation().reason),
    /// }
    /// # }
    /// ```
    pub fn try_json<T: DeserializeOwned>(&self, ctx: &Context, key: &str) -> Result<T, JsonError> {
        let eval = self.variation(ctx, key);
        if eval.is_error() || eval.variation_index.is_none() && eval.value.is_null() {
            return Err(JsonError::NotServed(Box::new(eval)));
        }
        match T::deserialize(&eval.value) {
            Ok(v) => Ok(v),
            Err(source) => {
                self.metrics().record_error(key, ErrorKind::WrongType);
                Err(JsonError::Decode {
                    evaluation: Box::new(eval),
                    source,
                })
            }
        }
    }

    /// Evaluates a flag with every detail: value, variation, reason, rule id, experiment.
    /// When nothing is served, the value is `null`.
    pub fn variation(&self, ctx: &Context, key: &str) -> Evaluation {
        self.variation_with(ctx, key, ValueKind::Any, Value::Null)
    }

    /// Like [`Client::variation`], checking the value against `kind` and serving `default` on
    /// a mismatch (`WRONG_TYPE`) or when nothing is served.
    pub fn variation_with(
        &self,
        ctx: &Context,
        key: &str,
        kind: ValueKind,
        default: Value,
    ) -> Evaluation {
        let in_flight = self.inner.observer.as_ref().map(Observer::begin);
        // The caller's default, for the event (only when an observer will report it).
        let for_event = in_flight.as_ref().map(|_| default.clone());
        let eval = self.inner.view.read(|view| {
            if let Some(v) = view.overrides.get(key) {
                override_eval(&view.snapshot, key, v, kind, default)
            } else if let Some(engine) = &self.inner.engine {
                engine.evaluate(key, ctx, kind, &default)
            } else if !view.ready {
                Evaluation::error(key, default, ErrorKind::ClientNotReady)
            } else {
                view.snapshot
                    .evaluate(key, ctx)
                    .check_type(kind)
                    .to_evaluation(key, default)
            }
        });
        if let (Some(o), Some(in_flight)) = (&self.inner.observer, in_flight) {
            let default = for_event.unwrap_or(Value::Null);
            o.finish(in_flight, ctx, key, &eval, Some(&eval.value), || {
                default.clone()
            });
        }
        eval
    }

    /// The shared path of the typed accessors: no allocation unless `extract` allocates.
    #[inline]
    fn typed<T, K: Locate + ?Sized>(
        &self,
        ctx: &Context,
        key: &K,
        kind: ValueKind,
        extract: impl Fn(&Value) -> Option<T>,
        default: impl Fn() -> Value,
    ) -> Option<T> {
        let (inner, extract_ref, default_ref) = (&self.inner, &extract, &default);
        // `move`: `kind` is copied in, so that it folds into a constant once inlined.
        let fast = inner.view.read(move |view| {
            // `check_type(kind).value()` without building the error detail nobody reads: a
            // value of another kind serves nothing.
            let from_snapshot = || {
                key.evaluate(&view.snapshot, ctx)
                    .value()
                    .filter(|v| kind.admits(v))
                    .and_then(extract_ref)
            };
            if view.direct {
                return Some(from_snapshot());
            }
            let overridden = !view.overrides.is_empty() && view.overrides.contains_key(key.key());
            if overridden || inner.engine.is_some() || !view.ready {
                return None;
            }
            let Some(observer) = &inner.observer else {
                return Some(from_snapshot());
            };
            let in_flight = observer.begin();
            let detail = key.evaluate(&view.snapshot, ctx).check_type(kind);
            let value = detail.value();
            let out = value.and_then(extract_ref);
            observer.finish(in_flight, ctx, key.key(), &detail, value, default_ref);
            Some(out)
        });
        match fast {
            Some(out) => out,
            None => {
                let eval = self.variation_with(ctx, key.key(), kind, default());
                extract(&eval.value)
            }
        }
    }

    /// Every flag's value for `ctx` (`null` for flags that serve nothing), overrides included.
    pub fn all_flags(&self, ctx: &Context) -> BTreeMap<String, Value> {
        self.inner.view.read(|view| self.all_flags_of(view, ctx))
    }

    fn all_flags_of(&self, view: &View, ctx: &Context) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        if let Some(engine) = &self.inner.engine {
            for k in engine.keys() {
                // A listing, not a use: not counted in the engine's usage reports.
                let e = engine.evaluate_uncounted(&k, ctx, ValueKind::Any, &Value::Null);
                out.insert(k, e.value);
            }
        } else if view.ready {
            for f in view.snapshot.flags() {
                let v = view
                    .snapshot
                    .evaluate(f.key(), ctx)
                    .value()
                    .cloned()
                    .unwrap_or(Value::Null);
                out.insert(f.key().to_owned(), v);
            }
        }
        for (k, v) in &view.overrides {
            out.insert(k.to_string(), v.clone());
        }
        out
    }

    /// Records a custom event for analytics: `()` for none, a JSON value for free-form data,
    /// or a [`TrackData`] with data and a metric value.
    ///
    /// ```no_run
    /// # fn f(client: feature::Client, user: feature::Context) {
    /// use feature::analytics::TrackData;
    /// use serde_json::json;
    ///
    /// client.track(&user, "signup", ());
    /// client.track(&user, "checkout-view", json!({"variant": "green"}));
    /// client.track(&user, "purchase", TrackData::metric(42.5).with_data(json!({"items": 3})));
    /// # }
    /// ```
    pub fn track(&self, ctx: &Context, event: &str, data: impl Into<TrackData>) {
        if let Some(events) = &self.inner.events {
            events.track(ctx, event, &data.into());
        }
    }

    /// Tells analytics that `ctx` was seen (LaunchDarkly's `identify` event); sinks other
    /// than LaunchDarkly's ignore it.
    pub fn identify(&self, ctx: &Context) {
        if let Some(events) = &self.inner.events {
            events.identify(ctx);
        }
    }

    /// Sets a local override at runtime: `key` serves `value` until removed.
    pub fn set_override(&self, key: &str, value: impl Into<Value>) {
        let value = value.into();
        self.update_overrides(key, |o| {
            o.insert(key.into(), value.clone());
        });
    }

    /// Removes a local override.
    pub fn remove_override(&self, key: &str) {
        self.update_overrides(key, |o| {
            o.remove(key);
        });
    }

    fn update_overrides(&self, key: &str, f: impl Fn(&mut FxHashMap<Box<str>, Value>)) {
        self.inner.view.rcu(|old| {
            let mut overrides = old.overrides.clone();
            f(&mut overrides);
            View::new(
                old.snapshot.clone(),
                overrides,
                old.ready,
                self.inner.observed_or_engine(),
            )
        });
        // Overrides answer for their own key only: prerequisites are evaluated on the
        // provider's flags, so no other flag's value changes.
        let _ = self.inner.changes.send(FlagChange {
            keys: vec![key.to_owned()],
            resync: false,
        });
    }

    /// The current overrides.
    pub fn overrides(&self) -> BTreeMap<String, Value> {
        self.inner
            .view
            .load()
            .overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    /// A receiver of [`FlagChange`] notices (one per published change or override). A
    /// subscriber that falls behind gets one resync notice instead of the ones it missed.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            rx: self.inner.changes.subscribe(),
            client: Arc::downgrade(&self.inner),
        }
    }

    /// The snapshot evaluations currently read.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.view.load().snapshot.clone()
    }

    /// Whether the provider has delivered flags.
    pub fn is_ready(&self) -> bool {
        self.inner.view.load().ready || self.inner.engine.is_some()
    }

    /// The provider's name.
    pub fn provider_name(&self) -> &'static str {
        self.inner.provider.name()
    }

    /// The provider's status.
    pub fn provider_status(&self) -> ProviderStatus {
        self.inner.provider.status()
    }

    /// The metrics implementation, if any.
    pub fn metrics_handle(&self) -> Option<&Arc<dyn Metrics>> {
        self.inner.metrics.as_ref()
    }

    /// Flushes pending events without closing.
    pub async fn flush(&self) {
        if let Some(events) = &self.inner.events {
            events.flush().await;
        }
    }

    /// Stops the provider and flushes events. Evaluations keep serving the last snapshot.
    ///
    /// Dropping the last handle of a client without `close` also stops the provider's
    /// background work (file watcher, store and service loops), but cannot wait for it: call
    /// `close` to flush events and to know that everything stopped.
    pub async fn close(&self) {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.inner.provider.close().await;
        if let Some(events) = &self.inner.events {
            events.close().await;
        }
    }
}

impl Drop for Inner {
    /// The last handle is gone without `close`: stop the provider, or its background tasks
    /// (which hold the provider, not the client) would run, watch and poll for ever.
    fn drop(&mut self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let provider = self.provider.clone();
        let mut close = Box::pin(async move { provider.close().await });
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Dropped outside any runtime (after it shut down, or on a plain thread): a close
            // that does I/O needs one, so it gets a small one of its own, for at most a second.
            // Never while unwinding: a second panic there would abort the process.
            if std::thread::panicking() {
                return;
            }
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = rt
                    .block_on(async { tokio::time::timeout(Duration::from_secs(1), close).await });
            }
            return;
        };
        // The providers of this crate close without waiting for anything: done here, now.
        // One that must wait (e.g. a last report over the network) finishes on the runtime.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let _guard = runtime.enter();
        if std::future::Future::poll(close.as_mut(), &mut cx).is_pending() {
            runtime.spawn(close);
        }
    }
}

fn as_int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().map(|f| f.trunc() as i64))
}
