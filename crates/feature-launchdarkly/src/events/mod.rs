//! Analytics events for LaunchDarkly, as its server-side SDKs send them (event schema 4).
//!
//! [`EventProcessor`] receives every evaluation, custom event (`track`) and `identify`, and
//! sends to `POST {events_uri}/bulk`, every [`EventsConfig::flush_interval`] (5 s):
//!
//! - one `summary` event per flush: per flag, the caller's `default`, the context kinds seen
//!   and a counter per (variation, version) with the value served; unknown flags are counted
//!   with `unknown: true`;
//! - an `index` event the first time a context is seen (keys deduplicated in a set of the
//!   most recently seen [`EventsConfig::context_keys_capacity`] contexts, 1000, cleared
//!   every [`EventsConfig::context_keys_flush_interval`], 5 min);
//! - a full `feature` event when the flag has `trackEvents`, and with the reason when the
//!   context is in an experiment (`inExperiment`, or the matched rule's `trackEvents`, or
//!   `trackEventsFallthrough` for a fall-through);
//! - a `debug` event while the flag's `debugEventsUntilDate` is later than both the local
//!   clock and the last `Date` the events endpoint answered;
//! - `custom` events with `data` and `metricValue`, and `identify` events.
//!
//! Contexts are formatted as LaunchDarkly's SDKs do (single or multi-kind), private
//! attributes (configured, and each context's `_meta.privateAttributes`, by reference path)
//! removed and listed in `_meta.redactedAttributes`; feature and custom events also redact
//! every attribute of an anonymous context. Requests carry `Authorization` (the SDK key),
//! `X-LaunchDarkly-Event-Schema: 4`, a `X-LaunchDarkly-Payload-ID` (a random UUID, the same on
//! the one retry, which follows a 5xx, 400, 408, 429 or a transport error after 1 s),
//! `User-Agent` and `X-LaunchDarkly-Tags` (application id and version). A 401 or 403, or
//! another 4xx, stops all sending (logged once). At most [`EventsConfig::capacity`] events
//! (10 000) wait for a flush; more are dropped and counted ([`EventStats::dropped`]).

mod context;
mod dedup;
mod summary;

use crate::error::BuildError;
use crate::meta::FlagMetadata;
pub use context::canonical_key;
use context::Redactor;
use dedup::KeySet;
use feature_core::{Context, ErrorKind, ReasonKind};
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use reqwest::Url;
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use summary::{Count, Summarizer};
use tokio::sync::{mpsc, oneshot};

pub use crate::net::NetworkConfig;

/// LaunchDarkly's events endpoint.
pub const DEFAULT_EVENTS_URI: &str = "https://events.launchdarkly.com";

const LOG: &str = "feature::launchdarkly::events";
const USER_AGENT_VALUE: &str = concat!("feature-launchdarkly/", env!("CARGO_PKG_VERSION"));

/// Settings of the [`EventProcessor`]; the defaults are those of LaunchDarkly's SDKs.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    events_uri: String,
    capacity: usize,
    flush_interval: Duration,
    context_keys_capacity: usize,
    context_keys_flush_interval: Duration,
    all_attributes_private: bool,
    private_attributes: Vec<String>,
    application_id: Option<String>,
    application_version: Option<String>,
    request_timeout: Duration,
    retry_delay: Duration,
    network: NetworkConfig,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            events_uri: DEFAULT_EVENTS_URI.to_owned(),
            capacity: 10_000,
            flush_interval: Duration::from_secs(5),
            context_keys_capacity: 1000,
            context_keys_flush_interval: Duration::from_secs(300),
            all_attributes_private: false,
            private_attributes: Vec::new(),
            application_id: None,
            application_version: None,
            request_timeout: Duration::from_secs(10),
            retry_delay: Duration::from_secs(1),
            network: NetworkConfig::default(),
        }
    }
}

impl EventsConfig {
    /// The events base URI (default [`DEFAULT_EVENTS_URI`]; a Relay Proxy's URI works too).
    pub fn events_uri(mut self, uri: impl Into<String>) -> Self {
        self.events_uri = uri.into();
        self
    }

    /// The most events (other than the summary) held between flushes (default 10 000).
    pub fn capacity(mut self, events: usize) -> Self {
        self.capacity = events;
        self
    }

