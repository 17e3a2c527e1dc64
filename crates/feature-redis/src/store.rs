//! The write API on Redis, and write-through into a Redis cache in front of another store.

use crate::keys::{decode, Envelope, Keys, APPLY, CAS, PUSH};
use crate::RedisError;
use async_trait::async_trait;
use feature_core::model::{Flag, Segment};
use feature_store::Backoff;
use feature_store::{
    check_name, checked_batch, flag_definition, now_rfc3339, segment_definition, validate_flag,
    validate_segment, Action, BatchError, Change, ChangeOp, FlagStore, HistoryEntry, IfMissing,
    ItemKind, Row, WriteError, Written,
};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Script};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How many audit entries the stream keeps (approximately).
pub const AUDIT_MAX_LEN: usize = 10_000;

/// How many times a read-modify-write is retried when another writer got in between.
const RETRIES: usize = 32;

pub(crate) fn store_err(operation: &'static str) -> impl FnOnce(redis::RedisError) -> WriteError {
    move |e| WriteError::Store {
        store: "redis",
        operation,
        source: Box::new(e),
    }
}

/// Whether an error means the connection died before the command ran.
fn dropped(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<redis::RedisError>()
        .is_some_and(|e| e.is_connection_dropped() || e.is_connection_refusal() || e.is_io_error())
}

/// A lazily (re)connected multiplexed connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) client: Client,
    cached: Mutex<Option<MultiplexedConnection>>,
    pub(crate) timeout: Duration,
}

impl Conn {
    pub(crate) fn new(url: &str, timeout: Duration) -> Result<Conn, RedisError> {
        Ok(Conn::with_client(crate::client(url, None)?, timeout))
    }

    /// A connection made by `client` (built with TLS settings, say).
    pub(crate) fn with_client(client: Client, timeout: Duration) -> Conn {
        Conn {
            client,
            cached: Mutex::new(None),
            timeout,
        }
    }

    pub(crate) fn config(&self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
    }

