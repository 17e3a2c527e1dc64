//! # feature-ui
//!
//! The web UI of the `feature` flag server: an axum [`Router`] serving pages under `/ui`,
//! which `featurectl serve` mounts next to the admin API of [`feature_server::Server`].
//!
//! | what | where |
//! |---|---|
//! | sign-in with a server token; the token stays on the server, bound to an `HttpOnly`, `SameSite=Strict` session cookie (`Secure` when served over TLS) | `POST /ui/session`, `GET /ui/session`, `DELETE /ui/session` |
//! | flags list: search by key or name, filter by tag and state, on/off switches, last change | `/ui/#/flags` |
//! | creating flags from templates: kill switch, percentage rollout, A/B experiment | `/ui/#/new` |
//! | flag editor: variants, targets, rules and clauses (every operator), rollouts in percent, prerequisites, fallthrough, off variation, tags, description; located validation errors; conflicts (412) shown and re-applied | `/ui/#/flags/{key}` |
//! | history with actor, time, side-by-side diff and restore | `/ui/#/flags/{key}/history` |
//! | debugger: evaluate as a context with the full trace; a flag's split over a list of contexts | `/ui/#/debugger` |
//! | a rollout's split over a list of contexts before saving it (the edited flag compiled in memory) | `POST /ui/preview`, in the editor |
//! | segments: list and editor (included and excluded keys, rules of clauses) | `/ui/#/segments`, `/ui/#/segments/{key}` |
//! | the admin API, through the session (CSRF header on every change) | `/ui/api/v1/...` |
//!
//! The pages are plain ES modules and CSS embedded in the binary (no build step, no Node at
//! build time). They call the server's own `/api/v1` endpoints through `/ui/api/v1`: this router
//! looks the session up, checks the `X-CSRF-Token` header on every request that is not a
//! `GET` or `HEAD`, and hands the request to the API router with the session's token as
//! `Authorization: Bearer`. The API checks the token and its scope on every request as for
//! any other client, so a revoked token ends its sessions, and what the token's scope cannot
//! do is refused by the API (the pages do not show it either).
//!
//! ## Quick start
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use feature::{Client, MemoryProvider};
//! use feature_server::{MemoryTokenStore, Server};
//!
//! let client = Client::builder().provider(MemoryProvider::new()).build().await?;
//! let server = Server::builder()
//!     .read_only("flags come from memory")
//!     .tokens(Arc::new(MemoryTokenStore::new()))
//!     .client(client)
//!     .build()?;
//! let ui = feature_ui::Ui::builder(&server).secure_cookie(false).build();
//! let app = axum::Router::new().merge(server.router()).merge(ui.router());
//! # let _ = app;
//! // axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod assets;
mod preview;
mod session;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get};
use axum::Router;
use feature_server::{Problem, Server};
use session::{Session, Sessions};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "feature_ui_session";

/// The header that carries a session's CSRF token on every change.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Builds a [`Ui`]: cookie and session options.
#[derive(Debug)]
pub struct UiBuilder {
    server: Server,
    secure: bool,
    idle: Duration,
}

impl UiBuilder {
    /// Whether the session cookie is always `Secure` (sent over HTTPS only): keep it when the
    /// server is reached over TLS. Default: `true`. Without it, the cookie is still `Secure`
    /// when a proxy says the browser used HTTPS (`X-Forwarded-Proto: https`).
    pub fn secure_cookie(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// How long a session lasts without a request (default 8 hours).
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }

    /// Builds the UI.
    pub fn build(self) -> Ui {
        Ui {
            inner: Arc::new(Inner {
                api: self.server.router(),
                server: self.server,
                sessions: Sessions::default(),
                secure: self.secure,
                idle: self.idle,
            }),
        }
    }
}

struct Inner {
    server: Server,
    api: Router,
    sessions: Sessions,
    secure: bool,
    idle: Duration,
}

/// The web UI: [`Ui::router`] is what to mount (its routes are under `/ui`).
#[derive(Clone)]
pub struct Ui {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Ui {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ui")
            .field("secure", &self.inner.secure)
            .field("idle", &self.inner.idle)
            .finish_non_exhaustive()
    }
}

impl Ui {
    /// A builder for the UI of `server` (its API is what the pages call).
    pub fn builder(server: &Server) -> UiBuilder {
        UiBuilder {
            server: server.clone(),
            secure: true,
            idle: Duration::from_secs(8 * 3600),
        }
    }

