//! Middleware: flags per request for HTTP (tower, hyper, axum) and gRPC (tonic) servers.
//!
//! For every request the layer builds a [`Context`] with an extractor, then makes the
//! request's flags available three ways, all giving exactly what
//! [`Client::variation`](crate::Client::variation) gives for that context:
//!
//! - the axum extractor [`http::Flags`] (`flags.bool("new-feature", false)`),
//! - request extensions: a [`RequestFlags`] for plain tower/hyper/tonic services,
//! - the task-local scope: [`feature::bool("new-feature", false)`](crate::bool) anywhere
//!   inside the request's future (and while its response body is produced).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # #[cfg(feature = "http")] {
//! use feature::middleware::http::FlagsLayer;
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
//! `Input` is `http::request::Parts` for the HTTP layer and `tonic::Request<()>` (its
//! metadata, extensions and peer address, as a tonic interceptor sees them) for gRPC.
//!
//! ## Scope and response bodies
//!
//! The scope covers the inner service's `call`, its response future and every poll of the
//! response body ([`FlagsBody`]), so streaming bodies (server-sent events, gRPC server
//! streams) that evaluate flags lazily still see the request's context. It does not follow
//! `tokio::spawn`: see [`RequestFlags::scope`].

use crate::request::scoped;
use crate::{Client, Context, RequestFlags};
use ::http::{HeaderMap, HeaderName, Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use serde_json::Value;
use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context as TaskContext, Poll};
use tokio::task::futures::TaskLocalFuture;
use tower_service::Service;

#[cfg(feature = "grpc")]
pub mod grpc;
#[cfg(feature = "http")]
pub mod http;

/// A boxed, sendable future of a [`Context`] (what asynchronous extractors return).
pub type ContextFuture = Pin<Box<dyn Future<Output = Context> + Send + 'static>>;

/// Builds a request's [`Context`] synchronously from `Input` (the request's parts).
///
/// Implemented by every `Fn(&Input) -> Context + Send + Sync + 'static` and by
/// [`TrustedHeaders`]. Annotate the closure's argument (`|parts: &Parts| ...`).
pub trait ContextExtractor<Input: ?Sized>: Send + Sync + 'static {
    /// The context for this request.
    fn extract(&self, input: &Input) -> Context;
}

impl<Input: ?Sized, F> ContextExtractor<Input> for F
where
    F: Fn(&Input) -> Context + Send + Sync + 'static,
{
    fn extract(&self, input: &Input) -> Context {
        self(input)
    }
}

/// Builds a request's [`Context`] asynchronously from `Input` (the request's parts).
///
/// Implemented by every `Fn(&Input) -> Fut` where `Fut: Future<Output = Context> + Send +
/// 'static`: read what you need from the input (clone it) before the `async move` block.
pub trait AsyncContextExtractor<Input: ?Sized>: Send + Sync + 'static {
    /// The context for this request.
    fn extract(&self, input: &Input) -> ContextFuture;
}

impl<Input: ?Sized, F, Fut> AsyncContextExtractor<Input> for F
where
    F: Fn(&Input) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Context> + Send + 'static,
{
    fn extract(&self, input: &Input) -> ContextFuture {
        Box::pin(self(input))
    }
}

/// The configured extractor.
pub(crate) enum Extractor<Input: ?Sized> {
    Anonymous,
    Sync(Arc<dyn ContextExtractor<Input>>),
    Async(Arc<dyn AsyncContextExtractor<Input>>),
}

impl<Input: ?Sized> Clone for Extractor<Input> {
    fn clone(&self) -> Self {
        match self {
            Extractor::Anonymous => Extractor::Anonymous,
            Extractor::Sync(e) => Extractor::Sync(e.clone()),
            Extractor::Async(e) => Extractor::Async(e.clone()),
        }
    }
}

impl<Input: ?Sized> Extractor<Input> {
    fn name(&self) -> &'static str {
        match self {
            Extractor::Anonymous => "anonymous",
            Extractor::Sync(_) => "sync",
            Extractor::Async(_) => "async",
        }
    }
}

/// How the layer gets from the request's parts to an extractor's input (and back).
pub(crate) trait Input: Send + Sync + 'static {
    fn with<R>(parts: &mut ::http::request::Parts, f: impl FnOnce(&Self) -> R) -> R;
}

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

