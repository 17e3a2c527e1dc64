//! An exporter posting batches to an HTTP endpoint (crate feature `webhook`).
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use feature::analytics::exporters::webhook::{HttpExporter, RetryPolicy};
//! use std::time::Duration;
//!
//! let exporter = HttpExporter::new("http://127.0.0.1:9000/events")?
//!     .header("authorization", "Bearer secret")?
//!     .timeout(Duration::from_secs(5))
//!     .retry(RetryPolicy { max_attempts: 6, ..RetryPolicy::default() });
//! # let _ = exporter; Ok(()) }
//! ```
//!
//! Each batch is one `POST` of a JSON array of [`AnalyticsEvent`]s (`content-type:
//! application/json`). A `2xx` answer delivers it. Connection errors, timeouts, `408`, `429`
//! and `5xx` are retried with exponential backoff until [`RetryPolicy::max_attempts`] is
//! spent; only then is the batch reported failed. Other `4xx` answers fail at once (the
//! request itself is wrong). [`HttpExporter::new`] speaks HTTPS (rustls, trusting the
//! system's root certificates) and plain HTTP; [`HttpExporter::with_tls`] takes any rustls
//! client configuration (a private CA, a client certificate), [`HttpExporter::with_connector`]
//! any connector.
//!
//! Every request carries an `Idempotency-Key` header, the same for every attempt of one batch
//! and different for each batch, and every event its own `id`: an endpoint that saw the key
//! (or the ids) before answers `2xx` and ignores the repeat, so a retry after a timeout — when
//! the first attempt may have arrived — delivers nothing twice.
//!
//! Events carry user data and the `authorization` header a secret, so plain `http://` URLs are
//! refused unless the host is loopback (`localhost`, `127.0.0.0/8`, `[::1]`), or plain HTTP is
//! allowed explicitly: [`HttpExporter::with_options`] with `allow_insecure_http`, or the
//! environment variable `FEATURE_WEBHOOK_ALLOW_INSECURE_HTTP=true`.

use super::{AnalyticsEvent, AnalyticsExporter, ExportError};
use crate::analytics::event::new_event_id;
use async_trait::async_trait;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// The header naming a batch: the same on every attempt to deliver it.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// How failed deliveries are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per batch, the first included (default 5; at least 1).
    pub max_attempts: u32,
    /// Wait before the first retry (default 200 ms).
    pub initial_backoff: Duration,
    /// Factor applied to the wait after each retry (default 2).
    pub multiplier: f64,
    /// Longest wait between attempts (default 10 s).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            multiplier: 2.0,
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (attempt counts from 1).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .multiplier
            .max(1.0)
            .powi(attempt.saturating_sub(1).min(64) as i32);
        let secs = (self.initial_backoff.as_secs_f64() * exp).min(self.max_backoff.as_secs_f64());
        Duration::from_secs_f64(secs.max(0.0))
    }
}

/// The URL or a header given to [`HttpExporter`] is invalid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookConfigError {
    /// The URL cannot be parsed or is not `http`/`https`.
    #[error("invalid webhook URL {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A header name or value is invalid.
    #[error("invalid header {0:?}")]
    Header(String),
    /// The TLS configuration was refused.
    #[error("TLS configuration: {0}")]
    Tls(#[source] rustls::Error),
    /// An `http://` URL to a host that is not loopback, and plain HTTP was not allowed.
    #[error(
        "refusing plain http:// to {host:?}: events would cross the network unencrypted; use \
         https://, or allow it explicitly (allow_insecure_http, or \
         {ALLOW_INSECURE_HTTP_ENV}=true)"
    )]
    InsecureUrl {
        /// The host.
        host: String,
    },
}

/// Environment variable that, set to `true` (or `1`), lets [`HttpExporter::new`] and
/// [`HttpExporter::with_connector`] post over plain `http://` to hosts that are not loopback.
pub const ALLOW_INSECURE_HTTP_ENV: &str = "FEATURE_WEBHOOK_ALLOW_INSECURE_HTTP";

fn insecure_http_allowed_by_env() -> bool {
    std::env::var(ALLOW_INSECURE_HTTP_ENV)
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}

