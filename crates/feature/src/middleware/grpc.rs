//! gRPC middleware for tonic servers: the gRPC flavour of [`FlagsLayer`]
//! ([`FlagsLayer::new_for_grpc`], a tower layer for `Server::builder().layer(..)`),
//! [`FlagsInterceptor`], and [`FlagsExt`] for handlers.
//!
//! The context is built from the request as a tonic interceptor sees it, a
//! `tonic::Request<()>` (metadata, extensions, peer address). Handlers get the same API as
//! HTTP handlers: [`RequestFlags`] in the request's extensions (`request.flags()` with
//! [`FlagsExt`]) and the task-local scope ([`feature::bool`](crate::bool)), which also
//! covers server streams.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use feature::middleware::grpc::FlagsExt;
//! use feature::middleware::FlagsLayer;
//! use feature::{Client, Context, Flag, MemoryProvider};
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! let provider = MemoryProvider::new();
//! provider.set_flag(Flag::boolean("new-feature", true));
//! let client = Client::builder().provider(provider).build().await?;
//!
//! // Identity from metadata set by a trusted gateway (see `TrustedHeaders` for what that
//! // assumes); without an extractor every request is anonymous.
//! let layer = FlagsLayer::new_for_grpc(client).extractor(|request| {
//!     match request.metadata().get("x-user-id").and_then(|v| v.to_str().ok()) {
//!         Some(id) => Context::new(id),
//!         None => feature::middleware::anonymous_context(),
//!     }
//! });
//! // In a server: `tonic::transport::Server::builder().layer(layer).add_service(...)`.
//! // Here, a stand-in for the tonic service:
//! let service = layer.layer(service_fn(|request: http::Request<tonic::body::Body>| async move {
//!     let request = tonic::Request::from_http(request); // what a tonic handler receives
//!     let flags = request.flags().expect("FlagsLayer is installed");
//!     assert_eq!(flags.bool("new-feature", false), feature::bool("new-feature", false));
//!     Ok::<_, std::convert::Infallible>(http::Response::new(tonic::body::Body::empty()))
//! }));
//! let request = http::Request::builder()
//!     .header("x-user-id", "user-123")
//!     .body(tonic::body::Body::empty())?;
//! service.oneshot(request).await?;
//! # Ok(()) }
//! ```

use super::extract::{sealed, Extractor, ExtractorInput};
use super::layer::Core;
use super::{anonymous_context, ContextExtractor, DevOverrides, FlagsLayer, TrustedHeaders};
use crate::{Client, Context, RequestFlags};
use ::http::request::Parts;
use std::sync::Arc;
use tonic::metadata::MetadataMap;
use tonic::service::Interceptor;
use tonic::Status;

type GrpcRequest = tonic::Request<()>;

impl ExtractorInput for GrpcRequest {}

impl sealed::Sealed for GrpcRequest {
    fn with<R>(parts: &mut Parts, f: impl FnOnce(&Self) -> R) -> R {
        let metadata = MetadataMap::from_headers(std::mem::take(&mut parts.headers));
        let request =
            tonic::Request::from_parts(metadata, std::mem::take(&mut parts.extensions), ());
        let out = f(&request);
        let (metadata, extensions, ()) = request.into_parts();
        parts.headers = metadata.into_headers();
        parts.extensions = extensions;
        out
    }
}

impl ContextExtractor<GrpcRequest> for TrustedHeaders {
    fn extract(&self, request: &GrpcRequest) -> Context {
        self.context(request.metadata().as_ref())
    }
}

impl FlagsLayer<GrpcRequest> {
    /// A gRPC layer evaluating `client`'s flags, for anonymous contexts until an extractor is
    /// set: extractors read each call as a tonic interceptor sees it, a `tonic::Request<()>`
    /// (metadata, extensions, peer address), and handlers find the call's [`RequestFlags`]
    /// with [`FlagsExt::flags`].
    pub fn new_for_grpc(client: Client) -> Self {
        FlagsLayer::with_input(client)
    }
}

/// A tonic [`Interceptor`] that puts the call's [`RequestFlags`] in its extensions.
///
/// Interceptors run before the handler but cannot wrap it, so this gives handlers the
/// extensions only, **not** the task-local scope; prefer [`FlagsLayer::new_for_grpc`] unless you need an
/// interceptor (e.g. to intercept one service only). Extractors are synchronous.
///
/// ```
/// # async fn f(client: feature::Client) {
/// use feature::middleware::grpc::FlagsInterceptor;
/// let interceptor = FlagsInterceptor::new(client);
/// // `MyServiceServer::with_interceptor(service, interceptor)`, or
/// // `tonic::service::InterceptedService::new(service, interceptor)`.
/// # let _ = interceptor; }
/// ```
#[derive(Clone, Debug)]
pub struct FlagsInterceptor {
    core: Arc<Core<GrpcRequest>>,
}

impl FlagsInterceptor {
    /// An interceptor evaluating `client`'s flags, for anonymous contexts until an extractor
    /// is set.
    pub fn new(client: Client) -> Self {
        FlagsInterceptor {
            core: Arc::new(Core::new(client)),
        }
    }

    /// Builds the context from the call with a closure over the call's `tonic::Request<()>`
    /// (no annotation needed); [`FlagsInterceptor::context_extractor`] takes a
    /// [`TrustedHeaders`] or any other extractor.
    pub fn extractor<F>(self, extractor: F) -> Self
    where
        F: Fn(&GrpcRequest) -> Context + Send + Sync + 'static,
    {
        self.context_extractor(extractor)
    }

    /// Builds the context with any [`ContextExtractor`] (e.g. a
    /// [`TrustedHeaders`]).
    pub fn context_extractor(mut self, extractor: impl ContextExtractor<GrpcRequest>) -> Self {
        Arc::make_mut(&mut self.core).extractor = Extractor::Sync(Arc::new(extractor));
        self
    }

    /// **Development only**: lets every call override flags for itself (see [`DevOverrides`]).
    pub fn dev_overrides(mut self, overrides: DevOverrides) -> Self {
        Arc::make_mut(&mut self.core).set_dev(overrides);
        self
    }
}

impl Interceptor for FlagsInterceptor {
    fn call(&mut self, mut request: GrpcRequest) -> Result<GrpcRequest, Status> {
        let core = &self.core;
        let context = match &core.extractor {
            Extractor::Sync(e) => e.extract(&request),
            // `FlagsInterceptor` never holds an asynchronous extractor.
            Extractor::Anonymous | Extractor::Async(_) => anonymous_context(),
        };
        let overrides = match &core.dev {
            None => Vec::new(),
            Some(dev) => dev.read(request.metadata().as_ref(), None),
        };
        let flags = RequestFlags::new(core.client.clone(), context).with_overrides(overrides);
        request.extensions_mut().insert(flags);
        Ok(request)
    }
}

/// The request's flags from a tonic request's extensions.
pub trait FlagsExt {
    /// The [`RequestFlags`] that [`FlagsLayer`] or [`FlagsInterceptor`] put in the request;
    /// `None` when neither is installed.
    fn flags(&self) -> Option<&RequestFlags>;
}

impl<T> FlagsExt for tonic::Request<T> {
    fn flags(&self) -> Option<&RequestFlags> {
        self.extensions().get::<RequestFlags>()
    }
}
