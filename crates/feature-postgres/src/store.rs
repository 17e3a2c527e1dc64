//! The write API on PostgreSQL, and the queries the provider shares with it.

use crate::schema::{migrate, trusted, TableName};
use crate::PostgresError;
use async_trait::async_trait;
use feature_core::model::{Flag, Segment};
use feature_store::{
    check_name, checked_batch, flag_definition, segment_definition, validate_flag,
    validate_segment, BatchError, Change, ChangeOp, FlagStore, HistoryEntry, IfMissing, ItemKind,
    Row, WriteError, Written,
};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Postgres, Row as _, SqlStr, Transaction};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// `updated_at` / `at` as RFC 3339 UTC text.
const TS: &str = r#"to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"#;

pub(crate) fn ts(column: &str) -> String {
    TS.replace("{c}", column)
}

/// The SQL of one item table (`{t}` or `{t}_segments`).
#[derive(Debug)]
pub(crate) struct ItemSql {
    pub(crate) kind: ItemKind,
    pub(crate) all: SqlStr,
    pub(crate) some: SqlStr,
    get: SqlStr,
    insert: SqlStr,
    update: SqlStr,
    upsert: SqlStr,
    delete: SqlStr,
    enable: SqlStr,
    disable: SqlStr,
}

impl ItemSql {
    fn new(t: &TableName, kind: ItemKind) -> Self {
        let table = match kind {
            ItemKind::Flag => t.as_str().to_owned(),
            ItemKind::Segment => format!("{t}_segments"),
        };
        let audit = format!("{t}_audit");
        let k = kind.as_str();
        let cols = format!(
            "key, definition, version, {} AS updated_at, updated_by",
            ts("updated_at")
        );
        let next_version = format!(
            "coalesce((SELECT max(version) FROM {audit} WHERE kind = '{k}' AND key = $1), 0) + 1"
        );
        ItemSql {
            kind,
            all: trusted(format!("SELECT {cols} FROM {table}")),
            some: trusted(format!("SELECT {cols} FROM {table} WHERE key = ANY($1)")),
            get: trusted(format!("SELECT {cols} FROM {table} WHERE key = $1")),
            insert: trusted(format!(
                "INSERT INTO {table} (key, definition, version, updated_by) \
                 VALUES ($1, $2, {next_version}, $3) \
                 ON CONFLICT (key) DO NOTHING RETURNING {cols}"
            )),
            update: trusted(format!(
                "UPDATE {table} SET definition = $2, version = version + 1, updated_at = now(), \
                 updated_by = $3 \
                 WHERE key = $1 AND ($4::bigint IS NULL OR version = $4) \
                 AND definition IS DISTINCT FROM $2 RETURNING {cols}"
            )),
            upsert: trusted(format!(
                "INSERT INTO {table} AS cur (key, definition, version, updated_by) \
                 VALUES ($1, $2, {next_version}, $3) \
                 ON CONFLICT (key) DO UPDATE SET definition = EXCLUDED.definition, \
                 version = cur.version + 1, updated_at = now(), updated_by = EXCLUDED.updated_by \
                 WHERE ($4::bigint IS NULL OR cur.version = $4) \
                 AND cur.definition IS DISTINCT FROM EXCLUDED.definition RETURNING {cols}"
            )),
            delete: trusted(format!(
                "DELETE FROM {table} WHERE key = $1 AND ($2::bigint IS NULL OR version = $2) \
                 RETURNING version"
            )),
            enable: trusted(format!(
                "UPDATE {table} SET definition = definition - 'enabled', version = version + 1, \
                 updated_at = now(), updated_by = $2 \
                 WHERE key = $1 AND definition -> 'enabled' = 'false'::jsonb RETURNING {cols}"
            )),
            disable: trusted(format!(
                "UPDATE {table} SET definition = definition || '{{\"enabled\": false}}'::jsonb, \
                 version = version + 1, updated_at = now(), updated_by = $2 \
                 WHERE key = $1 AND jsonb_typeof(definition) = 'object' \
                 AND (definition -> 'enabled') IS DISTINCT FROM 'false'::jsonb RETURNING {cols}"
            )),
        }
    }
}