    /// The routes of the UI, all under `/ui`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/ui", get(|| async { Redirect::to("/ui/") }))
            .route("/ui/", get(assets::index))
            .route("/ui/{file}", get(assets::file))
            .route(
                "/ui/session",
                get(session_get).post(session_create).delete(session_delete),
            )
            .route("/ui/preview", axum::routing::post(preview_split))
            .route("/ui/api/{*rest}", any(proxy))
            .with_state(self.clone())
    }

    fn session(&self, req_headers: &axum::http::HeaderMap) -> Option<(String, Session)> {
        let id = session::cookie(req_headers, SESSION_COOKIE)?;
        let s = self.inner.sessions.get(&id, self.inner.idle)?;
        Some((id, s))
    }

    fn cookie(&self, id: &str, max_age: Option<u64>, tls: bool) -> HeaderValue {
        let mut c = format!("{SESSION_COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict");
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        if self.inner.secure || tls {
            c.push_str("; Secure");
        }
        HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// What the pages learn about their session: who, what scope, the CSRF token.
fn session_body(s: &Session) -> Response {
    no_store(
        axum::Json(serde_json::json!({
            "name": s.name,
            "scope": s.scope.to_string(),
            "csrf": s.csrf,
        }))
        .into_response(),
    )
}

async fn session_get(State(ui): State<Ui>, req: Request) -> Response {
    match ui.session(req.headers()) {
        Some((_, s)) => session_body(&s),
        None => Problem::unauthorized("not signed in").into_response(),
    }
}

#[derive(serde::Deserialize)]
struct SignIn {
    token: String,
}

/// Sign-in: `{"token": "..."}` as JSON (a cross-site form cannot send that type without a
/// preflight, so no login CSRF through forms).
async fn session_create(State(ui): State<Ui>, req: Request) -> Response {
    let tls = behind_tls(req.headers());
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported Media Type",
            "sign in with a JSON body {\"token\": \"...\"}",
        )
        .into_response();
    }
    let Ok(body) = axum::body::to_bytes(req.into_body(), 64 * 1024).await else {
        return Problem::bad_request("the body is too large").into_response();
    };
    let Ok(SignIn { token }) = serde_json::from_slice::<SignIn>(&body) else {
        return Problem::bad_request("sign in with a JSON body {\"token\": \"...\"}")
            .into_response();
    };
    let caller = match ui.inner.server.authenticate(token.trim()).await {
        Ok(c) => c,
        Err(p) => return p.into_response(),
    };
    let (id, s) = match ui.inner.sessions.create(token.trim().to_owned(), caller) {
        Ok(x) => x,
        Err(p) => return p.into_response(),
    };
    tracing::info!(token = %s.name, "signed in to the UI");
    let mut resp = session_body(&s);
    resp.headers_mut()
        .insert(header::SET_COOKIE, ui.cookie(&id, None, tls));
    resp
}

/// Whether a TLS-terminating proxy says the browser used HTTPS (`X-Forwarded-Proto: https`):
/// the cookie is then `Secure` even when the UI was built without it.
fn behind_tls(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

fn csrf_ok(req_headers: &axum::http::HeaderMap, s: &Session) -> bool {
    use subtle::ConstantTimeEq;
    req_headers
        .get(CSRF_HEADER)
        .is_some_and(|v| bool::from(v.as_bytes().ct_eq(s.csrf.as_bytes())))
}

fn csrf_refused() -> Response {
    Problem::forbidden(format!(
        "a change needs the session's CSRF token in the {CSRF_HEADER} header"
    ))
    .into_response()
}

async fn session_delete(State(ui): State<Ui>, req: Request) -> Response {
    let Some((id, s)) = ui.session(req.headers()) else {
        return Problem::unauthorized("not signed in").into_response();
    };
    if !csrf_ok(req.headers(), &s) {
        return csrf_refused();
    }
    let tls = behind_tls(req.headers());
    ui.inner.sessions.remove(&id);
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, ui.cookie("", Some(0), tls));
    resp
}

/// `POST /ui/preview`: the split of an edited flag over contexts (session and CSRF token
/// required, like every POST; nothing is written).
async fn preview_split(State(ui): State<Ui>, req: Request) -> Response {
    let Some((_, s)) = ui.session(req.headers()) else {
        return Problem::unauthorized("not signed in").into_response();
    };
    if !csrf_ok(req.headers(), &s) {
        return csrf_refused();
    }
    match axum::body::to_bytes(req.into_body(), 4 * 1024 * 1024).await {
        Ok(body) => no_store(preview::preview(&body)),
        Err(_) => Problem::bad_request("the body is too large (4 MiB at most)").into_response(),
    }
}

/// `/ui/api/...` → `/api/...` with the session's token; changes need the CSRF header.
async fn proxy(State(ui): State<Ui>, req: Request) -> Response {
    let Some((_, s)) = ui.session(req.headers()) else {
        return Problem::unauthorized("not signed in").into_response();
    };
    let safe = matches!(*req.method(), Method::GET | Method::HEAD);
    if !safe && !csrf_ok(req.headers(), &s) {
        return csrf_refused();
    }
    let (mut parts, body) = req.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let Some(rest) = path_and_query.strip_prefix("/ui") else {
        return Problem::not_found("no such route").into_response();
    };
    let Ok(uri) = rest.parse::<Uri>() else {
        return Problem::bad_request("bad path").into_response();
    };
    parts.uri = uri;
    // A new request for the API router: none of this router's path parameters.
    parts.extensions = Default::default();
    parts.headers.remove(header::COOKIE);
    parts.headers.remove(CSRF_HEADER);
    let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {}", s.token)) else {
        return Problem::unauthorized("the session's token is malformed").into_response();
    };
    parts.headers.insert(header::AUTHORIZATION, bearer);
    let req = Request::from_parts(parts, Body::new(body));
    match ui.inner.api.clone().oneshot(req).await {
        Ok(resp) => no_store(resp),
        Err(never) => match never {},
    }
}
