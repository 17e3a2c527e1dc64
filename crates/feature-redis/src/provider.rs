//! The provider: follows the hash through pub/sub, optionally as a read-through cache.

use crate::keys::{decode, Envelope, Keys, FILL};
use crate::store::{read_all, Conn};
use crate::RedisError;
use async_trait::async_trait;
use feature_core::metrics::Metrics;
use feature_core::provider::{Provider, ProviderError, ProviderStatus, Sink};
use feature_store::{
    check_name, Event, FlagStore, ItemKind, Loaded, Notice, Row, Source, SyncOptions, SyncProvider,
};
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::Script;
use serde::Deserialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

fn backend(operation: &'static str) -> impl FnOnce(redis::RedisError) -> ProviderError {
    move |e| ProviderError::Backend {
        provider: "redis",
        operation,
        source: Box::new(e),
    }
}

/// Cache counters of a provider used as a cache, for health and dashboards. The counters are
/// the same events reported to `Metrics::record_cache_hit` / `record_cache_miss`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CacheStats {
    /// Flag definitions the provider read from Redis.
    pub hits: u64,
    /// Flag definitions Redis did not have, read from the origin instead.
    pub misses: u64,
    /// Items (flags and segments) the cache held at the last full read; 0 when empty.
    pub size: u64,
    /// Whether the cache was filled at the last read.
    pub filled: bool,
}

impl CacheStats {
    /// `hits / (hits + misses)`, or 1 when nothing was read yet.
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            1.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

/// Change-channel messages a provider ignored. Anyone who can reach Redis can `PUBLISH` on
/// the channel; only notices that are well formed and that the store's revision counter
/// confirms are acted on, so junk costs a parse and a `GET`, never a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NoticeStats {
    /// Messages that are not a notice (not the JSON object `{"kind", "key", "revision"}` with
    /// a known kind and a valid key, or longer than 4 KiB).
    pub malformed: u64,
    /// Well-formed notices naming a revision the store's counter has not reached (forged, or
    /// about a cache that was emptied since).
    pub unconfirmed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    size: AtomicU64,
    filled: AtomicBool,
    malformed: AtomicU64,
    unconfirmed: AtomicU64,
}

/// The Redis side of the provider engine.
pub struct RedisSource {
    conn: Conn,
    keys: Keys,
    origin: Option<Arc<dyn FlagStore>>,
    ttl: Option<Duration>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for RedisSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSource")
            .field("prefix", &self.keys.prefix)
            .field("origin", &self.origin.as_ref().map(|o| o.name()))
            .finish()
    }
}

/// A live connection and subscription; dropping it unsubscribes.
pub struct RedisSession {
    conn: MultiplexedConnection,
    reader: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RedisSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSession").finish_non_exhaustive()
    }
}

impl Drop for RedisSession {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The longest change notice read (a key is at most 256 bytes, escaped at most 6 times that).
const MAX_NOTICE: usize = 4096;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    kind: String,
    key: String,
    #[serde(default)]
    revision: Option<u64>,
}

/// A well-formed notice, or `None`.
fn parse_notice(payload: &[u8]) -> Option<Notice> {
    if payload.len() > MAX_NOTICE {
        return None;
    }
    let p: Payload = serde_json::from_slice(payload).ok()?;
    let kind = ItemKind::parse(&p.kind)?;
    check_name("key", &p.key).ok()?;
    Some(Notice {
        kind,
        key: p.key,
        revision: p.revision,
    })
}

