//! # feature-server
//!
//! The flag server of the `feature` toolkit as a library: an axum [`Router`] with the admin
//! REST API over a flag store, which an application mounts in its own server (or runs with
//! `featurectl serve`).
//!
//! | what | where |
//! |---|---|
//! | flags: list (prefix, enabled, cursor paging), read, create or replace, delete, enable, disable | `/api/v1/flags`, `/api/v1/flags/{key}`, `/api/v1/flags/{key}/enable`, `/disable` |
//! | segments: list, read, create or replace, delete | `/api/v1/segments`, `/api/v1/segments/{key}` |
//! | the audit log of a flag, a page at a time, and restoring an entry | `/api/v1/flags/{key}/history`, `/api/v1/flags/{key}/history/{id}/restore` |
//! | evaluation with the `--explain` trace | `POST /api/v1/evaluate` |
//! | validation of a document, with located diagnostics | `POST /api/v1/validate` |
//! | tokens (admin): create (text shown once), list, revoke | `/api/v1/tokens`, `/api/v1/tokens/{id}` |
//! | the OpenAPI 3.1 document, generated from the code | `/api/v1/openapi.json` |
//! | the SDK endpoints `RelayProvider` follows: every flag and segment, and the change stream | `GET /sdk/v1/flags`, `GET /sdk/v1/stream` |
//! | OFREP (OpenFeature Remote Evaluation Protocol): one flag, every flag, the change stream (no token) | `POST /ofrep/v1/evaluate/flags/{key}`, `POST /ofrep/v1/evaluate/flags`, `GET /ofrep/v1/events` |
//! | health (no token) and Prometheus metrics | `/health`, `/metrics` |
//!
//! Bodies of flags and segments are exactly the flag file's format (`feature_core::model`),
//! with `key`, `version` and `updatedAt` added in answers. Every item answer carries the
//! item's version as a strong `ETag` (`"3"`). Writes are conditional: `If-Match: "3"`
//! changes the item only while it is at version 3, `If-Match: *` while it exists,
//! `If-None-Match: *` creates it only while it does not exist; otherwise 412, and 428 without
//! either. Errors are RFC 9457 problem documents (`application/problem+json`); a body that does
//! not validate is refused with 422 and its located diagnostics, and nothing changes.
//!
//! Every route but `/health` and `/ofrep/v1/events` needs `Authorization: Bearer <token>` (or
//! OFREP's `X-API-Key: <token>`) of a scope strong enough
//! ([`routes`] lists each route's scope): `evaluate` for evaluation, `read` for reads,
//! `write` for changes, `admin` for tokens. See [`auth`] for tokens, the cache and the
//! bootstrap token. The token's name is the actor in the audit log.
//!
//! ## Quick start: mounting the router
//!
//! ```no_run
//! use std::sync::Arc;
//! use feature::Client;
//! use feature_server::Server;
//!
//! # async fn run(
//! #     store: Arc<dyn feature_store::FlagStore>,
//! #     tokens: Arc<dyn feature_store::tokens::TokenStore>,
//! #     client: Client,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! // `store` and `tokens`: e.g. a PostgresStore for both; `client`: fed by the store's provider.
//! let server = Server::builder()
//!     .store(store)
//!     .tokens(tokens)
//!     .client(client)
//!     .bootstrap_token(std::env::var("FEATURE_SERVER_ADMIN_TOKEN").ok())
//!     .build()?;
//! let app = axum::Router::new()
//!     .merge(server.router())
//!     .route("/", axum::routing::get(|| async { "my application" }));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! A complete, runnable server (a memory provider, a token minted at start, one request):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use feature::{Client, Flag, MemoryProvider};
//! use feature_server::{MemoryTokenStore, Server};
//! use feature_store::tokens::{create_token, Scope};
//! use tower::ServiceExt;
//!
//! let flags = MemoryProvider::new();
//! flags.set_flag(Flag::boolean("beta", true));
//! let client = Client::builder().provider(flags).build().await?;
//! let tokens = Arc::new(MemoryTokenStore::new());
//! let (_, token) = create_token(tokens.as_ref(), "ci", Scope::Read, "setup").await?;
//! let server = Server::builder()
//!     .read_only("flags come from the application's memory provider")
//!     .tokens(tokens)
//!     .client(client)
//!     .build()?;
//! let resp = server
//!     .router()
//!     .oneshot(
//!         axum::http::Request::get("/api/v1/flags/beta")
//!             .header("authorization", format!("Bearer {token}"))
//!             .body(axum::body::Body::empty())?,
//!     )
//!     .await?;
//! assert_eq!(resp.status(), 200);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod auth;
mod evaluate;
mod flags;
mod health;
mod history;
mod items;
mod memory;
pub mod metrics;
mod ofrep;
mod openapi;
mod problem;
mod sdk;
mod segments;
mod state;
mod tokens;
mod validate;

