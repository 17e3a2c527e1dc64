//! [`FlagsLayer`] and [`FlagsService`]: one layer for HTTP and gRPC servers, generic over what
//! its extractors read ([`ExtractorInput`]).

use super::extract::{Extractor, ExtractorInput};
use super::{anonymous_context, ContextExtractor, DevOverrides, FlagsBody, ResponseFuture};
use crate::{Client, Context, RequestFlags};
use ::http::request::Parts;
use ::http::{Request, Response};
use std::future::Future;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// What a layer is configured with; shared by its services.
pub(crate) struct Core<I: ?Sized> {
    pub(crate) client: Client,
    pub(crate) extractor: Extractor<I>,
    pub(crate) dev: Option<Arc<DevOverrides>>,
}

impl<I: ?Sized> Clone for Core<I> {
    fn clone(&self) -> Self {
        Core {
            client: self.client.clone(),
            extractor: self.extractor.clone(),
            dev: self.dev.clone(),
        }
    }
}

impl<I: ?Sized> std::fmt::Debug for Core<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlagsLayer")
            .field("client", &self.client)
            .field("extractor", &self.extractor.name())
            .field("dev_overrides", &self.dev)
            .finish()
    }
}

impl<I: ExtractorInput> Core<I> {
    pub(crate) fn new(client: Client) -> Self {
        Core {
            client,
            extractor: Extractor::Anonymous,
            dev: None,
        }
    }

    pub(crate) fn set_dev(&mut self, dev: DevOverrides) {
        tracing::warn!(
            header = ?dev.header,
            query = ?dev.query,
            "feature: per-request flag overrides are ON: any client can choose its flags; for development only"
        );
        self.dev = Some(Arc::new(dev));
    }

    /// The layer's work for one request: context, extensions, scope, then the inner call.
    fn call<S, B, ResBody>(&self, inner: &mut S, req: Request<B>) -> ResponseFuture<S, B>
    where
        S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    {
        let (mut parts, body) = req.into_parts();
        let overrides = match &self.dev {
            None => Vec::new(),
            Some(dev) => dev.read(&parts.headers, parts.uri.query()),
        };
        let context = match &self.extractor {
            Extractor::Anonymous => anonymous_context(),
            Extractor::Sync(e) => I::with(&mut parts, |input| e.extract(input)),
            Extractor::Async(e) => {
                let context = I::with(&mut parts, |input| e.extract(input));
                // The ready service goes into the future; a fresh clone stays here.
                let fresh = inner.clone();
                let ready = std::mem::replace(inner, fresh);
                return ResponseFuture::extracting(
                    context,
                    Request::from_parts(parts, body),
                    ready,
                    self.client.clone(),
                    overrides,
                );
            }
        };
        let flags = RequestFlags::new(self.client.clone(), context).with_overrides(overrides);
        parts.extensions.insert(flags.clone());
        ResponseFuture::running(flags, inner, Request::from_parts(parts, body))
    }
}

/// A tower [`Layer`] that evaluates flags per request: builds the request's context, puts a
/// [`RequestFlags`] in the request's extensions and runs the inner service (and the response
/// body) in the flags scope.
///
/// One type for both kinds of server; `I` is what extractors read ([`ExtractorInput`]):
///
/// - HTTP (tower, hyper, axum): `FlagsLayer::new`, `FlagsLayer<http::request::Parts>` (the
///   default, plain `FlagsLayer`);
/// - gRPC (tonic): `FlagsLayer::new_for_grpc` (crate feature `grpc`),
///   `FlagsLayer<tonic::Request<()>>`, for `Server::builder().layer(..)`.
///
/// The inner service must be `Clone` (as axum routes, tonic routers and most tower services
/// are). By default the context is anonymous ([`anonymous_context`]): nothing the client sends
/// is trusted. Configure identity with [`FlagsLayer::extractor`] or
/// [`FlagsLayer::async_extractor`].
pub struct FlagsLayer<I = Parts> {
    core: Arc<Core<I>>,
}

impl<I> Clone for FlagsLayer<I> {
    fn clone(&self) -> Self {
        FlagsLayer {
            core: self.core.clone(),
        }
    }
}

impl<I> std::fmt::Debug for FlagsLayer<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlagsLayer")
            .field("core", &self.core)
            .finish()
    }
}

