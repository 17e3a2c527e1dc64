//! Errors of the relay provider.

/// What can go wrong building or running a [`RelayProvider`](crate::RelayProvider).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The server URL is not an `http://` or `https://` URL.
    #[error("invalid relay URL {url:?}: expected http://HOST[:PORT][/PATH] or https://...")]
    InvalidUrl {
        /// The URL given (credentials removed).
        url: String,
    },
    /// A setting that cannot work (a zero duration or size).
    #[error("invalid relay option {what}: {problem}")]
    InvalidOption {
        /// The option.
        what: &'static str,
        /// Why.
        problem: &'static str,
    },
    /// The synchronisation settings cannot work.
    #[error(transparent)]
    Sync(#[from] feature_store::SyncOptionsError),
    /// The server refused the token (401 or 403): the provider stops trying.
    #[error("the flag server refused the token (HTTP {status}); not retrying")]
    Refused {
        /// The status.
        status: u16,
    },
    /// The server answered with another error status.
    #[error("the flag server answered HTTP {status}")]
    Status {
        /// The status.
        status: u16,
    },
    /// The request failed (connection, TLS, body).
    #[error("request to the flag server failed: {0}")]
    Http(#[source] reqwest::Error),
    /// The stream ended or sent nothing, not even a heartbeat, for too long.
    #[error("the stream {0}")]
    Stream(&'static str),
    /// An event was larger than the provider accepts.
    #[error(transparent)]
    TooLarge(#[from] feature_store::sse::EventTooLarge),
    /// An event's data is not what the protocol says.
    #[error("malformed {event} event: {source}")]
    Malformed {
        /// The event type.
        event: &'static str,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}
