//! Checks the audit log: its hash chain, its head, the triggers that write it, and that every
//! flag and segment is what its last audit row says.

use crate::schema::{schema_version, SCHEMA_VERSION};
use crate::store::Db;
use crate::PostgresError;
use sha2::{Digest, Sha256};
use sqlx::{Postgres, Row as _, Transaction};
use std::fmt;
use std::time::Duration;

/// Rows read per query.
const PAGE: i64 = 1000;

/// What [`verify_audit`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditVerdict {
    /// Every link holds.
    Intact {
        /// Audit rows checked.
        rows: u64,
        /// The last row's id and hash (hex), if any: keep it elsewhere to detect a rewrite of
        /// the whole log later.
        head: Option<(i64, String)>,
    },
    /// The first broken link.
    Broken(AuditBreak),
}

/// The first problem [`verify_audit`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditBreak {
    /// The row's contents do not match its hash: it was edited.
    Edited {
        /// The audit row.
        id: i64,
    },
    /// The row does not follow the row before it: rows were deleted before it, or it was
    /// inserted out of the chain.
    Unlinked {
        /// The audit row.
        id: i64,
    },
    /// The log ends before the head recorded with the last write: rows at its end were
    /// deleted, or the log was truncated.
    Truncated {
        /// The last row the head names.
        head_id: Option<i64>,
        /// The last row found.
        last_id: Option<i64>,
    },
    /// A trigger that writes or guards the log is disabled or missing: changes may go
    /// unaudited.
    Trigger {
        /// The trigger's name.
        name: String,
    },
    /// A flag or segment differs from what its last audit row says: it was changed without
    /// an audit row.
    Unaudited {
        /// `flag` or `segment`.
        kind: String,
        /// Its key.
        key: String,
    },
}

impl fmt::Display for AuditBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditBreak::Edited { id } => {
                write!(
                    f,
                    "audit row {id}: its contents do not match its hash (edited)"
                )
            }
            AuditBreak::Unlinked { id } => write!(
                f,
                "audit row {id}: does not follow the row before it (rows deleted before it)"
            ),
            AuditBreak::Truncated { head_id, last_id } => {
                let show = |id: &Option<i64>| id.map_or("none".to_owned(), |i| i.to_string());
                write!(
                    f,
                    "the log ends at row {} but its head names row {} (rows deleted at the end, or truncated)",
                    show(last_id),
                    show(head_id)
                )
            }
            AuditBreak::Trigger { name } => {
                write!(
                    f,
                    "trigger {name} is disabled or missing: changes may go unaudited"
                )
            }
            AuditBreak::Unaudited { kind, key } => write!(
                f,
                "{kind} {key:?} differs from its last audit row (changed without an audit row)"
            ),
        }
    }
}

