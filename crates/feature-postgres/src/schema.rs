//! The table name and the migrations that create the schema.

use crate::PostgresError;
use sqlx::{AssertSqlSafe, PgPool, SqlSafeStr, SqlStr};
use std::sync::Arc;

/// A validated table name: 1 to 40 characters, lower-case ASCII letters, digits and `_`, not
/// starting with a digit. Only such a name is ever put into SQL text; the other objects are
/// named after it (`{table}_segments`, `{table}_audit`, `{table}_changes`, ...), which keeps
/// every name within PostgreSQL's 63-byte limit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName(String);

impl TableName {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<TableName, PostgresError> {
        let reason = if name.is_empty() {
            Some("it is empty")
        } else if name.len() > 40 {
            Some("it is longer than 40 characters")
        } else if name.starts_with(|c: char| c.is_ascii_digit()) {
            Some("it starts with a digit")
        } else if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            Some("only lower-case ASCII letters, digits and _ are allowed")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(PostgresError::InvalidTable {
                name: name.chars().take(80).collect(),
                reason,
            }),
            None => Ok(TableName(name.to_owned())),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The LISTEN/NOTIFY channel: `{table}_changes`.
    pub fn channel(&self) -> String {
        format!("{}_changes", self.0)
    }

    /// Replaces `{t}` in an SQL template by the (validated) name.
    pub(crate) fn sql(&self, template: &str) -> SqlStr {
        trusted(template.replace("{t}", &self.0))
    }
}

/// SQL built by this crate from constant text and a validated [`TableName`]: no value from
/// outside is ever spliced in (values are bound as parameters), so it is safe to run.
pub(crate) fn trusted(sql: String) -> SqlStr {
    AssertSqlSafe(Arc::<str>::from(sql)).into_sql_str()
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The migrations, in order. Each runs once per table, recorded in `{t}_migrations`; all of
/// them together run in one transaction under an advisory lock, so concurrent starts are safe.
/// They are also written to be harmless if run again.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE IF NOT EXISTS {t} (
    key         text PRIMARY KEY CHECK (key <> ''),
    definition  jsonb NOT NULL,
    version     bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL DEFAULT current_user
);
CREATE TABLE IF NOT EXISTS {t}_segments (
    key         text PRIMARY KEY CHECK (key <> ''),
    definition  jsonb NOT NULL,
    version     bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL DEFAULT current_user
);
CREATE TABLE IF NOT EXISTS {t}_audit (
    id       bigserial PRIMARY KEY,
    kind     text NOT NULL,
    key      text NOT NULL,
    action   text NOT NULL,
    actor    text NOT NULL,
    at       timestamptz NOT NULL DEFAULT now(),
    version  bigint NOT NULL,
    before   jsonb,
    after    jsonb
);
CREATE INDEX IF NOT EXISTS {t}_audit_key_idx ON {t}_audit (kind, key, id);

CREATE OR REPLACE FUNCTION {t}_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    k text;
    v bigint;
    act text;
    who text;
    rev bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN
        k := OLD.key;
        v := OLD.version + 1;
    ELSE
        k := NEW.key;
        v := NEW.version;
    END IF;
    act := coalesce(nullif(current_setting('feature.action', true), ''),
                    CASE TG_OP WHEN 'INSERT' THEN 'create' WHEN 'UPDATE' THEN 'update' ELSE 'delete' END);
    who := coalesce(nullif(current_setting('feature.actor', true), ''), session_user);
    INSERT INTO {t}_audit (kind, key, action, actor, version, before, after)
    VALUES (TG_ARGV[0], k, act, who, v,
            CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE OLD.definition END,
            CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE NEW.definition END)
    RETURNING id INTO rev;
    PERFORM pg_notify('{t}_changes',
        json_build_object('kind', TG_ARGV[0], 'key', k, 'revision', rev)::text);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION {t}_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{t}_changes', '{"resync": true}');
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS {t}_changed ON {t};
CREATE TRIGGER {t}_changed AFTER INSERT OR UPDATE OR DELETE ON {t}
    FOR EACH ROW EXECUTE FUNCTION {t}_changed('flag');
DROP TRIGGER IF EXISTS {t}_changed ON {t}_segments;
CREATE TRIGGER {t}_changed AFTER INSERT OR UPDATE OR DELETE ON {t}_segments
    FOR EACH ROW EXECUTE FUNCTION {t}_changed('segment');
DROP TRIGGER IF EXISTS {t}_truncated ON {t};
CREATE TRIGGER {t}_truncated AFTER TRUNCATE ON {t}
    FOR EACH STATEMENT EXECUTE FUNCTION {t}_truncated();
DROP TRIGGER IF EXISTS {t}_truncated ON {t}_segments;
CREATE TRIGGER {t}_truncated AFTER TRUNCATE ON {t}_segments
    FOR EACH STATEMENT EXECUTE FUNCTION {t}_truncated();
"#];

/// The schema version the migrations bring a table to.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Brings the schema of `table` up to date. Safe to run concurrently and repeatedly.
pub async fn migrate(pool: &PgPool, table: &TableName) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("feature-migrate:{table}"))
        .execute(&mut *tx)
        .await?;
    let create = table.sql(
        "CREATE TABLE IF NOT EXISTS {t}_migrations (
            version     integer PRIMARY KEY,
            applied_at  timestamptz NOT NULL DEFAULT now()
        )",
    );
    sqlx::query(create).execute(&mut *tx).await?;
    let current: i32 =
        sqlx::query_scalar(table.sql("SELECT coalesce(max(version), 0) FROM {t}_migrations"))
            .fetch_one(&mut *tx)
            .await?;
    for (i, m) in MIGRATIONS.iter().enumerate() {
        let version = i as i32 + 1;
        if version <= current {
            continue;
        }
        // Several statements: sent unprepared, with the simple query protocol.
        sqlx::raw_sql(table.sql(m)).execute(&mut *tx).await?;
        sqlx::query(table.sql("INSERT INTO {t}_migrations (version) VALUES ($1)"))
            .bind(version)
            .execute(&mut *tx)
            .await?;
        tracing::info!(target: "feature::postgres", table = %table, version, "schema migrated");
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_identifiers() {
        for ok in ["feature_flags", "f", "_x1", &"a".repeat(40)] {
            assert!(TableName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1flags",
            "Flags",
            "flags; DROP TABLE users",
            "a.b",
            "\"quoted\"",
            "flägs",
            &"a".repeat(41),
        ] {
            assert!(TableName::new(bad).is_err(), "{bad}");
        }
        let t = TableName::new("ff").unwrap();
        assert_eq!(t.channel(), "ff_changes");
        assert_eq!(
            t.sql("SELECT * FROM {t}_audit").as_str(),
            "SELECT * FROM ff_audit"
        );
    }
}