/// Every query of one table family.
#[derive(Debug)]
pub(crate) struct Sql {
    pub(crate) table: TableName,
    pub(crate) flags: ItemSql,
    pub(crate) segments: ItemSql,
    pub(crate) revision: SqlStr,
    history: SqlStr,
}

impl Sql {
    pub(crate) fn new(table: TableName) -> Self {
        Sql {
            flags: ItemSql::new(&table, ItemKind::Flag),
            segments: ItemSql::new(&table, ItemKind::Segment),
            revision: table.sql("SELECT coalesce(max(id), 0) FROM {t}_audit"),
            history: table.sql(&format!(
                "SELECT id, kind, key, action, actor, {} AS at, version, before, after \
                 FROM {{t}}_audit WHERE kind = $1 AND key = $2 AND id < $4 \
                 ORDER BY id DESC LIMIT $3",
                ts("at")
            )),
            table,
        }
    }

    pub(crate) fn item(&self, kind: ItemKind) -> &ItemSql {
        match kind {
            ItemKind::Flag => &self.flags,
            ItemKind::Segment => &self.segments,
        }
    }
}

/// Reads one row of an item table.
pub(crate) fn decode_row(kind: ItemKind, r: &PgRow) -> Result<Row, sqlx::Error> {
    let version: i64 = r.try_get("version")?;
    Ok(Row {
        kind,
        key: r.try_get("key")?,
        definition: r.try_get::<Value, _>("definition")?,
        version: version.max(0) as u64,
        updated_at: r.try_get("updated_at")?,
        updated_by: r.try_get("updated_by")?,
    })
}

/// The parsed connection settings, pool and queries shared by the store and the provider.
pub(crate) struct Db {
    pub(crate) options: PgConnectOptions,
    pub(crate) pool: PgPool,
    pub(crate) sql: Sql,
    migrated: OnceCell<()>,
}

impl std::fmt::Debug for Db {
    /// Where the database is, without the password (sqlx's own `Debug` of the connection
    /// options prints it).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("host", &self.options.get_host())
            .field("port", &self.options.get_port())
            .field("database", &self.options.get_database())
            .field("username", &self.options.get_username())
            .field("table", &self.sql.table.as_str())
            .finish_non_exhaustive()
    }
}

impl Db {
    pub(crate) fn new(
        url: &str,
        table: &str,
        pool_size: u32,
        timeout: Duration,
    ) -> Result<Db, PostgresError> {
        TableName::new(table)?;
        let options = crate::connect_options(url)?;
        Db::with_options(options, table, pool_size, timeout)
    }

    /// Like [`Db::new`] with connection settings already parsed (and perhaps amended).
    pub(crate) fn with_options(
        options: PgConnectOptions,
        table: &str,
        pool_size: u32,
        timeout: Duration,
    ) -> Result<Db, PostgresError> {
        let table = TableName::new(table)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(PostgresError::NoRuntime);
        }
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(1))
            .acquire_timeout(timeout)
            .connect_lazy_with(options.clone());
        Ok(Db {
            options,
            pool,
            sql: Sql::new(table),
            migrated: OnceCell::new(),
        })
    }

    /// Runs the migrations once per process (again after a failure).
    pub(crate) async fn ensure_schema(&self) -> Result<(), sqlx::Error> {
        self.migrated
            .get_or_try_init(|| migrate(&self.pool, &self.sql.table))
            .await
            .map(|_| ())
    }
}

/// A new definition for an item, as [`PostgresStore::replace`] writes it.
struct Replacement<'a> {
    kind: ItemKind,
    key: &'a str,
    definition: Value,
    /// The write is refused unless the stored item has this version.
    expected_version: Option<u64>,
    /// Who makes the change.
    actor: &'a str,
    if_missing: IfMissing,
}

/// Flags and segments in PostgreSQL, written with an audit trail. See the [crate docs](crate).
#[derive(Debug, Clone)]
pub struct PostgresStore {
    db: Arc<Db>,
    timeout: Duration,
}

/// How many times a batch aborted by a deadlock or a serialization failure is run again.
const BATCH_RETRIES: u32 = 4;

