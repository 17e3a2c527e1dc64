//! The provider: configuration, the streaming and polling loops, status.

use crate::data::{read_event, Change, DataSet, Kind};
use crate::error::{BuildError, LaunchDarklyError};
use crate::meta::{FlagEventMeta, FlagMetadata};
use crate::net::NetworkConfig;
use async_trait::async_trait;
use feature_core::metrics::Metrics;
use feature_core::provider::{Provider, ProviderError, ProviderState, ProviderStatus, Sink};
use feature_core::{compile, recompile, Diagnostic, Snapshot};
use feature_store::sse::SseParser;
use feature_store::{spawn_supervised, Backoff, Supervised, TaskError};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, IF_NONE_MATCH, USER_AGENT};
use reqwest::{StatusCode, Url};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::oneshot;

/// The provider's name in logs, metrics and health.
pub const NAME: &str = "launchdarkly";

/// LaunchDarkly's polling (and events-free) base URI.
pub const DEFAULT_BASE_URI: &str = "https://sdk.launchdarkly.com";
/// LaunchDarkly's streaming URI.
pub const DEFAULT_STREAM_URI: &str = "https://stream.launchdarkly.com";
/// The shortest polling interval LaunchDarkly allows its SDKs.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_secs(30);

const LOG: &str = "feature::launchdarkly";
const USER_AGENT_VALUE: &str = concat!("feature-launchdarkly/", env!("CARGO_PKG_VERSION"));

/// How flag data is received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// A long-lived Server-Sent Events connection to `{stream_uri}/all`: the full data set on
    /// connect, then each change within moments (LaunchDarkly's recommended mode).
    Streaming,
    /// `GET {base_uri}/sdk/latest-all` every `interval`, with `If-None-Match` so unchanged data
    /// costs a `304`. LaunchDarkly asks SDKs not to poll more often than every 30 s
    /// ([`MIN_POLL_INTERVAL`]); shorter intervals are accepted (for local relays and tests).
    Polling {
        /// Time between requests.
        interval: Duration,
    },
}

impl Mode {
    /// Polling every 30 s.
    pub fn polling() -> Mode {
        Mode::Polling {
            interval: MIN_POLL_INTERVAL,
        }
    }
}

/// Builds a [`LaunchDarklyProvider`]; see [`LaunchDarklyProvider::builder`].
#[derive(Clone)]
pub struct LaunchDarklyBuilder {
    sdk_key: String,
    base_uri: String,
    stream_uri: String,
    mode: Mode,
    request_timeout: Duration,
    start_timeout: Duration,
    stream_read_timeout: Duration,
    backoff_initial: Duration,
    backoff_max: Duration,
    max_event_size: usize,
    max_payload_size: usize,
    network: NetworkConfig,
}

impl std::fmt::Debug for LaunchDarklyBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaunchDarklyBuilder")
            .field("sdk_key", &"<redacted>")
            .field("base_uri", &self.base_uri)
            .field("stream_uri", &self.stream_uri)
            .field("mode", &self.mode)
            .field("request_timeout", &self.request_timeout)
            .field("start_timeout", &self.start_timeout)
            .finish_non_exhaustive()
    }
}

impl LaunchDarklyBuilder {
    /// The base URI of the polling endpoint (default [`DEFAULT_BASE_URI`]; a Relay Proxy's URI
    /// works too).
    pub fn base_uri(mut self, uri: impl Into<String>) -> Self {
        self.base_uri = uri.into();
        self
    }

    /// The URI of the streaming endpoint (default [`DEFAULT_STREAM_URI`]).
    pub fn stream_uri(mut self, uri: impl Into<String>) -> Self {
        self.stream_uri = uri.into();
        self
    }

    /// Streaming (default) or polling.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Time limit of each request: a whole poll, or a stream's connection up to its headers
    /// (default 10 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long [`Provider::start`] waits for the first data set before returning with the
    /// provider `Unavailable` and still trying in the background (default 5 s; keep it below
    /// the client's start timeout, 10 s by default). A rejected SDK key fails `start` at once.
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// A stream that delivers no byte (LaunchDarkly sends heartbeats) for this long is
    /// reconnected (default 5 min).
    pub fn stream_read_timeout(mut self, timeout: Duration) -> Self {
        self.stream_read_timeout = timeout;
        self
    }

