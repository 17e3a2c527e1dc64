//! # feature-redis
//!
//! Redis as the shared flag store of every instance of a service, or as a read-through cache
//! in front of PostgreSQL (Redis as a cache). A [`RedisProvider`]
//! keeps each instance's flags current through pub/sub; a [`RedisStore`] changes flags stored
//! in Redis, and a [`CachedStore`] changes them in the origin and writes them through to the
//! cache. Evaluation never touches Redis: it reads the last snapshot the provider published.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use feature_core::Flag;
//! use feature_redis::{FlagStore, RedisProvider, RedisStore};
//!
//! let url = "redis://127.0.0.1:6379";
//! // Every instance: flags from the hash, updated live. Hand the provider to the client:
//! // `feature::Client::builder().provider(provider).build().await?` (with the `feature` crate's
//! // `redis` feature, `FEATURE_PROVIDER=redis` and `FEATURE_REDIS_URL` do the same).
//! let provider = RedisProvider::builder(url).prefix("myapp").build()?;
//!
//! // An admin tool: every connected instance sees the change within milliseconds.
//! let store = RedisStore::new(url, "myapp")?;
//! store.create(&Flag::boolean("new-checkout", true), "alice@example.com").await?;
//! store.disable("new-checkout", "alice@example.com").await?;
//! # drop(provider); Ok(()) }
//! ```
//!
//! ## Crate features
//!
//! | feature | what it adds |
//! |---|---|
//! | (none) | everything: provider, write API, cache mode; TLS is not compiled in, and a `rediss://` URL is refused ([`RedisError::InvalidTls`]) |
//! | `rustls` | TLS with rustls (aws-lc): `rediss://` URLs, the server's certificate checked against the system's root certificates, or only against [`RedisBuilder::tls_root_certificate`] when given (a private CA). The `feature` crate's `redis` feature turns it on |
//!
//! ## Key layout
//!
//! All keys share a prefix (default `feature`, [`RedisBuilder::prefix`], `FEATURE_REDIS_PREFIX`);
//! see [`Keys`]:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{prefix}:flags` | hash | flag key → `{"version": 3, "updatedAt": "...", "updatedBy": "alice", "definition": {...}}` (the flag in the file format) |
//! | `{prefix}:segments` | hash | segment key → the same envelope |
//! | `{prefix}:revs` | hash | `flag:KEY` / `segment:KEY` → last version, kept after a delete so versions never repeat |
//! | `{prefix}:version` | string | revision counter, +1 on every change; in cache mode its presence means "filled" |
//! | `{prefix}:fill` | string | counter bumped by changes made while a cache is empty (a racing fill is abandoned) |
//! | `{prefix}:audit` | stream | one entry per change: kind, key, action, actor, at, version, before, after (about 10 000 kept) |
//! | `{prefix}:changes` | pub/sub channel | `{"kind": "flag", "key": "...", "revision": 12}` after each change |
//!
//! Every write is one Lua script (compare-and-set on the stored value, version bump, audit
//! entry, notice), so concurrent writers never lose an update: a writer that lost the race
//! re-reads and retries, or gets [`WriteError::Conflict`] when it asked for a given version.
//! A batch ([`FlagStore::apply_changes`], used by [`push`]) is one script too: it checks
//! every item's presence and version, and the types of the keys it will write, before its
//! first write, so it is applied whole or not at all.
//!
//! ## Redis as a cache in front of PostgreSQL
//!
//! With [`RedisBuilder::cache_for`] the provider reads flags from Redis and only goes to the
//! origin store when Redis does not have them; writes go through a [`CachedStore`], which
//! writes the origin (and its audit log) first and then the cache, announcing the change on
//! the channel. Precisely:
//!
//! - A **cache hit** is one flag definition the provider needed and read from Redis: every
//!   flag of a full read of a filled cache, and every flag named by a change notice while the
//!   cache is filled (an absent key in a filled cache is an answer too: the flag was deleted).
//! - A **cache miss** is one flag definition the provider needed and Redis could not give
//!   because the cache was empty (never filled, expired after [`RedisBuilder::cache_ttl`],
//!   flushed, or a restarted Redis without persistence): it was read from the origin instead,
//!   and the cache was filled from that read.
//! - Segments travel with the flags but are not counted; evaluations are never counted (they
//!   never reach Redis). Without an origin Redis is the store, not a cache, and nothing is
//!   counted.
//!
//! Both are reported through `Metrics::record_cache_hit` / `record_cache_miss` with the flag's
//! key, and summed in [`RedisProvider::cache_stats`] with the cache's size for health checks.
//!
//! The cache is never left stale by a write made through [`CachedStore`]: when the
//! write-through fails, or the origin's write fails in a way that leaves its outcome unknown (an
//! error or a time-out, which may come after the commit), the cache is invalidated (its
//! `{prefix}:version` marker deleted, fills under way abandoned, the item announced) so that
//! the next read fills it from the origin; when the origin refuses a write because the item is
//! not what the caller thought (a version conflict, a missing or existing item), the item is
//! refreshed from the origin. An invalidation that cannot reach Redis is retried in the
//! background until it succeeds.
//!
//! ## Failures
//!
//! As for PostgreSQL (see `feature_store::SyncProvider`): a start timeout, then the last
//! snapshot on disk or a bootstrap file (status `Degraded`) or nothing (status `Unavailable`,
//! the client serves defaults with `CLIENT_NOT_READY`); later outages keep the last good flags
//! (`Degraded`), reconnect with capped exponential backoff and jitter, and reload fully, since
//! pub/sub messages sent while disconnected are lost. A notice whose revision skips one, and the
//! periodic check of `{prefix}:version`, also trigger a full reload. A hash field that is not a
//! valid flag is skipped and reported with its key.
//!
//! Any client of the Redis server can `PUBLISH` on the channel, so the provider acts only on
//! notices that are well formed (the JSON object above, a known kind, a valid key, at most
//! 4 KiB) and that the version counter confirms (a genuine notice is sent by the script that
//! increments it, so it never names a revision above the counter's). Anything else is counted
//! ([`RedisProvider::notice_stats`]), logged (the first, then at powers of two) and ignored:
//! junk costs a parse and one `GET`, never a reload. A confirmed notice without a revision (a
//! field written by hand) makes the provider read the item it names, nothing more.
#![deny(missing_docs)]