impl<I: Input> Core<I> {
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
    pub(crate) fn call<S, B, ResBody>(&self, inner: &mut S, req: Request<B>) -> ResponseFuture<S, B>
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
                return ResponseFuture {
                    state: State::Extracting {
                        context,
                        pending: Some(Pending {
                            request: Request::from_parts(parts, body),
                            inner: ready,
                            client: self.client.clone(),
                            overrides,
                        }),
                    },
                };
            }
        };
        let flags = RequestFlags::new(self.client.clone(), context).with_overrides(overrides);
        parts.extensions.insert(flags.clone());
        ResponseFuture::running(flags, inner, Request::from_parts(parts, body))
    }
}

/// A context for a request nobody vouched for: a fresh random key (`anon-` and 16 hex
/// digits, unpredictable and never repeated within a process), kind `user`,
/// `anonymous: true`, and no other attribute.
///
/// A new key per request means percentage rollouts split anonymous *requests* as
/// configured (10 % of them see a 10 % rollout) but the same visitor may see different
/// variations on different requests. For sticky anonymous bucketing, key the context on a
/// session identifier your application issued and verifies, in your own extractor.
pub fn anonymous_context() -> Context {
    static SEED: OnceLock<RandomState> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut h = SEED.get_or_init(RandomState::new).build_hasher();
    h.write_u64(n);
    Context::new(format!("anon-{:016x}", h.finish())).with_anonymous(true)
}

/// Reads the context from identity headers set by a **trusted gateway**.
///
/// # Trust assumption
///
/// Use this only when every request reaches the service through a gateway (API gateway,
/// authenticating proxy, service mesh) that authenticates the caller and **sets or removes
/// every one of these headers on every request**, so that a value a client sent itself never
/// arrives. If the service can be reached any other way (a public port, a sidecar that
/// forwards headers as they are), any client can claim to be any user, with any plan or
/// group, and pick its own flags. When in doubt, use your own extractor over what your
/// authentication layer verified.
///
/// Values are read as UTF-8 and trimmed; a header that is not UTF-8 counts as absent. Without
/// the key header (or with an empty one) the request is anonymous ([`anonymous_context`]) and
/// no other header is read.
///
/// ```
/// use feature::middleware::TrustedHeaders;
/// use http::{HeaderMap, HeaderName, HeaderValue};
///
/// let gateway = TrustedHeaders::new(HeaderName::from_static("x-user-id"))
///     .email(HeaderName::from_static("x-user-email"))
///     .attribute(HeaderName::from_static("x-user-plan"), "plan")
///     .groups(HeaderName::from_static("x-user-groups"));
///
/// let mut headers = HeaderMap::new();
/// headers.insert("x-user-id", HeaderValue::from_static("user-123"));
/// headers.insert("x-user-plan", HeaderValue::from_static("pro"));
/// headers.insert("x-user-groups", HeaderValue::from_static("beta-testers, staff"));
/// let ctx = gateway.context(&headers);
/// assert_eq!(ctx.key(), "user-123");
/// assert_eq!(ctx.get("plan"), Some(&serde_json::json!("pro")));
/// assert_eq!(ctx.get("groups"), Some(&serde_json::json!(["beta-testers", "staff"])));
/// ```
#[derive(Debug, Clone)]
pub struct TrustedHeaders {
    key: HeaderName,
    name: Option<HeaderName>,
    email: Option<HeaderName>,
    groups: Option<HeaderName>,
    attributes: Vec<(HeaderName, String)>,
}

impl TrustedHeaders {
    /// The context key comes from header `key` (e.g. `x-user-id`).
    pub fn new(key: HeaderName) -> Self {
        TrustedHeaders {
            key,
            name: None,
            email: None,
            groups: None,
            attributes: Vec::new(),
        }
    }

    /// The display name comes from this header.
    pub fn name(mut self, header: HeaderName) -> Self {
        self.name = Some(header);
        self
    }

    /// The `email` attribute comes from this header.
    pub fn email(mut self, header: HeaderName) -> Self {
        self.email = Some(header);
        self
    }

    /// The `groups` attribute comes from this header: a comma-separated list.
    pub fn groups(mut self, header: HeaderName) -> Self {
        self.groups = Some(header);
        self
    }