/// Whether `host` (as in a URL: IPv6 in brackets) is this machine's loopback.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return ip.is_loopback();
    }
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Request(#[source] hyper_util::client::legacy::Error),
    #[error("endpoint answered {0}")]
    Status(StatusCode),
    #[error("cannot build the request: {0}")]
    Build(#[source] http::Error),
}

impl AttemptError {
    fn retryable(&self) -> bool {
        match self {
            AttemptError::Timeout(_) | AttemptError::Request(_) => true,
            AttemptError::Status(s) => {
                s.is_server_error()
                    || *s == StatusCode::TOO_MANY_REQUESTS
                    || *s == StatusCode::REQUEST_TIMEOUT
            }
            AttemptError::Build(_) => false,
        }
    }
}

/// Posts batches of events to a webhook. See the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct HttpExporter<C = HttpsConnector<HttpConnector>> {
    uri: Uri,
    headers: HeaderMap,
    timeout: Duration,
    retry: RetryPolicy,
    client: Client<C, Full<Bytes>>,
}

impl HttpExporter<HttpsConnector<HttpConnector>> {
    /// An exporter posting to `url` (timeout 10 s, [`RetryPolicy::default`]): `https://`,
    /// trusting the system's root certificates; `http://` only to a loopback host, or to
    /// another when [`ALLOW_INSECURE_HTTP_ENV`] allows it.
    pub fn new(url: &str) -> Result<Self, WebhookConfigError> {
        Self::with_system_roots(url, insecure_http_allowed_by_env())
    }

    /// [`HttpExporter::new`] with plain `http://` to other hosts than loopback allowed or not
    /// as `allow_insecure_http` says (the environment is not read).
    pub(crate) fn with_system_roots(
        url: &str,
        allow_insecure_http: bool,
    ) -> Result<Self, WebhookConfigError> {
        let (roots, found) = super::tls::system_roots();
        if found == 0 {
            tracing::warn!(target: "feature::analytics", "no root certificate found in the system's store: https webhooks will fail (use HttpExporter::with_tls)");
        }
        let config = super::tls::client_config(roots).map_err(WebhookConfigError::Tls)?;
        Self::with_options(url, Self::connector(config), allow_insecure_http)
    }

    /// An exporter posting to `url` over HTTPS with this TLS configuration (e.g. trusting a
    /// private CA, or with a client certificate); `http://` as [`HttpExporter::new`].
    pub fn with_tls(url: &str, tls: rustls::ClientConfig) -> Result<Self, WebhookConfigError> {
        Self::with_connector(url, Self::connector(tls))
    }

    /// An HTTPS (or loopback HTTP) connector with this TLS configuration.
    fn connector(tls: rustls::ClientConfig) -> HttpsConnector<HttpConnector> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        http.set_nodelay(true);
        http.enforce_http(false);
        hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http)
    }
}