    /// Reconnection delays: doubling from `initial` up to `max`, with jitter (default 1 s to
    /// 30 s).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max;
        self
    }

    /// The largest stream event accepted, in bytes (default 64 MiB); a larger one drops the
    /// connection.
    pub fn max_event_size(mut self, bytes: usize) -> Self {
        self.max_event_size = bytes;
        self
    }

    /// The largest polling payload accepted, in bytes (default 64 MiB). The body is read in
    /// chunks and a larger one is refused ([`LaunchDarklyError::PayloadTooLarge`]) without
    /// being held whole: the provider keeps its last good flags and its status says why.
    pub fn max_payload_size(mut self, bytes: usize) -> Self {
        self.max_payload_size = bytes;
        self
    }

    /// An HTTP proxy and extra root certificates for the stream and polling requests (the
    /// event processor takes its own, [`EventsConfig::network`](crate::events::EventsConfig::network)).
    pub fn network(mut self, network: NetworkConfig) -> Self {
        self.network = network;
        self
    }

    /// The provider. Fails on an empty SDK key, a URI that is not absolute `http(s)`, and a
    /// zero polling interval, request timeout or stream read timeout
    /// ([`BuildError::ZeroDuration`]: the loop would spin or every request would time out).
    pub fn build(self) -> Result<LaunchDarklyProvider, BuildError> {
        if let Mode::Polling { interval } = self.mode {
            nonzero("polling interval", interval)?;
        }
        nonzero("request timeout", self.request_timeout)?;
        nonzero("stream read timeout", self.stream_read_timeout)?;
        let key = self.sdk_key.trim();
        let mut auth = HeaderValue::from_str(key).map_err(|_| BuildError::InvalidSdkKey)?;
        if key.is_empty() {
            return Err(BuildError::InvalidSdkKey);
        }
        auth.set_sensitive(true);
        let poll_url = endpoint(&self.base_uri, "base", "sdk/latest-all")?;
        let stream_url = endpoint(&self.stream_uri, "stream", "all")?;
        let http = self
            .network
            .client_builder(self.request_timeout)?
            .build()
            .map_err(BuildError::Client)?;
        Ok(LaunchDarklyProvider {
            config: Arc::new(Config {
                http,
                auth,
                poll_url,
                stream_url,
                mode: self.mode,
                request_timeout: self.request_timeout,
                start_timeout: self.start_timeout,
                stream_read_timeout: self.stream_read_timeout,
                backoff_initial: self.backoff_initial,
                backoff_max: self.backoff_max,
                max_event_size: self.max_event_size,
                max_payload_size: self.max_payload_size,
            }),
            shared: Arc::new(Shared {
                meta: FlagMetadata::new(),
                status: Mutex::new(ProviderStatus::default()),
                task: Mutex::new(None),
                closed: AtomicBool::new(false),
                failed: AtomicBool::new(false),
            }),
        })
    }
}

pub(crate) fn nonzero(what: &'static str, d: Duration) -> Result<(), BuildError> {
    if d.is_zero() {
        Err(BuildError::ZeroDuration { what })
    } else {
        Ok(())
    }
}

/// `{uri}/{path}`, whatever the trailing slashes.
pub(crate) fn endpoint(uri: &str, which: &'static str, path: &str) -> Result<Url, BuildError> {
    let bad = || BuildError::InvalidUri {
        which,
        uri: uri.to_owned(),
    };
    let base = Url::parse(uri.trim()).map_err(|_| bad())?;
    if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
        return Err(bad());
    }
    let joined = format!("{}/{path}", base.as_str().trim_end_matches('/'));
    Url::parse(&joined).map_err(|_| bad())
}

struct Config {
    http: reqwest::Client,
    auth: HeaderValue,
    poll_url: Url,
    stream_url: Url,
    mode: Mode,
    request_timeout: Duration,
    start_timeout: Duration,
    stream_read_timeout: Duration,
    backoff_initial: Duration,
    backoff_max: Duration,
    max_event_size: usize,
    max_payload_size: usize,
}

struct Shared {
    /// The event settings of the flags published last.
    meta: FlagMetadata,
    status: Mutex<ProviderStatus>,
    task: Mutex<Option<Supervised>>,
    closed: AtomicBool,
    failed: AtomicBool,
}