    /// The custom attribute `attribute` (a string) comes from this header.
    pub fn attribute(mut self, header: HeaderName, attribute: impl Into<String>) -> Self {
        self.attributes.push((header, attribute.into()));
        self
    }

    /// The context these headers describe (anonymous without the key header).
    pub fn context(&self, headers: &HeaderMap) -> Context {
        let Some(key) = header_str(headers, &self.key).filter(|k| !k.is_empty()) else {
            return anonymous_context();
        };
        let mut ctx = Context::new(key);
        if let Some(name) = self.name.as_ref().and_then(|h| header_str(headers, h)) {
            ctx = ctx.with_name(name);
        }
        if let Some(email) = self.email.as_ref().and_then(|h| header_str(headers, h)) {
            ctx = ctx.with_email(email);
        }
        for (header, attribute) in &self.attributes {
            if let Some(v) = header_str(headers, header) {
                ctx = ctx.with_attribute(attribute, v);
            }
        }
        if let Some(groups) = self.groups.as_ref().and_then(|h| header_str(headers, h)) {
            for g in groups.split(',').map(str::trim).filter(|g| !g.is_empty()) {
                ctx = ctx.with_group(g);
            }
        }
        ctx
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        .map(str::trim)
}

/// **Development only**: lets requests override flags, from a header and a query parameter.
///
/// Off unless passed to a layer's `dev_overrides`: then anyone who can send a request can
/// choose the flags it gets, so never switch it on in production. The layer logs a warning
/// when it is switched on. Overrides apply to that one request only (reason `OVERRIDE`, see
/// [`RequestFlags::with_overrides`]).
///
/// Each override is `key=value`: the value is read as JSON when it parses (`true`, `3`,
/// `"dark"`, `{"a":1}`) and as a string otherwise (`dark`). Repeat the header (or the query
/// parameter) for several overrides; at most 64 are read per request. The query parameter is
/// percent-decoded; gRPC requests have no query string, so only the header applies there.
///
/// ```
/// use feature::middleware::DevOverrides;
/// use http::HeaderName;
/// // Header `x-feature-override: new-feature=true`, query `?feature-override=theme=dark`:
/// let dev = DevOverrides::new();
/// // Or other names:
/// let dev = DevOverrides::new()
///     .header(HeaderName::from_static("x-flag"))
///     .query("flag");
/// # let _ = dev;
/// ```
#[derive(Debug, Clone)]
pub struct DevOverrides {
    header: Option<HeaderName>,
    query: Option<String>,
}

impl Default for DevOverrides {
    fn default() -> Self {
        DevOverrides::new()
    }
}

/// At most this many per-request overrides are read.
const MAX_DEV_OVERRIDES: usize = 64;

impl DevOverrides {
    /// Header `x-feature-override` and query parameter `feature-override`.
    pub fn new() -> Self {
        DevOverrides {
            header: Some(HeaderName::from_static("x-feature-override")),
            query: Some("feature-override".to_owned()),
        }
    }

    /// Reads overrides from this header instead.
    pub fn header(mut self, name: HeaderName) -> Self {
        self.header = Some(name);
        self
    }

    /// Reads no header.
    pub fn without_header(mut self) -> Self {
        self.header = None;
        self
    }

    /// Reads overrides from this query parameter instead.
    pub fn query(mut self, name: impl Into<String>) -> Self {
        self.query = Some(name.into());
        self
    }

    /// Reads no query parameter.
    pub fn without_query(mut self) -> Self {
        self.query = None;
        self
    }

    /// The overrides a request asks for.
    pub(crate) fn read(&self, headers: &HeaderMap, query: Option<&str>) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        if let Some(name) = &self.header {
            for v in headers.get_all(name).iter().take(MAX_DEV_OVERRIDES) {
                if let Some(o) = v.to_str().ok().and_then(parse_override) {
                    out.push(o);
                }
            }
        }
        if let (Some(param), Some(query)) = (&self.query, query) {
            for pair in query.split('&') {
                if out.len() >= MAX_DEV_OVERRIDES {
                    break;
                }
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                if percent_decode(k).as_deref() != Some(param.as_str()) {
                    continue;
                }
                if let Some(o) = percent_decode(v).as_deref().and_then(parse_override) {
                    out.push(o);
                }
            }
        }
        out.truncate(MAX_DEV_OVERRIDES);
        out
    }
}