    /// Time between flushes (default 5 s).
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// How many context keys are remembered for index-event deduplication (default 1000).
    pub fn context_keys_capacity(mut self, keys: usize) -> Self {
        self.context_keys_capacity = keys;
        self
    }

    /// How often the remembered context keys are forgotten (default 5 min).
    pub fn context_keys_flush_interval(mut self, interval: Duration) -> Self {
        self.context_keys_flush_interval = interval;
        self
    }

    /// Redacts every attribute but `key`, `kind` and `anonymous` (default off).
    pub fn all_attributes_private(mut self, all: bool) -> Self {
        self.all_attributes_private = all;
        self
    }

    /// Attribute references (`email`, `/address/city`) redacted from every context.
    pub fn private_attributes<S: Into<String>>(
        mut self,
        references: impl IntoIterator<Item = S>,
    ) -> Self {
        self.private_attributes = references.into_iter().map(Into::into).collect();
        self
    }

    /// The application's id and version, sent as `X-LaunchDarkly-Tags` (values longer than
    /// 64 characters or with characters other than letters, digits, `.`, `-` and `_` are
    /// left out, as LaunchDarkly's SDKs do).
    pub fn application(mut self, id: Option<String>, version: Option<String>) -> Self {
        self.application_id = id;
        self.application_version = version;
        self
    }

    /// Time limit of one request (default 10 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The wait before the one retry (default 1 s, as LaunchDarkly's SDKs).
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// Proxy and extra root certificates for the events requests.
    pub fn network(mut self, network: NetworkConfig) -> Self {
        self.network = network;
        self
    }

    /// The `X-LaunchDarkly-Tags` value, if any.
    fn tags(&self) -> Option<String> {
        let valid = |v: &Option<String>| -> Option<String> {
            let v = v.as_deref()?;
            let ok = !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
            ok.then(|| v.to_owned())
        };
        let mut parts = Vec::new();
        if let Some(id) = valid(&self.application_id) {
            parts.push(format!("application-id/{id}"));
        }
        if let Some(v) = valid(&self.application_version) {
            parts.push(format!("application-version/{v}"));
        }
        (!parts.is_empty()).then(|| parts.join(" "))
    }
}

/// What the processor did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventStats {
    /// Payloads LaunchDarkly accepted.
    pub payloads_sent: u64,
    /// Events in those payloads (the summary included).
    pub events_sent: u64,
    /// Payloads given up after the retry, or refused.
    pub payloads_failed: u64,
    /// Events dropped because [`EventsConfig::capacity`] events were waiting.
    pub dropped: u64,
    /// Index events not sent because the context was seen recently.
    pub deduplicated_contexts: u64,
    /// Whether sending stopped for good (LaunchDarkly refused the SDK key).
    pub disabled: bool,
}

/// One evaluation, as the processor needs it. `default` is called only when the summary
/// needs the caller's default (once per flag and flush) or an event carries it.
#[derive(Clone, Copy)]
pub struct Evaluated<'a> {
    /// The flag's key.
    pub key: &'a str,
    /// The context evaluated.
    pub context: &'a Context,
    /// The value served (the caller's default when no variation was).
    pub value: &'a Value,
    /// The caller's default.
    pub default: &'a dyn Fn() -> Value,
    /// The variation served.
    pub variation: Option<usize>,
    /// Why.
    pub reason: ReasonKind,
    /// The rule matched.
    pub rule_index: Option<usize>,
    /// Its id.
    pub rule_id: Option<&'a str>,
    /// Whether the context is in an experiment.
    pub in_experiment: bool,
    /// The error, when the reason is `ERROR`.
    pub error: Option<ErrorKind>,
    /// The prerequisite that failed.
    pub prerequisite_key: Option<&'a str>,
    /// The evaluation reached a big (unbounded) segment, which this engine cannot evaluate.
    pub big_segment: bool,
}

impl std::fmt::Debug for Evaluated<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluated")
            .field("key", &self.key)
            .field("variation", &self.variation)
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

impl Evaluated<'_> {
    /// The reason as LaunchDarkly writes it.
    fn reason_json(&self) -> Value {
        reason_json(
            self.reason,
            self.rule_index,
            self.rule_id,
            self.in_experiment,
            self.error,
            self.prerequisite_key,
            self.big_segment,
        )
    }
}