pub use auth::Caller;
pub use memory::MemoryTokenStore;
pub use problem::{DiagnosticBody, Problem, ProblemDocument, PROBLEM_JSON};
pub use state::Linter;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method};
use axum::response::IntoResponse;
use axum::routing::{get, on, MethodFilter, MethodRouter};
use axum::Router;
use feature::metrics::EvaluationStats;
use feature::Client;
use feature_store::tokens::{Scope, TokenStore};
use feature_store::FlagStore;
use state::{AppState, Backend, Inner, Options};
use std::sync::Arc;
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnRequest, DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::OpenApi;

/// Why a [`Server`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Neither a store nor a read-only source was given.
    #[error("the server needs a store (ServerBuilder::store) or a read-only source (ServerBuilder::read_only)")]
    NoSource,
    /// No client was given.
    #[error("the server needs a feature::Client (ServerBuilder::client)")]
    NoClient,
    /// A CORS origin is not a valid header value.
    #[error("invalid CORS origin {0:?}")]
    BadOrigin(String),
    /// The bootstrap token is too short to be a secret.
    #[error("the bootstrap admin token must be at least 16 characters")]
    WeakBootstrap,
    /// The HTTP metrics could not be registered (a name already taken in the registry).
    #[error("cannot register the HTTP metrics: {0}")]
    Metrics(#[source] prometheus::Error),
}

/// Builds a [`Server`]: a store (or a read-only source), a token store, the client that
/// evaluates, and options.
#[derive(Default)]
pub struct ServerBuilder {
    backend: Option<Backend>,
    tokens: Option<Arc<dyn TokenStore>>,
    client: Option<Client>,
    stats: Option<EvaluationStats>,
    registry: Option<prometheus::Registry>,
    bootstrap: Option<String>,
    linter: Option<Linter>,
    options: Options,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("store", &self.backend.is_some())
            .field("tokens", &self.tokens.is_some())
            .field("bootstrap", &self.bootstrap.is_some())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl ServerBuilder {
    /// The store flags and segments are read from and written to.
    pub fn store(mut self, store: Arc<dyn FlagStore>) -> Self {
        self.backend = Some(Backend::Store(store));
        self
    }

    /// No store: flags and segments are read from the client's snapshot, and every write
    /// answers 405 with `reason` (e.g. "flags come from the file flags.yaml").
    pub fn read_only(mut self, reason: impl Into<String>) -> Self {
        self.backend = Some(Backend::ReadOnly(reason.into()));
        self
    }

    /// Where tokens are checked and managed. Without one, only the bootstrap token works and
    /// the token routes answer 405.
    pub fn tokens(mut self, tokens: Arc<dyn TokenStore>) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// The client that evaluates (`/api/v1/evaluate`) and whose health `/health` reports;
    /// feed it with the store's provider so that it follows the store's changes.
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The evaluation statistics the client records into (give the client the same, e.g.
    /// with `feature::metrics::Tee`), for `/health`.
    pub fn evaluation_stats(mut self, stats: EvaluationStats) -> Self {
        self.stats = Some(stats);
        self
    }

    /// The Prometheus registry `/metrics` renders; the HTTP metrics are registered in it.
    /// Register the client's `PrometheusMetrics` there too. Default: a new registry.
    pub fn registry(mut self, registry: prometheus::Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// A token accepted as an admin token named `bootstrap` (`FEATURE_SERVER_ADMIN_TOKEN`),
    /// to create the first tokens; at least 16 characters. `None`: no bootstrap token.
    pub fn bootstrap_token(mut self, token: Option<String>) -> Self {
        self.bootstrap = token.filter(|t| !t.is_empty());
        self
    }

    /// Extra checks for `POST /api/v1/validate`, after the compiler's (e.g. the lints of
    /// `featurectl validate`: prerequisite cycles, missing prerequisites and segments).
    pub fn linter(mut self, linter: Linter) -> Self {
        self.linter = Some(linter);
        self
    }

    /// Largest request body accepted (default 1 MiB); larger ones answer 413.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.options.body_limit = bytes;
        self
    }

    /// Time limit of a request (default 30 s); a request over it answers 503.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.options.request_timeout = timeout;
        self
    }

    /// Origins allowed by CORS (`https://admin.example.com`); none (the default): no CORS
    /// headers at all.
    pub fn cors_origins(mut self, origins: Vec<String>) -> Self {
        self.options.cors_origins = origins;
        self
    }

    /// How long a verified token is trusted before it is checked against the store again
    /// (default 1 s; zero: every request). Revocations made through this server apply at once.
    pub fn token_cache_ttl(mut self, ttl: Duration) -> Self {
        self.options.token_cache_ttl = ttl;
        self
    }

    /// How often streams (`/sdk/v1/stream`, `/ofrep/v1/events`) send a heartbeat comment
    /// and check their token again (default 15 s; a revocation through this server ends
    /// streams at once).
    pub fn stream_heartbeat(mut self, every: Duration) -> Self {
        self.options.stream_heartbeat = every.max(Duration::from_millis(10));
        self
    }

    /// Builds the server.
    pub fn build(self) -> Result<Server, BuildError> {
        let backend = self.backend.ok_or(BuildError::NoSource)?;
        let client = self.client.ok_or(BuildError::NoClient)?;
        for o in &self.options.cors_origins {
            HeaderValue::from_str(o).map_err(|_| BuildError::BadOrigin(o.clone()))?;
        }
        let bootstrap = match self.bootstrap {
            Some(t) if t.len() < 16 => return Err(BuildError::WeakBootstrap),
            Some(t) => Some(auth::digest(&t)),
            None => None,
        };
        let registry = self.registry.unwrap_or_default();
        let http = metrics::HttpMetrics::new(&registry).map_err(BuildError::Metrics)?;
        Ok(Server {
            state: AppState(Arc::new(Inner {
                hub: Arc::new(sdk::Hub::new(client.clone(), self.options.stream_heartbeat)),
                backend,
                linter: self.linter,
                tokens: self.tokens,
                bootstrap,
                client,
                stats: self.stats.unwrap_or_default(),
                registry,
                http,
                cache: auth::TokenCache::default(),
                probe: tokio::sync::Mutex::new(None),
                options: self.options,
            })),
        })
    }
}

/// The flag server: [`Server::router`] is what to mount.
#[derive(Clone)]
pub struct Server {
    state: AppState,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("options", &self.state.options)
            .finish_non_exhaustive()
    }
}