    pub(crate) async fn get(&self) -> Result<MultiplexedConnection, redis::RedisError> {
        if let Some(c) = self
            .cached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(c);
        }
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config())
            .await?;
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
        Ok(c)
    }

    /// Forgets a connection that failed, so that the next call reconnects.
    pub(crate) fn reset(&self) {
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Reads every stored item (one atomic round trip).
pub(crate) async fn read_all(
    c: &mut MultiplexedConnection,
    keys: &Keys,
) -> Result<(Option<u64>, Vec<Row>), redis::RedisError> {
    let (version, flags, segments): (
        Option<u64>,
        HashMap<String, String>,
        HashMap<String, String>,
    ) = redis::pipe()
        .atomic()
        .get(&keys.version)
        .hgetall(&keys.flags)
        .hgetall(&keys.segments)
        .query_async(c)
        .await?;
    let mut rows: Vec<Row> = segments
        .iter()
        .map(|(k, v)| decode(ItemKind::Segment, k, v))
        .chain(flags.iter().map(|(k, v)| decode(ItemKind::Flag, k, v)))
        .collect();
    rows.sort_by(|a, b| (a.kind, &a.key).cmp(&(b.kind, &b.key)));
    Ok((version, rows))
}

/// Flags and segments stored in Redis itself, written with an audit stream.
/// See the [crate docs](crate).
#[derive(Debug, Clone)]
pub struct RedisStore {
    conn: Arc<Conn>,
    keys: Arc<Keys>,
}

enum Cas {
    Done,
    Changed,
}

/// The definition a [`Modification`] writes.
#[derive(Clone, Copy)]
enum NewDefinition<'a> {
    /// This one.
    Fixed(&'a Value),
    /// Derived from the stored one.
    Edit(&'a (dyn Fn(&Row) -> Value + Sync)),
    /// None: the item is deleted.
    Delete,
}

/// One read-modify-write of an item, as [`RedisStore::modify`] makes it.
#[derive(Clone, Copy)]
struct Modification<'a> {
    kind: ItemKind,
    key: &'a str,
    /// Who makes the change.
    actor: &'a str,
    /// What the audit stream records (`create` when the item did not exist).
    action: Action,
    /// The change is refused unless the stored item has this version.
    expected_version: Option<u64>,
    if_missing: IfMissing,
    definition: NewDefinition<'a>,
}

impl RedisStore {
    /// A store at `url` under `prefix` (connects on first use).
    pub fn new(url: &str, prefix: &str) -> Result<RedisStore, RedisError> {
        Ok(RedisStore {
            conn: Arc::new(Conn::new(url, Duration::from_secs(5))?),
            keys: Arc::new(Keys::new(prefix)?),
        })
    }

    /// The key layout.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The shared connection.
    pub(crate) async fn conn(&self) -> Result<MultiplexedConnection, redis::RedisError> {
        self.conn.get().await
    }

    /// Runs `f` with the time limit; retries once on a fresh connection when the cached one
    /// turned out to be dead (the server restarted since it was opened).
    pub(crate) async fn run<T, Fut>(
        &self,
        operation: &'static str,
        f: impl Fn() -> Fut,
    ) -> Result<T, WriteError>
    where
        Fut: std::future::Future<Output = Result<T, WriteError>>,
    {
        let mut attempt = 0;
        loop {
            let r = tokio::time::timeout(self.conn.timeout, f())
                .await
                .map_err(|_| WriteError::Timeout {
                    store: "redis",
                    operation,
                })
                .and_then(|r| r);
            if matches!(
                r,
                Err(WriteError::Store { .. } | WriteError::Timeout { .. })
            ) {
                self.conn.reset();
            }
            match &r {
                Err(WriteError::Store { source, .. })
                    if attempt == 0 && dropped(source.as_ref()) =>
                {
                    attempt += 1;
                }
                _ => return r,
            }
        }
    }

    async fn current(
        &self,
        kind: ItemKind,
        key: &str,
    ) -> Result<Option<(String, Row)>, WriteError> {
        let mut c = self.conn.get().await.map_err(store_err("read"))?;
        let raw: Option<String> = redis::cmd("HGET")
            .arg(self.keys.hash(kind))
            .arg(key)
            .query_async(&mut c)
            .await
            .map_err(store_err("read"))?;
        Ok(raw.map(|raw| {
            let row = decode(kind, key, &raw);
            (raw, row)
        }))
    }

    #[allow(clippy::too_many_arguments)]
    async fn cas(
        &self,
        kind: ItemKind,
        key: &str,
        expected: Option<&str>,
        new: Option<&Envelope>,
        version: u64,
        action: Action,
        actor: &str,
    ) -> Result<Cas, WriteError> {
        let mut c = self.conn.get().await.map_err(store_err("write"))?;
        let (ok, _current): (i64, String) = Script::new(CAS)
            .key(self.keys.hash(kind))
            .key(&self.keys.revs)
            .key(&self.keys.version)
            .key(&self.keys.audit)
            .arg(key)
            .arg(expected.unwrap_or(""))
            .arg(new.map(Envelope::to_json).unwrap_or_default())
            .arg(version)
            .arg(kind.as_str())
            .arg(action.as_str())
            .arg(actor)
            .arg(now_rfc3339())
            .arg(&self.keys.channel)
            .arg(AUDIT_MAX_LEN)
            .arg(serde_json::to_string(key).unwrap_or_default())
            .invoke_async(&mut c)
            .await
            .map_err(store_err("write"))?;
        Ok(if ok == 1 { Cas::Done } else { Cas::Changed })
    }

    async fn last_version(&self, kind: ItemKind, key: &str) -> Result<u64, WriteError> {
        let mut c = self.conn.get().await.map_err(store_err("read"))?;
        let v: Option<u64> = redis::cmd("HGET")
            .arg(&self.keys.revs)
            .arg(format!("{}:{key}", kind.as_str()))
            .query_async(&mut c)
            .await
            .map_err(store_err("read"))?;
        Ok(v.unwrap_or(0))
    }

    /// Makes `m`: reads the item and writes it back, retried when another writer got in
    /// between.
    async fn modify(&self, m: Modification<'_>) -> Result<Written, WriteError> {
        let Modification {
            kind,
            key,
            actor,
            action,
            expected_version,
            if_missing,
            definition,
        } = m;
        check_name("actor", actor)?;
        for _ in 0..RETRIES {
            let cur = self.current(kind, key).await?;
            let (expected_raw, base_version, next) = match &cur {
                None if if_missing == IfMissing::Fail => {
                    return Err(WriteError::NotFound {
                        kind,
                        key: key.to_owned(),
                    })
                }
                None => (
                    None,
                    self.last_version(kind, key).await?,
                    match definition {
                        NewDefinition::Fixed(d) => Some(d.clone()),
                        NewDefinition::Edit(_) | NewDefinition::Delete => None,
                    },
                ),
                Some((raw, row)) => {
                    if let Some(v) = expected_version {
                        if v != row.version {
                            return Err(WriteError::Conflict {
                                kind,
                                key: key.to_owned(),
                                expected: v,
                                actual: row.version,
                            });
                        }
                    }
                    let next = match definition {
                        NewDefinition::Fixed(d) => Some(d.clone()),
                        NewDefinition::Edit(edit) => Some(edit(row)),
                        NewDefinition::Delete => None,
                    };
                    if action != Action::Delete && next.as_ref() == Some(&row.definition) {
                        return Ok(Written {
                            kind,
                            key: key.to_owned(),
                            version: row.version,
                            changed: false,
                            row: Some(row.clone()),
                        });
                    }
                    (Some(raw.as_str()), row.version, next)
                }
            };
            let version = base_version + 1;
            let env = next.map(|definition| Envelope {
                version,
                updated_at: Some(now_rfc3339()),
                updated_by: Some(actor.to_owned()),
                definition,
            });
            let action = if cur.is_none() {
                Action::Create
            } else {
                action
            };
            match self
                .cas(
                    kind,
                    key,
                    expected_raw,
                    env.as_ref(),
                    version,
                    action,
                    actor,
                )
                .await?
            {
                Cas::Done => {
                    return Ok(Written {
                        kind,
                        key: key.to_owned(),
                        version,
                        changed: true,
                        row: env.map(|e| Row {
                            kind,
                            key: key.to_owned(),
                            definition: e.definition,
                            version,
                            updated_at: e.updated_at,
                            updated_by: e.updated_by,
                        }),
                    })
                }
                Cas::Changed if expected_version.is_some() => {
                    let actual = self.current(kind, key).await?.map(|(_, r)| r.version);
                    return Err(WriteError::Conflict {
                        kind,
                        key: key.to_owned(),
                        expected: expected_version.unwrap_or(0),
                        actual: actual.unwrap_or(0),
                    });
                }
                Cas::Changed => continue,
            }
        }
        Err(WriteError::Store {
            store: "redis",
            operation: "write",
            source: "too many concurrent writers to the same item".into(),
        })
    }
}

impl RedisStore {
    /// Runs the [`PUSH`] script: every check, then every write, in one atomic step.
    async fn push_script(
        &self,
        changes: &[Change],
        definitions: &[Option<Value>],
        actor: &str,
    ) -> Result<Vec<Written>, BatchError> {
        let whole = |e| BatchError::whole(store_err("apply changes")(e));
        let at = now_rfc3339();
        let script = Script::new(PUSH);
        let mut inv = script.prepare_invoke();
        inv.key(&self.keys.flags)
            .key(&self.keys.segments)
            .key(&self.keys.revs)
            .key(&self.keys.version)
            .key(&self.keys.audit)
            .arg(&self.keys.channel)
            .arg(actor)
            .arg(serde_json::to_string(actor).unwrap_or_default())
            .arg(&at)
            .arg(AUDIT_MAX_LEN);
        for (c, def) in changes.iter().zip(definitions) {
            let op = match c.op {
                ChangeOp::Create => "create",
                ChangeOp::Update => "update",
                ChangeOp::Delete => "delete",
            };
            inv.arg(c.kind.as_str())
                .arg(&c.key)
                .arg(op)
                .arg(c.version.map(|v| v.to_string()).unwrap_or_default())
                .arg(def.as_ref().map(Value::to_string).unwrap_or_default())
                .arg(serde_json::to_string(&c.key).unwrap_or_default());
        }
        let mut conn = self.conn.get().await.map_err(whole)?;
        let reply: Vec<String> = match inv.invoke_async(&mut conn).await {
            Ok(r) => r,
            Err(e) => {
                self.conn.reset();
                return Err(whole(e));
            }
        };
        let refused = |index: usize, source: WriteError| BatchError {
            index: index.checked_sub(1),
            source,
        };
        match reply.first().map(String::as_str) {
            Some("1") => Ok(changes
                .iter()
                .zip(definitions)
                .zip(reply.iter().skip(1))
                .map(|((c, def), v)| {
                    let version = v.parse().unwrap_or(0);
                    Written {
                        kind: c.kind,
                        key: c.key.clone(),
                        version,
                        changed: true,
                        row: def.as_ref().map(|d| Row {
                            kind: c.kind,
                            key: c.key.clone(),
                            definition: d.clone(),
                            version,
                            updated_at: Some(at.clone()),
                            updated_by: Some(actor.to_owned()),
                        }),
                    }
                })
                .collect()),
            _ => {
                let field = |i: usize| reply.get(i).map(String::as_str).unwrap_or("");
                let index: usize = field(1).parse().unwrap_or(0);
                let Some(c) = index.checked_sub(1).and_then(|i| changes.get(i)) else {
                    return Err(refused(
                        0,
                        WriteError::Store {
                            store: "redis",
                            operation: "apply changes",
                            source: format!("refused before any write: {} {}", field(2), field(3))
                                .into(),
                        },
                    ));
                };
                let (kind, key) = (c.kind, c.key.clone());
                let actual = field(3).parse().unwrap_or(0);
                let source = match field(2) {
                    "exists" => WriteError::AlreadyExists { kind, key },
                    "missing" => WriteError::NotFound { kind, key },
                    _ => WriteError::Conflict {
                        kind,
                        key,
                        expected: c.version.unwrap_or(0),
                        actual,
                    },
                };
                Err(refused(index, source))
            }
        }
    }
}

#[async_trait]
impl FlagStore for RedisStore {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn rows(&self) -> Result<Vec<Row>, WriteError> {
        self.run("read", || async {
            let mut c = self.conn.get().await.map_err(store_err("read"))?;
            let (_, rows) = read_all(&mut c, &self.keys)
                .await
                .map_err(store_err("read"))?;
            Ok(rows)
        })
        .await
    }

    async fn row(&self, kind: ItemKind, key: &str) -> Result<Option<Row>, WriteError> {
        self.run("read", || async {
            Ok(self.current(kind, key).await?.map(|(_, r)| r))
        })
        .await
    }

    async fn create(&self, flag: &Flag, actor: &str) -> Result<Written, WriteError> {
        validate_flag(flag)?;
        let def = flag_definition(flag);
        self.run("create", || async {
            check_name("actor", actor)?;
            if self.current(ItemKind::Flag, &flag.key).await?.is_some() {
                return Err(WriteError::AlreadyExists {
                    kind: ItemKind::Flag,
                    key: flag.key.clone(),
                });
            }
            let version = self.last_version(ItemKind::Flag, &flag.key).await? + 1;
            let env = Envelope {
                version,
                updated_at: Some(now_rfc3339()),
                updated_by: Some(actor.to_owned()),
                definition: def.clone(),
            };
            match self
                .cas(
                    ItemKind::Flag,
                    &flag.key,
                    None,
                    Some(&env),
                    version,
                    Action::Create,
                    actor,
                )
                .await?
            {
                Cas::Done => Ok(Written {
                    kind: ItemKind::Flag,
                    key: flag.key.clone(),
                    version,
                    changed: true,
                    row: Some(Row {
                        kind: ItemKind::Flag,
                        key: flag.key.clone(),
                        definition: env.definition,
                        version,
                        updated_at: env.updated_at,
                        updated_by: env.updated_by,
                    }),
                }),
                Cas::Changed => Err(WriteError::AlreadyExists {
                    kind: ItemKind::Flag,
                    key: flag.key.clone(),
                }),
            }
        })
        .await
    }

    async fn update(&self, flag: &Flag, actor: &str) -> Result<Written, WriteError> {
        validate_flag(flag)?;
        let def = flag_definition(flag);
        let m = Modification {
            kind: ItemKind::Flag,
            key: &flag.key,
            actor,
            action: Action::Update,
            expected_version: flag.version,
            if_missing: IfMissing::Fail,
            definition: NewDefinition::Fixed(&def),
        };
        self.run("update", || self.modify(m)).await
    }

    async fn delete(&self, key: &str, actor: &str) -> Result<Written, WriteError> {
        let m = Modification {
            kind: ItemKind::Flag,
            key,
            actor,
            action: Action::Delete,
            expected_version: None,
            if_missing: IfMissing::Fail,
            definition: NewDefinition::Delete,
        };
        self.run("delete", || self.modify(m)).await
    }

    async fn enable(&self, key: &str, actor: &str) -> Result<Written, WriteError> {
        let on = |r: &Row| {
            let mut d = r.definition.clone();
            if let Value::Object(m) = &mut d {
                if m.get("enabled") == Some(&Value::Bool(false)) {
                    m.remove("enabled");
                }
            }
            d
        };
        let m = Modification {
            kind: ItemKind::Flag,
            key,
            actor,
            action: Action::Enable,
            expected_version: None,
            if_missing: IfMissing::Fail,
            definition: NewDefinition::Edit(&on),
        };
        self.run("enable", || self.modify(m)).await
    }

    async fn disable(&self, key: &str, actor: &str) -> Result<Written, WriteError> {
        let off = |r: &Row| {
            let mut d = r.definition.clone();
            if let Value::Object(m) = &mut d {
                m.insert("enabled".into(), Value::Bool(false));
            }
            d
        };
        let m = Modification {
            kind: ItemKind::Flag,
            key,
            actor,
            action: Action::Disable,
            expected_version: None,
            if_missing: IfMissing::Fail,
            definition: NewDefinition::Edit(&off),
        };
        self.run("disable", || self.modify(m)).await
    }

    async fn put_segment(&self, segment: &Segment, actor: &str) -> Result<Written, WriteError> {
        validate_segment(segment)?;
        let def = segment_definition(segment);
        let m = Modification {
            kind: ItemKind::Segment,
            key: &segment.key,
            actor,
            action: Action::Update,
            expected_version: segment.version,
            if_missing: IfMissing::Create,
            definition: NewDefinition::Fixed(&def),
        };
        self.run("put segment", || self.modify(m)).await
    }

    async fn delete_segment(&self, key: &str, actor: &str) -> Result<Written, WriteError> {
        let m = Modification {
            kind: ItemKind::Segment,
            key,
            actor,
            action: Action::Delete,
            expected_version: None,
            if_missing: IfMissing::Fail,
            definition: NewDefinition::Delete,
        };
        self.run("delete segment", || self.modify(m)).await
    }

    async fn apply_changes(
        &self,
        changes: &[Change],
        actor: &str,
    ) -> Result<Vec<Written>, BatchError> {
        check_name("actor", actor).map_err(BatchError::whole)?;
        let definitions = checked_batch(changes)?;
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        // Not retried: when the reply is lost the script may have run, and a retry would
        // report its own changes as conflicts.
        tokio::time::timeout(
            self.conn.timeout,
            self.push_script(changes, &definitions, actor),
        )
        .await
        .map_err(|_| {
            self.conn.reset();
            BatchError::whole(WriteError::Timeout {
                store: "redis",
                operation: "apply changes",
            })
        })?
    }

    async fn history_page(
        &self,
        kind: ItemKind,
        key: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<HistoryEntry>, WriteError> {
        let end = match before {
            None => "+".to_owned(),
            Some(id) if is_stream_id(id) => format!("({id}"),
            Some(id) => {
                return Err(WriteError::BadName {
                    what: "before",
                    value: id.chars().take(80).collect(),
                    reason: "it is not an id of this store's audit log",
                })
            }
        };
        self.run("history", || async {
            let mut c = self.conn.get().await.map_err(store_err("history"))?;
            let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XREVRANGE")
                .arg(&self.keys.audit)
                .arg(&end)
                .arg("-")
                .query_async::<redis::Value>(&mut c)
                .await
                .and_then(|v| Ok(redis::from_redis_value(v)?))
                .map_err(store_err("history"))?;
            let parse = |s: Option<&String>| {
                s.filter(|s| !s.is_empty())
                    .and_then(|s| serde_json::from_str::<Envelope>(s).ok())
                    .map(|e| e.definition)
            };
            Ok(entries
                .into_iter()
                .filter(|(_, f)| {
                    f.get("kind").map(String::as_str) == Some(kind.as_str())
                        && f.get("key").map(String::as_str) == Some(key)
                })
                .take(limit)
                .map(|(id, f)| HistoryEntry {
                    id,
                    kind,
                    key: key.to_owned(),
                    action: f.get("action").cloned().unwrap_or_default(),
                    actor: f.get("actor").cloned().unwrap_or_default(),
                    at: f.get("at").cloned().unwrap_or_default(),
                    version: f.get("version").and_then(|v| v.parse().ok()).unwrap_or(0),
                    before: parse(f.get("before")),
                    after: parse(f.get("after")),
                })
                .collect())
        })
        .await
    }
}

/// Redis as a cache in front of another store: writes go to the origin (which keeps the audit
/// log) and then through into the cache, whose subscribers see them at once. Reads go to the
/// origin. See the [crate docs](crate#redis-as-a-cache-in-front-of-postgresql).
///
/// The cache never keeps serving a value the origin no longer has because of a write made
/// here: when the write-through fails, or the origin's write fails in a way that leaves its
/// outcome unknown (an error or time-out, which may come after the commit), the cache is
/// invalidated (emptied, so that the next read fills it from the origin); when the origin
/// refuses a write because the item is not what the caller thought (a version conflict, a
/// missing or existing item), the item is refreshed in the cache from the origin. An
/// invalidation that cannot reach Redis is retried in the background until it succeeds.
#[derive(Clone)]
pub struct CachedStore {
    origin: Arc<dyn FlagStore>,
    conn: Arc<Conn>,
    keys: Arc<Keys>,
    retrying: Arc<AtomicBool>,
}

impl std::fmt::Debug for CachedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedStore")
            .field("origin", &self.origin.name())
            .field("prefix", &self.keys.prefix)
            .finish()
    }
}