/// A reason as LaunchDarkly writes it (`{"kind": "RULE_MATCH", "ruleIndex": 0, ...}`).
pub(crate) fn reason_json(
    reason: ReasonKind,
    rule_index: Option<usize>,
    rule_id: Option<&str>,
    in_experiment: bool,
    error: Option<ErrorKind>,
    prerequisite_key: Option<&str>,
    big_segment: bool,
) -> Value {
    let mut o = Map::new();
    let kind = match reason {
        // A local override has no LaunchDarkly name; it served what the caller asked for.
        ReasonKind::Override => "FALLTHROUGH",
        other => other.as_str(),
    };
    o.insert("kind".into(), kind.into());
    match reason {
        ReasonKind::RuleMatch => {
            o.insert("ruleIndex".into(), rule_index.unwrap_or(0).into());
            if let Some(id) = rule_id {
                o.insert("ruleId".into(), id.into());
            }
        }
        ReasonKind::PrerequisiteFailed => {
            o.insert(
                "prerequisiteKey".into(),
                prerequisite_key.unwrap_or("").into(),
            );
        }
        ReasonKind::Error => {
            let e = error.unwrap_or(ErrorKind::Exception);
            o.insert("errorKind".into(), e.as_str().into());
        }
        _ => {}
    }
    if in_experiment {
        o.insert("inExperiment".into(), Value::Bool(true));
    }
    if big_segment {
        o.insert("bigSegmentsStatus".into(), "NOT_CONFIGURED".into());
    }
    Value::Object(o)
}

/// An event waiting for the next flush (contexts are formatted then, off the evaluating
/// thread).
enum Pending {
    Index {
        at: u64,
        context: Context,
    },
    Evaluation {
        at: u64,
        debug: bool,
        key: Box<str>,
        context: Context,
        value: Value,
        default: Value,
        variation: Option<usize>,
        version: u64,
        reason: Option<Value>,
    },
    Custom {
        at: u64,
        key: Box<str>,
        context: Context,
        data: Option<Value>,
        metric: Option<f64>,
    },
    Identify {
        at: u64,
        context: Context,
    },
}

impl Pending {
    fn to_json(&self, r: &Redactor) -> Value {
        let mut o = Map::new();
        match self {
            Pending::Index { at, context } => {
                o.insert("kind".into(), "index".into());
                o.insert("creationDate".into(), (*at).into());
                o.insert("context".into(), r.format(context, false));
            }
            Pending::Identify { at, context } => {
                o.insert("kind".into(), "identify".into());
                o.insert("creationDate".into(), (*at).into());
                o.insert("context".into(), r.format(context, false));
            }
            Pending::Custom {
                at,
                key,
                context,
                data,
                metric,
            } => {
                o.insert("kind".into(), "custom".into());
                o.insert("creationDate".into(), (*at).into());
                o.insert("key".into(), key.to_string().into());
                o.insert("context".into(), r.format(context, true));
                if let Some(d) = data {
                    o.insert("data".into(), d.clone());
                }
                if let Some(m) = metric {
                    o.insert("metricValue".into(), (*m).into());
                }
            }
            Pending::Evaluation {
                at,
                debug,
                key,
                context,
                value,
                default,
                variation,
                version,
                reason,
            } => {
                o.insert(
                    "kind".into(),
                    if *debug { "debug" } else { "feature" }.into(),
                );
                o.insert("creationDate".into(), (*at).into());
                o.insert("key".into(), key.to_string().into());
                o.insert("value".into(), value.clone());
                o.insert("default".into(), default.clone());
                o.insert("version".into(), (*version).into());
                if let Some(v) = variation {
                    o.insert("variation".into(), (*v).into());
                }
                if let Some(r) = reason {
                    o.insert("reason".into(), r.clone());
                }
                o.insert("context".into(), r.format(context, !*debug));
            }
        }
        Value::Object(o)
    }
}

/// What the evaluating threads and the sender share, under one short lock.
struct State {
    summary: Summarizer,
    events: Vec<Pending>,
    keys: KeySet,
    /// Reused for canonical keys.
    key_buf: String,
    /// Whether the capacity warning was logged since the queue last had room.
    over_capacity: bool,
}

