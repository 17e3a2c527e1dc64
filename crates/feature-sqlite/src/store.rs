//! The write API on SQLite: every write one `BEGIN IMMEDIATE` transaction that changes the
//! item and appends its audit row to the chain.

use crate::audit::{row_hash, verify, AuditVerdict};
use crate::schema::Db;
use crate::SqliteError;
use async_trait::async_trait;
use feature_core::model::{Flag, Segment};
use feature_store::{
    check_name, checked_batch, flag_definition, now_rfc3339, segment_definition, validate_flag,
    validate_segment, Action, BatchError, Change, ChangeOp, FlagStore, HistoryEntry, IfMissing,
    ItemKind, Row, WriteError, Written,
};
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row as _, Sqlite, SqliteConnection, Transaction};
use std::sync::Arc;
use std::time::Duration;

/// Reads one row of an item table (`key, definition, version, updated_at, updated_by`).
pub(crate) fn decode_row(kind: ItemKind, r: &SqliteRow) -> Result<Row, sqlx::Error> {
    let version: i64 = r.try_get("version")?;
    let text: String = r.try_get("definition")?;
    // A definition that is not JSON (written by hand) is kept as a string: the provider then
    // skips it and reports it by key, as any other row that does not read as a flag.
    let definition = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok(Row {
        kind,
        key: r.try_get("key")?,
        definition,
        version: version.max(0) as u64,
        updated_at: r.try_get("updated_at")?,
        updated_by: r.try_get("updated_by")?,
    })
}

/// Every row of both tables, segments first.
pub(crate) async fn all_rows(conn: &mut SqliteConnection) -> Result<Vec<Row>, sqlx::Error> {
    let mut out = Vec::new();
    for kind in [ItemKind::Segment, ItemKind::Flag] {
        let sql = match kind {
            ItemKind::Flag => "SELECT key, definition, version, updated_at, updated_by FROM feature_flags ORDER BY key",
            ItemKind::Segment => "SELECT key, definition, version, updated_at, updated_by FROM feature_segments ORDER BY key",
        };
        for r in sqlx::query(sql).fetch_all(&mut *conn).await? {
            out.push(decode_row(kind, &r)?);
        }
    }
    Ok(out)
}

/// The current row of one item.
pub(crate) async fn get_row(
    conn: &mut SqliteConnection,
    kind: ItemKind,
    key: &str,
) -> Result<Option<Row>, sqlx::Error> {
    let sql = match kind {
        ItemKind::Flag => "SELECT key, definition, version, updated_at, updated_by FROM feature_flags WHERE key = ?",
        ItemKind::Segment => "SELECT key, definition, version, updated_at, updated_by FROM feature_segments WHERE key = ?",
    };
    let r = sqlx::query(sql)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
    r.map(|r| decode_row(kind, &r)).transpose()
}

fn store_err(operation: &'static str) -> impl FnOnce(sqlx::Error) -> WriteError {
    move |e| WriteError::Store {
        store: "sqlite",
        operation,
        source: Box::new(e),
    }
}

fn json_text(v: &Value) -> String {
    // Object keys are sorted (serde_json's map), so equal definitions have equal text.
    v.to_string()
}

/// Flags, segments, their audit log and tokens in one SQLite file. See the [crate docs](crate).
///
/// Cheap to clone (one pool). Any number of stores, in any number of processes, may use the
/// same file at once.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) db: Arc<Db>,
    timeout: Duration,
}

/// A write about to be made: what the audit row records.
struct Audit<'a> {
    kind: ItemKind,
    key: &'a str,
    action: Action,
    actor: &'a str,
    version: u64,
    before: Option<&'a str>,
    after: Option<&'a str>,
}

impl SqliteStore {
    /// Opens the database `url` names (`sqlite://path/to/feature.db`), creating the file and
    /// its schema when missing (see the [crate docs](crate)).
    pub async fn open(url: &str) -> Result<SqliteStore, SqliteError> {
        let store = SqliteStore::lazy(url)?;
        store.db.ensure_schema().await?;
        Ok(store)
    }

