//! Middleware: flags per request for HTTP (tower, hyper, axum) and gRPC (tonic) servers.
//!
//! One tower layer, [`FlagsLayer`], serves both: `FlagsLayer::new` for HTTP (crate feature
//! `http`), `FlagsLayer::new_for_grpc` for tonic (crate feature `grpc`; the `grpc` module adds
//! the interceptor). For every request the layer builds a [`Context`](crate::Context) with an
//! extractor, then makes the request's flags available three ways, all giving exactly what
//! [`Client::variation`](crate::Client::variation) gives for that context:
//!
//! - the axum extractor `axum_extract::Flags` (`flags.bool("new-feature", false)`; for tonic
//!   handlers, `grpc::FlagsExt`),
//! - request extensions: a [`RequestFlags`](crate::RequestFlags) for plain tower/hyper/tonic
//!   services,
//! - the task-local scope: [`feature::bool("new-feature", false)`](crate::bool) anywhere
//!   inside the request's future (and while its response body is produced).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # #[cfg(feature = "http")] {
//! use feature::middleware::FlagsLayer;
//! use feature::{Client, Flag, MemoryProvider, RequestFlags};
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! let provider = MemoryProvider::new();
//! provider.set_flag(Flag::boolean("new-feature", true));
//! let client = Client::builder().provider(provider).build().await?;
//!
//! let service = FlagsLayer::new(client).layer(service_fn(|req: http::Request<String>| async move {
//!     let from_extensions = req.extensions().get::<RequestFlags>().map(|f| f.bool("new-feature", false));
//!     let from_scope = feature::bool("new-feature", false);
//!     Ok::<_, std::convert::Infallible>(http::Response::new(format!("{from_extensions:?} {from_scope}")))
//! }));
//! let response = service.oneshot(http::Request::new(String::new())).await?;
//! # let _ = response;
//! # }
//! # Ok(()) }
//! ```
//!
//! ## Trust
//!
//! Whatever a client sends can be forged. So by default the context is **anonymous**
//! ([`anonymous_context`]): a fresh random key per request, `anonymous: true`, nothing read
//! from the request. Identity comes from an extractor you configure: your own closure (over
//! the request after your authentication layer ran, e.g. a verified token's claims in the
//! extensions), or [`TrustedHeaders`] when a gateway in front of the service authenticates
//! users and sets identity headers. Per-request flag overrides ([`DevOverrides`]) exist only
//! when switched on explicitly, for development.
//!
//! ## Extractors
//!
//! - synchronous: any `Fn(&Input) -> Context` ([`ContextExtractor`]), or [`TrustedHeaders`];
//! - asynchronous: any `Fn(&Input) -> impl Future<Output = Context>` whose future owns what it
//!   needs ([`AsyncContextExtractor`]); it costs one allocation per request and requires the
//!   inner service to be `Clone`.
//!
//! `Input` ([`ExtractorInput`]) is `http::request::Parts` for the HTTP layer and
//! `tonic::Request<()>` (its metadata, extensions and peer address, as a tonic interceptor sees
//! them) for gRPC.
//!
//! ## Scope and response bodies
//!
//! The scope covers the inner service's `call`, its response future and every poll of the
//! response body ([`FlagsBody`]), so streaming bodies (server-sent events, gRPC server
//! streams) that evaluate flags lazily still see the request's context. It does not follow
//! `tokio::spawn`: see [`RequestFlags::scope`](crate::RequestFlags::scope).
//!
//! ## Layout
//!
//! `extract` (extractors, [`TrustedHeaders`], [`anonymous_context`]), `dev_overrides`
//! ([`DevOverrides`]), `layer` ([`FlagsLayer`], [`FlagsService`]), `future`
//! ([`ResponseFuture`]), `body` ([`FlagsBody`]), and the server-specific parts:
//! `axum_extract` (the axum extractor) and `grpc` (tonic).

#[cfg(feature = "http")]
pub mod axum_extract;
mod body;
mod dev_overrides;
mod extract;
mod future;
#[cfg(feature = "grpc")]
pub mod grpc;
mod layer;

pub use body::FlagsBody;
pub use dev_overrides::DevOverrides;
pub use extract::{
    anonymous_context, AsyncContextExtractor, ContextExtractor, ContextFuture, ExtractorInput,
    TrustedHeaders,
};
pub use future::ResponseFuture;
pub use layer::{FlagsLayer, FlagsService};