impl<C> HttpExporter<C>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    /// An exporter using `connector` (e.g. a TLS connector for `https` URLs). A plain
    /// `http://` URL must name a loopback host, unless [`ALLOW_INSECURE_HTTP_ENV`] is `true`.
    pub fn with_connector(url: &str, connector: C) -> Result<Self, WebhookConfigError> {
        Self::with_options(url, connector, insecure_http_allowed_by_env())
    }

    /// Like [`HttpExporter::with_connector`], saying explicitly whether plain `http://` to a
    /// host that is not loopback is allowed (`allow_insecure_http`; the environment is not
    /// read). Loopback `http://` is always allowed.
    pub fn with_options(
        url: &str,
        connector: C,
        allow_insecure_http: bool,
    ) -> Result<Self, WebhookConfigError> {
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| WebhookConfigError::Url {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        match uri.scheme_str() {
            Some("http") | Some("https") if uri.host().is_some() => {}
            _ => {
                return Err(WebhookConfigError::Url {
                    url: url.to_owned(),
                    reason: "expected an absolute http:// or https:// URL".to_owned(),
                })
            }
        }
        let host = uri.host().unwrap_or_default();
        if uri.scheme_str() == Some("http") && !allow_insecure_http && !is_loopback_host(host) {
            return Err(WebhookConfigError::InsecureUrl {
                host: host.to_owned(),
            });
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(HttpExporter {
            uri,
            headers,
            timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// Adds a header to every request (e.g. `authorization`). Its value is treated as a
    /// secret: `Debug` output shows `Sensitive` instead.
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, WebhookConfigError> {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| WebhookConfigError::Header(name.to_owned()))?;
        let mut v = HeaderValue::from_str(value)
            .map_err(|_| WebhookConfigError::Header(name.to_owned()))?;
        v.set_sensitive(true);
        self.headers.insert(n, v);
        Ok(self)
    }

    /// Deadline of one attempt, answer included (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How failures are retried.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    async fn attempt(&self, body: Bytes, key: &HeaderValue) -> Result<(), AttemptError> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .body(Full::new(body))
            .map_err(AttemptError::Build)?;
        req.headers_mut().extend(self.headers.clone());
        req.headers_mut()
            .insert(HeaderName::from_static(IDEMPOTENCY_KEY), key.clone());
        let call = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(AttemptError::Request)?;
            let status = resp.status();
            // Drain the answer so the connection can be reused.
            let _ = resp.into_body().collect().await;
            if status.is_success() {
                Ok(())
            } else {
                Err(AttemptError::Status(status))
            }
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| AttemptError::Timeout(self.timeout))?
    }
}

#[async_trait]
impl<C> AnalyticsExporter for HttpExporter<C>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    async fn export(&self, events: &[AnalyticsEvent]) -> Result<(), ExportError> {
        if events.is_empty() {
            return Ok(());
        }
        let body =
            Bytes::from(
                serde_json::to_vec(events).map_err(|source| ExportError::Encode {
                    exporter: "webhook",
                    source,
                })?,
            );
        // One key per batch, the same for each attempt: the endpoint can drop a repeat.
        let key = HeaderValue::from_str(&new_event_id())
            .unwrap_or_else(|_| HeaderValue::from_static("invalid"));
        let max = self.retry.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            match self.attempt(body.clone(), &key).await {
                Ok(()) => return Ok(()),
                Err(e) if e.retryable() && attempt < max => {
                    let wait = self.retry.backoff(attempt);
                    tracing::debug!(target: "feature::analytics", attempt, ?wait, "webhook delivery failed, retrying: {e}");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => {
                    return Err(ExportError::Delivery {
                        exporter: "webhook",
                        attempts: attempt,
                        source: Box::new(e),
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            multiplier: 2.0,
            max_backoff: Duration::from_millis(500),
        };
        let waits: Vec<u128> = (1..=5).map(|a| p.backoff(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
    }

    #[test]
    fn rejects_bad_urls() {
        assert!(HttpExporter::new("ftp://x/").is_err());
        assert!(HttpExporter::new("not a url").is_err());
        assert!(HttpExporter::new("/relative").is_err());
        assert!(HttpExporter::new("http://127.0.0.1:1/e").is_ok());
    }

    #[test]
    fn plain_http_is_refused_unless_loopback_or_allowed() {
        for url in [
            "http://events.example.com/e",
            "http://10.0.0.7:8080/e",
            "http://[2001:db8::1]/e",
            "http://localhost.example.com/e",
        ] {
            let e = HttpExporter::with_options(url, HttpConnector::new(), false);
            assert!(
                matches!(e, Err(WebhookConfigError::InsecureUrl { .. })),
                "{url}: {e:?}"
            );
            assert!(HttpExporter::with_options(url, HttpConnector::new(), true).is_ok());
        }
        for url in [
            "http://127.0.0.1:9/e",
            "http://127.8.9.10/e",
            "http://localhost:8080/e",
            "http://LOCALHOST/e",
            "http://[::1]:9/e",
            "https://events.example.com/e",
        ] {
            assert!(
                HttpExporter::with_options(url, HttpConnector::new(), false).is_ok(),
                "{url}"
            );
        }
    }

    #[test]
    fn the_environment_can_allow_plain_http() {
        // The only test that touches this variable.
        std::env::set_var(ALLOW_INSECURE_HTTP_ENV, "true");
        let allowed = HttpExporter::new("http://events.example.com/e");
        std::env::set_var(ALLOW_INSECURE_HTTP_ENV, "false");
        let refused = HttpExporter::new("http://events.example.com/e");
        std::env::remove_var(ALLOW_INSECURE_HTTP_ENV);
        assert!(allowed.is_ok(), "{allowed:?}");
        assert!(matches!(
            refused,
            Err(WebhookConfigError::InsecureUrl { .. })
        ));
    }
}