/// What a failed origin write says about the cache.
enum AfterFailure {
    /// The origin was not touched (the change was refused up front): the cache is as good as
    /// before.
    Nothing,
    /// The origin has something else than the caller thought: refresh the item.
    Refresh,
    /// The origin may or may not have the change: empty the cache.
    Invalidate,
}

fn after_failure(e: &WriteError) -> AfterFailure {
    match e {
        WriteError::Invalid { .. } | WriteError::BadName { .. } | WriteError::BadChange { .. } => {
            AfterFailure::Nothing
        }
        WriteError::Conflict { .. }
        | WriteError::NotFound { .. }
        | WriteError::AlreadyExists { .. } => AfterFailure::Refresh,
        _ => AfterFailure::Invalidate,
    }
}

/// Empties the cache: removes the marker that says it is filled (so the next read fills it
/// from the origin), abandons fills under way, and announces `items` (without a revision, as
/// for an empty cache) so that connected providers read them from the origin.
async fn invalidate_cache(
    conn: &Conn,
    keys: &Keys,
    items: &[(ItemKind, String)],
) -> Result<(), redis::RedisError> {
    let mut pipe = redis::pipe();
    pipe.atomic()
        .del(&keys.version)
        .ignore()
        .incr(&keys.fill, 1)
        .ignore();
    for (kind, key) in items {
        pipe.publish(
            &keys.channel,
            format!(
                r#"{{"kind":"{}","key":{}}}"#,
                kind.as_str(),
                serde_json::to_string(key).unwrap_or_default()
            ),
        )
        .ignore();
    }
    let mut c = conn.get().await?;
    match tokio::time::timeout(conn.timeout, pipe.query_async::<()>(&mut c)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            conn.reset();
            Err(e)
        }
        Err(_) => {
            conn.reset();
            Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the cache invalidation timed out",
            )))
        }
    }
}

