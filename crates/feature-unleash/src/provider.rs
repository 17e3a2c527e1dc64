//! The provider: fetches toggles from the client API and keeps them current by polling.

use crate::engine::{CompileWarning, UnleashEngine};
use crate::UnleashError;
use async_trait::async_trait;
use feature_core::provider::{
    Engine, Provider, ProviderError, ProviderState, ProviderStatus, Sink,
};
use feature_core::Snapshot;
use feature_store::{spawn_supervised, Backoff, Supervised, TaskError};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use reqwest::StatusCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

const NAME: &str = "unleash";

/// The client specification version this provider's engine implements.
const SPEC_VERSION: &str = "6.1.0";

/// Strategies Yggdrasil implements, announced at registration.
const STRATEGIES: [&str; 8] = [
    "default",
    "userWithId",
    "gradualRolloutUserId",
    "gradualRolloutRandom",
    "applicationHostname",
    "gradualRolloutSessionId",
    "remoteAddress",
    "flexibleRollout",
];

/// Builds an [`UnleashProvider`].
#[derive(Clone)]
pub struct UnleashBuilder {
    url: String,
    token: String,
    app_name: String,
    instance_id: Option<String>,
    environment: Option<String>,
    refresh_interval: Duration,
    timeout: Duration,
    start_timeout: Duration,
    backoff_max: Option<Duration>,
    register: bool,
    usage_interval: Option<Duration>,
    max_body_size: usize,
    strategies: std::collections::HashMap<String, crate::StrategyFn>,
    custom_headers: Vec<(String, String)>,
    projects: Vec<String>,
    backup_file: Option<std::path::PathBuf>,
    bootstrap: Option<crate::backup::Bootstrap>,
}

impl std::fmt::Debug for UnleashBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnleashBuilder")
            .field("url", &self.url)
            .field("app_name", &self.app_name)
            .field("instance_id", &self.instance_id)
            .field("refresh_interval", &self.refresh_interval)
            .finish_non_exhaustive()
    }
}

impl UnleashBuilder {
    /// The application name sent as `UNLEASH-APPNAME` (default `feature`); also the context's
    /// `appName` when a context does not set one.
    pub fn app_name(mut self, name: impl Into<String>) -> Self {
        self.app_name = name.into();
        self
    }

