//! HTTP middleware for tower, hyper and axum: [`FlagsLayer`], and the axum extractor [`Flags`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{body::Body, routing::get, Router};
//! use feature::middleware::http::{Flags, FlagsLayer};
//! use feature::middleware::TrustedHeaders;
//! use feature::engine::{parse_document, Format};
//! use feature::{Client, MemoryProvider};
//! use http::{HeaderName, Request};
//! use tower::ServiceExt;
//!
//! let flags = "
//! flags:
//!   new-feature:
//!     type: bool
//!     default: false
//!     targets: [{variation: 1, values: [user-123]}]
//! ";
//! let provider = MemoryProvider::with_document(parse_document(flags, Format::Yaml)?.document);
//! let client = Client::builder().provider(provider).build().await?;
//!
//! let app = Router::new()
//!     .route("/", get(|flags: Flags| async move {
//!         // Three ways to the same answer: the extractor, ...
//!         let a = flags.bool("new-feature", false);
//!         // ... the task-local scope (anywhere inside the request's future), ...
//!         let b = feature::bool("new-feature", false);
//!         assert_eq!(a, b);
//!         if a { "new" } else { "old" }
//!     }))
//!     // ... and request extensions (`RequestFlags`), for plain tower services.
//!     // The user's identity comes from a gateway that authenticated the request (see
//!     // `TrustedHeaders` for what that assumes); the default would be anonymous.
//!     .layer(FlagsLayer::new(client).extractor(TrustedHeaders::new(HeaderName::from_static("x-user-id"))));
//!
//! let request = Request::get("/").header("x-user-id", "user-123").body(Body::empty())?;
//! let response = app.oneshot(request).await?;
//! let body = axum::body::to_bytes(response.into_body(), 1024).await?;
//! assert_eq!(body, "new");
//! # Ok(()) }
//! ```
//!
//! The layer is generic over request and response bodies, so it also wraps hyper services
//! (through `hyper_util::service::TowerToHyperService`) and any tower stack. See the
//! [module docs](super) for extractors, trust and the scope.

use super::{
    AsyncContextExtractor, ContextExtractor, Core, DevOverrides, Extractor, FlagsBody, Input,
    ResponseFuture, TrustedHeaders,
};
use crate::{Client, RequestFlags};
use ::http::request::Parts;
use ::http::{Request, Response, StatusCode};
use std::convert::Infallible;
use std::ops::Deref;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use tower_layer::Layer;
use tower_service::Service;

impl Input for Parts {
    #[inline]
    fn with<R>(parts: &mut Parts, f: impl FnOnce(&Self) -> R) -> R {
        f(parts)
    }
}

impl ContextExtractor<Parts> for TrustedHeaders {
    fn extract(&self, parts: &Parts) -> crate::Context {
        self.context(&parts.headers)
    }
}

/// A tower [`Layer`] that evaluates flags per request: builds the request's context, puts a
/// [`RequestFlags`] in the request's extensions and runs the inner service (and the response
/// body) in the flags scope.
///
/// The inner service must be `Clone` (as axum routes, tonic routers and most tower services
/// are). By default the context is anonymous ([`anonymous_context`](super::anonymous_context)):
/// nothing the client sends is trusted. Configure identity with [`FlagsLayer::extractor`] or
/// [`FlagsLayer::async_extractor`].
#[derive(Clone, Debug)]
pub struct FlagsLayer {
    core: Arc<Core<Parts>>,
}

impl FlagsLayer {
    /// A layer evaluating `client`'s flags, for anonymous contexts until an extractor is set.
    pub fn new(client: Client) -> Self {
        FlagsLayer {
            core: Arc::new(Core::new(client)),
        }
    }