struct Shared {
    state: Mutex<State>,
    meta: FlagMetadata,
    redactor: Redactor,
    capacity: usize,
    disabled: AtomicBool,
    /// The last `Date` the events endpoint answered, in ms (debug windows are checked
    /// against it too, as a local clock may be late).
    last_known_past: AtomicU64,
    payloads_sent: AtomicU64,
    events_sent: AtomicU64,
    payloads_failed: AtomicU64,
    dropped: AtomicU64,
    deduplicated: AtomicU64,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state consistent: a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, st: &mut State, e: Pending) {
        if st.events.len() >= self.capacity {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            if !st.over_capacity {
                st.over_capacity = true;
                tracing::warn!(target: LOG, capacity = self.capacity, "LaunchDarkly event capacity exceeded: events are dropped until the next flush (raise the capacity or shorten the flush interval)");
            }
        } else {
            st.over_capacity = false;
            st.events.push(e);
        }
    }

    /// Records the context; whether an index event is due.
    fn index_due(&self, st: &mut State, ctx: &Context) -> bool {
        let mut buf = std::mem::take(&mut st.key_buf);
        canonical_key(ctx, &mut buf);
        let seen = st.keys.put(&buf);
        st.key_buf = buf;
        if seen {
            self.deduplicated.fetch_add(1, Ordering::Relaxed);
        }
        !seen
    }
}

enum Command {
    Flush(oneshot::Sender<()>),
    Close(oneshot::Sender<()>),
}