    /// The instance id sent as `UNLEASH-INSTANCEID` (default: `feature-<process id>-<random>`).
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }

    /// The context's `environment` when a context does not set one (default: none).
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// How often the toggles are fetched (default 15 s; at least 10 ms).
    pub fn refresh_interval(mut self, every: Duration) -> Self {
        self.refresh_interval = every.max(Duration::from_millis(10));
        self
    }

    /// Time limit of each request (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long `start` keeps trying to fetch the first toggles (default 5 s; keep it below the
    /// client's start timeout, 10 s by default).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// The longest wait between fetches after failures (default ten refresh intervals). After
    /// a failure the wait doubles from the refresh interval up to this, with jitter.
    pub fn backoff_max(mut self, max: Duration) -> Self {
        self.backoff_max = Some(max);
        self
    }

    /// Whether `start` registers the client with `POST /client/register` (default true).
    pub fn register(mut self, register: bool) -> Self {
        self.register = register;
        self
    }

    /// How often usage metrics (per toggle: how often on and off, and which variants) are
    /// sent with `POST /client/metrics`, as Unleash's SDKs do (default 60 s; at least 10 ms);
    /// `None` counts nothing and sends nothing. What is counted since the last report is also
    /// sent by `close()`. A report that fails is kept for the next one.
    pub fn usage_interval(mut self, every: Option<Duration>) -> Self {
        self.usage_interval = every.map(|d| d.max(Duration::from_millis(10)));
        self
    }

    /// The largest toggle response accepted, in bytes (default 64 MiB). The body is read in
    /// chunks and a larger one is refused ([`UnleashError::BodyTooLarge`]) without being held
    /// whole: the last good toggles keep serving and the status says why.
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.max_body_size = bytes;
        self
    }

    /// Registers the implementation of custom strategy `name`, one that Unleash's engine does
    /// not implement (see [`UnleashEngine::with_strategy`]): `f` decides whether the strategy
    /// matches a context, given the strategy's parameters. Registered names are announced at
    /// registration. A toggle using a strategy with no implementation is reported (a warning,
    /// and [`UnleashEngine::unimplemented_strategies`]) and never silently off: an evaluation
    /// it leaves off serves the caller's default with `ERROR`/`MALFORMED_FLAG`. It does not
    /// degrade the status: the toggle may be meant for other applications.
    pub fn strategy(
        mut self,
        name: impl Into<String>,
        f: impl Fn(&feature_core::Context, &std::collections::HashMap<String, String>) -> bool
            + Send
            + Sync
            + 'static,
    ) -> Self {
        self.strategies.insert(name.into(), Arc::new(f));
        self
    }

    /// A header sent with every request, e.g. for a proxy in front of Unleash (as the custom
    /// headers of Unleash's SDKs). It cannot replace the headers the protocol needs
    /// (`Authorization`, `UNLEASH-*`); a name or value that cannot be sent fails
    /// [`UnleashBuilder::build`].
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.custom_headers.push((name.into(), value.into()));
        self
    }

    /// Fetches only the toggles of project `name` (Unleash's `project` filter of the client
    /// API); call again for more projects. Default: every project the token can see.
    pub fn project(mut self, name: impl Into<String>) -> Self {
        self.projects.push(name.into());
        self
    }

    /// Keeps a backup of the last good toggles in file `path` (rewritten after each fetch that
    /// brings changes), and loads it at start, before the first fetch, as Unleash's SDKs do:
    /// a server that cannot be reached at start leaves the backup's toggles serving
    /// (`Degraded`) instead of the callers' defaults. Default: no backup file. Unleash's SDKs
    /// name theirs `unleash-backup-<app name>.json`.
    pub fn backup_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.backup_file = Some(path.into());
        self
    }

    /// Toggles to start from, as a client API response (`{"version": 2, "features": [...]}`),
    /// loaded at start when there is no backup file to load; the first fetch replaces them.
    pub fn bootstrap_json(mut self, body: impl Into<String>) -> Self {
        self.bootstrap = Some(crate::backup::Bootstrap::Json(body.into()));
        self
    }

    /// Like [`UnleashBuilder::bootstrap_json`], from a file read at start.
    pub fn bootstrap_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.bootstrap = Some(crate::backup::Bootstrap::File(path.into()));
        self
    }

    /// Checks the settings; connects only when started.
    pub fn build(self) -> Result<UnleashProvider, UnleashError> {
        let base = self.url.trim_end_matches('/').to_owned();
        let parsed = url::Url::parse(&base).map_err(|source| UnleashError::InvalidUrl {
            url: self.url.clone(),
            source,
        })?;
        match parsed.scheme() {
            "http" => {}
            "https" if cfg!(feature = "rustls") => {}
            "https" => return Err(UnleashError::HttpsUnsupported { url: self.url }),
            _ => return Err(UnleashError::UnsupportedScheme { url: self.url }),
        }
        if self.app_name.trim().is_empty() {
            return Err(UnleashError::EmptyAppName);
        }
        if self.timeout.is_zero() {
            return Err(UnleashError::ZeroDuration { what: "timeout" });
        }
        let instance_id = self
            .instance_id
            .unwrap_or_else(|| format!("feature-{}-{:08x}", std::process::id(), fastrand::u32(..)));
        let header = |name: &'static str, value: &str| {
            HeaderValue::from_str(value)
                .map_err(|source| UnleashError::InvalidHeader { name, source })
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &self.custom_headers {
            let bad = || UnleashError::InvalidCustomHeader { name: name.clone() };
            let n = reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| bad())?;
            let mut v = HeaderValue::from_str(value.trim()).map_err(|_| bad())?;
            v.set_sensitive(true);
            headers.insert(n, v);
        }
        let mut token = header("Authorization", &self.token)?;
        token.set_sensitive(true);
        headers.insert(AUTHORIZATION, token);
        headers.insert(
            "unleash-appname",
            header("UNLEASH-APPNAME", &self.app_name)?,
        );
        headers.insert(
            "unleash-instanceid",
            header("UNLEASH-INSTANCEID", &instance_id)?,
        );
        headers.insert(
            "unleash-connection-id",
            header("UNLEASH-CONNECTION-ID", &connection_id())?,
        );
        headers.insert(
            "unleash-sdk",
            header(
                "UNLEASH-SDK",
                concat!("feature-unleash:", env!("CARGO_PKG_VERSION")),
            )?,
        );
        headers.insert(
            "unleash-client-spec",
            HeaderValue::from_static(SPEC_VERSION),
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("feature-unleash/", env!("CARGO_PKG_VERSION")))
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            // Below the keep-alive of Unleash's server (15 s) and Node's default (5 s): a
            // pooled connection the server is about to close is not reused.
            .pool_idle_timeout(Duration::from_secs(4))
            .build()
            .map_err(UnleashError::Http)?;
        let custom_strategies: Vec<String> = self.strategies.keys().cloned().collect();
        let mut engine = UnleashEngine::new()
            .with_app_name(self.app_name.clone())
            .with_strategies(self.strategies);
        if let Some(env) = self.environment.clone() {
            engine = engine.with_environment(env);
        }
        engine.set_usage_counting(self.usage_interval.is_some());
        let backoff_max = self
            .backoff_max
            .unwrap_or(self.refresh_interval.saturating_mul(10));
        Ok(UnleashProvider {
            shared: Arc::new(Shared {
                http,
                features_url: features_url(&base, &self.projects),
                register_url: format!("{base}/client/register"),
                metrics_url: format!("{base}/client/metrics"),
                usage_interval: self.usage_interval,
                max_body_size: self.max_body_size,
                environment: self.environment,
                sink: Mutex::new(None),
                app_name: self.app_name,
                instance_id,
                refresh_interval: self.refresh_interval,
                start_timeout: self.start_timeout,
                backoff_max,
                register: self.register,
                custom_strategies,
                backup_file: self.backup_file,
                bootstrap: self.bootstrap,
                engine: Arc::new(engine),
                status: Mutex::new(ProviderStatus::default()),
                etag: Mutex::new(None),
                published: AtomicBool::new(false),
                backup_current: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                refused: AtomicBool::new(false),
                started: feature_store::now_rfc3339(),
            }),
            task: Mutex::new(None),
            usage_task: Mutex::new(None),
        })
    }
}