impl Shared {
    fn status(&self) -> MutexGuard<'_, ProviderStatus> {
        // Updates are plain assignments of fields: a poisoned lock holds consistent data.
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn task(&self) -> MutexGuard<'_, Option<Supervised>> {
        self.task.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The background task ended by itself: unless it stopped for good on purpose (closed, or
    /// failed with the reason in the status), nothing keeps the flags current any more.
    fn task_died(&self, e: TaskError) {
        if self.closed.load(Ordering::SeqCst)
            || (e == TaskError::Ended && self.failed.load(Ordering::SeqCst))
        {
            return;
        }
        tracing::error!(target: LOG, "{e}");
        feature_store::mark_task_died(&mut self.status(), NAME, e);
    }
}

/// Flags from LaunchDarkly, evaluated by this toolkit's engine. See the [crate docs](crate).
pub struct LaunchDarklyProvider {
    config: Arc<Config>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LaunchDarklyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaunchDarklyProvider")
            .field("mode", &self.config.mode)
            .field("base_uri", &self.config.poll_url.as_str())
            .field("stream_uri", &self.config.stream_url.as_str())
            .field("state", &self.shared.status().state)
            .finish_non_exhaustive()
    }
}

impl LaunchDarklyProvider {
    /// A builder for the server-side SDK key `sdk_key` (never logged nor shown by `Debug`).
    pub fn builder(sdk_key: impl Into<String>) -> LaunchDarklyBuilder {
        LaunchDarklyBuilder {
            sdk_key: sdk_key.into(),
            base_uri: DEFAULT_BASE_URI.to_owned(),
            stream_uri: DEFAULT_STREAM_URI.to_owned(),
            mode: Mode::Streaming,
            request_timeout: Duration::from_secs(10),
            start_timeout: Duration::from_secs(5),
            stream_read_timeout: Duration::from_secs(300),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            max_event_size: 64 << 20,
            max_payload_size: 64 << 20,
            network: NetworkConfig::default(),
        }
    }

    /// Whether the provider stopped for good (the SDK key was rejected, or LaunchDarkly
    /// answered a status a retry cannot change); the status's last error says why.
    pub fn is_failed(&self) -> bool {
        self.shared.failed.load(Ordering::SeqCst)
    }

    /// LaunchDarkly's bootstrap state of every flag for `ctx` (see
    /// [`bootstrap::all_flags_state`](crate::bootstrap::all_flags_state)), evaluated on
    /// `snapshot`, the flags the client evaluates (`feature::Client::snapshot()`): `$valid`
    /// is `false` before the provider has published flags.
    pub fn all_flags_state(
        &self,
        snapshot: &feature_core::Snapshot,
        ctx: &feature_core::Context,
        options: crate::bootstrap::FlagsStateOptions,
    ) -> serde_json::Value {
        let meta = self.shared.meta.load();
        if meta.is_empty() && snapshot.is_empty() && !self.shared.status().connected {
            return crate::bootstrap::invalid_flags_state();
        }
        crate::bootstrap::all_flags_state(snapshot, &meta, ctx, options)
    }

    /// The event settings (`trackEvents`, `debugEventsUntilDate`, version, client-side
    /// availability, ...) of the flags published last, updated with each snapshot: what the
    /// event processor and the bootstrap state read. Clones share one table.
    pub fn flag_metadata(&self) -> FlagMetadata {
        self.shared.meta.clone()
    }
}

impl Drop for LaunchDarklyProvider {
    fn drop(&mut self) {
        if let Some(t) = self.shared.task().take() {
            t.abort();
        }
    }
}

#[async_trait]
impl Provider for LaunchDarklyProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn start(&self, sink: Arc<dyn Sink>) -> Result<(), ProviderError> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(ProviderError::Closed);
        }
        if let Some(t) = self.shared.task().take() {
            t.abort();
        }
        self.shared.failed.store(false, Ordering::SeqCst);
        *self.shared.status() = ProviderStatus::default();
        let (tx, rx) = oneshot::channel();
        let runner = Runner {
            config: self.config.clone(),
            sink,
            shared: self.shared.clone(),
            data: Arc::new(DataSet::default()),
            have_data: false,
            skipped: Vec::new(),
            first: Some(tx),
            backoff: Backoff::new(self.config.backoff_initial, self.config.backoff_max),
            etag: None,
            big_segment_warned: std::collections::HashSet::new(),
            last: None,
        };
        let shared = self.shared.clone();
        *self.shared.task() = Some(spawn_supervised(runner.run(), move |e| shared.task_died(e)));
        match tokio::time::timeout(self.config.start_timeout, rx).await {
            Ok(Ok(result)) => result,
            // The task ended without a word: `close`, or the task died (its status says so).
            Ok(Err(_)) if self.shared.closed.load(Ordering::SeqCst) => Err(ProviderError::Closed),
            Ok(Err(_)) => Err(backend_task_error()),
            Err(_) => {
                tracing::warn!(target: LOG, "no flag data from LaunchDarkly within {:?}; evaluations serve defaults until it arrives", self.config.start_timeout);
                Ok(())
            }
        }
    }

    fn status(&self) -> ProviderStatus {
        self.shared.status().clone()
    }

    async fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        if let Some(t) = self.shared.task().take() {
            t.abort();
        }
        let mut st = self.shared.status();
        st.state = ProviderState::Closed;
        st.connected = false;
    }
}