/// Sends LaunchDarkly analytics events; see the [module docs](self). Cheap to share
/// (`Arc` inside). Counting an evaluation takes one short lock and, in the steady state,
/// allocates nothing; events are formatted and sent on a thread of the processor's own.
pub struct EventProcessor {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for EventProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProcessor")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl EventProcessor {
    /// Starts a processor sending with `sdk_key`, reading flag settings from `meta`
    /// ([`LaunchDarklyProvider::flag_metadata`](crate::LaunchDarklyProvider::flag_metadata)).
    /// Fails on an invalid key or URI, a zero interval, or an HTTP client that cannot be
    /// built (proxy, certificates).
    pub fn start(
        sdk_key: &str,
        config: EventsConfig,
        meta: FlagMetadata,
    ) -> Result<EventProcessor, BuildError> {
        crate::provider::nonzero("events flush interval", config.flush_interval)?;
        crate::provider::nonzero(
            "context keys flush interval",
            config.context_keys_flush_interval,
        )?;
        crate::provider::nonzero("events request timeout", config.request_timeout)?;
        let key = sdk_key.trim();
        if key.is_empty() {
            return Err(BuildError::InvalidSdkKey);
        }
        let mut auth = HeaderValue::from_str(key).map_err(|_| BuildError::InvalidSdkKey)?;
        auth.set_sensitive(true);
        let url = crate::provider::endpoint(&config.events_uri, "events", "bulk")?;
        let tags = match config.tags() {
            Some(t) => Some(HeaderValue::from_str(&t).map_err(|_| BuildError::InvalidTags)?),
            None => None,
        };
        let http = config
            .network
            .client_builder(config.request_timeout)?
            .build()
            .map_err(BuildError::Client)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                summary: Summarizer::default(),
                events: Vec::new(),
                keys: KeySet::new(config.context_keys_capacity),
                key_buf: String::new(),
                over_capacity: false,
            }),
            meta,
            redactor: Redactor::new(config.all_attributes_private, &config.private_attributes),
            capacity: config.capacity,
            disabled: AtomicBool::new(false),
            last_known_past: AtomicU64::new(0),
            payloads_sent: AtomicU64::new(0),
            events_sent: AtomicU64::new(0),
            payloads_failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            deduplicated: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let sender = Sender {
            shared: shared.clone(),
            http,
            url,
            auth,
            tags,
            request_timeout: config.request_timeout,
            retry_delay: config.retry_delay,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(BuildError::Runtime)?;
        let flush_interval = config.flush_interval;
        let keys_interval = config.context_keys_flush_interval;
        std::thread::Builder::new()
            .name("launchdarkly-events".into())
            .spawn(move || runtime.block_on(sender.run(rx, flush_interval, keys_interval)))
            .map_err(BuildError::Runtime)?;
        Ok(EventProcessor {
            shared,
            commands: tx,
        })
    }

    /// Counts an evaluation and queues the events it calls for. Never blocks beyond a short
    /// lock; no I/O.
    pub fn evaluation(&self, e: &Evaluated<'_>) {
        let s = &*self.shared;
        if s.disabled.load(Ordering::Relaxed) {
            return;
        }
        let now = now_ms();
        let table = s.meta.load();
        let meta = table.get(e.key);
        let mut st = s.state();
        st.summary.count(Count {
            key: e.key,
            context: e.context,
            variation: e.variation,
            version: meta.map(|m| m.version),
            value: e.value,
            default: e.default,
            now,
        });
        let index = s.index_due(&mut st, e.context);
        if index {
            s.push(
                &mut st,
                Pending::Index {
                    at: now,
                    context: e.context.clone(),
                },
            );
        }
        let Some(m) = meta else { return };
        let experiment = e.in_experiment
            || match e.reason {
                ReasonKind::RuleMatch => e.rule_index.is_some_and(|i| m.rule_tracked(i)),
                ReasonKind::Fallthrough => m.track_events_fallthrough,
                _ => false,
            };
        let big_segment = e.big_segment
            || (!m.big_segment_rules.is_empty()
                && m.reaches_big_segment(e.reason, e.rule_index, e.context));
        let past = s.last_known_past.load(Ordering::Relaxed);
        let debug = m
            .debug_events_until_date
            .is_some_and(|until| until > past && until > now);
        if !(m.track_events || experiment || debug) {
            return;
        }
        let event = |debug: bool| Pending::Evaluation {
            at: now,
            debug,
            key: e.key.into(),
            context: e.context.clone(),
            value: e.value.clone(),
            default: (e.default)(),
            variation: e.variation,
            version: m.version,
            reason: experiment.then(|| Evaluated { big_segment, ..*e }.reason_json()),
        };
        if m.track_events || experiment {
            s.push(&mut st, event(false));
        }
        if debug {
            s.push(&mut st, event(true));
        }
    }

    /// Queues a `custom` event (`track`), with an index event for a context not seen
    /// recently.
    pub fn custom(&self, context: &Context, key: &str, data: Option<&Value>, metric: Option<f64>) {
        let s = &*self.shared;
        if s.disabled.load(Ordering::Relaxed) {
            return;
        }
        let now = now_ms();
        let mut st = s.state();
        if s.index_due(&mut st, context) {
            s.push(
                &mut st,
                Pending::Index {
                    at: now,
                    context: context.clone(),
                },
            );
        }
        s.push(
            &mut st,
            Pending::Custom {
                at: now,
                key: key.into(),
                context: context.clone(),
                data: data.cloned(),
                metric,
            },
        );
    }

    /// Queues an `identify` event (the context is remembered: no index event follows).
    pub fn identify(&self, context: &Context) {
        let s = &*self.shared;
        if s.disabled.load(Ordering::Relaxed) {
            return;
        }
        let now = now_ms();
        let mut st = s.state();
        let _ = s.index_due(&mut st, context);
        s.push(
            &mut st,
            Pending::Identify {
                at: now,
                context: context.clone(),
            },
        );
    }

    /// Sends what is queued now, and returns once it is delivered or given up.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Sends what is queued and stops the processor's thread.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// What the processor did so far.
    pub fn stats(&self) -> EventStats {
        let s = &*self.shared;
        EventStats {
            payloads_sent: s.payloads_sent.load(Ordering::Relaxed),
            events_sent: s.events_sent.load(Ordering::Relaxed),
            payloads_failed: s.payloads_failed.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            deduplicated_contexts: s.deduplicated.load(Ordering::Relaxed),
            disabled: s.disabled.load(Ordering::Relaxed),
        }
    }
}

/// The processor's thread: flushes on its timer and on request.
struct Sender {
    shared: Arc<Shared>,
    http: reqwest::Client,
    url: Url,
    auth: HeaderValue,
    tags: Option<HeaderValue>,
    request_timeout: Duration,
    retry_delay: Duration,
}