impl CachedStore {
    /// `origin` behind a Redis cache at `url` under `prefix`.
    pub fn new(
        origin: Arc<dyn FlagStore>,
        url: &str,
        prefix: &str,
    ) -> Result<CachedStore, RedisError> {
        Ok(CachedStore {
            origin,
            conn: Arc::new(Conn::new(url, Duration::from_secs(5))?),
            keys: Arc::new(Keys::new(prefix)?),
            retrying: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Writes a change of the origin into the cache (only if newer than what the cache has).
    async fn write_through(&self, w: &Written) -> Result<(), redis::RedisError> {
        let raw = w
            .row
            .as_ref()
            .map(|r| Envelope::of_row(r).to_json())
            .unwrap_or_default();
        let applied = tokio::time::timeout(self.conn.timeout, async {
            let mut c = self.conn.get().await?;
            Script::new(APPLY)
                .key(self.keys.hash(w.kind))
                .key(&self.keys.revs)
                .key(&self.keys.version)
                .key(&self.keys.fill)
                .arg(w.kind.as_str())
                .arg(&w.key)
                .arg(raw)
                .arg(w.version)
                .arg(&self.keys.channel)
                .arg(serde_json::to_string(&w.key).unwrap_or_default())
                .invoke_async::<i64>(&mut c)
                .await
        })
        .await;
        match applied {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                self.conn.reset();
                Err(e)
            }
            Err(_) => {
                self.conn.reset();
                Err(redis::RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the cache write timed out",
                )))
            }
        }
    }

