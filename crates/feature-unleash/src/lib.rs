//! # feature-unleash
//!
//! An [Unleash](https://www.getunleash.io/) provider for the `feature` toolkit: feature toggles
//! fetched from an Unleash server's client API and evaluated in-process by Unleash's own
//! engine, Yggdrasil, behind the toolkit's [`Engine`](feature_core::provider::Engine) trait.
//! Evaluations never wait on the network: they read the toggles of the last successful fetch.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use feature_core::provider::{Engine, Provider};
//! use feature_core::{Context, ValueKind};
//! use feature_unleash::UnleashProvider;
//! use std::time::Duration;
//!
//! let provider = UnleashProvider::builder(
//!     "http://127.0.0.1:4242/api",
//!     "default:development.unleash-insecure-client-token",
//! )
//! .app_name("checkout")
//! .refresh_interval(Duration::from_secs(15))
//! .build()?;
//! // Hand it to the client: `feature::Client::builder().provider(provider).build().await?`
//! // starts it and sends every evaluation to its engine. Driven by hand, with a test sink:
//! provider.start(feature_store::testing::RecordingSink::new()).await?;
//! let engine = provider.unleash_engine();
//! let user = Context::new("user-123").with_attribute("plan", "pro");
//! let on = engine.evaluate("new-checkout", &user, ValueKind::Bool, &false.into());
//! println!("{} ({:?})", on.value, on.reason);
//! # Ok(()) }
//! ```
//!
//! ## Protocol
//!
//! - `GET {url}/client/features` with `Authorization: <client token>`, `UNLEASH-APPNAME`,
//!   `UNLEASH-INSTANCEID`, `UNLEASH-CONNECTION-ID`, `UNLEASH-SDK` and
//!   `Unleash-Client-Spec` headers, every [`UnleashBuilder::refresh_interval`] (15 s by
//!   default), with `If-None-Match` carrying the last `ETag`: `304 Not Modified` changes
//!   nothing, and neither does a `200` whose toggles equal the ones loaded (nothing is
//!   published). Delta-API bodies (`{"events": [...]}`) are understood too.
//! - `POST {url}/client/register` once at start, best effort (failures are counted, never
//!   fatal).
//! - `POST {url}/client/metrics` every [`UnleashBuilder::usage_interval`] (60 s by default)
//!   and at `close()`: per toggle, how often it was on and off and which variants were
//!   served, as Unleash's SDKs report usage; a report that fails is kept for the next one.
//!
//! ## Status and failures
//!
//! | situation | what happens |
//! |---|---|
//! | first fetch succeeds | `Ready`; an empty snapshot is published so the client knows toggles arrived |
//! | server refuses the client at start (401, 403, 404) | `start` fails with [`ProviderError::Backend`](feature_core::provider::ProviderError::Backend) |
//! | server unreachable at start | retried with backoff for [`UnleashBuilder::start_timeout`]; then `start` returns `Ok`, the provider is `Unavailable` and every evaluation serves the caller's default with `ERROR`/`CLIENT_NOT_READY` until a fetch succeeds |
//! | server refuses the client later (401, 403, 404: a revoked token) | fetching stops, as in Unleash's SDKs; the last good toggles keep serving; `Degraded` with [`UnleashError::Refused`] |
//! | backup file ([`UnleashBuilder::backup_file`]) or bootstrap toggles ([`UnleashBuilder::bootstrap_json`]) | loaded at start before the first fetch (the backup first); a server out of reach at start leaves them serving, `Degraded`; the backup is rewritten after each fetch that brings changes, and after any fetch while it does not hold the toggles loaded (bootstrap toggles the server repeats, a write that failed) |
//! | a later fetch fails | the last good toggles keep serving; `Degraded` with the error; retries back off from the refresh interval up to [`UnleashBuilder::backoff_max`] with jitter; `Ready` again on the next success |
//! | some toggles do not compile | they evaluate as off; `Degraded` with [`UnleashError::Compile`] |
//! | toggles use a custom strategy with no implementation ([`UnleashBuilder::strategy`]) | a warning (and [`UnleashEngine::unimplemented_strategies`]); an evaluation the missing strategy leaves off serves the caller's default with `ERROR`/`MALFORMED_FLAG`; the status stays as it is (the toggle may be meant for other applications) |
//!
//! Every fetch reports its latency as `record_provider_latency("unleash", "fetch", ..)` and
//! each failure as `record_provider_error("unleash", "fetch", class)` with class `timeout`,
//! `connect`, `http`, `status`, `parse` or `compile`.
//!
//! ## Evaluation
//!
//! Toggles that changed are named to the client's subscribers (`Sink::changed`); toggles with
//! `impressionData: true` send impression events to the client's event sink (`Sink::event`, see
//! [`UnleashEngine::set_impression_sink`]); listings (`all_flags`) are not counted as usage.
//! Extra headers ([`UnleashBuilder::header`]) and project filters ([`UnleashBuilder::project`])
//! apply to every request.
//!
//! How a [`Context`](feature_core::Context) becomes Unleash's context, and how toggles and
//! variants become values and reasons, is tabled on [`UnleashEngine`]. The engine passes every
//! suite of Unleash's client specification (see the crate's conformance test).
//!
//! ## Crate features
//!
//! | feature | what it adds |
//! |---|---|
//! | (none) | plain-HTTP servers only (a local relay such as Unleash Edge, a test server) |
//! | `rustls` | `https://` URLs, with rustls and the webpki root certificates |
#![deny(missing_docs)]