#[cfg(feature = "http")]
impl FlagsLayer {
    /// An HTTP layer evaluating `client`'s flags, for anonymous contexts until an extractor is
    /// set.
    pub fn new(client: Client) -> Self {
        FlagsLayer::with_input(client)
    }
}

impl<I: ExtractorInput> FlagsLayer<I> {
    /// A layer whose extractors read `I`.
    pub(crate) fn with_input(client: Client) -> Self {
        FlagsLayer {
            core: Arc::new(Core::new(client)),
        }
    }

    /// Builds the context synchronously from the request with a closure over the extractor's
    /// input (`http::request::Parts` for HTTP, `tonic::Request<()>` for gRPC, where headers
    /// are metadata); the argument's type needs no annotation.
    ///
    /// ```
    /// # #[cfg(feature = "http")]
    /// # async fn f(client: feature::Client) {
    /// use feature::middleware::FlagsLayer;
    /// use feature::Context;
    ///
    /// #[derive(Clone)]
    /// struct User { id: String, plan: String } // put there by your authentication layer
    ///
    /// let layer = FlagsLayer::new(client).extractor(|parts| {
    ///     match parts.extensions.get::<User>() {
    ///         Some(user) => Context::new(user.id.clone()).with_attribute("plan", user.plan.clone()),
    ///         None => feature::middleware::anonymous_context(),
    ///     }
    /// });
    /// # let _ = layer; }
    /// ```
    pub fn extractor<F>(self, extractor: F) -> Self
    where
        F: Fn(&I) -> Context + Send + Sync + 'static,
    {
        self.context_extractor(extractor)
    }

    /// Builds the context synchronously with any [`ContextExtractor`]: a
    /// [`TrustedHeaders`](super::TrustedHeaders) (e.g. [`TrustedHeaders::gateway`](super::TrustedHeaders::gateway))
    /// or a type of your own.
    pub fn context_extractor(mut self, extractor: impl ContextExtractor<I>) -> Self {
        Arc::make_mut(&mut self.core).extractor = Extractor::Sync(Arc::new(extractor));
        self
    }

    /// Builds the context asynchronously: a closure over the extractor's input returning a
    /// `'static` future (clone what it needs from the input first). The inner service must be `Clone`;
    /// costs one allocation per request.
    ///
    /// ```
    /// # #[cfg(feature = "http")]
    /// # async fn f(client: feature::Client) {
    /// use feature::middleware::FlagsLayer;
    /// use feature::Context;
    ///
    /// async fn load_plan(user: &str) -> String { "pro".into() } // e.g. a cache lookup
    ///
    /// let layer = FlagsLayer::new(client).async_extractor(|parts| {
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
    pub fn async_extractor<F, Fut>(mut self, extractor: F) -> Self
    where
        F: Fn(&I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Context> + Send + 'static,
    {
        Arc::make_mut(&mut self.core).extractor = Extractor::Async(Arc::new(extractor));
        self
    }

    /// **Development only**: lets every request override flags for itself, from a header (for
    /// gRPC, a metadata entry) or a query parameter (see [`DevOverrides`]). Off unless called;
    /// never call it in production.
    pub fn dev_overrides(mut self, overrides: DevOverrides) -> Self {
        Arc::make_mut(&mut self.core).set_dev(overrides);
        self
    }
}

impl<S, I> Layer<S> for FlagsLayer<I> {
    type Service = FlagsService<S, I>;

    fn layer(&self, inner: S) -> Self::Service {
        FlagsService {
            inner,
            core: self.core.clone(),
        }
    }
}

/// The service [`FlagsLayer`] makes.
pub struct FlagsService<S, I = Parts> {
    inner: S,
    core: Arc<Core<I>>,
}

impl<S: Clone, I> Clone for FlagsService<S, I> {
    fn clone(&self) -> Self {
        FlagsService {
            inner: self.inner.clone(),
            core: self.core.clone(),
        }
    }
}

impl<S: std::fmt::Debug, I> std::fmt::Debug for FlagsService<S, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlagsService")
            .field("inner", &self.inner)
            .field("core", &self.core)
            .finish()
    }
}

impl<S, I> FlagsService<S, I> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, I, B, ResBody> Service<Request<B>> for FlagsService<S, I>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    I: ExtractorInput,
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
