//! The SDK endpoints this project's own clients follow (`RelayProvider`): `GET /sdk/v1/flags`
//! and the change stream `GET /sdk/v1/stream`, in the wire format of
//! [`feature_store::stream`].
//!
//! **How the server learns of changes.** The [`Hub`] follows the server's [`Client`]: on each
//! change notice (and every few seconds as a safety net) it compares the client's current
//! document with the items it last sent, and turns every difference into a `patch` or a
//! `delete`, numbered by its own revision and sent through one `tokio::sync::broadcast` to
//! every stream. It works with whatever feeds the client: a store's provider (SQLite,
//! PostgreSQL, Redis), a flag file, or another server's stream (a relay). Item versions are the
//! store's; items without one (a flag file) are numbered by the hub, +1 per change. A stream
//! whose client lags behind the broadcast gets a fresh `put` instead of a gap.

use crate::auth;
use crate::problem::ProblemDocument;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use feature::Client;
use feature_core::model::FlagDocument;
use feature_store::stream::{SdkDelete, SdkDocument, SdkPatch};
use feature_store::{flag_definition, segment_definition, ItemKind, Row};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, Once, Weak};
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// Frames kept for streams that are behind; a stream further behind gets a fresh `put`.
const BACKLOG: usize = 4096;

/// How often the hub re-reads the client's document without a notice (a safety net).
const RESYNC_EVERY: Duration = Duration::from_secs(5);

type Id = (ItemKind, String);

/// One change, ready to send to every stream.
#[derive(Debug)]
pub(crate) struct Frame {
    /// `patch` or `delete`.
    pub(crate) event: &'static str,
    /// The event's data (JSON).
    pub(crate) data: String,
}

/// What the hub last sent: every item with its definition and version, deleted items'
/// last versions, the revision and the `put` document.
#[derive(Debug)]
struct Sent {
    /// The client's snapshot this state was computed from (compared by pointer).
    snapshot: Option<Arc<feature_core::Snapshot>>,
    revision: u64,
    items: BTreeMap<Id, (Value, u64)>,
    deleted: HashMap<Id, u64>,
    /// The `put` document, as JSON.
    document: Arc<str>,
}

/// Follows the server's client and fans its changes out to every stream (see the module docs).
pub(crate) struct Hub {
    client: Client,
    sent: Mutex<Sent>,
    tx: broadcast::Sender<Arc<Frame>>,
    /// Distinguishes this server's revisions from another process's in entity tags.
    epoch: u32,
    /// Bumped when a token is revoked through the API: streams check their token again.
    revocations: watch::Sender<u64>,
    started: Once,
    pub(crate) heartbeat: Duration,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("epoch", &self.epoch)
            .field("streams", &self.tx.receiver_count())
            .finish_non_exhaustive()
    }
}

/// The current state for a new stream: the `put` and the changes after it.
pub(crate) struct Subscribed {
    pub(crate) document: Arc<str>,
    pub(crate) rx: broadcast::Receiver<Arc<Frame>>,
}