    /// Empties the cache; when Redis cannot be reached, keeps trying in the background.
    async fn invalidate(&self, items: Vec<(ItemKind, String)>, why: &str) {
        match invalidate_cache(&self.conn, &self.keys, &items).await {
            Ok(()) => {
                tracing::warn!(target: "feature::redis", "{why}: the cache was invalidated; the next read fills it from {}", self.origin.name());
            }
            Err(e) => {
                tracing::error!(target: "feature::redis", "{why}, and the cache cannot be invalidated ({e}): retrying in the background");
                if self.retrying.swap(true, Ordering::SeqCst) {
                    return;
                }
                let (conn, keys, retrying) =
                    (self.conn.clone(), self.keys.clone(), self.retrying.clone());
                tokio::spawn(async move {
                    let mut backoff =
                        Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
                    loop {
                        tokio::time::sleep(backoff.next_delay()).await;
                        if invalidate_cache(&conn, &keys, &items).await.is_ok() {
                            tracing::warn!(target: "feature::redis", "the cache was invalidated after {} attempt(s)", backoff.attempts());
                            retrying.store(false, Ordering::SeqCst);
                            return;
                        }
                    }
                });
            }
        }
    }

    /// Reads the item from the origin and writes it into the cache; invalidates the cache
    /// when that cannot be done.
    async fn refresh(&self, kind: ItemKind, key: &str) {
        let row = match self.origin.row(kind, key).await {
            Ok(Some(row)) => row,
            // Gone from the origin: the cache may still hold it, with a version it cannot
            // be told to drop without knowing the deletion's.
            Ok(None) | Err(_) => {
                return self
                    .invalidate(
                        vec![(kind, key.to_owned())],
                        "a write was refused by the origin",
                    )
                    .await
            }
        };
        let w = Written {
            kind,
            key: key.to_owned(),
            version: row.version,
            changed: true,
            row: Some(row),
        };
        if let Err(e) = self.write_through(&w).await {
            self.invalidate(
                vec![(kind, key.to_owned())],
                &format!("{kind} {key:?} cannot be refreshed in the cache ({e})"),
            )
            .await;
        }
    }