    /// Like [`SqliteStore::open`] without opening the file yet: the first operation does.
    pub fn lazy(url: &str) -> Result<SqliteStore, SqliteError> {
        let timeout = Duration::from_secs(10);
        Ok(SqliteStore {
            db: Arc::new(Db::new(url, 4, timeout)?),
            timeout,
        })
    }

    /// Time limit of each operation (default 10 s; a writer waits at most 5 s for another
    /// process's write lock).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The database file.
    pub fn path(&self) -> &std::path::Path {
        &self.db.path
    }

    /// Checks the audit log (read-only): recomputes every row's hash and link in id order,
    /// compares the end with the head written with the last change, checks that the guard and
    /// counting triggers exist, and that every flag and segment matches its last audit row.
    /// Returns the first problem, or the number of rows and the head.
    pub async fn verify_audit(&self) -> Result<AuditVerdict, SqliteError> {
        verify(&self.db).await
    }

    /// Closes the connections.
    pub async fn close(&self) {
        self.db.pool.close().await;
    }

    /// The schema is there (created on first use).
    pub(crate) async fn opened(&self) -> Result<(), WriteError> {
        self.db
            .ensure_schema()
            .await
            .map_err(|e| WriteError::Store {
                store: "sqlite",
                operation: "open",
                source: Box::new(e),
            })
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        f: impl std::future::Future<Output = Result<T, WriteError>>,
    ) -> Result<T, WriteError> {
        tokio::time::timeout(self.timeout, async {
            self.opened().await?;
            f.await
        })
        .await
        .map_err(|_| WriteError::Timeout {
            store: "sqlite",
            operation,
        })?
    }