impl Sender {
    async fn run(
        self,
        mut rx: mpsc::UnboundedReceiver<Command>,
        flush_interval: Duration,
        keys_interval: Duration,
    ) {
        let start = tokio::time::Instant::now();
        let mut flush = tokio::time::interval_at(start + flush_interval, flush_interval);
        let mut keys = tokio::time::interval_at(start + keys_interval, keys_interval);
        loop {
            tokio::select! {
                _ = flush.tick() => self.flush().await,
                _ = keys.tick() => self.shared.state().keys.clear(),
                cmd = rx.recv() => match cmd {
                    Some(Command::Flush(done)) => {
                        self.flush().await;
                        let _ = done.send(());
                    }
                    Some(Command::Close(done)) => {
                        self.flush().await;
                        let _ = done.send(());
                        return;
                    }
                    // Every handle is gone: a last flush, then stop.
                    None => return self.flush().await,
                },
            }
        }
    }

    async fn flush(&self) {
        let s = &*self.shared;
        let (events, summary) = {
            let mut st = s.state();
            (std::mem::take(&mut st.events), st.summary.take())
        };
        if s.disabled.load(Ordering::Relaxed) || (events.is_empty() && summary.is_none()) {
            return;
        }
        let mut out: Vec<Value> = events.iter().map(|e| e.to_json(&s.redactor)).collect();
        out.extend(summary);
        let count = out.len() as u64;
        let body = match serde_json::to_vec(&out) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(target: LOG, "cannot serialise LaunchDarkly events: {e}");
                return;
            }
        };
        if self.post(body).await {
            s.payloads_sent.fetch_add(1, Ordering::Relaxed);
            s.events_sent.fetch_add(count, Ordering::Relaxed);
        } else {
            s.payloads_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One payload, retried once after a transient failure; whether it was accepted.
    async fn post(&self, body: Vec<u8>) -> bool {
        let payload_id = uuid::Uuid::new_v4().to_string();
        for attempt in 0..2 {
            if attempt > 0 {
                tokio::time::sleep(self.retry_delay).await;
            }
            let mut request = self
                .http
                .post(self.url.clone())
                .timeout(self.request_timeout)
                .header(CONTENT_TYPE, "application/json")
                .header(AUTHORIZATION, self.auth.clone())
                .header(USER_AGENT, USER_AGENT_VALUE)
                .header("X-LaunchDarkly-Event-Schema", "4")
                .header("X-LaunchDarkly-Payload-ID", payload_id.as_str())
                .body(body.clone());
            if let Some(t) = &self.tags {
                request = request.header("X-LaunchDarkly-Tags", t.clone());
            }
            match request.send().await {
                Ok(r) => {
                    if let Some(date) = r
                        .headers()
                        .get(reqwest::header::DATE)
                        .and_then(|d| d.to_str().ok())
                        .and_then(parse_http_date)
                    {
                        self.shared.last_known_past.store(date, Ordering::Relaxed);
                    }
                    let status = r.status().as_u16();
                    if r.status().is_success() {
                        return true;
                    }
                    let recoverable =
                        !(400..500).contains(&status) || matches!(status, 400 | 408 | 429);
                    if !recoverable {
                        if !self.shared.disabled.swap(true, Ordering::SeqCst) {
                            tracing::error!(target: LOG, status, "LaunchDarkly refused analytics events (check the SDK key); no more events will be sent");
                        }
                        return false;
                    }
                    tracing::warn!(target: LOG, status, attempt, "LaunchDarkly events request failed");
                }
                Err(e) => {
                    tracing::warn!(target: LOG, attempt, "LaunchDarkly events request failed: {e}");
                }
            }
        }
        false
    }
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`), in ms since the epoch.
fn parse_http_date(s: &str) -> Option<u64> {
    let mut it = s.split_whitespace().skip(1);
    let day: u64 = it.next()?.parse().ok()?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let name = it.next()?;
    let month = MONTHS.iter().position(|m| *m == name)? as u64 + 1;
    let year: u64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1970..10_000).contains(&year) || day == 0 || day > 31 || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Days since the epoch of a civil date (proleptic Gregorian).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + m) * 60_000 + sec * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_are_read() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777_000)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn tags_follow_launchdarklys_rules() {
        let c = EventsConfig::default().application(Some("my-app".into()), Some("1.2.3".into()));
        assert_eq!(
            c.tags().as_deref(),
            Some("application-id/my-app application-version/1.2.3")
        );
        let c = EventsConfig::default().application(Some("bad id".into()), Some("2".into()));
        assert_eq!(c.tags().as_deref(), Some("application-version/2"));
        assert_eq!(EventsConfig::default().tags(), None);
    }
}