/// `{base}/client/features`, with a `project` query parameter per project filter.
fn features_url(base: &str, projects: &[String]) -> String {
    let url = format!("{base}/client/features");
    if projects.is_empty() {
        return url;
    }
    let mut parsed = match url::Url::parse(&url) {
        Ok(u) => u,
        Err(_) => return url,
    };
    {
        let mut q = parsed.query_pairs_mut();
        for p in projects {
            q.append_pair("project", p);
        }
    }
    parsed.to_string()
}

/// A random id for this connection, sent as `UNLEASH-CONNECTION-ID`.
fn connection_id() -> String {
    let a = fastrand::u64(..);
    let b = fastrand::u64(..);
    // Shaped like a version-4 UUID.
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48 & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

struct Shared {
    http: reqwest::Client,
    features_url: String,
    register_url: String,
    metrics_url: String,
    usage_interval: Option<Duration>,
    max_body_size: usize,
    environment: Option<String>,
    /// The names of the registered custom strategies, announced at registration.
    custom_strategies: Vec<String>,
    backup_file: Option<std::path::PathBuf>,
    bootstrap: Option<crate::backup::Bootstrap>,
    /// Where usage reports record their latency and errors (set by `start`).
    sink: Mutex<Option<Arc<dyn Sink>>>,
    app_name: String,
    instance_id: String,
    refresh_interval: Duration,
    start_timeout: Duration,
    backoff_max: Duration,
    register: bool,
    engine: Arc<UnleashEngine>,
    status: Mutex<ProviderStatus>,
    etag: Mutex<Option<HeaderValue>>,
    /// A snapshot was published: the client knows toggles arrived.
    published: AtomicBool,
    /// The backup file holds the toggles loaded (written since they last changed, or read
    /// from it). Until it does, every successful fetch writes it again.
    backup_current: AtomicBool,
    closed: AtomicBool,
    /// Polling stopped on purpose: the server refused this client after start.
    refused: AtomicBool,
    started: String,
}

impl Shared {
    fn status(&self) -> MutexGuard<'_, ProviderStatus> {
        // Every update assigns whole fields: a poisoned lock still holds consistent data.
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn etag(&self) -> MutexGuard<'_, Option<HeaderValue>> {
        self.etag.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A background task (polling, usage reports) ended by itself: unless the provider was
    /// closed, the toggles are no longer kept current.
    fn task_died(&self, e: TaskError) {
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        // A poll loop that ended because the server refused the client has already said so.
        if matches!(e, TaskError::Ended) && self.refused.load(Ordering::SeqCst) {
            return;
        }
        tracing::error!(target: "feature::unleash", "{e}");
        feature_store::mark_task_died(&mut self.status(), NAME, e);
    }
}

/// What one fetch brought.
enum Fetched {
    /// New toggles, loaded into the engine (with the toggles that did not compile).
    Changed(Vec<CompileWarning>),
    /// `304 Not Modified`.
    Unchanged,
}

/// Toggles from an Unleash server's client API, evaluated in-process by Unleash's engine.
/// See the [crate docs](crate).
pub struct UnleashProvider {
    shared: Arc<Shared>,
    task: Mutex<Option<Supervised>>,
    usage_task: Mutex<Option<Supervised>>,
}

impl std::fmt::Debug for UnleashProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnleashProvider")
            .field("url", &self.shared.features_url)
            .field("app_name", &self.shared.app_name)
            .field("instance_id", &self.shared.instance_id)
            .field("state", &self.shared.status().state)
            .finish()
    }
}

