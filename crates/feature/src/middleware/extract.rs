//! Extractors: how a layer gets a request's [`Context`]. Anonymous by default
//! ([`anonymous_context`]); a closure ([`ContextExtractor`], [`AsyncContextExtractor`]) or
//! [`TrustedHeaders`] when configured.

use crate::Context;
use ::http::request::Parts;
use ::http::{HeaderMap, HeaderName};
use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// A boxed, sendable future of a [`Context`] (what asynchronous extractors return).
pub type ContextFuture = Pin<Box<dyn Future<Output = Context> + Send + 'static>>;

/// Builds a request's [`Context`] synchronously from `Input` (the request's parts).
///
/// Implemented by every `Fn(&Input) -> Context + Send + Sync + 'static` and by
/// [`TrustedHeaders`]. [`FlagsLayer::extractor`](super::FlagsLayer::extractor) takes a closure
/// without annotations; [`FlagsLayer::context_extractor`](super::FlagsLayer::context_extractor)
/// takes any implementation.
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
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Extractor::Anonymous => "anonymous",
            Extractor::Sync(_) => "sync",
            Extractor::Async(_) => "async",
        }
    }
}

/// What a layer's extractors read: [`http::request::Parts`](::http::request::Parts) for HTTP
/// layers (`FlagsLayer::new`), `tonic::Request<()>` (its metadata,
/// extensions and peer address, as a tonic interceptor sees them) for gRPC ones
/// (`FlagsLayer::new_for_grpc`). Sealed: the layer knows how to build these two from a request.
pub trait ExtractorInput: sealed::Sealed + Send + Sync + 'static {}

pub(crate) mod sealed {
    /// How the layer gets from the request's parts to an extractor's input (and back).
    pub trait Sealed {
        /// Runs `f` on the input made of `parts`, leaving `parts` as they were.
        fn with<R>(parts: &mut ::http::request::Parts, f: impl FnOnce(&Self) -> R) -> R;
    }
}

impl ExtractorInput for Parts {}

impl sealed::Sealed for Parts {
    #[inline]
    fn with<R>(parts: &mut Parts, f: impl FnOnce(&Self) -> R) -> R {
        f(parts)
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

    /// The headers an authenticating gateway conventionally sets, for the common case: the key
    /// from `x-user-id`, the name from `x-user-name`, the email from `x-user-email`, the groups
    /// from `x-user-groups` (comma-separated), and the attributes `country` from
    /// `x-user-country` and `ip` from `x-real-ip`. The gateway must set (or remove) every one
    /// of them on each request: a header it passes through from the client is forged input.
    ///
    /// ```
    /// # #[cfg(feature = "http")]
    /// # async fn f(client: feature::Client) {
    /// use feature::middleware::{FlagsLayer, TrustedHeaders};
    ///
    /// let layer = FlagsLayer::new(client).context_extractor(TrustedHeaders::gateway());
    /// # let _ = layer; }
    /// ```
    pub fn gateway() -> Self {
        TrustedHeaders::new(HeaderName::from_static("x-user-id"))
            .name(HeaderName::from_static("x-user-name"))
            .email(HeaderName::from_static("x-user-email"))
            .groups(HeaderName::from_static("x-user-groups"))
            .attribute(HeaderName::from_static("x-user-country"), "country")
            .attribute(HeaderName::from_static("x-real-ip"), "ip")
    }

    /// The context these headers describe: anonymous without the key header, and anonymous
    /// (with a warning logged) when any identity header comes more than once, since a gateway
    /// that appends rather than replaces would otherwise let the client's own value through.
    pub fn context(&self, headers: &HeaderMap) -> Context {
        if let Some(header) = self.repeated(headers) {
            tracing::warn!(
                target: "feature::middleware",
                header = %header,
                "identity header sent more than once: the request is treated as anonymous"
            );
            return anonymous_context();
        }
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

impl TrustedHeaders {
    /// The first identity header that `headers` holds more than once.
    fn repeated(&self, headers: &HeaderMap) -> Option<&HeaderName> {
        std::iter::once(&self.key)
            .chain(&self.name)
            .chain(&self.email)
            .chain(&self.groups)
            .chain(self.attributes.iter().map(|(h, _)| h))
            .find(|h| headers.get_all(*h).iter().nth(1).is_some())
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        .map(str::trim)
}

impl ContextExtractor<Parts> for TrustedHeaders {
    fn extract(&self, parts: &Parts) -> Context {
        self.context(&parts.headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

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
    fn the_gateway_preset_reads_the_conventional_headers() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-user-id", "user-7"),
            ("x-user-name", "Jo"),
            ("x-user-email", "jo@example.com"),
            ("x-user-groups", "beta, staff"),
            ("x-user-country", "DE"),
            ("x-real-ip", "203.0.113.9"),
        ] {
            headers.insert(name, http::HeaderValue::from_static(value));
        }
        let ctx = TrustedHeaders::gateway().context(&headers);
        assert_eq!(ctx.key(), "user-7");
        assert_eq!(ctx.get("name"), Some(&Value::from("Jo")));
        assert_eq!(ctx.get("email"), Some(&Value::from("jo@example.com")));
        assert_eq!(ctx.get("country"), Some(&Value::from("DE")));
        assert_eq!(ctx.get("ip"), Some(&Value::from("203.0.113.9")));
        assert_eq!(
            ctx.get("groups"),
            Some(&serde_json::json!(["beta", "staff"]))
        );
        assert!(TrustedHeaders::gateway()
            .context(&HeaderMap::new())
            .key()
            .starts_with("anon-"));
    }

    #[test]
    fn a_repeated_identity_header_makes_the_request_anonymous() {
        let gateway = TrustedHeaders::gateway();
        for repeated in [
            "x-user-id",
            "x-user-email",
            "x-user-groups",
            "x-user-country",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert("x-user-id", http::HeaderValue::from_static("user-7"));
            headers.insert(
                "x-user-email",
                http::HeaderValue::from_static("jo@example.com"),
            );
            headers.insert("x-user-groups", http::HeaderValue::from_static("staff"));
            headers.insert("x-user-country", http::HeaderValue::from_static("DE"));
            // A gateway that appends: the client's forged value travels alongside.
            headers.append(repeated, http::HeaderValue::from_static("forged"));
            let ctx = gateway.context(&headers);
            assert!(ctx.key().starts_with("anon-"), "{repeated}: {}", ctx.key());
            assert_eq!(ctx.get("anonymous"), Some(&Value::Bool(true)));
            assert_eq!(ctx.get("email"), None);
        }
        // A header the extractor does not read may repeat.
        let mut headers = HeaderMap::new();
        headers.insert("x-user-id", http::HeaderValue::from_static("user-7"));
        headers.append("accept", http::HeaderValue::from_static("a"));
        headers.append("accept", http::HeaderValue::from_static("b"));
        assert_eq!(gateway.context(&headers).key(), "user-7");
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
}