    /// A write transaction: the file's write lock is taken at once, so what it reads stays
    /// true until it commits.
    async fn begin(&self, actor: &str) -> Result<Transaction<'static, Sqlite>, WriteError> {
        check_name("actor", actor)?;
        self.db
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(store_err("write"))
    }

    /// Appends one audit row to the chain, after the head.
    async fn audit(conn: &mut SqliteConnection, a: Audit<'_>) -> Result<(), sqlx::Error> {
        let (last_id, last_hash): (Option<i64>, Option<String>) =
            sqlx::query_as("SELECT last_id, last_hash FROM feature_audit_head WHERE one = 1")
                .fetch_one(&mut *conn)
                .await?;
        let id = last_id.unwrap_or(0) + 1;
        let at = now_rfc3339();
        let (id_text, version_text) = (id.to_string(), a.version.to_string());
        let hash = row_hash(&[
            Some(&id_text),
            last_hash.as_deref(),
            Some(a.kind.as_str()),
            Some(a.key),
            Some(a.action.as_str()),
            Some(a.actor),
            Some(&at),
            Some(&version_text),
            a.before,
            a.after,
        ]);
        sqlx::query(
            "INSERT INTO feature_audit \
             (id, kind, key, action, actor, at, version, before, after, prev_hash, hash) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(a.kind.as_str())
        .bind(a.key)
        .bind(a.action.as_str())
        .bind(a.actor)
        .bind(&at)
        .bind(a.version as i64)
        .bind(a.before)
        .bind(a.after)
        .bind(last_hash.as_deref())
        .bind(&hash)
        .execute(&mut *conn)
        .await?;
        sqlx::query("UPDATE feature_audit_head SET last_id = ?, last_hash = ? WHERE one = 1")
            .bind(id)
            .bind(&hash)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// The stored definition text of an item (the audit's `before`).
    async fn stored_text(
        conn: &mut SqliteConnection,
        kind: ItemKind,
        key: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        let sql = match kind {
            ItemKind::Flag => "SELECT definition FROM feature_flags WHERE key = ?",
            ItemKind::Segment => "SELECT definition FROM feature_segments WHERE key = ?",
        };
        sqlx::query_scalar(sql)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await
    }

    /// Creates an item; [`WriteError::AlreadyExists`] if it exists. Its version follows the
    /// last one its audit log records (a re-created item keeps counting).
    async fn insert_in(
        conn: &mut SqliteConnection,
        kind: ItemKind,
        key: &str,
        definition: &Value,
        actor: &str,
    ) -> Result<Written, WriteError> {
        let err = store_err("write");
        if get_row(conn, kind, key)
            .await
            .map_err(store_err("write"))?
            .is_some()
        {
            return Err(WriteError::AlreadyExists {
                kind,
                key: key.to_owned(),
            });
        }
        let last: i64 = sqlx::query_scalar(
            "SELECT coalesce(max(version), 0) FROM feature_audit WHERE kind = ? AND key = ?",
        )
        .bind(kind.as_str())
        .bind(key)
        .fetch_one(&mut *conn)
        .await
        .map_err(store_err("write"))?;
        let version = last.max(0) as u64 + 1;
        let text = json_text(definition);
        let now = now_rfc3339();
        let sql = match kind {
            ItemKind::Flag => "INSERT INTO feature_flags (key, definition, version, created_at, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?)",
            ItemKind::Segment => "INSERT INTO feature_segments (key, definition, version, created_at, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?)",
        };
        let written = async {
            sqlx::query(sql)
                .bind(key)
                .bind(&text)
                .bind(version as i64)
                .bind(&now)
                .bind(&now)
                .bind(actor)
                .execute(&mut *conn)
                .await?;
            Self::audit(
                conn,
                Audit {
                    kind,
                    key,
                    action: Action::Create,
                    actor,
                    version,
                    before: None,
                    after: Some(&text),
                },
            )
            .await
        };
        written.await.map_err(err)?;
        Ok(changed(Row {
            kind,
            key: key.to_owned(),
            definition: definition.clone(),
            version,
            updated_at: Some(now),
            updated_by: Some(actor.to_owned()),
        }))
    }

    /// Replaces an existing item's definition, if it is still at `expected` (when given); an
    /// equal definition changes nothing.
    #[allow(clippy::too_many_arguments)] // one write, spelled out
    async fn update_in(
        conn: &mut SqliteConnection,
        kind: ItemKind,
        key: &str,
        definition: &Value,
        expected: Option<u64>,
        actor: &str,
        action: Action,
    ) -> Result<Written, WriteError> {
        let Some(cur) = get_row(conn, kind, key).await.map_err(store_err("write"))? else {
            return Err(WriteError::NotFound {
                kind,
                key: key.to_owned(),
            });
        };
        if let Some(v) = expected {
            if v != cur.version {
                return Err(WriteError::Conflict {
                    kind,
                    key: key.to_owned(),
                    expected: v,
                    actual: cur.version,
                });
            }
        }
        if cur.definition == *definition {
            return Ok(unchanged(cur));
        }
        let before = Self::stored_text(conn, kind, key)
            .await
            .map_err(store_err("write"))?;
        let text = json_text(definition);
        let version = cur.version + 1;
        let now = now_rfc3339();
        let sql = match kind {
            ItemKind::Flag => "UPDATE feature_flags SET definition = ?, version = ?, updated_at = ?, updated_by = ? WHERE key = ?",
            ItemKind::Segment => "UPDATE feature_segments SET definition = ?, version = ?, updated_at = ?, updated_by = ? WHERE key = ?",
        };
        let written = async {
            sqlx::query(sql)
                .bind(&text)
                .bind(version as i64)
                .bind(&now)
                .bind(actor)
                .bind(key)
                .execute(&mut *conn)
                .await?;
            Self::audit(
                conn,
                Audit {
                    kind,
                    key,
                    action,
                    actor,
                    version,
                    before: before.as_deref(),
                    after: Some(&text),
                },
            )
            .await
        };
        written.await.map_err(store_err("write"))?;
        Ok(changed(Row {
            kind,
            key: key.to_owned(),
            definition: definition.clone(),
            version,
            updated_at: Some(now),
            updated_by: Some(actor.to_owned()),
        }))
    }

    /// Deletes an item, if it is still at `expected` (when given).
    async fn delete_in(
        conn: &mut SqliteConnection,
        kind: ItemKind,
        key: &str,
        expected: Option<u64>,
        actor: &str,
    ) -> Result<Written, WriteError> {
        let Some(cur) = get_row(conn, kind, key).await.map_err(store_err("write"))? else {
            return Err(WriteError::NotFound {
                kind,
                key: key.to_owned(),
            });
        };
        if let Some(v) = expected {
            if v != cur.version {
                return Err(WriteError::Conflict {
                    kind,
                    key: key.to_owned(),
                    expected: v,
                    actual: cur.version,
                });
            }
        }
        let before = Self::stored_text(conn, kind, key)
            .await
            .map_err(store_err("write"))?;
        let version = cur.version + 1;
        let sql = match kind {
            ItemKind::Flag => "DELETE FROM feature_flags WHERE key = ?",
            ItemKind::Segment => "DELETE FROM feature_segments WHERE key = ?",
        };
        let written = async {
            sqlx::query(sql).bind(key).execute(&mut *conn).await?;
            Self::audit(
                conn,
                Audit {
                    kind,
                    key,
                    action: Action::Delete,
                    actor,
                    version,
                    before: before.as_deref(),
                    after: None,
                },
            )
            .await
        };
        written.await.map_err(store_err("write"))?;
        Ok(Written {
            kind,
            key: key.to_owned(),
            version,
            changed: true,
            row: None,
        })
    }

    /// Ends a single write's transaction: committed when it changed something.
    async fn finish(
        tx: Transaction<'static, Sqlite>,
        out: Result<Written, WriteError>,
    ) -> Result<Written, WriteError> {
        // An error drops `tx` uncommitted: SQLite rolls it back.
        let out = out?;
        if out.changed {
            tx.commit().await.map_err(store_err("commit"))?;
        } else {
            tx.rollback().await.map_err(store_err("write"))?;
        }
        Ok(out)
    }

    async fn replace(
        &self,
        kind: ItemKind,
        key: &str,
        definition: Value,
        expected: Option<u64>,
        actor: &str,
        if_missing: IfMissing,
    ) -> Result<Written, WriteError> {
        let mut tx = self.begin(actor).await?;
        let out = async {
            let exists = get_row(&mut tx, kind, key)
                .await
                .map_err(store_err("write"))?
                .is_some();
            if !exists && if_missing == IfMissing::Create {
                return Self::insert_in(&mut tx, kind, key, &definition, actor).await;
            }
            Self::update_in(
                &mut tx,
                kind,
                key,
                &definition,
                expected,
                actor,
                Action::Update,
            )
            .await
        }
        .await;
        Self::finish(tx, out).await
    }

    async fn switch(&self, key: &str, actor: &str, on: bool) -> Result<Written, WriteError> {
        let mut tx = self.begin(actor).await?;
        let out = async {
            let Some(cur) = get_row(&mut tx, ItemKind::Flag, key)
                .await
                .map_err(store_err("write"))?
            else {
                return Err(WriteError::NotFound {
                    kind: ItemKind::Flag,
                    key: key.to_owned(),
                });
            };
            let mut def = cur.definition.clone();
            let Some(fields) = def.as_object_mut() else {
                // Not an object (written by hand): nothing to switch.
                return Ok(unchanged(cur));
            };
            let is_on = fields.get("enabled") != Some(&Value::Bool(false));
            if is_on == on {
                return Ok(unchanged(cur));
            }
            if on {
                fields.remove("enabled");
            } else {
                fields.insert("enabled".into(), Value::Bool(false));
            }
            let action = if on { Action::Enable } else { Action::Disable };
            Self::update_in(&mut tx, ItemKind::Flag, key, &def, None, actor, action).await
        }
        .await;
        Self::finish(tx, out).await
    }

    async fn remove(&self, kind: ItemKind, key: &str, actor: &str) -> Result<Written, WriteError> {
        let mut tx = self.begin(actor).await?;
        let out = Self::delete_in(&mut tx, kind, key, None, actor).await;
        Self::finish(tx, out).await
    }

    async fn insert(
        &self,
        kind: ItemKind,
        key: &str,
        definition: &Value,
        actor: &str,
    ) -> Result<Written, WriteError> {
        let mut tx = self.begin(actor).await?;
        let out = Self::insert_in(&mut tx, kind, key, definition, actor).await;
        Self::finish(tx, out).await
    }

    async fn apply_all(
        &self,
        changes: &[Change],
        definitions: &[Option<Value>],
        actor: &str,
    ) -> Result<Vec<Written>, BatchError> {
        let mut tx = self.begin(actor).await.map_err(BatchError::whole)?;
        let mut out = Vec::with_capacity(changes.len());
        for (i, (c, def)) in changes.iter().zip(definitions).enumerate() {
            let missing = || WriteError::BadChange {
                kind: c.kind,
                key: c.key.clone(),
                reason: "a create or update needs a definition",
            };
            let w = match (c.op, def) {
                (ChangeOp::Create, Some(d)) => {
                    Self::insert_in(&mut tx, c.kind, &c.key, d, actor).await
                }
                (ChangeOp::Update, Some(d)) => {
                    Self::update_in(&mut tx, c.kind, &c.key, d, c.version, actor, Action::Update)
                        .await
                }
                (ChangeOp::Delete, _) => {
                    Self::delete_in(&mut tx, c.kind, &c.key, c.version, actor).await
                }
                (_, None) => Err(missing()),
            };
            // Returning drops `tx` uncommitted: SQLite rolls every change back.
            out.push(w.map_err(|e| BatchError::at(i, e))?);
        }
        tx.commit()
            .await
            .map_err(|e| BatchError::whole(store_err("commit")(e)))?;
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

#[async_trait]
impl FlagStore for SqliteStore {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    async fn rows(&self) -> Result<Vec<Row>, WriteError> {
        self.timed("read", async {
            let mut conn = self.db.pool.acquire().await.map_err(store_err("read"))?;
            all_rows(&mut conn).await.map_err(store_err("read"))
        })
        .await
    }

    async fn row(&self, kind: ItemKind, key: &str) -> Result<Option<Row>, WriteError> {
        self.timed("read", async {
            let mut conn = self.db.pool.acquire().await.map_err(store_err("read"))?;
            get_row(&mut conn, kind, key)
                .await
                .map_err(store_err("read"))
        })
        .await
    }

    async fn create(&self, flag: &Flag, actor: &str) -> Result<Written, WriteError> {
        validate_flag(flag)?;
        let definition = flag_definition(flag);
        self.timed(
            "create",
            self.insert(ItemKind::Flag, &flag.key, &definition, actor),
        )
        .await
    }

    async fn update(&self, flag: &Flag, actor: &str) -> Result<Written, WriteError> {
        validate_flag(flag)?;
        self.timed(
            "update",
            self.replace(
                ItemKind::Flag,
                &flag.key,
                flag_definition(flag),
                flag.version,
                actor,
                IfMissing::Fail,
            ),
        )
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
        self.timed(
            "put segment",
            self.replace(
                ItemKind::Segment,
                &segment.key,
                segment_definition(segment),
                segment.version,
                actor,
                IfMissing::Create,
            ),
        )
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
            Ok(self.apply_all(changes, &definitions, actor).await)
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
            let rows = sqlx::query(
                "SELECT id, kind, key, action, actor, at, version, before, after \
                 FROM feature_audit WHERE kind = ? AND key = ? AND id < ? \
                 ORDER BY id DESC LIMIT ?",
            )
            .bind(kind.as_str())
            .bind(key)
            .bind(before)
            .bind(limit.min(i64::MAX as usize) as i64)
            .fetch_all(&self.db.pool)
            .await
            .map_err(store_err("history"))?;
            rows.iter()
                .map(|r| -> Result<HistoryEntry, sqlx::Error> {
                    let id: i64 = r.try_get("id")?;
                    let version: i64 = r.try_get("version")?;
                    let json = |c: &str| -> Result<Option<Value>, sqlx::Error> {
                        let t: Option<String> = r.try_get(c)?;
                        Ok(t.map(|t| serde_json::from_str(&t).unwrap_or(Value::String(t))))
                    };
                    Ok(HistoryEntry {
                        id: id.to_string(),
                        kind,
                        key: r.try_get("key")?,
                        action: r.try_get("action")?,
                        actor: r.try_get("actor")?,
                        at: r.try_get("at")?,
                        version: version.max(0) as u64,
                        before: json("before")?,
                        after: json("after")?,
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(store_err("history"))
        })
        .await
    }
}