impl UnleashProvider {
    /// A builder for the client API at `url` (e.g. `http://127.0.0.1:4242/api`) with a client
    /// API token.
    pub fn builder(url: impl Into<String>, token: impl Into<String>) -> UnleashBuilder {
        UnleashBuilder {
            url: url.into(),
            token: token.into(),
            app_name: "feature".to_owned(),
            instance_id: None,
            environment: None,
            refresh_interval: Duration::from_secs(15),
            timeout: Duration::from_secs(10),
            start_timeout: Duration::from_secs(5),
            backoff_max: None,
            register: true,
            usage_interval: Some(Duration::from_secs(60)),
            max_body_size: 64 << 20,
            strategies: std::collections::HashMap::new(),
            custom_headers: Vec::new(),
            projects: Vec::new(),
            backup_file: None,
            bootstrap: None,
        }
    }

    /// The engine answering evaluations (also handed to the client by [`Provider::engine`]).
    pub fn unleash_engine(&self) -> &Arc<UnleashEngine> {
        &self.shared.engine
    }

    /// The instance id sent to the server.
    pub fn instance_id(&self) -> &str {
        &self.shared.instance_id
    }

    fn task(&self) -> MutexGuard<'_, Option<Supervised>> {
        self.task.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn usage_task(&self) -> MutexGuard<'_, Option<Supervised>> {
        self.usage_task.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends the usage counted since the last report now (`POST /client/metrics`): `Ok(n)`
    /// with the number of toggles reported (0: nothing was evaluated, nothing sent). On
    /// failure the counts are kept for the next report.
    pub async fn send_usage(&self) -> Result<usize, UnleashError> {
        self.shared.send_usage().await
    }
}

impl Drop for UnleashProvider {
    fn drop(&mut self) {
        if let Some(t) = self.task().take() {
            t.abort();
        }
        if let Some(t) = self.usage_task().take() {
            t.abort();
        }
    }
}

