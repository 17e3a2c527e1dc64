//! The axum extractor [`Flags`]: the request's flags in a handler's arguments, put there by
//! [`FlagsLayer`](super::FlagsLayer) (crate feature `http`).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{body::Body, routing::get, Router};
//! use feature::engine::{parse_document, Format};
//! use feature::middleware::axum_extract::Flags;
//! use feature::middleware::{FlagsLayer, TrustedHeaders};
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
//!     .layer(FlagsLayer::new(client).context_extractor(TrustedHeaders::new(HeaderName::from_static("x-user-id"))));
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
//! [middleware docs](super) for extractors, trust and the scope.

use crate::RequestFlags;
use ::http::request::Parts;
use ::http::StatusCode;
use std::convert::Infallible;
use std::ops::Deref;

/// The axum extractor: the request's flags (`flags.bool("new-feature", false)`).
///
/// Dereferences to [`RequestFlags`]. Needs [`FlagsLayer`](super::FlagsLayer) on the route;
/// without it the request is rejected with [`MissingFlags`] (500). `Option<Flags>` never
/// rejects.
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

/// The rejection of [`Flags`] when [`FlagsLayer`](super::FlagsLayer) is not installed: a
/// server-side mistake, answered with `500 Internal Server Error`.
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