struct Runner {
    config: Arc<Config>,
    sink: Arc<dyn Sink>,
    shared: Arc<Shared>,
    /// Shared with the blocking thread that imports it; copied only if changed meanwhile.
    data: Arc<DataSet>,
    have_data: bool,
    skipped: Vec<Diagnostic>,
    first: Option<oneshot::Sender<Result<(), ProviderError>>>,
    backoff: Backoff,
    etag: Option<HeaderValue>,
    /// Flags already reported as referencing a big segment (a warning once per flag).
    big_segment_warned: std::collections::HashSet<String>,
    /// The snapshot published last and the big segments it was built with: a `patch` or
    /// `delete` compiles only what it changes, from it.
    last: Option<(Snapshot, Arc<BTreeMap<String, String>>)>,
}

fn backend_task_error() -> ProviderError {
    ProviderError::Backend {
        provider: NAME,
        operation: "start",
        source: Box::new(TaskError::Ended),
    }
}

fn backend(operation: &'static str, e: LaunchDarklyError) -> ProviderError {
    ProviderError::Backend {
        provider: NAME,
        operation,
        source: Box::new(e),
    }
}

impl Runner {
    fn metrics(&self) -> &dyn Metrics {
        self.sink.metrics()
    }

    async fn run(self) {
        match self.config.mode {
            Mode::Streaming => self.stream_loop().await,
            Mode::Polling { interval } => self.poll_loop(interval).await,
        }
    }

    // ---- streaming ----

    async fn stream_loop(mut self) {
        loop {
            let e = self.stream_once().await;
            if e.is_unrecoverable() {
                return self.fail("stream", e);
            }
            self.lost("stream", e);
            tokio::time::sleep(self.backoff.next_delay()).await;
        }
    }

    /// One connection, followed until it breaks; returns why it did.
    async fn stream_once(&mut self) -> LaunchDarklyError {
        const ENDPOINT: &str = "streaming";
        let started = Instant::now();
        let request = self
            .config
            .http
            .get(self.config.stream_url.clone())
            .header(AUTHORIZATION, self.config.auth.clone())
            .header(ACCEPT, "text/event-stream")
            .header(USER_AGENT, USER_AGENT_VALUE)
            .send();
        let mut response = match tokio::time::timeout(self.config.request_timeout, request).await {
            Err(_) => {
                return LaunchDarklyError::Timeout {
                    endpoint: ENDPOINT,
                    after: self.config.request_timeout,
                }
            }
            Ok(Err(source)) => {
                return LaunchDarklyError::Http {
                    endpoint: ENDPOINT,
                    source,
                }
            }
            Ok(Ok(r)) => r,
        };
        if !response.status().is_success() {
            return LaunchDarklyError::from_status(response.status().as_u16(), ENDPOINT);
        }
        self.metrics()
            .record_provider_latency(NAME, "connect", started.elapsed());
        tracing::debug!(target: LOG, "stream connected");
        let mut parser = SseParser::new(self.config.max_event_size);
        loop {
            let chunk =
                match tokio::time::timeout(self.config.stream_read_timeout, response.chunk()).await
                {
                    Err(_) => {
                        return LaunchDarklyError::Timeout {
                            endpoint: ENDPOINT,
                            after: self.config.stream_read_timeout,
                        }
                    }
                    Ok(Err(source)) => {
                        return LaunchDarklyError::Http {
                            endpoint: ENDPOINT,
                            source,
                        }
                    }
                    Ok(Ok(None)) => return LaunchDarklyError::StreamEnded,
                    Ok(Ok(Some(c))) => c,
                };
            let events = match parser.push(&chunk) {
                Ok(ev) => ev,
                Err(e) => return LaunchDarklyError::EventTooLarge { limit: e.limit },
            };
            for ev in events {
                let started = Instant::now();
                let change = match read_event(&ev.event, &ev.data) {
                    Ok(c) => c,
                    // A payload that cannot be read leaves the data set unknown: reconnect
                    // for a fresh `put`, as LaunchDarkly's SDKs do.
                    Err(e) => return e,
                };
                match change {
                    Change::Put(data) => {
                        self.data = Arc::new(data);
                        self.have_data = true;
                        self.backoff.reset();
                        self.publish().await;
                        self.metrics()
                            .record_provider_latency(NAME, "load", started.elapsed());
                    }
                    Change::Patch(kind, key, value) => {
                        if Arc::make_mut(&mut self.data).upsert(kind, &key, value) {
                            self.changed(kind, key, started).await;
                        } else {
                            tracing::debug!(target: LOG, key = %key, "ignoring a patch no newer than the data held");
                        }
                    }
                    Change::Delete(kind, key, version) => {
                        if Arc::make_mut(&mut self.data).delete(kind, &key, version) {
                            self.changed(kind, key, started).await;
                        } else {
                            tracing::debug!(target: LOG, key = %key, "ignoring a delete no newer than the data held");
                        }
                    }
                    Change::Ignored => {
                        tracing::debug!(target: LOG, event = %ev.event, "ignoring a stream event");
                    }
                }
            }
        }
    }