fn parse_override(s: &str) -> Option<(String, Value)> {
    let (key, value) = s.split_once('=')?;
    let key = key.trim();
    if key.is_empty() {
        return None;
    }
    let value = value.trim();
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Some((key.to_owned(), value))
}

/// Decodes `%XX` escapes and `+` (a space) of a query string component.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

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
    fn running(flags: RequestFlags, inner: &mut S, request: Request<B>) -> Self {
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
                    return Poll::Ready(Ok(response.map(|body| FlagsBody { inner: body, flags })));
                }
            }
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_keys_differ_and_are_marked() {
        let a = anonymous_context();
        let b = anonymous_context();
        assert_ne!(a.key(), b.key());
        assert!(
            a.key().starts_with("anon-") && a.key().len() == 21,
            "{}",
            a.key()
        );
        assert_eq!(a.get("anonymous"), Some(&Value::Bool(true)));
        assert_eq!(a.attributes().count(), 0);
    }

    #[test]
    fn trusted_headers_without_key_are_anonymous_and_read_nothing() {
        let gw = TrustedHeaders::new(HeaderName::from_static("x-user-id"))
            .attribute(HeaderName::from_static("x-plan"), "plan");
        let mut h = HeaderMap::new();
        h.insert("x-plan", "pro".parse().unwrap());
        let ctx = gw.context(&h);
        assert!(ctx.key().starts_with("anon-"));
        assert_eq!(ctx.get("plan"), None);
        h.insert("x-user-id", " ".parse().unwrap());
        assert!(gw.context(&h).key().starts_with("anon-"));
        h.insert("x-user-id", "u-1".parse().unwrap());
        let ctx = gw.context(&h);
        assert_eq!(ctx.key(), "u-1");
        assert_eq!(ctx.get("anonymous"), Some(&Value::Bool(false)));
        assert_eq!(ctx.get("plan"), Some(&Value::from("pro")));
    }

    #[test]
    fn trusted_headers_read_utf8_and_skip_invalid_values() {
        let gw = TrustedHeaders::new(HeaderName::from_static("x-user-id"))
            .name(HeaderName::from_static("x-user-name"))
            .email(HeaderName::from_static("x-user-email"));
        let mut h = HeaderMap::new();
        h.insert("x-user-id", "u-1".parse().unwrap());
        h.insert(
            "x-user-name",
            ::http::HeaderValue::from_bytes("Zoë".as_bytes()).unwrap(),
        );
        h.insert(
            "x-user-email",
            ::http::HeaderValue::from_bytes(b"\xff@x").unwrap(),
        );
        let ctx = gw.context(&h);
        assert_eq!(ctx.get("name"), Some(&Value::from("Zoë")));
        assert_eq!(ctx.get("email"), None);
    }

    #[test]
    fn dev_overrides_parse_json_or_strings_from_headers_and_query() {
        let dev = DevOverrides::new();
        let mut h = HeaderMap::new();
        h.append("x-feature-override", "a=true".parse().unwrap());
        h.append("x-feature-override", "b = 3".parse().unwrap());
        h.append("x-feature-override", "c=dark mode".parse().unwrap());
        h.append("x-feature-override", "no-equals".parse().unwrap());
        h.append("x-feature-override", "=1".parse().unwrap());
        let got = dev.read(&h, Some("x=1&feature-override=d%3D%7B%22k%22%3A1%7D&feature-override=e=hello+world&feature-override=%zz"));
        assert_eq!(
            got,
            vec![
                ("a".to_owned(), Value::Bool(true)),
                ("b".to_owned(), Value::from(3)),
                ("c".to_owned(), Value::from("dark mode")),
                ("d".to_owned(), serde_json::json!({"k": 1})),
                ("e".to_owned(), Value::from("hello world")),
            ]
        );
        let off = DevOverrides::new().without_header().without_query();
        assert!(off.read(&h, Some("feature-override=a=1")).is_empty());
        let many: String = (0..100)
            .map(|i| format!("feature-override=k{i}=1&"))
            .collect();
        assert_eq!(
            dev.read(&HeaderMap::new(), Some(&many)).len(),
            MAX_DEV_OVERRIDES
        );
    }

    #[test]
    fn percent_decoding_rejects_bad_escapes() {
        assert_eq!(percent_decode("a%20b+c").as_deref(), Some("a b c"));
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
        assert_eq!(percent_decode("%FF"), None);
    }
}