impl Hub {
    pub(crate) fn new(client: Client, heartbeat: Duration) -> Hub {
        let (tx, _) = broadcast::channel(BACKLOG);
        Hub {
            client,
            sent: Mutex::new(Sent {
                snapshot: None,
                revision: 0,
                items: BTreeMap::new(),
                deleted: HashMap::new(),
                document: Arc::from("{}"),
            }),
            tx,
            epoch: fastrand::u32(..),
            revocations: watch::channel(0).0,
            started: Once::new(),
            heartbeat,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Sent> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts following the client (once, from a request: inside the runtime).
    fn start(self: &Arc<Self>) {
        self.started.call_once(|| {
            let weak = Arc::downgrade(self);
            let sub = self.client.subscribe();
            tokio::spawn(follow(weak, sub));
        });
    }

    /// Brings what was sent up to the client's current document, sending the differences.
    fn sync(&self) -> MutexGuard<'_, Sent> {
        let mut sent = self.lock();
        let snapshot = self.client.snapshot();
        if sent
            .snapshot
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, &snapshot))
        {
            return sent;
        }
        let current = items_of(snapshot.document());
        let first = sent.snapshot.is_none();
        sent.snapshot = Some(snapshot);
        let mut frames = Vec::new();
        let sent_ref = &mut *sent;
        for (id, (definition, version)) in &current {
            let held = sent_ref.items.get(id);
            if held.is_some_and(|(d, _)| d == definition) {
                continue;
            }
            let before = held
                .map(|(_, v)| *v)
                .or_else(|| sent_ref.deleted.get(id).copied())
                .unwrap_or(0);
            let version = version.unwrap_or(before + 1);
            sent_ref.deleted.remove(id);
            sent_ref
                .items
                .insert(id.clone(), (definition.clone(), version));
            sent_ref.revision += 1;
            let patch = SdkPatch {
                revision: sent_ref.revision,
                kind: id.0,
                key: id.1.clone(),
                version,
                definition: definition.clone(),
            };
            frames.push(Frame {
                event: "patch",
                data: serde_json::to_string(&patch).unwrap_or_default(),
            });
        }
        let gone: Vec<Id> = sent_ref
            .items
            .keys()
            .filter(|id| !current.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            let version = sent_ref.items.remove(&id).map_or(0, |(_, v)| v) + 1;
            sent_ref.deleted.insert(id.clone(), version);
            sent_ref.revision += 1;
            let delete = SdkDelete {
                revision: sent_ref.revision,
                kind: id.0,
                key: id.1,
                version,
            };
            frames.push(Frame {
                event: "delete",
                data: serde_json::to_string(&delete).unwrap_or_default(),
            });
        }
        if first || !frames.is_empty() {
            let rows: Vec<Row> = sent_ref
                .items
                .iter()
                .map(|((kind, key), (definition, version))| Row {
                    kind: *kind,
                    key: key.clone(),
                    definition: definition.clone(),
                    version: *version,
                    updated_at: None,
                    updated_by: None,
                })
                .collect();
            let doc = SdkDocument::from_rows(sent_ref.revision, &rows);
            sent_ref.document = Arc::from(serde_json::to_string(&doc).unwrap_or_default());
        }
        if !first {
            for frame in frames {
                // No stream listening is not an error.
                let _ = self.tx.send(Arc::new(frame));
            }
        }
        sent
    }

    /// The current document, its revision and its entity tag.
    pub(crate) fn document(self: &Arc<Self>) -> (Arc<str>, u64, String) {
        self.start();
        let sent = self.sync();
        let tag = self.etag(sent.revision);
        (sent.document.clone(), sent.revision, tag)
    }

    /// The current state and a receiver of the changes after it (no gap, no repeat).
    pub(crate) fn subscribe(self: &Arc<Self>) -> Subscribed {
        self.start();
        let sent = self.sync();
        Subscribed {
            document: sent.document.clone(),
            rx: self.tx.subscribe(),
        }
    }

    /// The current revision (after bringing it up to date).
    pub(crate) fn revision(self: &Arc<Self>) -> u64 {
        self.start();
        self.sync().revision
    }

    /// The strong entity tag of a revision of this server: `"<epoch>-<revision>"`.
    pub(crate) fn etag(&self, revision: u64) -> String {
        format!("\"{:08x}-{revision}\"", self.epoch)
    }

    /// Tells every stream to check its token again (a token was revoked).
    pub(crate) fn token_revoked(&self) {
        self.revocations.send_modify(|n| *n += 1);
    }

    /// A receiver of revocation notices.
    pub(crate) fn revocations(&self) -> watch::Receiver<u64> {
        self.revocations.subscribe()
    }
}

/// Every item of a document: definition (without the store's fields) and version when it has
/// one.
fn items_of(doc: &FlagDocument) -> BTreeMap<Id, (Value, Option<u64>)> {
    let flags = doc
        .flags
        .iter()
        .map(|(k, f)| ((ItemKind::Flag, k.clone()), (flag_definition(f), f.version)));
    let segments = doc.segments.iter().map(|(k, s)| {
        (
            (ItemKind::Segment, k.clone()),
            (segment_definition(s), s.version),
        )
    });
    flags.chain(segments).collect()
}

/// The hub's task: a sync per change notice, and one every few seconds; ends with the server.
async fn follow(hub: Weak<Hub>, mut sub: feature::Subscription) {
    loop {
        let closed = tokio::select! {
            r = sub.recv() => r.is_err(),
            _ = tokio::time::sleep(RESYNC_EVERY) => false,
        };
        let Some(hub) = hub.upgrade() else { return };
        drop(hub.sync());
        if closed {
            return;
        }
    }
}

/// Whether `If-None-Match` names this entity tag (or `*`).
pub(crate) fn not_modified(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|t| {
                let t = t.trim();
                t == "*" || t == tag || t.strip_prefix("W/") == Some(tag)
            })
        })
}