/// One route of the server: method, path template and the scope it needs (`None`: no token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// The HTTP method.
    pub method: Method,
    /// The path template, as in the OpenAPI document (`/api/v1/flags/{key}`).
    pub path: &'static str,
    /// The scope a token needs; `None` for `/health`.
    pub scope: Option<Scope>,
}

struct Route {
    info: RouteInfo,
    handler: MethodRouter<AppState>,
}

fn table() -> Vec<Route> {
    use Scope::*;
    let r = |method: Method, path, scope, handler: MethodRouter<AppState>| Route {
        info: RouteInfo {
            method,
            path,
            scope,
        },
        handler,
    };
    vec![
        r(Method::GET, "/health", None, get(health::health)),
        r(Method::GET, "/metrics", Some(Read), get(health::metrics)),
        r(
            Method::GET,
            "/api/v1/openapi.json",
            Some(Evaluate),
            get(openapi::openapi_json),
        ),
        r(Method::GET, "/api/v1/flags", Some(Read), get(flags::list)),
        r(
            Method::GET,
            "/api/v1/flags/{key}",
            Some(Read),
            get(flags::get),
        ),
        r(
            Method::PUT,
            "/api/v1/flags/{key}",
            Some(Write),
            on(MethodFilter::PUT, flags::put),
        ),
        r(
            Method::DELETE,
            "/api/v1/flags/{key}",
            Some(Write),
            on(MethodFilter::DELETE, flags::delete),
        ),
        r(
            Method::POST,
            "/api/v1/flags/{key}/enable",
            Some(Write),
            on(MethodFilter::POST, flags::enable),
        ),
        r(
            Method::POST,
            "/api/v1/flags/{key}/disable",
            Some(Write),
            on(MethodFilter::POST, flags::disable),
        ),
        r(
            Method::GET,
            "/api/v1/flags/{key}/history",
            Some(Read),
            get(history::list),
        ),
        r(
            Method::POST,
            "/api/v1/flags/{key}/history/{id}/restore",
            Some(Write),
            on(MethodFilter::POST, history::restore),
        ),
        r(
            Method::GET,
            "/api/v1/segments",
            Some(Read),
            get(segments::list),
        ),
        r(
            Method::GET,
            "/api/v1/segments/{key}",
            Some(Read),
            get(segments::get),
        ),
        r(
            Method::PUT,
            "/api/v1/segments/{key}",
            Some(Write),
            on(MethodFilter::PUT, segments::put),
        ),
        r(
            Method::DELETE,
            "/api/v1/segments/{key}",
            Some(Write),
            on(MethodFilter::DELETE, segments::delete),
        ),
        r(
            Method::POST,
            "/api/v1/evaluate",
            Some(Evaluate),
            on(MethodFilter::POST, evaluate::evaluate),
        ),
        r(
            Method::POST,
            "/api/v1/validate",
            Some(Read),
            on(MethodFilter::POST, validate::validate),
        ),
        r(
            Method::GET,
            "/sdk/v1/flags",
            Some(Evaluate),
            get(sdk::flags),
        ),
        r(
            Method::GET,
            "/sdk/v1/stream",
            Some(Evaluate),
            get(sdk::stream),
        ),
        r(
            Method::POST,
            "/ofrep/v1/evaluate/flags/{key}",
            Some(Evaluate),
            on(MethodFilter::POST, ofrep::evaluate_flag),
        ),
        r(
            Method::POST,
            "/ofrep/v1/evaluate/flags",
            Some(Evaluate),
            on(MethodFilter::POST, ofrep::evaluate_bulk),
        ),
        r(Method::GET, "/ofrep/v1/events", None, get(ofrep::events)),
        r(
            Method::POST,
            "/api/v1/tokens",
            Some(Admin),
            on(MethodFilter::POST, tokens::create),
        ),
        r(
            Method::GET,
            "/api/v1/tokens",
            Some(Admin),
            get(tokens::list),
        ),
        r(
            Method::DELETE,
            "/api/v1/tokens/{id}",
            Some(Admin),
            on(MethodFilter::DELETE, tokens::revoke),
        ),
    ]
}