/// Checks a notice against the store's revision counter (`counter`, read after the notice
/// arrived) and the highest revision passed on so far (`seen`). A notice is published by the
/// script that increments the counter, so a genuine one never names a revision above it: one
/// that does is dropped (`None`). A notice without a revision (sent when a cache is empty, or
/// by hand) is passed on with a revision the provider already knows of (the last one seen, or
/// the counter's when lower: a refilled cache counts from 1 again), so that it makes the
/// provider read the item it names but never look like a gap that calls for a full reload.
fn confirm(n: Notice, counter: Option<u64>, seen: Option<u64>) -> Option<Notice> {
    match (n.revision, counter) {
        (Some(r), Some(c)) if r <= c => Some(n),
        (Some(_), _) => None,
        (None, Some(c)) => Some(Notice {
            revision: Some(seen.map_or(c, |s| s.min(c))),
            ..n
        }),
        (None, None) => Some(n),
    }
}

/// Logs an ignored message: the first, then at every power of two.
fn ignored(count: &AtomicU64, what: &str, payload: &[u8]) {
    let n = count.fetch_add(1, Ordering::Relaxed) + 1;
    if n.is_power_of_two() {
        tracing::warn!(target: "feature::redis", count = n, "ignored {what} on the change channel: {:?}", String::from_utf8_lossy(&payload[..payload.len().min(120)]));
    } else {
        tracing::debug!(target: "feature::redis", count = n, "ignored {what} on the change channel");
    }
}

fn origin_err(e: feature_store::WriteError) -> ProviderError {
    ProviderError::Backend {
        provider: "redis",
        operation: "origin",
        source: Box::new(e),
    }
}