/// A deadlock (40P01) or serialization failure (40001): the transaction was rolled back and
/// running it again may succeed.
fn is_transient(e: &WriteError) -> bool {
    let WriteError::Store { source, .. } = e else {
        return false;
    };
    source
        .downcast_ref::<sqlx::Error>()
        .and_then(|e| e.as_database_error())
        .and_then(|d| d.code())
        .is_some_and(|code| code == "40P01" || code == "40001")
}

pub(crate) fn store_err(operation: &'static str) -> impl FnOnce(sqlx::Error) -> WriteError {
    move |e| WriteError::Store {
        store: "postgres",
        operation,
        source: Box::new(e),
    }
}

impl PostgresStore {
    /// Connects to `url`, using table `table` (see [`TableName`]), and runs the migrations.
    pub async fn connect(url: &str, table: &str) -> Result<PostgresStore, PostgresError> {
        let store = PostgresStore::lazy(url, table)?;
        store.migrate().await?;
        Ok(store)
    }

    /// Like [`PostgresStore::connect`] without connecting yet: the first operation connects
    /// and migrates.
    pub fn lazy(url: &str, table: &str) -> Result<PostgresStore, PostgresError> {
        let timeout = Duration::from_secs(10);
        Ok(PostgresStore {
            db: Arc::new(Db::new(url, table, 4, timeout)?),
            timeout,
        })
    }

    /// Time limit of each operation (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The table.
    pub fn table(&self) -> &TableName {
        &self.db.sql.table
    }

    /// Creates or upgrades the schema (see the [crate docs](crate)); harmless when up to date.
    pub async fn migrate(&self) -> Result<(), PostgresError> {
        migrate(&self.db.pool, &self.db.sql.table)
            .await
            .map_err(|source| PostgresError::Database {
                operation: "migrate",
                source,
            })
    }

    /// Closes the connections.
    pub async fn close(&self) {
        self.db.pool.close().await;
    }

