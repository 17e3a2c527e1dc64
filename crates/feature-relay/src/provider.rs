//! [`RelayProvider`]: a [`SyncProvider`] whose source is a flag server's SDK stream.

use crate::error::RelayError;
use async_trait::async_trait;
use feature_core::metrics::Metrics;
use feature_core::provider::{redact_url, Provider, ProviderError, ProviderStatus, Sink};
use feature_store::sse::{SseEvent, SseParser};
use feature_store::stream::{SdkDelete, SdkDocument, SdkPatch};
use feature_store::{Event, ItemKind, Loaded, Notice, Row, Source, SyncOptions, SyncProvider};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;

const NAME: &str = "relay";

/// Default longest silence on the stream (the server sends a heartbeat every 15 s).
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Default largest event accepted (a `put` carries every flag).
const DEFAULT_MAX_EVENT_SIZE: usize = 64 << 20;

fn backend(operation: &'static str, e: RelayError) -> ProviderError {
    ProviderError::Backend {
        provider: NAME,
        operation,
        source: Box::new(e),
    }
}

/// The flag server as the provider engine sees it.
#[derive(Debug)]
pub(crate) struct RelaySource {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    read_timeout: Duration,
    max_event_size: usize,
}

/// What the stream said so far: the current rows, and the last version seen of every item
/// (deleted ones included), so that an older event never wins.
#[derive(Debug, Default)]
struct Held {
    rows: HashMap<(ItemKind, String), Row>,
    versions: HashMap<(ItemKind, String), u64>,
    revision: u64,
}

impl Held {
    fn replace(&mut self, doc: SdkDocument) {
        self.revision = doc.revision;
        self.rows.clear();
        self.versions.clear();
        for row in doc.into_rows() {
            let id = (row.kind, row.key.clone());
            self.versions.insert(id.clone(), row.version);
            self.rows.insert(id, row);
        }
    }

    /// Applies a change if it is newer than what is held; the notice to send either way (a
    /// notice about an unchanged item costs the engine a lookup, and keeps revisions
    /// consecutive).
    fn apply(
        &mut self,
        kind: ItemKind,
        key: String,
        version: u64,
        row: Option<Row>,
        revision: u64,
    ) -> Notice {
        self.revision = self.revision.max(revision);
        let id = (kind, key.clone());
        if self.versions.get(&id).is_none_or(|held| version > *held) {
            self.versions.insert(id.clone(), version);
            match row {
                Some(row) => {
                    self.rows.insert(id, row);
                }
                None => {
                    self.rows.remove(&id);
                }
            }
        } else {
            tracing::debug!(target: "feature::relay", kind = kind.as_str(), %key, version, "older change ignored");
        }
        Notice {
            kind,
            key,
            revision: Some(revision),
        }
    }
}

/// A live stream: the state it feeds, and the task reading it (stopped when dropped).
#[derive(Debug)]
pub(crate) struct Session {
    held: Arc<Mutex<Held>>,
    task: tokio::task::JoinHandle<()>,
}

impl Session {
    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads events off the response body.
struct Reader {
    response: reqwest::Response,
    parser: SseParser,
    pending: VecDeque<SseEvent>,
    read_timeout: Duration,
}

impl Reader {
    async fn next(&mut self) -> Result<SseEvent, RelayError> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Ok(ev);
            }
            let chunk = tokio::time::timeout(self.read_timeout, self.response.chunk())
                .await
                .map_err(|_| {
                    RelayError::Stream("sent nothing, not even a heartbeat, for too long")
                })?
                .map_err(RelayError::Http)?
                .ok_or(RelayError::Stream("ended"))?;
            self.pending.extend(self.parser.push(&chunk)?);
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(event: &'static str, data: &str) -> Result<T, RelayError> {
    serde_json::from_str(data).map_err(|source| RelayError::Malformed { event, source })
}

/// Follows the stream after its first `put`, until it fails or the session is dropped.
async fn follow(mut reader: Reader, held: Arc<Mutex<Held>>, tx: mpsc::Sender<Event>) {
    let lock = || held.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let event = match reader.next().await {
            Ok(ev) => ev,
            Err(e) => {
                let _ = tx.send(Event::Lost(backend("listen", e))).await;
                return;
            }
        };
        let out = match event.event.as_str() {
            "patch" => parse::<SdkPatch>("patch", &event.data).map(|p| {
                let (kind, key, version, revision) = (p.kind, p.key.clone(), p.version, p.revision);
                Event::Changed(lock().apply(kind, key, version, Some(p.into_row()), revision))
            }),
            "delete" => parse::<SdkDelete>("delete", &event.data)
                .map(|d| Event::Changed(lock().apply(d.kind, d.key, d.version, None, d.revision))),
            "put" => parse::<SdkDocument>("put", &event.data).map(|doc| {
                lock().replace(doc);
                Event::Resync
            }),
            _ => continue,
        };
        let out = out.unwrap_or_else(|e| Event::Lost(backend("listen", e)));
        let lost = matches!(out, Event::Lost(_));
        if tx.send(out).await.is_err() || lost {
            return;
        }
    }
}

#[async_trait]
impl Source for RelaySource {
    type Session = Session;