/// A low-cardinality class of an error, for `record_provider_error`.
fn class(e: &UnleashError) -> &'static str {
    match e {
        UnleashError::Http(e) if e.is_timeout() => "timeout",
        UnleashError::Http(e) if e.is_connect() => "connect",
        UnleashError::Http(_) => "http",
        UnleashError::Status { .. } => "status",
        UnleashError::Parse(_) => "parse",
        UnleashError::Compile(_) => "compile",
        UnleashError::BodyTooLarge { .. } => "too_large",
        _ => "other",
    }
}

fn provider_error(operation: &'static str, e: UnleashError) -> ProviderError {
    match e {
        UnleashError::Http(ref h) if h.is_timeout() => ProviderError::Timeout {
            provider: NAME,
            operation,
        },
        other => ProviderError::Backend {
            provider: NAME,
            operation,
            source: Box::new(other),
        },
    }
}

impl Shared {
    /// One `GET /client/features`, loading what changed into the engine.
    async fn fetch(&self) -> Result<Fetched, UnleashError> {
        let mut request = self.http.get(&self.features_url);
        if let Some(etag) = self.etag().clone() {
            request = request.header(IF_NONE_MATCH, etag);
        }
        // A GET is safe to repeat: once more when the connection failed before any answer
        // (e.g. the server closed a kept-alive connection as the request went out).
        let retry = request.try_clone();
        let response = match (request.send().await, retry) {
            (Ok(r), _) => r,
            (Err(e), Some(again)) if !e.is_timeout() => {
                again.send().await.map_err(UnleashError::Http)?
            }
            (Err(e), _) => return Err(UnleashError::Http(e)),
        };
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::Unchanged);
        }
        if !status.is_success() {
            return Err(UnleashError::Status {
                status: status.as_u16(),
                url: self.features_url.clone(),
            });
        }
        let etag = response.headers().get(ETAG).cloned();
        let body = self.read_capped(response).await?;
        let warnings = self.engine.load_json(&body)?;
        *self.etag() = etag;
        Ok(Fetched::Changed(warnings))
    }

    /// The body, read chunk by chunk and refused as soon as it is known to exceed
    /// `max_body_size` (by its `Content-Length`, or by what arrived).
    async fn read_capped(&self, mut response: reqwest::Response) -> Result<Vec<u8>, UnleashError> {
        let limit = self.max_body_size;
        let too_large = || UnleashError::BodyTooLarge {
            url: self.features_url.clone(),
            limit,
        };
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(UnleashError::Http)? {
            if body.len().saturating_add(chunk.len()) > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// A fetch, timed and counted, with the status updated. On failure, the error again when
    /// it is the server refusing this client (see [`refusal`]).
    async fn refresh(&self, sink: &dyn Sink) -> Result<(), Option<UnleashError>> {
        let started = Instant::now();
        let result = self.fetch().await;
        sink.metrics()
            .record_provider_latency(NAME, "fetch", started.elapsed());
        match result {
            Ok(fetched) => {
                let compile = match fetched {
                    Fetched::Changed(warnings) => {
                        for w in &warnings {
                            tracing::warn!(target: "feature::unleash", toggle = %w.toggle, "toggle does not compile and evaluates as off: {}", w.message);
                        }
                        if !warnings.is_empty() {
                            sink.metrics()
                                .record_provider_error(NAME, "compile", "compile");
                        }
                        // The engine answers evaluations; the empty snapshot tells the client
                        // that flags arrived, or changed. A response that repeats the toggles
                        // loaded (a new ETag over the same content, or a server that sends
                        // none) publishes nothing.
                        let changed = self.engine.take_changed();
                        let first = !self.published.swap(true, Ordering::SeqCst);
                        if !changed.is_empty() {
                            self.backup_current.store(false, Ordering::SeqCst);
                        }
                        if first || !changed.is_empty() {
                            sink.publish(Snapshot::default());
                            if !changed.is_empty() {
                                sink.changed(changed);
                            }
                        }
                        // Also after bootstrap toggles the server repeats, and after a write
                        // that failed or was cut short.
                        if !self.backup_current.load(Ordering::SeqCst) {
                            self.write_backup().await;
                        }
                        Some(warnings)
                    }
                    Fetched::Unchanged => None,
                };
                let mut st = self.status();
                st.connected = true;
                st.last_refresh = Some(SystemTime::now());
                match compile {
                    Some(w) if !w.is_empty() => {
                        st.state = ProviderState::Degraded;
                        st.last_error = Some((
                            Arc::new(provider_error("compile", UnleashError::Compile(w))),
                            SystemTime::now(),
                        ));
                    }
                    Some(_) => {
                        st.state = ProviderState::Ready;
                        st.last_error = None;
                    }
                    // Unchanged: a state degraded by toggles that do not compile stays so.
                    None => {
                        let compile_problem = st.state == ProviderState::Degraded
                            && st.last_error.as_ref().is_some_and(|(e, _)| {
                                matches!(
                                    **e,
                                    ProviderError::Backend {
                                        operation: "compile",
                                        ..
                                    }
                                )
                            });
                        if !compile_problem {
                            st.state = ProviderState::Ready;
                            st.last_error = None;
                        }
                    }
                }
                Ok(())
            }
            Err(e) => {
                sink.metrics()
                    .record_provider_error(NAME, "fetch", class(&e));
                let mut st = self.status();
                if st.connected || st.last_error.is_none() {
                    tracing::warn!(target: "feature::unleash", "cannot fetch toggles: {e}; serving the last good toggles");
                } else {
                    tracing::debug!(target: "feature::unleash", "still cannot fetch toggles: {e}");
                }
                st.connected = false;
                st.state = if self.engine.is_loaded() {
                    ProviderState::Degraded
                } else {
                    ProviderState::Unavailable
                };
                let refused = refusal(&e);
                st.last_error = Some((Arc::new(provider_error("fetch", e)), SystemTime::now()));
                Err(refused)
            }
        }
    }

    /// Writes the backup file, when there is one; a failure is logged, never fatal.
    async fn write_backup(&self) {
        let Some(path) = &self.backup_file else {
            return;
        };
        let Some(body) = self.engine.state_json() else {
            return;
        };
        match crate::backup::write(path, body).await {
            Ok(()) => self.backup_current.store(true, Ordering::SeqCst),
            Err(e) => {
                tracing::warn!(target: "feature::unleash", "cannot write the backup file: {e}")
            }
        }
    }

    /// Before the first fetch: the backup file's toggles, else the bootstrap toggles, so that
    /// a server out of reach at start leaves them serving. Nothing to load is not an error.
    async fn load_fallback(&self, sink: &dyn Sink) {
        if self.engine.is_loaded() {
            return;
        }
        let mut body = None;
        if let Some(path) = &self.backup_file {
            match crate::backup::read(path).await {
                Ok(b) => body = Some(("backup file", b)),
                Err(e) => tracing::debug!(target: "feature::unleash", "no backup to load: {e}"),
            }
        }
        if body.is_none() {
            if let Some(b) = &self.bootstrap {
                match b.read().await {
                    Ok(b) => body = Some(("bootstrap", b)),
                    Err(e) => {
                        tracing::warn!(target: "feature::unleash", "cannot read the bootstrap toggles: {e}")
                    }
                }
            }
        }
        let Some((source, body)) = body else { return };
        match self.engine.load_json(&body) {
            Ok(_) => {
                let _ = self.engine.take_changed();
                sink.publish(Snapshot::default());
                self.published.store(true, Ordering::SeqCst);
                self.backup_current
                    .store(source == "backup file", Ordering::SeqCst);
                let mut st = self.status();
                st.state = ProviderState::Degraded;
                tracing::info!(target: "feature::unleash", "serving the toggles of the {source} until the first fetch");
            }
            Err(e) => {
                tracing::warn!(target: "feature::unleash", "the {source} does not hold toggles: {e}")
            }
        }
    }

    /// `POST`s `body` as JSON; any status but a success is an error.
    async fn post_json(&self, url: &str, body: &serde_json::Value) -> Result<(), UnleashError> {
        let r = self
            .http
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(UnleashError::Http)?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(UnleashError::Status {
                status: r.status().as_u16(),
                url: url.to_owned(),
            })
        }
    }

    /// `POST /client/register`, best effort.
    async fn register(&self, sink: &dyn Sink) {
        let body = serde_json::json!({
            "appName": self.app_name,
            "instanceId": self.instance_id,
            "sdkVersion": concat!("feature-unleash:", env!("CARGO_PKG_VERSION")),
            "strategies": STRATEGIES
                .iter()
                .map(|s| s.to_string())
                .chain(self.custom_strategies.iter().cloned())
                .collect::<Vec<_>>(),
            "started": self.started,
            "interval": self.refresh_interval.as_millis() as u64,
            "platformName": "rust",
            "yggdrasilVersion": "0.21.7",
            "specVersion": SPEC_VERSION,
        });
        let started = Instant::now();
        let result = self.post_json(&self.register_url, &body).await;
        match result {
            Ok(()) => sink
                .metrics()
                .record_provider_latency(NAME, "register", started.elapsed()),
            Err(e) => {
                sink.metrics()
                    .record_provider_error(NAME, "register", class(&e));
                tracing::debug!(target: "feature::unleash", "registration failed (ignored): {e}");
            }
        }
    }

    /// `POST /client/metrics` with what the engine counted since the last report.
    async fn send_usage(&self) -> Result<usize, UnleashError> {
        let Some(bucket) = self.engine.take_usage() else {
            return Ok(0);
        };
        let toggles = bucket["toggles"].as_object().map_or(0, |t| t.len());
        let mut body = serde_json::json!({
            "appName": self.app_name,
            "instanceId": self.instance_id,
            "bucket": bucket,
        });
        if let Some(env) = &self.environment {
            body["environment"] = serde_json::Value::String(env.clone());
        }
        let started = Instant::now();
        let result = self.post_json(&self.metrics_url, &body).await;
        let sink = self.sink.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match result {
            Ok(()) => {
                if let Some(s) = &sink {
                    s.metrics()
                        .record_provider_latency(NAME, "metrics", started.elapsed());
                }
                Ok(toggles)
            }
            Err(e) => {
                if let Some(s) = &sink {
                    s.metrics()
                        .record_provider_error(NAME, "metrics", class(&e));
                }
                tracing::debug!(target: "feature::unleash", "usage report failed, kept for the next one: {e}");
                self.engine.restore_usage(body["bucket"].take());
                Err(e)
            }
        }
    }

    async fn report_usage(self: Arc<Self>, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            if self.closed.load(Ordering::SeqCst) {
                return;
            }
            let _ = self.send_usage().await;
        }
    }

    async fn poll(self: Arc<Self>, sink: Arc<dyn Sink>, mut backoff: Backoff, mut failing: bool) {
        loop {
            let wait = if failing {
                backoff.next_delay()
            } else {
                backoff.reset();
                self.refresh_interval
            };
            tokio::time::sleep(wait).await;
            if self.closed.load(Ordering::SeqCst) {
                return;
            }
            failing = match self.refresh(sink.as_ref()).await {
                Ok(()) => false,
                Err(Some(refused)) => {
                    self.stop_refused(refused);
                    return;
                }
                Err(None) => true,
            };
        }
    }

    /// The server refused this client after it started (a revoked token, a moved URL): polling
    /// stops, as Unleash's SDKs do, and the status says why; the last good toggles keep
    /// serving.
    fn stop_refused(&self, refused: UnleashError) {
        let UnleashError::Status { status, url } = refused else {
            return;
        };
        self.refused.store(true, Ordering::SeqCst);
        tracing::error!(target: "feature::unleash", "{url} answered {status}: the server refused this client; fetching stopped");
        let mut st = self.status();
        st.connected = false;
        st.last_error = Some((
            Arc::new(provider_error(
                "fetch",
                UnleashError::Refused { status, url },
            )),
            SystemTime::now(),
        ));
    }
}