impl RedisSource {
    fn hit(&self, metrics: &dyn Metrics, rows: &[Row]) {
        for r in rows.iter().filter(|r| r.kind == ItemKind::Flag) {
            metrics.record_cache_hit(&r.key);
            self.counters.hits.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn miss(&self, metrics: &dyn Metrics, keys: impl Iterator<Item = String>) {
        for k in keys {
            metrics.record_cache_miss(&k);
            self.counters.misses.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Fills the empty cache with the origin's rows (unless a change raced with the read).
    async fn fill(
        &self,
        c: &mut MultiplexedConnection,
        epoch: &str,
        rows: &[Row],
    ) -> Result<i64, redis::RedisError> {
        let script = Script::new(FILL);
        let mut inv = script.prepare_invoke();
        inv.key(&self.keys.flags)
            .key(&self.keys.segments)
            .key(&self.keys.revs)
            .key(&self.keys.version)
            .key(&self.keys.fill)
            .arg(epoch)
            .arg(self.ttl.map(|t| t.as_millis() as u64).unwrap_or(0));
        for r in rows {
            inv.arg(r.kind.as_str())
                .arg(&r.key)
                .arg(Envelope::of_row(r).to_json())
                .arg(r.version);
        }
        inv.invoke_async(c).await
    }
}

#[async_trait]
impl Source for RedisSource {
    type Session = RedisSession;

    fn name(&self) -> &'static str {
        "redis"
    }

    fn origin(&self) -> String {
        format!("redis:{}", self.keys.prefix)
    }

    async fn connect(&self) -> Result<(RedisSession, mpsc::Receiver<Event>), ProviderError> {
        let conn = self
            .conn
            .client
            .get_multiplexed_async_connection_with_config(&self.conn.config())
            .await
            .map_err(backend("connect"))?;
        let mut pubsub = self
            .conn
            .client
            .get_async_pubsub()
            .await
            .map_err(backend("subscribe"))?;
        pubsub
            .subscribe(&self.keys.channel)
            .await
            .map_err(backend("subscribe"))?;
        let (tx, rx) = mpsc::channel(1024);
        let mut check = conn.clone();
        let counter_key = self.keys.version.clone();
        let counters = self.counters.clone();
        let reader = tokio::spawn(async move {
            let mut messages = pubsub.into_on_message();
            let mut seen: Option<u64> = None;
            while let Some(msg) = messages.next().await {
                let payload = msg.get_payload_bytes();
                let Some(notice) = parse_notice(payload) else {
                    ignored(&counters.malformed, "a malformed message", payload);
                    continue;
                };
                let counter: Result<Option<String>, _> = redis::cmd("GET")
                    .arg(&counter_key)
                    .query_async(&mut check)
                    .await;
                let counter = match counter {
                    Ok(c) => c.and_then(|c| c.parse::<u64>().ok()),
                    Err(e) => {
                        let _ = tx.send(Event::Lost(backend("revision")(e))).await;
                        return;
                    }
                };
                let Some(notice) = confirm(notice, counter, seen) else {
                    ignored(&counters.unconfirmed, "an unconfirmed notice", payload);
                    continue;
                };
                seen = seen.max(notice.revision);
                if tx.send(Event::Changed(notice)).await.is_err() {
                    return;
                }
            }
            let _ = tx
                .send(Event::Lost(ProviderError::Backend {
                    provider: "redis",
                    operation: "subscribe",
                    source: "connection lost".into(),
                }))
                .await;
        });
        Ok((RedisSession { conn, reader }, rx))
    }

    async fn load_all(
        &self,
        session: &mut RedisSession,
        metrics: &dyn Metrics,
    ) -> Result<Loaded, ProviderError> {
        let Some(origin) = &self.origin else {
            let (revision, rows) = read_all(&mut session.conn, &self.keys)
                .await
                .map_err(backend("load"))?;
            return Ok(Loaded { rows, revision });
        };
        let epoch: Option<String> = redis::cmd("GET")
            .arg(&self.keys.fill)
            .query_async(&mut session.conn)
            .await
            .map_err(backend("load"))?;
        let (revision, rows) = read_all(&mut session.conn, &self.keys)
            .await
            .map_err(backend("load"))?;
        if revision.is_some() {
            self.hit(metrics, &rows);
            self.counters
                .size
                .store(rows.len() as u64, Ordering::Relaxed);
            self.counters.filled.store(true, Ordering::Relaxed);
            return Ok(Loaded { rows, revision });
        }
        // Cache empty (never filled, expired or flushed): read the origin and fill.
        self.counters.filled.store(false, Ordering::Relaxed);
        let rows = origin.rows().await.map_err(origin_err)?;
        self.miss(
            metrics,
            rows.iter()
                .filter(|r| r.kind == ItemKind::Flag)
                .map(|r| r.key.clone()),
        );
        let epoch = epoch.unwrap_or_else(|| "0".into());
        match self.fill(&mut session.conn, &epoch, &rows).await {
            Ok(v) if v > 0 => {
                self.counters
                    .size
                    .store(rows.len() as u64, Ordering::Relaxed);
                self.counters.filled.store(true, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) => return Err(backend("fill")(e)),
        }
        // No revision: the next periodic check reads the cache again.
        Ok(Loaded {
            rows,
            revision: None,
        })
    }

    async fn load_keys(
        &self,
        session: &mut RedisSession,
        keys: &[(ItemKind, String)],
        metrics: &dyn Metrics,
    ) -> Result<Vec<(ItemKind, String, Option<Row>)>, ProviderError> {
        let mut pipe = redis::pipe();
        pipe.atomic().exists(&self.keys.version);
        for (kind, key) in keys {
            pipe.hget(self.keys.hash(*kind), key);
        }
        let out: Vec<redis::Value> = pipe
            .query_async(&mut session.conn)
            .await
            .map_err(backend("update"))?;
        let filled = out
            .first()
            .and_then(|v| redis::from_redis_value_ref::<bool>(v).ok())
            .unwrap_or(false);
        if self.origin.is_some() && !filled {
            // The cache is empty: these items come from the origin.
            let mut rows = Vec::with_capacity(keys.len());
            if let Some(origin) = &self.origin {
                for (kind, key) in keys {
                    let row = origin.row(*kind, key).await.map_err(origin_err)?;
                    if *kind == ItemKind::Flag {
                        self.miss(metrics, std::iter::once(key.clone()));
                    }
                    rows.push((*kind, key.clone(), row));
                }
            }
            return Ok(rows);
        }
        let mut rows = Vec::with_capacity(keys.len());
        for ((kind, key), v) in keys.iter().zip(out.iter().skip(1)) {
            let raw: Option<String> =
                redis::from_redis_value_ref(v).map_err(|e| backend("update")(e.into()))?;
            // In a filled cache an absent item is a deleted one: Redis answered either way.
            if self.origin.is_some() && *kind == ItemKind::Flag {
                metrics.record_cache_hit(key);
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
            }
            rows.push((*kind, key.clone(), raw.map(|raw| decode(*kind, key, &raw))));
        }
        Ok(rows)
    }

    async fn revision(&self, session: &mut RedisSession) -> Result<Option<u64>, ProviderError> {
        redis::cmd("GET")
            .arg(&self.keys.version)
            .query_async(&mut session.conn)
            .await
            .map_err(backend("revision"))
    }
}

/// Flags from a Redis hash, kept current with pub/sub; optionally a read-through cache in front
/// of another store. See the [crate docs](crate).
#[derive(Debug)]
pub struct RedisProvider {
    inner: SyncProvider<RedisSource>,
}

impl RedisProvider {
    /// A provider for `url` with the defaults (prefix `feature`, no origin).
    pub fn new(url: &str) -> Result<RedisProvider, RedisError> {
        RedisProvider::builder(url).build()
    }

    /// A builder, to set the prefix, an origin, timeouts and fallbacks.
    pub fn builder(url: impl Into<String>) -> RedisBuilder {
        RedisBuilder {
            url: url.into(),
            prefix: crate::DEFAULT_PREFIX.to_owned(),
            origin: None,
            ttl: Some(Duration::from_secs(300)),
            options: SyncOptions::default(),
            tls_root: None,
        }
    }

    /// The cache counters and size, when the provider is a cache in front of an origin.
    pub fn cache_stats(&self) -> Option<CacheStats> {
        let s = self.inner.source();
        s.origin.as_ref()?;
        let c = &s.counters;
        Some(CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            size: c.size.load(Ordering::Relaxed),
            filled: c.filled.load(Ordering::Relaxed),
        })
    }

    /// The key layout.
    pub fn keys(&self) -> &Keys {
        &self.inner.source().keys
    }

    /// How many change-channel messages were ignored, and why.
    pub fn notice_stats(&self) -> NoticeStats {
        let c = &self.inner.source().counters;
        NoticeStats {
            malformed: c.malformed.load(Ordering::Relaxed),
            unconfirmed: c.unconfirmed.load(Ordering::Relaxed),
        }
    }
}

#[async_trait]
impl Provider for RedisProvider {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn start(&self, sink: Arc<dyn Sink>) -> Result<(), ProviderError> {
        self.inner.start(sink).await
    }

    fn status(&self) -> ProviderStatus {
        self.inner.status()
    }

    async fn close(&self) {
        self.inner.close().await;
    }
}

/// Builds a [`RedisProvider`].
#[derive(Clone)]
pub struct RedisBuilder {
    url: String,
    prefix: String,
    origin: Option<Arc<dyn FlagStore>>,
    ttl: Option<Duration>,
    options: SyncOptions,
    /// PEM root certificate(s) trusted for `rediss://`, instead of the system's.
    tls_root: Option<Vec<u8>>,
}

impl std::fmt::Debug for RedisBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBuilder")
            .field("prefix", &self.prefix)
            .field("origin", &self.origin.as_ref().map(|o| o.name()))
            .field("tls_root_certificate", &self.tls_root.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisBuilder {
    /// Trusts `pem` (one or more PEM certificates, e.g. a private CA) for `rediss://` URLs
    /// *instead of* the system's root certificates (the redis client replaces the root store;
    /// include a public CA in `pem` if the server's certificate chains to one). Crate feature
    /// `rustls`.
    #[cfg(feature = "rustls")]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root = Some(pem.into());
        self
    }

    /// The key prefix (default `feature`; see [`Keys`]).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Makes Redis a read-through cache in front of `origin` (e.g. a `PostgresStore`): an
    /// empty cache is filled from the origin, and hits and misses are counted.
    pub fn cache_for(mut self, origin: Arc<dyn FlagStore>) -> Self {
        self.origin = Some(origin);
        self
    }

    /// How long a filled cache lives (default 5 minutes; `None`: until flushed). Changes made
    /// through [`CachedStore`](crate::CachedStore) are written through at once; the TTL bounds
    /// how long changes made to the origin by other means stay invisible.
    pub fn cache_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.ttl = ttl;
        self
    }

    feature_store::sync_option_setters!(
        store: "Redis",
        revision: "the version counter",
    );

    /// Checks the URL and prefix; connects only when started.
    pub fn build(self) -> Result<RedisProvider, RedisError> {
        self.options.validate()?;
        let source = RedisSource {
            conn: Conn::with_client(
                crate::client(&self.url, self.tls_root.as_deref())?,
                self.options.timeout,
            ),
            keys: Keys::new(&self.prefix)?,
            origin: self.origin,
            ttl: self.ttl.filter(|t| !t.is_zero()),
            counters: Arc::new(Counters::default()),
        };
        Ok(RedisProvider {
            inner: SyncProvider::new(source, self.options),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_intervals_are_refused_when_building() {
        for builder in [
            RedisProvider::builder("redis://127.0.0.1:6379").refresh_interval(Duration::ZERO),
            RedisProvider::builder("redis://127.0.0.1:6379").timeout(Duration::ZERO),
        ] {
            assert!(matches!(
                builder.build(),
                Err(RedisError::InvalidOptions(_))
            ));
        }
    }

    fn notice(revision: Option<u64>) -> Notice {
        Notice {
            kind: ItemKind::Flag,
            key: "x".into(),
            revision,
        }
    }

    #[test]
    fn only_well_formed_notices_are_read() {
        assert_eq!(
            parse_notice(br#"{"kind":"segment","key":"s","revision":3}"#),
            Some(Notice {
                kind: ItemKind::Segment,
                key: "s".into(),
                revision: Some(3)
            })
        );
        assert_eq!(
            parse_notice(br#"{"kind":"flag","key":"x"}"#),
            Some(notice(None))
        );
        for junk in [
            &b"x"[..],
            b"{}",
            b"[]",
            br#"{"kind":"flag","key":"a
b"}"#,
            br#"{"kind":"flag","key":"x","revision":1.5}"#,
            br#"{"kind":"flag","key":"x","resync":true}"#,
            br#"{"kind":"Flag","key":"x"}"#,
        ] {
            assert_eq!(
                parse_notice(junk),
                None,
                "{}",
                String::from_utf8_lossy(junk)
            );
        }
        let long = format!(
            r#"{{"kind":"flag","key":"x","revision":1{}}}"#,
            " ".repeat(5000)
        );
        assert_eq!(parse_notice(long.as_bytes()), None);
    }

    #[test]
    fn notices_are_confirmed_by_the_counter() {
        // A revision the counter has reached passes; one above it, or with no counter, not.
        assert_eq!(
            confirm(notice(Some(5)), Some(5), None),
            Some(notice(Some(5)))
        );
        assert_eq!(
            confirm(notice(Some(2)), Some(5), Some(4)),
            Some(notice(Some(2)))
        );
        assert_eq!(confirm(notice(Some(6)), Some(5), Some(5)), None);
        assert_eq!(confirm(notice(Some(1)), None, None), None);
        // Without a revision: one the provider knows, never a gap.
        assert_eq!(
            confirm(notice(None), Some(9), Some(7)),
            Some(notice(Some(7)))
        );
        assert_eq!(
            confirm(notice(None), Some(2), Some(57)),
            Some(notice(Some(2)))
        );
        assert_eq!(confirm(notice(None), Some(9), None), Some(notice(Some(9))));
        assert_eq!(confirm(notice(None), None, Some(7)), Some(notice(None)));
    }
}