    /// The connection pool.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    pub(crate) async fn timed<T>(
        &self,
        operation: &'static str,
        f: impl std::future::Future<Output = Result<T, WriteError>>,
    ) -> Result<T, WriteError> {
        tokio::time::timeout(self.timeout, async {
            self.db
                .ensure_schema()
                .await
                .map_err(store_err("migrate"))?;
            f.await
        })
        .await
        .map_err(|_| WriteError::Timeout {
            store: "postgres",
            operation,
        })?
    }

    /// A transaction whose changes the audit trigger records as `actor` doing `action`.
    async fn begin(
        &self,
        actor: &str,
        action: &str,
    ) -> Result<Transaction<'static, Postgres>, WriteError> {
        check_name("actor", actor)?;
        let mut tx = self.db.pool.begin().await.map_err(store_err("write"))?;
        sqlx::query(
            "SELECT set_config('feature.actor', $1, true), set_config('feature.action', $2, true)",
        )
        .bind(actor)
        .bind(action)
        .execute(&mut *tx)
        .await
        .map_err(store_err("write"))?;
        Ok(tx)
    }

    async fn current(
        tx: &mut Transaction<'static, Postgres>,
        sql: &ItemSql,
        key: &str,
    ) -> Result<Option<Row>, WriteError> {
        let r = sqlx::query(sql.get.clone())
            .bind(key)
            .fetch_optional(&mut **tx)
            .await
            .map_err(store_err("write"))?;
        r.map(|r| decode_row(sql.kind, &r))
            .transpose()
            .map_err(store_err("write"))
    }

    /// Writes `r`: replaces the item (or creates it, if so asked), unless its version is not
    /// the expected one.
    async fn replace(&self, r: Replacement<'_>) -> Result<Written, WriteError> {
        let Replacement {
            kind,
            key,
            definition,
            expected_version: expected,
            actor,
            if_missing,
        } = r;
        let sql = self.db.sql.item(kind);
        let mut tx = self.begin(actor, "").await?;
        let query = match if_missing {
            IfMissing::Fail => &sql.update,
            IfMissing::Create => &sql.upsert,
        };
        let written = sqlx::query(query.clone())
            .bind(key)
            .bind(&definition)
            .bind(actor)
            .bind(expected.map(|v| v as i64))
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_err("write"))?;
        let out = match written {
            Some(r) => changed(decode_row(kind, &r).map_err(store_err("write"))?),
            None => match Self::current(&mut tx, sql, key).await? {
                None => {
                    return Err(WriteError::NotFound {
                        kind,
                        key: key.to_owned(),
                    })
                }
                Some(cur) => match expected {
                    Some(v) if v != cur.version => {
                        return Err(WriteError::Conflict {
                            kind,
                            key: key.to_owned(),
                            expected: v,
                            actual: cur.version,
                        })
                    }
                    _ => unchanged(cur),
                },
            },
        };
        tx.commit().await.map_err(store_err("write"))?;
        Ok(out)
    }

    async fn remove(&self, kind: ItemKind, key: &str, actor: &str) -> Result<Written, WriteError> {
        let mut tx = self.begin(actor, "").await?;
        let out = self.delete_in(&mut tx, kind, key, None).await?;
        tx.commit().await.map_err(store_err("write"))?;
        Ok(out)
    }

    /// Deletes an item within `tx`, if it is still at `expected` (when given).
    async fn delete_in(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        kind: ItemKind,
        key: &str,
        expected: Option<u64>,
    ) -> Result<Written, WriteError> {
        let sql = self.db.sql.item(kind);
        let version: Option<i64> = sqlx::query_scalar(sql.delete.clone())
            .bind(key)
            .bind(expected.map(|v| v as i64))
            .fetch_optional(&mut **tx)
            .await
            .map_err(store_err("write"))?;
        let Some(version) = version else {
            return Err(match Self::current(tx, sql, key).await? {
                None => WriteError::NotFound {
                    kind,
                    key: key.to_owned(),
                },
                Some(cur) => WriteError::Conflict {
                    kind,
                    key: key.to_owned(),
                    expected: expected.unwrap_or(0),
                    actual: cur.version,
                },
            });
        };
        Ok(Written {
            kind,
            key: key.to_owned(),
            version: version.max(0) as u64 + 1,
            changed: true,
            row: None,
        })
    }

    /// Creates an item within `tx`; [`WriteError::AlreadyExists`] if it exists.
    async fn insert_in(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        kind: ItemKind,
        key: &str,
        definition: &Value,
        actor: &str,
    ) -> Result<Written, WriteError> {
        let sql = self.db.sql.item(kind);
        let r = sqlx::query(sql.insert.clone())
            .bind(key)
            .bind(definition)
            .bind(actor)
            .fetch_optional(&mut **tx)
            .await
            .map_err(store_err("write"))?;
        let Some(r) = r else {
            return Err(WriteError::AlreadyExists {
                kind,
                key: key.to_owned(),
            });
        };
        Ok(changed(decode_row(kind, &r).map_err(store_err("write"))?))
    }

    /// Replaces an existing item within `tx`, if it is still at `expected` (when given).
    async fn update_in(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        kind: ItemKind,
        key: &str,
        definition: &Value,
        expected: Option<u64>,
        actor: &str,
    ) -> Result<Written, WriteError> {
        let sql = self.db.sql.item(kind);
        let written = sqlx::query(sql.update.clone())
            .bind(key)
            .bind(definition)
            .bind(actor)
            .bind(expected.map(|v| v as i64))
            .fetch_optional(&mut **tx)
            .await
            .map_err(store_err("write"))?;
        if let Some(r) = written {
            return Ok(changed(decode_row(kind, &r).map_err(store_err("write"))?));
        }
        match Self::current(tx, sql, key).await? {
            None => Err(WriteError::NotFound {
                kind,
                key: key.to_owned(),
            }),
            Some(cur) => match expected {
                Some(v) if v != cur.version => Err(WriteError::Conflict {
                    kind,
                    key: key.to_owned(),
                    expected: v,
                    actual: cur.version,
                }),
                _ => Ok(unchanged(cur)),
            },
        }
    }

    /// Applies every change in one transaction, rolled back at the first refusal or failure.
    async fn apply_all(
        &self,
        changes: &[Change],
        definitions: &[Option<Value>],
        actor: &str,
    ) -> Result<Vec<Written>, BatchError> {
        let mut tx = self.begin(actor, "").await.map_err(BatchError::whole)?;
        let mut out = Vec::with_capacity(changes.len());
        for (i, (c, def)) in changes.iter().zip(definitions).enumerate() {
            let missing = || WriteError::BadChange {
                kind: c.kind,
                key: c.key.clone(),
                reason: "a create or update needs a definition",
            };
            let w = match c.op {
                ChangeOp::Create => match def {
                    Some(d) => self.insert_in(&mut tx, c.kind, &c.key, d, actor).await,
                    None => Err(missing()),
                },
                ChangeOp::Update => match def {
                    Some(d) => {
                        self.update_in(&mut tx, c.kind, &c.key, d, c.version, actor)
                            .await
                    }
                    None => Err(missing()),
                },
                ChangeOp::Delete => self.delete_in(&mut tx, c.kind, &c.key, c.version).await,
            };
            // Returning drops `tx` uncommitted: PostgreSQL rolls every change back.
            out.push(w.map_err(|e| BatchError::at(i, e))?);
        }
        tx.commit()
            .await
            .map_err(|e| BatchError::whole(store_err("commit")(e)))?;
        Ok(out)
    }

    async fn switch(&self, key: &str, actor: &str, on: bool) -> Result<Written, WriteError> {
        let sql = &self.db.sql.flags;
        let mut tx = self
            .begin(actor, if on { "enable" } else { "disable" })
            .await?;
        let query = if on { &sql.enable } else { &sql.disable };
        let r = sqlx::query(query.clone())
            .bind(key)
            .bind(actor)
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_err("write"))?;
        let out = match r {
            Some(r) => changed(decode_row(ItemKind::Flag, &r).map_err(store_err("write"))?),
            None => match Self::current(&mut tx, sql, key).await? {
                Some(cur) => unchanged(cur),
                None => {
                    return Err(WriteError::NotFound {
                        kind: ItemKind::Flag,
                        key: key.to_owned(),
                    })
                }
            },
        };
        tx.commit().await.map_err(store_err("write"))?;
        Ok(out)
    }
}