    /// Brings the cache in line with the origin after a write of `kind` `key` there.
    async fn settle(
        &self,
        kind: ItemKind,
        key: &str,
        result: Result<Written, WriteError>,
    ) -> Result<Written, WriteError> {
        match result {
            Ok(w) => {
                if w.changed {
                    if let Err(e) = self.write_through(&w).await {
                        self.invalidate(
                            vec![(w.kind, w.key.clone())],
                            &format!(
                                "{} {:?} was saved in {} but not written through to the cache ({e})",
                                w.kind,
                                w.key,
                                self.origin.name()
                            ),
                        )
                        .await;
                    }
                }
                Ok(w)
            }
            Err(e) => {
                match after_failure(&e) {
                    AfterFailure::Nothing => {}
                    AfterFailure::Refresh => self.refresh(kind, key).await,
                    AfterFailure::Invalidate => {
                        self.invalidate(
                            vec![(kind, key.to_owned())],
                            &format!("the write of {kind} {key:?} failed in {} ({e}), so it may or may not have been made", self.origin.name()),
                        )
                        .await
                    }
                }
                Err(e)
            }
        }
    }
}

#[async_trait]
impl FlagStore for CachedStore {
    fn name(&self) -> &'static str {
        self.origin.name()
    }

    async fn rows(&self) -> Result<Vec<Row>, WriteError> {
        self.origin.rows().await
    }

    async fn row(&self, kind: ItemKind, key: &str) -> Result<Option<Row>, WriteError> {
        self.origin.row(kind, key).await
    }

    async fn create(&self, flag: &Flag, actor: &str) -> Result<Written, WriteError> {
        let r = self.origin.create(flag, actor).await;
        self.settle(ItemKind::Flag, &flag.key, r).await
    }

    async fn update(&self, flag: &Flag, actor: &str) -> Result<Written, WriteError> {
        let r = self.origin.update(flag, actor).await;
        self.settle(ItemKind::Flag, &flag.key, r).await
    }

    async fn delete(&self, key: &str, actor: &str) -> Result<Written, WriteError> {
        let r = self.origin.delete(key, actor).await;
        self.settle(ItemKind::Flag, key, r).await
    }

    async fn enable(&self, key: &str, actor: &str) -> Result<Written, WriteError> {
        let r = self.origin.enable(key, actor).await;
        self.settle(ItemKind::Flag, key, r).await
    }

    async fn disable(&self, key: &str, actor: &str) -> Result<Written, WriteError> {
        let r = self.origin.disable(key, actor).await;
        self.settle(ItemKind::Flag, key, r).await
    }

    async fn put_segment(&self, segment: &Segment, actor: &str) -> Result<Written, WriteError> {
        let r = self.origin.put_segment(segment, actor).await;
        self.settle(ItemKind::Segment, &segment.key, r).await
    }

    async fn delete_segment(&self, key: &str, actor: &str) -> Result<Written, WriteError> {
        let r = self.origin.delete_segment(key, actor).await;
        self.settle(ItemKind::Segment, key, r).await
    }

    async fn apply_changes(
        &self,
        changes: &[Change],
        actor: &str,
    ) -> Result<Vec<Written>, BatchError> {
        let all = || -> Vec<(ItemKind, String)> {
            changes.iter().map(|c| (c.kind, c.key.clone())).collect()
        };
        match self.origin.apply_changes(changes, actor).await {
            Ok(written) => {
                for w in written.iter().filter(|w| w.changed) {
                    if let Err(e) = self.write_through(w).await {
                        self.invalidate(
                            all(),
                            &format!("a batch was saved in {} but not written through to the cache ({e})", self.origin.name()),
                        )
                        .await;
                        break;
                    }
                }
                Ok(written)
            }
            Err(e) => {
                match (
                    after_failure(&e.source),
                    e.index.and_then(|i| changes.get(i)),
                ) {
                    (AfterFailure::Nothing, _) => {}
                    (AfterFailure::Refresh, Some(c)) => self.refresh(c.kind, &c.key).await,
                    _ => {
                        self.invalidate(
                            all(),
                            &format!(
                                "a batch failed in {} ({e}), so it may or may not have been made",
                                self.origin.name()
                            ),
                        )
                        .await
                    }
                }
                Err(e)
            }
        }
    }

    async fn history_page(
        &self,
        kind: ItemKind,
        key: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<HistoryEntry>, WriteError> {
        self.origin.history_page(kind, key, limit, before).await
    }
}

/// Whether `id` has the shape of a Redis stream entry id (`milliseconds-sequence`).
fn is_stream_id(id: &str) -> bool {
    id.split_once('-').is_some_and(|(ms, seq)| {
        !ms.is_empty()
            && !seq.is_empty()
            && ms.bytes().all(|b| b.is_ascii_digit())
            && seq.bytes().all(|b| b.is_ascii_digit())
    })
}
