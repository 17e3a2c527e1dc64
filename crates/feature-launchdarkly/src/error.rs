//! Errors of the LaunchDarkly provider.

use std::time::Duration;

/// What went wrong talking to LaunchDarkly. Reported inside
/// [`ProviderError::Backend`](feature_core::provider::ProviderError::Backend) with provider
/// `launchdarkly`, and in the provider's status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchDarklyError {
    /// LaunchDarkly refused the SDK key (HTTP 401 or 403). Retrying cannot help: the provider
    /// stops.
    #[error(
        "LaunchDarkly rejected the SDK key (HTTP {status} from {endpoint}); the provider stopped: \
         check that the key is a server-side SDK key of the intended environment"
    )]
    Unauthorized {
        /// The HTTP status.
        status: u16,
        /// `polling` or `streaming`.
        endpoint: &'static str,
    },
    /// LaunchDarkly answered with a client-error status that a retry cannot change (such as
    /// 404 for a wrong base or stream URI): the provider stops.
    #[error(
        "LaunchDarkly answered HTTP {status} from {endpoint}; the provider stopped (check the URI)"
    )]
    Unrecoverable {
        /// The HTTP status.
        status: u16,
        /// `polling` or `streaming`.
        endpoint: &'static str,
    },
    /// LaunchDarkly answered with a status worth retrying (400, 408, 429, 5xx, ...).
    #[error("LaunchDarkly answered HTTP {status} from {endpoint}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// `polling` or `streaming`.
        endpoint: &'static str,
    },
    /// The request failed in transport (connection refused, reset, TLS, ...).
    #[error("request to LaunchDarkly's {endpoint} endpoint failed")]
    Http {
        /// `polling` or `streaming`.
        endpoint: &'static str,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// No answer (or, on the stream, no byte at all, not even a heartbeat) within the time.
    #[error("no answer from LaunchDarkly's {endpoint} endpoint within {after:?}")]
    Timeout {
        /// `polling` or `streaming`.
        endpoint: &'static str,
        /// The time waited.
        after: Duration,
    },
    /// The stream ended (the server closed it).
    #[error("the LaunchDarkly stream ended")]
    StreamEnded,
    /// A payload or event is not valid JSON.
    #[error("LaunchDarkly sent a {what} that is not valid JSON")]
    Json {
        /// What was being read (`polling payload`, `put event`, ...).
        what: &'static str,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A payload or event is JSON but not of the expected shape.
    #[error("LaunchDarkly sent a malformed {what}: {problem}")]
    Malformed {
        /// What was being read.
        what: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// An event on the stream is larger than the provider accepts.
    #[error("an event on the LaunchDarkly stream exceeds {limit} bytes")]
    EventTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A polling payload is larger than the provider accepts
    /// ([`max_payload_size`](crate::LaunchDarklyBuilder::max_payload_size)); it was not read
    /// whole, and the last good flags keep serving.
    #[error("a payload from LaunchDarkly's {endpoint} endpoint exceeds {limit} bytes")]
    PayloadTooLarge {
        /// `polling`.
        endpoint: &'static str,
        /// The limit in bytes.
        limit: usize,
    },
}

impl LaunchDarklyError {
    /// Whether the provider stops on this error instead of retrying.
    pub fn is_unrecoverable(&self) -> bool {
        matches!(
            self,
            LaunchDarklyError::Unauthorized { .. } | LaunchDarklyError::Unrecoverable { .. }
        )
    }

    /// The error for an HTTP status other than success, classified as LaunchDarkly's SDKs do:
    /// 401 and 403 mean a bad key; 400, 408 and 429 are retried, any other 4xx stops the
    /// provider; every other status is retried.
    pub(crate) fn from_status(status: u16, endpoint: &'static str) -> Self {
        match status {
            401 | 403 => LaunchDarklyError::Unauthorized { status, endpoint },
            400 | 408 | 429 => LaunchDarklyError::Status { status, endpoint },
            400..=499 => LaunchDarklyError::Unrecoverable { status, endpoint },
            _ => LaunchDarklyError::Status { status, endpoint },
        }
    }

    /// A copy of an error that carries no source (the HTTP-status errors).
    pub(crate) fn status_copy(&self) -> Option<Self> {
        match *self {
            LaunchDarklyError::Unauthorized { status, endpoint } => {
                Some(LaunchDarklyError::Unauthorized { status, endpoint })
            }
            LaunchDarklyError::Unrecoverable { status, endpoint } => {
                Some(LaunchDarklyError::Unrecoverable { status, endpoint })
            }
            LaunchDarklyError::Status { status, endpoint } => {
                Some(LaunchDarklyError::Status { status, endpoint })
            }
            _ => None,
        }
    }

    /// A low-cardinality class for `record_provider_error`.
    pub(crate) fn class(&self) -> &'static str {
        match self {
            LaunchDarklyError::Unauthorized { .. } => "unauthorized",
            LaunchDarklyError::Unrecoverable { .. } | LaunchDarklyError::Status { .. } => {
                "http_status"
            }
            LaunchDarklyError::Http { .. } => "transport",
            LaunchDarklyError::Timeout { .. } => "timeout",
            LaunchDarklyError::StreamEnded => "stream_ended",
            LaunchDarklyError::Json { .. }
            | LaunchDarklyError::Malformed { .. }
            | LaunchDarklyError::EventTooLarge { .. }
            | LaunchDarklyError::PayloadTooLarge { .. } => "payload",
        }
    }
}

/// Why a [`LaunchDarklyProvider`](crate::LaunchDarklyProvider) could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The SDK key is empty or cannot be sent in an HTTP header.
    #[error(
        "the LaunchDarkly SDK key is empty or contains characters not allowed in an HTTP header"
    )]
    InvalidSdkKey,
    /// A base or stream URI is not an absolute `http` or `https` URI.
    #[error("the LaunchDarkly {which} URI `{uri}` is not an absolute http(s) URI")]
    InvalidUri {
        /// `base` or `stream`.
        which: &'static str,
        /// The URI given.
        uri: String,
    },
    /// A polling interval, request timeout or stream read timeout of zero.
    #[error("the LaunchDarkly {what} must be longer than zero")]
    ZeroDuration {
        /// Which setting.
        what: &'static str,
    },
    /// The HTTP client could not be created (e.g. no TLS roots).
    #[error("cannot create the HTTP client")]
    Client(#[source] reqwest::Error),
    /// The proxy URL is not valid.
    #[error("the proxy `{proxy}` is not a valid proxy URL")]
    Proxy {
        /// The proxy URL, credentials hidden.
        proxy: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// A root-certificate file could not be read or holds no PEM certificate.
    #[error("cannot use the certificates of {}", .path.display())]
    CaFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The application tags cannot be sent in an HTTP header.
    #[error("the application id or version cannot be sent in an HTTP header")]
    InvalidTags,
    /// The event processor's thread or runtime could not be started.
    #[error("cannot start the LaunchDarkly event processor")]
    Runtime(#[source] std::io::Error),
}