mod backup;
mod engine;
mod provider;
mod strategies;

pub use engine::{CompileWarning, Payload, UnleashEngine, Variant};
pub use provider::{UnleashBuilder, UnleashProvider};
pub use strategies::StrategyFn;
/// Unleash's engine crate, for its context and update types.
pub use unleash_yggdrasil as yggdrasil;

/// Errors of the Unleash provider: configuration, requests and responses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnleashError {
    /// The URL does not parse.
    #[error("invalid Unleash URL {url:?}: {source}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// Why it does not parse.
        #[source]
        source: url::ParseError,
    },
    /// The URL is neither `http` nor `https`.
    #[error("unsupported Unleash URL {url:?}: only http:// and https:// are supported")]
    UnsupportedScheme {
        /// The URL given.
        url: String,
    },
    /// An `https://` URL without the `rustls` crate feature.
    #[error("{url:?} needs HTTPS: enable the `rustls` feature of feature-unleash")]
    HttpsUnsupported {
        /// The URL given.
        url: String,
    },
    /// The application name is empty.
    #[error("the Unleash application name is empty")]
    EmptyAppName,
    /// A value cannot be sent as a header (control characters, non-ASCII text).
    #[error("invalid {name} header value")]
    InvalidHeader {
        /// The header.
        name: &'static str,
        /// Why.
        #[source]
        source: reqwest::header::InvalidHeaderValue,
    },
    /// A custom header ([`UnleashBuilder::header`]) whose name or value cannot be sent.
    #[error("invalid custom header {name:?}")]
    InvalidCustomHeader {
        /// The header's name.
        name: String,
    },
    /// The backup or bootstrap file cannot be read or written.
    #[error("toggle file {path:?}: {source}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The request failed: connection, timeout, body.
    #[error("request failed: {0}")]
    Http(#[source] reqwest::Error),
    /// The server answered with an unexpected status.
    #[error("{url} answered {status}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The URL requested.
        url: String,
    },
    /// A response body is larger than
    /// [`max_body_size`](crate::UnleashBuilder::max_body_size); it was not read whole, and the
    /// last good toggles keep serving.
    #[error("{url} sent a body over {limit} bytes")]
    BodyTooLarge {
        /// The URL requested.
        url: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// A request timeout of zero (every request would fail).
    #[error("the Unleash {what} must be longer than zero")]
    ZeroDuration {
        /// Which setting.
        what: &'static str,
    },
    /// The body is not a client API response.
    #[error("invalid client API response: {0}")]
    Parse(#[source] serde_json::Error),
    /// The server refused this client (401, 403: a wrong token; 404: a wrong URL); fetching
    /// stopped, the last good toggles keep serving.
    #[error("{url} answered {status}: the server refused this client, fetching stopped (check the token and URL)")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The URL requested.
        url: String,
    },
    /// Toggles that Yggdrasil could not compile (they evaluate as off).
    #[error("{} toggle(s) do not compile, first: {}", .0.len(), .0.first().map(|w| format!("{}: {}", w.toggle, w.message)).unwrap_or_default())]
    Compile(Vec<CompileWarning>),
}