mod keys;
mod provider;
mod store;
mod tokens;

pub use feature_store::{
    push, Action, Change, ChangeOp, FlagStore, HistoryEntry, ItemKind, PushError, PushOptions, Row,
    SyncOptions, WriteError, Written,
};
pub use keys::Keys;
pub use provider::{
    CacheStats, NoticeStats, RedisBuilder, RedisProvider, RedisSession, RedisSource,
};
pub use store::{CachedStore, RedisStore, AUDIT_MAX_LEN};

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "feature";

/// Errors configuring the Redis provider or store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The URL cannot be parsed.
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(#[source] redis::RedisError),
    /// The TLS settings cannot be used: the root certificate is not valid PEM, or the URL is
    /// `rediss://` and the crate was built without its `rustls` feature.
    #[error("invalid Redis TLS settings: {0}")]
    InvalidTls(#[source] redis::RedisError),
    /// The prefix is empty, too long, or has whitespace or control characters.
    #[error("invalid key prefix {0:?}: 1 to 100 bytes without whitespace or control characters")]
    InvalidPrefix(String),
    /// A setting of the engine cannot be used (a zero refresh interval or timeout).
    #[error(transparent)]
    InvalidOptions(#[from] feature_store::SyncOptionsError),
}

/// A client for `url`; with `root_pem` (crate feature `rustls`), `rediss://` trusts only those
/// certificates.
pub(crate) fn client(url: &str, root_pem: Option<&[u8]>) -> Result<redis::Client, RedisError> {
    use redis::IntoConnectionInfo;
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    let tls = matches!(scheme.as_deref(), Some("rediss" | "valkeys"));
    if tls && !cfg!(feature = "rustls") {
        return Err(RedisError::InvalidTls(redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "rediss:// needs TLS, which is not compiled in (enable the `rustls` feature)",
        ))));
    }
    #[cfg(feature = "rustls")]
    {
        // The redis client builds its TLS settings with the process-wide rustls provider; make
        // sure there is one (aws-lc, as everywhere in this toolkit) unless the application
        // installed its own.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        }
        if let Some(pem) = root_pem {
            let info = url.into_connection_info().map_err(RedisError::InvalidUrl)?;
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            };
            return redis::Client::build_with_tls(info, certs).map_err(RedisError::InvalidTls);
        }
    }
    let _ = root_pem;
    let info = url.into_connection_info().map_err(RedisError::InvalidUrl)?;
    redis::Client::open(info).map_err(RedisError::InvalidUrl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rediss_needs_tls_compiled_in() {
        for url in ["rediss://127.0.0.1:6380", "REDISS://127.0.0.1:6380/0"] {
            let result = client(url, None);
            #[cfg(feature = "rustls")]
            assert!(result.is_ok(), "{url}: {result:?}");
            #[cfg(not(feature = "rustls"))]
            assert!(
                matches!(&result, Err(RedisError::InvalidTls(e)) if e.to_string().contains("rustls")),
                "{url}: {result:?}"
            );
        }
        assert!(client("redis://127.0.0.1:6379", None).is_ok());
    }
}