/// A 304 or a 200 with `ETag`.
pub(crate) fn with_etag(headers: &HeaderMap, tag: &str, body: Response) -> Response {
    let value = HeaderValue::from_str(tag).unwrap_or(HeaderValue::from_static("\"0\""));
    let mut r = if not_modified(headers, tag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        body
    };
    r.headers_mut().insert(ETAG, value);
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// Every flag and segment with its version (the body of a stream's `put`), with the revision
/// as `ETag`; `If-None-Match` with that tag answers 304.
#[utoipa::path(
    get, path = "/sdk/v1/flags", tag = "sdk",
    params(("If-None-Match" = Option<String>, Header, description = "The ETag read: 304 while nothing changed")),
    security(("bearer" = ["evaluate"])),
    responses(
        (status = 200, description = "Every flag and segment (feature_store::stream::SdkDocument)", body = Object,
            headers(("ETag" = String, description = "The revision, e.g. \"5f3a09c2-17\""))),
        (status = 304, description = "Nothing changed since the ETag given"),
        (status = 401, description = "No valid token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Scope too weak", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn flags(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (document, _, tag) = state.hub.document();
    let body = (
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        document.to_string(),
    )
        .into_response();
    with_etag(&headers, &tag, body)
}

/// What a stream does next.
enum Next {
    Send(SseEvent),
    Stop,
}

/// Waits for the next event of a stream: a change, a fresh `put` after lagging, or the end
/// (the token was revoked, or the server is going away).
async fn next_event(
    state: &AppState,
    headers: &HeaderMap,
    rx: &mut broadcast::Receiver<Arc<Frame>>,
    revocations: &mut watch::Receiver<u64>,
    check: &mut tokio::time::Instant,
) -> Next {
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Ok(frame) => return Next::Send(SseEvent::default().event(frame.event).data(frame.data.as_str())),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(missed = n, "a stream fell behind: sending the whole state");
                    let s = state.hub.subscribe();
                    *rx = s.rx;
                    return Next::Send(SseEvent::default().event("put").data(&*s.document));
                }
                Err(broadcast::error::RecvError::Closed) => return Next::Stop,
            },
            changed = revocations.changed() => {
                if changed.is_err() || !auth::still_allowed(state, headers, feature_store::tokens::Scope::Evaluate).await {
                    return Next::Stop;
                }
            }
            _ = tokio::time::sleep_until(*check) => {
                // Revocations made elsewhere (`featurectl token revoke`) are seen here.
                *check += state.hub.heartbeat;
                if !auth::still_allowed(state, headers, feature_store::tokens::Scope::Evaluate).await {
                    return Next::Stop;
                }
            }
        }
    }
}

/// The change stream (server-sent events): `put` with every flag and segment first, then a
/// `patch` or `delete` per changed item with its version, and a comment line as heartbeat
/// every 15 s. A stream that falls behind gets a fresh `put`. The stream ends when its token
/// is revoked.
/// One message of a `text/event-stream` body, as the OpenAPI document describes it (each
/// message is a set of fields; only the schema uses this type).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // a schema, never built
pub(crate) struct SseMessage {
    /// The event type (`put`, `patch`, `delete`; OFREP's stream sends `message`).
    event: Option<String>,
    /// The event's data: JSON text.
    data: String,
    /// The event's id, when it has one.
    id: Option<String>,
}

#[utoipa::path(
    get, path = "/sdk/v1/stream", tag = "sdk",
    security(("bearer" = ["evaluate"])),
    responses(
        (status = 200, description = "Server-sent events: put, patch, delete (feature_store::stream)", content_type = "text/event-stream", body = SseMessage),
        (status = 401, description = "No valid token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Scope too weak", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn stream(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Subscribed { document, rx } = state.hub.subscribe();
    let revocations = state.hub.revocations();
    let heartbeat = state.hub.heartbeat;
    let first = SseEvent::default().event("put").data(&*document);
    let check = tokio::time::Instant::now() + heartbeat;
    let events = futures_util::stream::unfold(
        (Some(first), state, headers, rx, revocations, check),
        |(first, state, headers, mut rx, mut revocations, mut check)| async move {
            if let Some(ev) = first {
                return Some((
                    Ok::<_, Infallible>(ev),
                    (None, state, headers, rx, revocations, check),
                ));
            }
            match next_event(&state, &headers, &mut rx, &mut revocations, &mut check).await {
                Next::Send(ev) => Some((Ok(ev), (None, state, headers, rx, revocations, check))),
                Next::Stop => None,
            }
        },
    );
    let mut r = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(heartbeat))
        .into_response();
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}