/// A copy of `e` when it is the server refusing this client (401, 403: a wrong token; 404: a
/// wrong URL), which retrying does not fix.
fn refusal(e: &UnleashError) -> Option<UnleashError> {
    match e {
        UnleashError::Status {
            status: status @ (401 | 403 | 404),
            url,
        } => Some(UnleashError::Status {
            status: *status,
            url: url.clone(),
        }),
        _ => None,
    }
}

#[async_trait]
impl Provider for UnleashProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Fetches the toggles, retrying transient failures with backoff for up to the start
    /// timeout. A server that refuses the client (401, 403, 404) fails `start`; a server that
    /// stays unreachable leaves the provider `Unavailable` (evaluations serve the callers'
    /// defaults with `CLIENT_NOT_READY`) and `start` returns `Ok`, fetching on in the
    /// background like the store providers.
    async fn start(&self, sink: Arc<dyn Sink>) -> Result<(), ProviderError> {
        let shared = &self.shared;
        if shared.closed.load(Ordering::SeqCst) {
            return Err(ProviderError::Closed);
        }
        if let Some(t) = self.task().take() {
            t.abort();
        }
        shared.refused.store(false, Ordering::SeqCst);
        if shared.register {
            let (s, k) = (shared.clone(), sink.clone());
            tokio::spawn(async move { s.register(k.as_ref()).await });
        }
        shared.engine.set_impression_sink(sink.clone());
        shared.load_fallback(sink.as_ref()).await;
        let deadline = Instant::now() + shared.start_timeout;
        let mut backoff = Backoff::new(
            shared.refresh_interval.min(Duration::from_millis(200)),
            shared.backoff_max,
        );
        let failing = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let attempt = tokio::time::timeout(remaining, shared.refresh(sink.as_ref())).await;
            match attempt {
                Ok(Ok(())) => break false,
                Ok(Err(Some(refused))) => return Err(provider_error("start", refused)),
                Ok(Err(None)) => {}
                Err(_) => {
                    let mut st = shared.status();
                    st.state = ProviderState::Unavailable;
                    st.last_error = Some((
                        Arc::new(ProviderError::Timeout {
                            provider: NAME,
                            operation: "start",
                        }),
                        SystemTime::now(),
                    ));
                    break true;
                }
            }
            let delay = backoff.next_delay();
            if Instant::now() + delay >= deadline {
                break true;
            }
            tokio::time::sleep(delay).await;
        };
        *shared.sink.lock().unwrap_or_else(|e| e.into_inner()) = Some(sink.clone());
        if let Some(every) = shared.usage_interval {
            let s = shared.clone();
            let task =
                spawn_supervised(shared.clone().report_usage(every), move |e| s.task_died(e));
            if let Some(old) = self.usage_task().replace(task) {
                old.abort();
            }
        }
        let backoff = Backoff::new(shared.refresh_interval, shared.backoff_max);
        let s = shared.clone();
        let task = spawn_supervised(shared.clone().poll(sink, backoff, failing), move |e| {
            s.task_died(e)
        });
        *self.task() = Some(task);
        Ok(())
    }

    fn status(&self) -> ProviderStatus {
        self.shared.status().clone()
    }

    async fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        if let Some(t) = self.task().take() {
            t.abort();
        }
        let usage = self.usage_task().take();
        if let Some(t) = usage {
            t.abort();
            // The last counts, best effort (bounded by the request timeout).
            let _ = self.shared.send_usage().await;
        }
        let mut st = self.shared.status();
        st.state = ProviderState::Closed;
        st.connected = false;
    }

    fn engine(&self) -> Option<Arc<dyn Engine>> {
        Some(self.shared.engine.clone() as Arc<dyn Engine>)
    }
}
