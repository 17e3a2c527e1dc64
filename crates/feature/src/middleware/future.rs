//! [`ResponseFuture`]: the layer's future, running an asynchronous extractor first when there
//! is one, then the inner service inside the request's flags scope.

use super::extract::ContextFuture;
use super::FlagsBody;
use crate::request::scoped;
use crate::{Client, RequestFlags};
use ::http::{Request, Response};
use pin_project_lite::pin_project;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context as TaskContext, Poll};
use tokio::task::futures::TaskLocalFuture;
use tower_service::Service;

struct Pending<S, B> {
    request: Request<B>,
    inner: S,
    client: Client,
    overrides: Vec<(String, Value)>,
}

pin_project! {
    /// The response future of the flags layers (HTTP and gRPC).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        // An asynchronous extractor is building the context.
        Extracting {
            context: ContextFuture,
            pending: Option<Pending<S, B>>,
        },
        // The inner service is answering, inside the scope.
        Running {
            #[pin]
            future: TaskLocalFuture<RequestFlags, S::Future>,
            flags: Option<RequestFlags>,
        },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    /// Waits for `context`, then calls `inner` (ready) with `request` in the scope.
    pub(super) fn extracting(
        context: ContextFuture,
        request: Request<B>,
        inner: S,
        client: Client,
        overrides: Vec<(String, Value)>,
    ) -> Self {
        ResponseFuture {
            state: State::Extracting {
                context,
                pending: Some(Pending {
                    request,
                    inner,
                    client,
                    overrides,
                }),
            },
        }
    }

    /// Calls `inner` with `request` now, in the scope of `flags`.
    pub(super) fn running(flags: RequestFlags, inner: &mut S, request: Request<B>) -> Self {
        let future = flags.clone().sync_scope(|| inner.call(request));
        ResponseFuture {
            state: State::Running {
                future: scoped(flags.clone(), future),
                flags: Some(flags),
            },
        }
    }
}

impl<S, B> std::fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Output = Result<Response<FlagsBody<ResBody>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        loop {
            let mut state = self.as_mut().project().state;
            match state.as_mut().project() {
                StateProj::Extracting { context, pending } => {
                    let context = ready!(context.as_mut().poll(cx));
                    let Some(Pending {
                        mut request,
                        mut inner,
                        client,
                        overrides,
                    }) = pending.take()
                    else {
                        // Unreachable: the state changes as soon as `pending` is taken.
                        return Poll::Pending;
                    };
                    let flags = RequestFlags::new(client, context).with_overrides(overrides);
                    request.extensions_mut().insert(flags.clone());
                    let future = flags.clone().sync_scope(|| inner.call(request));
                    state.set(State::Running {
                        future: scoped(flags.clone(), future),
                        flags: Some(flags),
                    });
                }
                StateProj::Running { future, flags } => {
                    let response = ready!(future.poll(cx))?;
                    let flags = flags.take();
                    return Poll::Ready(Ok(response.map(|body| FlagsBody::new(body, flags))));
                }
            }
        }
    }
}