    /// Builds the context synchronously from the request's parts: a closure
    /// `|parts: &http::request::Parts| -> Context` or a
    /// [`TrustedHeaders`].
    ///
    /// ```
    /// # async fn f(client: feature::Client) {
    /// use feature::middleware::http::FlagsLayer;
    /// use feature::Context;
    ///
    /// #[derive(Clone)]
    /// struct User { id: String, plan: String } // put there by your authentication layer
    ///
    /// let layer = FlagsLayer::new(client).extractor(|parts: &http::request::Parts| {
    ///     match parts.extensions.get::<User>() {
    ///         Some(user) => Context::new(user.id.clone()).with_attribute("plan", user.plan.clone()),
    ///         None => feature::middleware::anonymous_context(),
    ///     }
    /// });
    /// # let _ = layer; }
    /// ```
    pub fn extractor(mut self, extractor: impl ContextExtractor<Parts>) -> Self {
        Arc::make_mut(&mut self.core).extractor = Extractor::Sync(Arc::new(extractor));
        self
    }

    /// Builds the context asynchronously: a closure `|parts: &http::request::Parts|` returning
    /// a `'static` future (clone what it needs from the parts first). The inner service must
    /// be `Clone`; costs one allocation per request.
    ///
    /// ```
    /// # async fn f(client: feature::Client) {
    /// use feature::middleware::http::FlagsLayer;
    /// use feature::Context;
    ///
    /// async fn load_plan(user: &str) -> String { "pro".into() } // e.g. a cache lookup
    ///
    /// let layer = FlagsLayer::new(client).async_extractor(|parts: &http::request::Parts| {
    ///     let user = parts.extensions.get::<String>().cloned(); // set by your auth layer
    ///     async move {
    ///         match user {
    ///             Some(id) => { let plan = load_plan(&id).await; Context::new(id).with_attribute("plan", plan) }
    ///             None => feature::middleware::anonymous_context(),
    ///         }
    ///     }
    /// });
    /// # let _ = layer; }
    /// ```
    pub fn async_extractor(mut self, extractor: impl AsyncContextExtractor<Parts>) -> Self {
        Arc::make_mut(&mut self.core).extractor = Extractor::Async(Arc::new(extractor));
        self
    }

    /// **Development only**: lets every request override flags for itself (see
    /// [`DevOverrides`]). Off unless called; never call it in production.
    pub fn dev_overrides(mut self, overrides: DevOverrides) -> Self {
        Arc::make_mut(&mut self.core).set_dev(overrides);
        self
    }
}

impl<S> Layer<S> for FlagsLayer {
    type Service = FlagsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FlagsService {
            inner,
            core: self.core.clone(),
        }
    }
}

/// The service [`FlagsLayer`] makes.
#[derive(Clone, Debug)]
pub struct FlagsService<S> {
    inner: S,
    core: Arc<Core<Parts>>,
}

impl<S> FlagsService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, B, ResBody> Service<Request<B>> for FlagsService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<FlagsBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.core.call(&mut self.inner, req)
    }
}

/// The axum extractor: the request's flags (`flags.bool("new-feature", false)`).
///
/// Dereferences to [`RequestFlags`]. Needs [`FlagsLayer`] on the route; without it the
/// request is rejected with [`MissingFlags`] (500). `Option<Flags>` never rejects.
#[derive(Clone, Debug)]
pub struct Flags(pub RequestFlags);

impl Flags {
    /// The request's flags.
    pub fn into_inner(self) -> RequestFlags {
        self.0
    }
}

impl Deref for Flags {
    type Target = RequestFlags;

    fn deref(&self) -> &RequestFlags {
        &self.0
    }
}

/// The rejection of [`Flags`] when [`FlagsLayer`] is not installed: a server-side mistake,
/// answered with `500 Internal Server Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no feature flags in the request: FlagsLayer is not installed on this route")]
pub struct MissingFlags;

impl axum_core::response::IntoResponse for MissingFlags {
    fn into_response(self) -> axum_core::response::Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

impl<S: Send + Sync> axum_core::extract::FromRequestParts<S> for Flags {
    type Rejection = MissingFlags;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<RequestFlags>()
            .cloned()
            .map(Flags)
            .ok_or(MissingFlags)
    }
}

impl<S: Send + Sync> axum_core::extract::OptionalFromRequestParts<S> for Flags {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<RequestFlags>().cloned().map(Flags))
    }
}
