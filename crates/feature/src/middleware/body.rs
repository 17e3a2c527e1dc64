//! [`FlagsBody`]: a response body polled inside the request's flags scope.

use crate::RequestFlags;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

pin_project! {
    /// A response body polled inside the request's flags scope, so that bodies produced lazily
    /// (streams) evaluate flags for the request's context. The scope is dropped when the body
    /// ends.
    pub struct FlagsBody<B> {
        #[pin]
        inner: B,
        flags: Option<RequestFlags>,
    }
}

impl<B> FlagsBody<B> {
    /// `inner`, polled in the scope of `flags` until it ends.
    pub(super) fn new(inner: B, flags: Option<RequestFlags>) -> Self {
        FlagsBody { inner, flags }
    }

    /// The wrapped body.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: std::fmt::Debug> std::fmt::Debug for FlagsBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlagsBody")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for FlagsBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let inner = this.inner;
        let polled = match this.flags.as_ref() {
            Some(flags) => flags.clone().sync_scope(|| inner.poll_frame(cx)),
            None => inner.poll_frame(cx),
        };
        if let Poll::Ready(None) = polled {
            *this.flags = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
