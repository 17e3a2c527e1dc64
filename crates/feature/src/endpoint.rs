//! HTTP endpoints (crate feature `http-endpoints`): one tower `Service` that answers every
//! request with a response rendered when the request arrives, whatever its method, path or
//! body. Its two uses:
//!
//! - [`HealthService`](crate::health::HealthService) on `/health`: the health report as JSON;
//! - `metrics::prometheus::MetricsService` on `/metrics` (with the `prometheus` feature): a
//!   registry in the Prometheus text format.
//!
//! Both are [`EndpointService`]s over what they render, usable as axum routes
//! (`Router::route_service`) or with hyper; implement [`Respond`] to serve something else the
//! same way.

use bytes::Bytes;
use http_body_util::Full;
use std::convert::Infallible;
use std::future::{ready, Ready};
use std::task::{Context, Poll};

/// What an [`EndpointService`] answers: a complete response, rendered for each request.
pub trait Respond {
    /// The response to a request, rendered now.
    fn respond(&self) -> http::Response<Full<Bytes>>;
}

/// A tower `Service` answering every request with `R`'s [`Respond::respond`]. Cheap to clone
/// when `R` is.
#[derive(Debug, Clone)]
pub struct EndpointService<R> {
    source: R,
}

impl<R> EndpointService<R> {
    /// A service answering `source`'s responses.
    pub fn new(source: R) -> Self {
        EndpointService { source }
    }

    /// What the service renders.
    pub fn get_ref(&self) -> &R {
        &self.source
    }
}

impl<R: Respond> EndpointService<R> {
    /// The response to any request.
    pub fn respond(&self) -> http::Response<Full<Bytes>> {
        self.source.respond()
    }
}

impl<R: Respond, B> tower_service::Service<http::Request<B>> for EndpointService<R> {
    type Response = http::Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: http::Request<B>) -> Self::Future {
        ready(Ok(self.source.respond()))
    }
}

/// A response with status `code`, `body` and `headers`.
pub(crate) fn response(
    code: http::StatusCode,
    body: impl Into<Bytes>,
    headers: &[(http::HeaderName, &'static str)],
) -> http::Response<Full<Bytes>> {
    let mut resp = http::Response::new(Full::new(body.into()));
    *resp.status_mut() = code;
    for (name, value) in headers {
        resp.headers_mut()
            .insert(name, http::HeaderValue::from_static(value));
    }
    resp
}
