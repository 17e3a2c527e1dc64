//! The audit log's hash chain: how a row is hashed, and the check of the whole log.

use crate::schema::{Db, TRIGGERS};
use crate::SqliteError;
use sha2::{Digest, Sha256};
use sqlx::{Row as _, Sqlite, Transaction};
use std::fmt;

/// Rows read per query.
const PAGE: i64 = 1000;

/// What [`SqliteStore::verify_audit`](crate::SqliteStore::verify_audit) found.
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

impl AuditVerdict {
    /// Whether every link holds.
    pub fn is_intact(&self) -> bool {
        matches!(self, AuditVerdict::Intact { .. })
    }
}

/// The first problem the check found.
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
    /// deleted.
    Truncated {
        /// The last row the head names.
        head_id: Option<i64>,
        /// The last row found.
        last_id: Option<i64>,
    },
    /// A trigger that guards the log or counts changes is missing.
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
                    "the log ends at row {} but its head names row {} (rows deleted at the end)",
                    show(last_id),
                    show(head_id)
                )
            }
            AuditBreak::Trigger { name } => {
                write!(
                    f,
                    "trigger {name} is missing: changes may go unaudited or unnoticed"
                )
            }
            AuditBreak::Unaudited { kind, key } => write!(
                f,
                "{kind} {key:?} differs from its last audit row (changed without an audit row)"
            ),
        }
    }
}

/// SHA-256 (hex) of the canonical encoding of an audit row: a version tag, then each field as
/// its length in UTF-8 bytes, `:` and the text, or `-` for a missing value. `fields` are, in
/// order: id, prev_hash (hex), kind, key, action, actor, at (RFC 3339 as stored), version,
/// before, after (JSON text as stored). The same scheme as the PostgreSQL audit log, with
/// the SQLite tag, so no two different rows encode alike.
pub(crate) fn row_hash(fields: &[Option<&str>]) -> String {
    let mut h = Sha256::new();
    h.update(b"feature-audit-sqlite-v1");
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
    let digest = h.finalize();
    let mut s = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Reads the whole log in one read transaction (a consistent view while writers go on).
pub(crate) async fn verify(db: &Db) -> Result<AuditVerdict, SqliteError> {
    db.ensure_schema().await?;
    let err = |e| db.error("audit verify", e);
    let mut tx = db.pool.begin().await.map_err(err)?;
    let verdict = chain(&mut tx).await.map_err(err)?;
    let verdict = match verdict {
        AuditVerdict::Intact { .. } => match triggers(&mut tx).await.map_err(err)? {
            Some(b) => AuditVerdict::Broken(b),
            None => match unaudited(&mut tx).await.map_err(err)? {
                Some(b) => AuditVerdict::Broken(b),
                None => verdict,
            },
        },
        broken => broken,
    };
    tx.commit().await.map_err(err)?;
    Ok(verdict)
}

async fn chain(tx: &mut Transaction<'static, Sqlite>) -> Result<AuditVerdict, sqlx::Error> {
    let mut after = i64::MIN;
    let mut prev: Option<String> = None;
    let mut last: Option<i64> = None;
    let mut rows = 0u64;
    loop {
        let batch = sqlx::query(
            "SELECT id, prev_hash, hash, kind, key, action, actor, at, version, before, after \
             FROM feature_audit WHERE id > ? ORDER BY id LIMIT ?",
        )
        .bind(after)
        .bind(PAGE)
        .fetch_all(&mut **tx)
        .await?;
        for r in &batch {
            let id: i64 = r.try_get("id")?;
            let row_prev: Option<String> = r.try_get("prev_hash")?;
            let hash: String = r.try_get("hash")?;
            if row_prev != prev {
                return Ok(AuditVerdict::Broken(AuditBreak::Unlinked { id }));
            }
            let version: i64 = r.try_get("version")?;
            let text = |c: &str| r.try_get::<Option<String>, _>(c);
            let (id_text, version_text) = (id.to_string(), version.to_string());
            let fields = [
                text("kind")?,
                text("key")?,
                text("action")?,
                text("actor")?,
                text("at")?,
            ];
            let (before, after_def) = (text("before")?, text("after")?);
            let mut all = vec![Some(id_text.as_str()), row_prev.as_deref()];
            all.extend(fields.iter().map(|f| f.as_deref()));
            all.extend([
                Some(version_text.as_str()),
                before.as_deref(),
                after_def.as_deref(),
            ]);
            if hash != row_hash(&all) {
                return Ok(AuditVerdict::Broken(AuditBreak::Edited { id }));
            }
            prev = Some(hash);
            last = Some(id);
            after = id;
            rows += 1;
        }
        if (batch.len() as i64) < PAGE {
            break;
        }
    }
    let (head_id, head_hash): (Option<i64>, Option<String>) =
        sqlx::query_as("SELECT last_id, last_hash FROM feature_audit_head")
            .fetch_optional(&mut **tx)
            .await?
            .unwrap_or((None, None));
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
    tx: &mut Transaction<'static, Sqlite>,
) -> Result<Option<AuditBreak>, sqlx::Error> {
    let present: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            .fetch_all(&mut **tx)
            .await?;
    Ok(TRIGGERS
        .iter()
        .find(|t| !present.iter().any(|p| p == *t))
        .map(|t| AuditBreak::Trigger {
            name: (*t).to_owned(),
        }))
}

async fn unaudited(
    tx: &mut Transaction<'static, Sqlite>,
) -> Result<Option<AuditBreak>, sqlx::Error> {
    // The last audit row of every item, against the item as stored.
    let row: Option<(String, String)> = sqlx::query_as(
        "WITH last AS ( \
             SELECT a.kind, a.key, a.version, a.after FROM feature_audit a \
             WHERE a.id = (SELECT max(b.id) FROM feature_audit b \
                           WHERE b.kind = a.kind AND b.key = a.key)), \
         items AS ( \
             SELECT 'flag' AS kind, key, version, definition FROM feature_flags \
             UNION ALL SELECT 'segment', key, version, definition FROM feature_segments) \
         SELECT i.kind, i.key FROM items i LEFT JOIN last l ON l.kind = i.kind AND l.key = i.key \
         WHERE l.key IS NULL OR l.after IS NOT i.definition OR l.version IS NOT i.version \
         UNION ALL \
         SELECT l.kind, l.key FROM last l LEFT JOIN items i ON l.kind = i.kind AND l.key = i.key \
         WHERE i.key IS NULL AND l.after IS NOT NULL \
         ORDER BY 1, 2 LIMIT 1",
    )
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|(kind, key)| AuditBreak::Unaudited { kind, key }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoding_is_length_prefixed_and_marks_missing_values() {
        let a = row_hash(&[Some("ab"), Some("c")]);
        let b = row_hash(&[Some("a"), Some("bc")]);
        let c = row_hash(&[None, Some("c")]);
        let d = row_hash(&[Some(""), Some("c")]);
        assert_ne!(a, b);
        assert_ne!(c, d);
        // SHA-256 of the bytes `feature-audit-sqlite-v12:ab1:c-`.
        assert_eq!(
            row_hash(&[Some("ab"), Some("c"), None]),
            format!(
                "{:x}",
                Sha256::digest(b"feature-audit-sqlite-v12:ab1:c-".as_slice())
            )
        );
    }
}