    /// A patch or delete of item `key` was applied.
    async fn changed(&mut self, kind: Kind, key: String, started: Instant) {
        // Before the first `put` the data set is incomplete: it is published with the `put`.
        if self.have_data {
            self.publish_change(kind, key).await;
            self.metrics()
                .record_provider_latency(NAME, "update", started.elapsed());
        }
    }

    // ---- polling ----

    async fn poll_loop(mut self, interval: Duration) {
        loop {
            let delay = match self.poll_once().await {
                Ok(()) => {
                    self.backoff.reset();
                    interval
                }
                Err(e) if e.is_unrecoverable() => return self.fail("poll", e),
                Err(e) => {
                    self.lost("poll", e);
                    self.backoff.next_delay().min(interval)
                }
            };
            tokio::time::sleep(delay).await;
        }
    }

    async fn poll_once(&mut self) -> Result<(), LaunchDarklyError> {
        const ENDPOINT: &str = "polling";
        let started = Instant::now();
        let mut request = self
            .config
            .http
            .get(self.config.poll_url.clone())
            .header(AUTHORIZATION, self.config.auth.clone())
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, USER_AGENT_VALUE);
        if let (Some(etag), true) = (&self.etag, self.have_data) {
            request = request.header(IF_NONE_MATCH, etag.clone());
        }
        let limit = self.config.max_payload_size;
        let fetch = async {
            let http = |source| LaunchDarklyError::Http {
                endpoint: ENDPOINT,
                source,
            };
            let mut response = request.send().await.map_err(http)?;
            let status = response.status();
            let etag = response.headers().get(reqwest::header::ETAG).cloned();
            let body = if status.is_success() {
                Some(read_capped(&mut response, limit, ENDPOINT).await?)
            } else {
                None
            };
            Ok::<_, LaunchDarklyError>((status, etag, body))
        };
        let (status, etag, body) =
            match tokio::time::timeout(self.config.request_timeout, fetch).await {
                Err(_) => {
                    return Err(LaunchDarklyError::Timeout {
                        endpoint: ENDPOINT,
                        after: self.config.request_timeout,
                    })
                }
                Ok(Err(e)) => return Err(e),
                Ok(Ok(r)) => r,
            };
        if status == StatusCode::NOT_MODIFIED && self.have_data {
            self.mark_ready();
            return Ok(());
        }
        let Some(body) = body.filter(|_| status.is_success()) else {
            return Err(LaunchDarklyError::from_status(status.as_u16(), ENDPOINT));
        };
        const WHAT: &str = "polling payload";
        let value: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|source| LaunchDarklyError::Json { what: WHAT, source })?;
        let data = DataSet::from_payload(&value, WHAT)?;
        self.etag = etag;
        if self.have_data && data == *self.data {
            self.mark_ready();
        } else {
            self.data = Arc::new(data);
            self.have_data = true;
            self.publish().await;
        }
        self.metrics()
            .record_provider_latency(NAME, "load", started.elapsed());
        Ok(())
    }

    // ---- publishing and status ----

    /// Imports the data set and publishes it. Import and compile run on a blocking thread: a
    /// large data set must not hold up the async workers.
    async fn publish(&mut self) {
        let data = self.data.clone();
        let work = tokio::task::spawn_blocking(move || {
            let built = data.build(NAME);
            (built.skipped, built.meta, built.big, compile(built.doc))
        });
        let (skipped, meta, big, snapshot) = match work.await {
            Ok(r) => r,
            // A panic ends the task; its supervisor reports it.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Only a runtime shutting down cancels blocking work.
            Err(_) => return,
        };
        self.set_skipped(skipped);
        self.warn_big_segments(meta.iter());
        // The event settings first: an evaluation of the new snapshot finds its flag's.
        self.shared.meta.replace(meta);
        self.last = Some((snapshot.clone(), Arc::new(big)));
        tracing::debug!(target: LOG, flags = snapshot.len(), "publishing flags");
        self.sink.publish(snapshot);
        self.mark_ready();
    }

    /// Publishes the data set after a `patch` or `delete` of item `key`: only that item is
    /// imported again, and only what it changes is compiled (from the snapshot published
    /// last). The result is what [`Runner::publish`] would publish; it runs instead when there
    /// is no snapshot yet or the change alters which segments are big.
    async fn publish_change(&mut self, kind: Kind, key: String) {
        let Some((previous, big)) = self.last.clone() else {
            return self.publish().await;
        };
        let data = self.data.clone();
        let work = tokio::task::spawn_blocking(move || {
            let item = data.item_change(kind, &key, NAME, &big)?;
            let snapshot = recompile(&previous, [item.change.clone()]).snapshot;
            Some((key, item, snapshot, big))
        });
        let (key, item, snapshot, big) = match work.await {
            Ok(Some(r)) => r,
            Ok(None) => return self.publish().await,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => return,
        };
        let (skipped, meta) = item.apply(kind, &key, &self.skipped, &self.shared.meta.load());
        self.set_skipped(skipped);
        if let Some(meta) = meta {
            if let Some(m) = meta.get_key_value(key.as_str()) {
                self.warn_big_segments([m]);
            }
            self.shared.meta.replace(meta);
        }
        self.last = Some((snapshot.clone(), big));
        tracing::debug!(target: LOG, flags = snapshot.len(), key = %key, "publishing a change");
        self.sink.publish(snapshot);
        self.mark_ready();
    }

    /// Records the items left out, warning about them when they differ from the last.
    fn set_skipped(&mut self, skipped: Vec<Diagnostic>) {
        if skipped != self.skipped {
            for d in &skipped {
                tracing::warn!(target: LOG, key = %d.flag, "LaunchDarkly item skipped: {}", d.message);
            }
            if !skipped.is_empty() {
                self.metrics()
                    .record_provider_error(NAME, "import", "invalid_item");
            }
            self.skipped = skipped;
        }
        // Skipped items stay out of the snapshot (they evaluate to `FLAG_NOT_FOUND`); the
        // status and the log name them.
    }

    /// Warns, once per flag, about flags that reference a big segment.
    fn warn_big_segments<'m>(
        &mut self,
        meta: impl IntoIterator<Item = (&'m str, &'m FlagEventMeta)>,
    ) {
        for (key, m) in meta {
            if m.big_segment_rules.iter().any(|k| !k.is_empty())
                && self.big_segment_warned.insert(key.to_string())
            {
                tracing::warn!(target: LOG, flag = %key, "flag {key} references a big (unbounded) segment, which this engine cannot evaluate: such segments never match, and evaluations that reach one report bigSegmentsStatus NOT_CONFIGURED, as LaunchDarkly's SDKs do without a big-segment store");
            }
        }
    }

    /// Connected and serving current data (`Degraded` while items are skipped).
    fn mark_ready(&mut self) {
        {
            let mut st = self.shared.status();
            if st.state == ProviderState::Closed {
                return;
            }
            let was_down = !st.connected && st.last_error.is_some();
            st.connected = true;
            st.last_refresh = Some(SystemTime::now());
            if self.skipped.is_empty() {
                st.state = ProviderState::Ready;
                st.last_error = None;
            } else {
                st.state = ProviderState::Degraded;
                st.last_error = Some((
                    Arc::new(ProviderError::Invalid(self.skipped.clone())),
                    SystemTime::now(),
                ));
            }
            if was_down {
                tracing::info!(target: LOG, "LaunchDarkly reachable again; flags reloaded");
            }
        }
        if let Some(tx) = self.first.take() {
            // `start` may have stopped waiting already.
            let _ = tx.send(Ok(()));
        }
    }

    /// A recoverable failure: keep serving what was published, say so, count it.
    fn lost(&mut self, operation: &'static str, e: LaunchDarklyError) {
        self.metrics()
            .record_provider_error(NAME, operation, e.class());
        let mut st = self.shared.status();
        if st.state == ProviderState::Closed {
            return;
        }
        if st.connected || st.last_error.is_none() {
            tracing::warn!(target: LOG, "LaunchDarkly unreachable ({operation}): {}; serving the last flags received and retrying", chain(&e));
        } else {
            tracing::debug!(target: LOG, "LaunchDarkly still unreachable ({operation}): {}", chain(&e));
        }
        st.connected = false;
        st.state = if self.have_data {
            ProviderState::Degraded
        } else {
            ProviderState::Unavailable
        };
        st.last_error = Some((Arc::new(backend(operation, e)), SystemTime::now()));
    }

    /// An unrecoverable failure: stop, say so, and fail `start` if it is still waiting.
    fn fail(mut self, operation: &'static str, e: LaunchDarklyError) {
        // The status keeps a copy; `start` (if still waiting) gets the original. Only status
        // errors are unrecoverable, and they copy.
        let Some(copy) = e.status_copy() else {
            return self.lost(operation, e);
        };
        self.metrics()
            .record_provider_error(NAME, operation, e.class());
        tracing::error!(target: LOG, "{e}");
        self.shared.failed.store(true, Ordering::SeqCst);
        {
            let mut st = self.shared.status();
            if st.state != ProviderState::Closed {
                st.connected = false;
                st.state = if self.have_data {
                    ProviderState::Degraded
                } else {
                    ProviderState::Unavailable
                };
                st.last_error = Some((Arc::new(backend(operation, copy)), SystemTime::now()));
            }
        }
        if let Some(tx) = self.first.take() {
            let _ = tx.send(Err(backend("start", e)));
        }
    }
}