fn changed(row: Row) -> Written {
    Written {
        kind: row.kind,
        key: row.key.clone(),
        version: row.version,
        changed: true,
        row: Some(row),
    }
}

fn unchanged(row: Row) -> Written {
    Written {
        kind: row.kind,
        key: row.key.clone(),
        version: row.version,
        changed: false,
        row: Some(row),
    }
}

/// Every row of both tables (used by the provider and by [`FlagStore::rows`]).
pub(crate) async fn all_rows(
    sql: &Sql,
    conn: &mut sqlx::PgConnection,
) -> Result<Vec<Row>, sqlx::Error> {
    let mut out = Vec::new();
    for item in [&sql.segments, &sql.flags] {
        for r in sqlx::query(item.all.clone()).fetch_all(&mut *conn).await? {
            out.push(decode_row(item.kind, &r)?);
        }
    }
    Ok(out)
}

#[async_trait]
impl FlagStore for PostgresStore {
    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn rows(&self) -> Result<Vec<Row>, WriteError> {
        self.timed("read", async {
            let mut conn = self.db.pool.acquire().await.map_err(store_err("read"))?;
            all_rows(&self.db.sql, &mut conn)
                .await
                .map_err(store_err("read"))
        })
        .await
    }

    async fn row(&self, kind: ItemKind, key: &str) -> Result<Option<Row>, WriteError> {
        self.timed("read", async {
            let sql = self.db.sql.item(kind);
            let r = sqlx::query(sql.get.clone())
                .bind(key)
                .fetch_optional(&self.db.pool)
                .await
                .map_err(store_err("read"))?;
            r.map(|r| decode_row(kind, &r))
                .transpose()
                .map_err(store_err("read"))
        })
        .await
    }

