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
//! request itself is wrong). Speaks plain HTTP by default; for HTTPS give a TLS connector (for
//! example `hyper-rustls`'s) to [`HttpExporter::with_connector`].

use super::{AnalyticsEvent, AnalyticsExporter, ExportError};
use async_trait::async_trait;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

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
pub struct HttpExporter<C = HttpConnector> {
    uri: Uri,
    headers: HeaderMap,
    timeout: Duration,
    retry: RetryPolicy,
    client: Client<C, Full<Bytes>>,
}

impl HttpExporter<HttpConnector> {
    /// An exporter posting to `url` over plain HTTP (timeout 10 s, [`RetryPolicy::default`]).
    pub fn new(url: &str) -> Result<Self, WebhookConfigError> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.set_nodelay(true);
        Self::with_connector(url, connector)
    }
}

impl<C> HttpExporter<C>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    /// An exporter using `connector` (e.g. a TLS connector for `https` URLs).
    pub fn with_connector(url: &str, connector: C) -> Result<Self, WebhookConfigError> {
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

    async fn attempt(&self, body: Bytes) -> Result<(), AttemptError> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .body(Full::new(body))
            .map_err(AttemptError::Build)?;
        req.headers_mut().extend(self.headers.clone());
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
        let max = self.retry.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            match self.attempt(body.clone()).await {
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
}