/// A response body read chunk by chunk, refused as soon as it is known to exceed `limit`
/// bytes (by its `Content-Length`, or by what arrived).
async fn read_capped(
    response: &mut reqwest::Response,
    limit: usize,
    endpoint: &'static str,
) -> Result<Vec<u8>, LaunchDarklyError> {
    let too_large = || LaunchDarklyError::PayloadTooLarge { endpoint, limit };
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|source| LaunchDarklyError::Http { endpoint, source })?
    {
        if body.len().saturating_add(chunk.len()) > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error with its sources, for logs.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_joined_and_checked() {
        assert_eq!(
            endpoint("http://127.0.0.1:1/relay/", "base", "sdk/latest-all")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:1/relay/sdk/latest-all"
        );
        assert_eq!(
            endpoint(DEFAULT_STREAM_URI, "stream", "all")
                .unwrap()
                .as_str(),
            "https://stream.launchdarkly.com/all"
        );
        for bad in ["", "stream.example", "ftp://127.0.0.1", "http://"] {
            assert!(
                matches!(
                    endpoint(bad, "stream", "all"),
                    Err(BuildError::InvalidUri { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_sdk_key_is_required_and_never_shown() {
        assert!(matches!(
            LaunchDarklyProvider::builder("  ").build(),
            Err(BuildError::InvalidSdkKey)
        ));
        assert!(matches!(
            LaunchDarklyProvider::builder("sdk-1\nx").build(),
            Err(BuildError::InvalidSdkKey)
        ));
        let b = LaunchDarklyProvider::builder("sdk-secret-123");
        assert!(!format!("{b:?}").contains("secret"));
        let p = b.build().unwrap();
        assert!(!format!("{p:?}").contains("secret"));
        assert!(p.config.auth.is_sensitive());
    }

    #[test]
    fn statuses_are_classified_as_launchdarkly_does() {
        for (status, unrecoverable) in [
            (400, false),
            (401, true),
            (403, true),
            (404, true),
            (408, false),
            (429, false),
            (500, false),
            (503, false),
        ] {
            assert_eq!(
                LaunchDarklyError::from_status(status, "polling").is_unrecoverable(),
                unrecoverable,
                "{status}"
            );
        }
    }
}