/// Every route of the router, with the scope it needs.
pub fn routes() -> Vec<RouteInfo> {
    table().into_iter().map(|r| r.info).collect()
}

/// The OpenAPI 3.1 document of the server (what `/api/v1/openapi.json` serves).
pub fn openapi() -> utoipa::openapi::OpenApi {
    openapi::ApiDoc::openapi()
}

impl Server {
    /// A builder.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The router: every route of [`routes`], with authentication, HTTP metrics, request
    /// logs (tracing), the body limit, the time limit and CORS (when origins are configured).
    pub fn router(&self) -> Router {
        let state = self.state.clone();
        let mut router: Router<AppState> = Router::new();
        for route in table() {
            let handler = match route.info.scope {
                None => route.handler,
                Some(scope) => route
                    .handler
                    .route_layer(axum::middleware::from_fn_with_state(
                        state.clone(),
                        move |s: axum::extract::State<AppState>,
                              req: axum::extract::Request,
                              next: axum::middleware::Next| {
                            auth::require(s, scope, req, next)
                        },
                    )),
            };
            router = router.route(route.info.path, handler);
        }
        let fallback_state = state.clone();
        let router = router
            .route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                metrics::track,
            ))
            .fallback(move |req: axum::extract::Request| async move {
                fallback_state
                    .http
                    .observe(req.method().as_str(), "unmatched", 404, 0.0);
                Problem::not_found(format!("no route {}", req.uri().path())).into_response()
            })
            .with_state(state.clone());
        let options = &state.options;
        let mut router = router
            .layer(DefaultBodyLimit::max(options.body_limit))
            .layer(TimeoutLayer::with_status_code(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                options.request_timeout,
            ))
            // Outside the time limit, so that its 503 is a problem document too.
            .layer(axum::middleware::map_response(problem::problems_everywhere))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                    .on_request(DefaultOnRequest::new().level(Level::DEBUG))
                    .on_response(DefaultOnResponse::new().level(Level::INFO)),
            );
        if !options.cors_origins.is_empty() {
            let origins: Vec<HeaderValue> = options
                .cors_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect();
            router = router.layer(
                CorsLayer::new()
                    .allow_origin(AllowOrigin::list(origins))
                    .allow_methods([
                        Method::GET,
                        Method::PUT,
                        Method::POST,
                        Method::DELETE,
                        Method::HEAD,
                    ])
                    .allow_headers([
                        axum::http::header::AUTHORIZATION,
                        axum::http::header::CONTENT_TYPE,
                        axum::http::header::IF_MATCH,
                        axum::http::header::IF_NONE_MATCH,
                        axum::http::HeaderName::from_static(auth::API_KEY),
                    ])
                    .expose_headers([axum::http::header::ETAG]),
            );
        }
        router
    }

    /// Checks a token as the routes do (bootstrap token, cache, token store) and says who it
    /// is, without a request: for front ends that keep the token server-side, such as the web
    /// UI's sign-in. Unknown or revoked tokens are a 401 problem, a failing store a 503.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, Problem> {
        auth::check_token(&self.state, token, "sign-in").await
    }

    /// The client the server evaluates with.
    pub fn client(&self) -> &Client {
        &self.state.client
    }

    /// The Prometheus registry `/metrics` renders.
    pub fn registry(&self) -> &prometheus::Registry {
        &self.state.registry
    }
}