    fn name(&self) -> &'static str {
        NAME
    }

    fn origin(&self) -> String {
        format!("relay:{}", redact_url(&self.base))
    }

    async fn connect(&self) -> Result<(Session, mpsc::Receiver<Event>), ProviderError> {
        let mut request = self
            .http
            .get(format!("{}/sdk/v1/stream", self.base))
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| backend("connect", RelayError::Http(e)))?;
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            return Err(backend("connect", RelayError::Refused { status }));
        }
        if !response.status().is_success() {
            return Err(backend("connect", RelayError::Status { status }));
        }
        let mut reader = Reader {
            response,
            parser: SseParser::new(self.max_event_size),
            pending: VecDeque::new(),
            read_timeout: self.read_timeout,
        };
        // The first event of every connection is the whole state.
        let doc = loop {
            let ev = reader.next().await.map_err(|e| backend("connect", e))?;
            if ev.event == "put" {
                break parse::<SdkDocument>("put", &ev.data).map_err(|e| backend("connect", e))?;
            }
        };
        let mut state = Held::default();
        state.replace(doc);
        let held = Arc::new(Mutex::new(state));
        let (tx, rx) = mpsc::channel(1024);
        let task = tokio::spawn(follow(reader, held.clone(), tx));
        Ok((Session { held, task }, rx))
    }

    async fn load_all(
        &self,
        session: &mut Session,
        _metrics: &dyn Metrics,
    ) -> Result<Loaded, ProviderError> {
        let held = session.held();
        Ok(Loaded {
            rows: held.rows.values().cloned().collect(),
            revision: Some(held.revision),
        })
    }

    async fn load_keys(
        &self,
        session: &mut Session,
        keys: &[(ItemKind, String)],
        _metrics: &dyn Metrics,
    ) -> Result<Vec<(ItemKind, String, Option<Row>)>, ProviderError> {
        let held = session.held();
        Ok(keys
            .iter()
            .map(|(kind, key)| {
                let row = held.rows.get(&(*kind, key.clone())).cloned();
                (*kind, key.clone(), row)
            })
            .collect())
    }

    async fn revision(&self, session: &mut Session) -> Result<Option<u64>, ProviderError> {
        Ok(Some(session.held().revision))
    }

    fn is_refusal(&self, e: &ProviderError) -> bool {
        matches!(e, ProviderError::Backend { source, .. }
            if matches!(source.downcast_ref::<RelayError>(), Some(RelayError::Refused { .. })))
    }
}

/// Follows a flag server's SDK stream (`GET /sdk/v1/stream`): the whole state on connect, then
/// each change as it is made. Evaluations never touch the network. It has the guarantees of
/// the store providers: a start timeout, the last good flags on disk and a bootstrap file when
/// the server cannot be reached at start, `Degraded` while disconnected, reconnection with
/// capped backoff and jitter and a full resync on reconnect; versions ordered (an older change
/// never replaces a newer one); a refused token (401/403) stops it, with the reason in its
/// status.
#[derive(Debug)]
pub struct RelayProvider {
    inner: SyncProvider<RelaySource>,
}

impl RelayProvider {
    /// A provider following the server at `url` (its base: `https://flags.example.com`).
    pub fn builder(url: impl Into<String>) -> RelayBuilder {
        RelayBuilder {
            url: url.into(),
            token: None,
            options: SyncOptions::default(),
            read_timeout: DEFAULT_READ_TIMEOUT,
            max_event_size: DEFAULT_MAX_EVENT_SIZE,
        }
    }
}

#[async_trait]
impl Provider for RelayProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn start(&self, sink: Arc<dyn Sink>) -> Result<(), ProviderError> {
        self.inner.start(sink).await
    }

    fn status(&self) -> ProviderStatus {
        self.inner.status()
    }

    async fn close(&self) {
        self.inner.close().await;
    }
}

/// Builds a [`RelayProvider`].
#[derive(Clone)]
pub struct RelayBuilder {
    url: String,
    token: Option<String>,
    options: SyncOptions,
    read_timeout: Duration,
    max_event_size: usize,
}

impl std::fmt::Debug for RelayBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayBuilder")
            .field("url", &redact_url(&self.url))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("options", &self.options)
            .field("read_timeout", &self.read_timeout)
            .field("max_event_size", &self.max_event_size)
            .finish()
    }
}

impl RelayBuilder {
    /// The token sent as `Authorization: Bearer` (a token of scope `evaluate` is enough).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The longest silence accepted on the stream before reconnecting (default 60 s; the
    /// server sends a heartbeat every 15 s).
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// The largest event accepted (default 64 MiB); a larger one drops the connection.
    pub fn max_event_size(mut self, bytes: usize) -> Self {
        self.max_event_size = bytes;
        self
    }

    feature_store::sync_option_setters!(
        store: "the flag server",
        revision: "the stream's revision",
    );

    /// Checks the settings and builds the provider (it connects in `start`).
    pub fn build(self) -> Result<RelayProvider, RelayError> {
        self.options.validate()?;
        let base = self.url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(RelayError::InvalidUrl {
                url: redact_url(&self.url),
            });
        }
        if self.read_timeout.is_zero() {
            return Err(RelayError::InvalidOption {
                what: "read_timeout",
                problem: "it is zero",
            });
        }
        if self.max_event_size == 0 {
            return Err(RelayError::InvalidOption {
                what: "max_event_size",
                problem: "it is zero",
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(self.options.timeout)
            .build()
            .map_err(RelayError::Http)?;
        let source = RelaySource {
            base,
            token: self.token,
            http,
            read_timeout: self.read_timeout,
            max_event_size: self.max_event_size,
        };
        Ok(RelayProvider {
            inner: SyncProvider::new(source, self.options),
        })
    }
}