/// The canonical encoding of an audit row, as the migration's `{t}_audit_hash` builds it, and
/// its SHA-256 in hex. `fields` are, in order: id, prev_hash (hex), kind, key, action, actor,
/// at (microseconds since 1970), version, before, after (JSON text as PostgreSQL prints jsonb).
pub(crate) fn row_hash(fields: &[Option<&str>]) -> String {
    let mut h = Sha256::new();
    h.update(b"feature-audit-v1");
    for f in fields {
        match f {
            None => h.update(b"-"),
            Some(s) => {
                h.update(s.len().to_string().as_bytes());
                h.update(b":");
                h.update(s.as_bytes());
            }
        }
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Checks the audit log of `table` at `url` (read-only; the reader role's rights suffice):
/// recomputes every row's hash and link in id order, compares the end with the head the
/// triggers keep, checks that the audit triggers are enabled, and that every flag and segment
/// matches its last audit row. Returns the first problem, or the number of rows and the head.
pub async fn verify_audit(url: &str, table: &str) -> Result<AuditVerdict, PostgresError> {
    let db = Db::new(url, table, 1, Duration::from_secs(10))?;
    let result = verify(&db).await;
    db.pool.close().await;
    result
}

fn database(source: sqlx::Error) -> PostgresError {
    PostgresError::Database {
        operation: "audit verify",
        source,
    }
}

async fn verify(db: &Db) -> Result<AuditVerdict, PostgresError> {
    let t = &db.sql.table;
    let found = schema_version(&db.pool, t).await.map_err(database)?;
    if found < SCHEMA_VERSION {
        return Err(PostgresError::SchemaOutdated {
            found,
            needed: SCHEMA_VERSION,
        });
    }
    let mut tx = db.pool.begin().await.map_err(database)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(database)?;
    let verdict = chain(t, &mut tx).await?;
    let verdict = match verdict {
        AuditVerdict::Intact { .. } => match triggers(t, &mut tx).await? {
            Some(b) => AuditVerdict::Broken(b),
            None => match unaudited(t, &mut tx).await? {
                Some(b) => AuditVerdict::Broken(b),
                None => verdict,
            },
        },
        broken => broken,
    };
    tx.commit().await.map_err(database)?;
    Ok(verdict)
}

async fn chain(
    t: &crate::TableName,
    tx: &mut Transaction<'static, Postgres>,
) -> Result<AuditVerdict, PostgresError> {
    let page = t.sql(
        "SELECT id, encode(prev_hash, 'hex') AS prev, encode(hash, 'hex') AS hash, kind, key, \
         action, actor, ((extract(epoch FROM at) * 1000000)::bigint)::text AS at_us, \
         version::text AS version, before::text AS before, after::text AS after \
         FROM {t}_audit WHERE id > $1 ORDER BY id LIMIT $2",
    );
    let mut after = i64::MIN;
    let mut prev: Option<String> = None;
    let mut last: Option<i64> = None;
    let mut rows = 0u64;
    loop {
        let batch = sqlx::query(page.clone())
            .bind(after)
            .bind(PAGE)
            .fetch_all(&mut **tx)
            .await
            .map_err(database)?;
        for r in &batch {
            let id: i64 = r.try_get("id").map_err(database)?;
            let text = |c: &str| r.try_get::<Option<String>, _>(c).map_err(database);
            let (row_prev, hash) = (text("prev")?, text("hash")?);
            if row_prev != prev {
                return Ok(AuditVerdict::Broken(AuditBreak::Unlinked { id }));
            }
            let id_text = id.to_string();
            let fields = [
                text("kind")?,
                text("key")?,
                text("action")?,
                text("actor")?,
                text("at_us")?,
                text("version")?,
                text("before")?,
                text("after")?,
            ];
            let mut all = vec![Some(id_text.as_str()), row_prev.as_deref()];
            all.extend(fields.iter().map(|f| f.as_deref()));
            if hash.as_deref() != Some(row_hash(&all).as_str()) {
                return Ok(AuditVerdict::Broken(AuditBreak::Edited { id }));
            }
            prev = hash;
            last = Some(id);
            after = id;
            rows += 1;
        }
        if (batch.len() as i64) < PAGE {
            break;
        }
    }
    let head = sqlx::query(
        t.sql("SELECT last_id, encode(last_hash, 'hex') AS last_hash FROM {t}_audit_head"),
    )
    .fetch_optional(&mut **tx)
    .await
    .map_err(database)?;
    let (head_id, head_hash) = match &head {
        Some(h) => (
            h.try_get::<Option<i64>, _>("last_id").map_err(database)?,
            h.try_get::<Option<String>, _>("last_hash")
                .map_err(database)?,
        ),
        None => (None, None),
    };
    if head_id != last || head_hash != prev {
        return Ok(AuditVerdict::Broken(AuditBreak::Truncated {
            head_id,
            last_id: last,
        }));
    }
    Ok(AuditVerdict::Intact {
        rows,
        head: last.zip(prev),
    })
}

async fn triggers(
    t: &crate::TableName,
    tx: &mut Transaction<'static, Postgres>,
) -> Result<Option<AuditBreak>, PostgresError> {
    let expected = [
        ("{t}", "{t}_changed"),
        ("{t}", "{t}_truncated"),
        ("{t}_segments", "{t}_changed"),
        ("{t}_segments", "{t}_truncated"),
        ("{t}_audit", "{t}_audit_chain"),
        ("{t}_audit", "{t}_audit_commit"),
        ("{t}_audit", "{t}_audit_guard"),
        ("{t}_audit", "{t}_audit_guard_truncate"),
    ];
    for (relation, name) in expected {
        let (relation, name) = (
            relation.replace("{t}", t.as_str()),
            name.replace("{t}", t.as_str()),
        );
        let enabled: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_trigger \
             WHERE tgrelid = to_regclass($1) AND tgname = $2 AND tgenabled <> 'D')",
        )
        .bind(&relation)
        .bind(&name)
        .fetch_one(&mut **tx)
        .await
        .map_err(database)?;
        if !enabled {
            return Ok(Some(AuditBreak::Trigger {
                name: format!("{name} on {relation}"),
            }));
        }
    }
    Ok(None)
}

async fn unaudited(
    t: &crate::TableName,
    tx: &mut Transaction<'static, Postgres>,
) -> Result<Option<AuditBreak>, PostgresError> {
    let row = sqlx::query(t.sql(
        "SELECT coalesce(i.kind, a.kind) AS kind, coalesce(i.key, a.key) AS key \
         FROM (SELECT 'flag' AS kind, key, version, definition FROM {t} \
               UNION ALL SELECT 'segment', key, version, definition FROM {t}_segments) i \
         FULL JOIN (SELECT DISTINCT ON (kind, key) kind, key, version, after \
                    FROM {t}_audit ORDER BY kind, key, id DESC) a \
           ON a.kind = i.kind AND a.key = i.key \
         WHERE (i.key IS NULL AND a.after IS NOT NULL) \
            OR (i.key IS NOT NULL AND (a.after IS DISTINCT FROM i.definition \
                                       OR a.version IS DISTINCT FROM i.version)) \
         ORDER BY 1, 2 LIMIT 1",
    ))
    .fetch_optional(&mut **tx)
    .await
    .map_err(database)?;
    match row {
        Some(r) => Ok(Some(AuditBreak::Unaudited {
            kind: r.try_get("kind").map_err(database)?,
            key: r.try_get("key").map_err(database)?,
        })),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoding_is_length_prefixed_and_marks_null() {
        // Same fields split differently, and NULL against empty, must hash differently.
        let a = row_hash(&[Some("ab"), Some("c")]);
        let b = row_hash(&[Some("a"), Some("bc")]);
        let c = row_hash(&[None, Some("c")]);
        let d = row_hash(&[Some(""), Some("c")]);
        assert_ne!(a, b);
        assert_ne!(c, d);
        // SHA-256 of the bytes `feature-audit-v12:ab1:c-`.
        assert_eq!(
            row_hash(&[Some("ab"), Some("c"), None]),
            "88819611593f78c6cbbcd00695585393f56e514b1c1f4189a138444a461f7776"
        );
    }
}