    async fn create(&self, flag: &Flag, actor: &str) -> Result<Written, WriteError> {
        validate_flag(flag)?;
        self.timed("create", async {
            let mut tx = self.begin(actor, "").await?;
            let w = self
                .insert_in(
                    &mut tx,
                    ItemKind::Flag,
                    &flag.key,
                    &flag_definition(flag),
                    actor,
                )
                .await?;
            tx.commit().await.map_err(store_err("write"))?;
            Ok(w)
        })
        .await
    }

    async fn update(&self, flag: &Flag, actor: &str) -> Result<Written, WriteError> {
        validate_flag(flag)?;
        self.timed("update", async {
            self.replace(Replacement {
                kind: ItemKind::Flag,
                key: &flag.key,
                definition: flag_definition(flag),
                expected_version: flag.version,
                actor,
                if_missing: IfMissing::Fail,
            })
            .await
        })
        .await
    }

    async fn delete(&self, key: &str, actor: &str) -> Result<Written, WriteError> {
        self.timed("delete", self.remove(ItemKind::Flag, key, actor))
            .await
    }

    async fn enable(&self, key: &str, actor: &str) -> Result<Written, WriteError> {
        self.timed("enable", self.switch(key, actor, true)).await
    }

    async fn disable(&self, key: &str, actor: &str) -> Result<Written, WriteError> {
        self.timed("disable", self.switch(key, actor, false)).await
    }

    async fn put_segment(&self, segment: &Segment, actor: &str) -> Result<Written, WriteError> {
        validate_segment(segment)?;
        self.timed("put segment", async {
            self.replace(Replacement {
                kind: ItemKind::Segment,
                key: &segment.key,
                definition: segment_definition(segment),
                expected_version: segment.version,
                actor,
                if_missing: IfMissing::Create,
            })
            .await
        })
        .await
    }

    async fn delete_segment(&self, key: &str, actor: &str) -> Result<Written, WriteError> {
        self.timed("delete segment", self.remove(ItemKind::Segment, key, actor))
            .await
    }

    async fn apply_changes(
        &self,
        changes: &[Change],
        actor: &str,
    ) -> Result<Vec<Written>, BatchError> {
        let definitions = checked_batch(changes)?;
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        self.timed("apply changes", async {
            // Writers queue on the audit chain's head row; two batches that each wrote a row
            // before reaching it can deadlock, and PostgreSQL then aborts one (40P01), or a
            // stricter isolation refuses one (40001). Nothing of an aborted batch was written,
            // so it is run again from the start, version checks included.
            let mut attempt = 0;
            loop {
                let result = self.apply_all(changes, &definitions, actor).await;
                match result {
                    Err(e) if attempt < BATCH_RETRIES && is_transient(&e.source) => attempt += 1,
                    other => return Ok(other),
                }
            }
        })
        .await
        .map_err(BatchError::whole)?
    }

    async fn history_page(
        &self,
        kind: ItemKind,
        key: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<HistoryEntry>, WriteError> {
        let before = match before {
            None => i64::MAX,
            Some(id) => id.parse::<i64>().map_err(|_| WriteError::BadName {
                what: "before",
                value: id.chars().take(80).collect(),
                reason: "it is not an id of this store's audit log",
            })?,
        };
        self.timed("history", async {
            let rows = sqlx::query(self.db.sql.history.clone())
                .bind(kind.as_str())
                .bind(key)
                .bind(limit.min(i64::MAX as usize) as i64)
                .bind(before)
                .fetch_all(&self.db.pool)
                .await
                .map_err(store_err("history"))?;
            rows.iter()
                .map(|r| -> Result<HistoryEntry, sqlx::Error> {
                    let id: i64 = r.try_get("id")?;
                    let version: i64 = r.try_get("version")?;
                    let kind: String = r.try_get("kind")?;
                    Ok(HistoryEntry {
                        id: id.to_string(),
                        kind: ItemKind::parse(&kind).unwrap_or(ItemKind::Flag),
                        key: r.try_get("key")?,
                        action: r.try_get("action")?,
                        actor: r.try_get("actor")?,
                        at: r.try_get("at")?,
                        version: version.max(0) as u64,
                        before: r.try_get("before")?,
                        after: r.try_get("after")?,
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(store_err("history"))
        })
        .await
    }
}
