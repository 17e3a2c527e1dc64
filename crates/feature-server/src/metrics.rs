//! HTTP metrics (requests and latencies by route template and status, authentication
//! failures), registered in the server's Prometheus registry beside the client's metrics.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `feature_server_http_requests_total` | counter | `method`, `route`, `status` |
//! | `feature_server_http_request_duration_seconds` | histogram | `method`, `route`, `status` |
//! | `feature_server_auth_failures_total` | counter | `reason` (`missing`, `malformed`, `invalid`, `scope`, `store`) |
//!
//! `route` is the route's template (`/api/v1/flags/{key}`), never the path a client sent, so
//! the number of series is bounded; requests that match no route count as `unmatched`.

use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use std::time::Instant;

#[derive(Clone)]
pub(crate) struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    auth_failures: IntCounterVec,
}

impl HttpMetrics {
    pub(crate) fn new(registry: &Registry) -> Result<HttpMetrics, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "feature_server_http_requests_total",
                "HTTP requests answered, by route template and status.",
            ),
            &["method", "route", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "feature_server_http_request_duration_seconds",
                "Time to answer an HTTP request, by route template and status.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["method", "route", "status"],
        )?;
        let auth_failures = IntCounterVec::new(
            Opts::new(
                "feature_server_auth_failures_total",
                "Requests refused by authentication or authorisation, by reason.",
            ),
            &["reason"],
        )?;
        for reason in ["missing", "malformed", "invalid", "scope", "store"] {
            auth_failures.with_label_values(&[reason]);
        }
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(auth_failures.clone()))?;
        Ok(HttpMetrics {
            requests,
            duration,
            auth_failures,
        })
    }

    pub(crate) fn auth_failure(&self, reason: &'static str) {
        self.auth_failures.with_label_values(&[reason]).inc();
    }

    pub(crate) fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [method_label(method), route, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.duration.with_label_values(&labels).observe(seconds);
    }
}

/// The method as a label: the standard ones by name, anything else `other`, so that requests
/// with made-up methods (which need no token to reach a route's 405) cannot create series.
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// Middleware (outermost): times the request and counts it by route template and status.
pub(crate) async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let resp = next.run(req).await;
    state.http.observe(
        &method,
        &route,
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}
