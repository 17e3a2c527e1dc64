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
const MIGRATIONS: &[&str] = &[
    r#"
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
"#,
    MIGRATION_2,
    MIGRATION_3,
];

/// Version 2: least privilege and a tamper-evident audit log.
///
/// - The trigger functions run as their owner (the migrator, `SECURITY DEFINER` with a fixed
///   `search_path`): a writer changes flags without any right on the audit log.
/// - Every audit row carries `prev_hash` (the previous row's `hash`, NULL for the first row) and
///   `hash` = SHA-256 of the row's canonical encoding (`{t}_audit_hash`), computed by a
///   `BEFORE INSERT` trigger that first locks the one row of `{t}_audit_head` for the rest of
///   the transaction: writers chain one after the other in commit order, and ids are drawn
///   after the lock, so they grow along the chain. At commit the head records the last id and
///   hash, so that rows deleted at the end are found too.
/// - `TRUNCATE` of a flag or segment table writes one audit row per row removed (action
///   `truncate`) before the rows go, and notices `{"resync": true, "revision": <last audit id>}`.
/// - The audit log refuses `UPDATE`, `DELETE` and `TRUNCATE` (an owner can still drop that
///   trigger: `featurectl audit verify` then finds the broken link).
const MIGRATION_2: &str = r#"
ALTER TABLE {t}_audit ADD COLUMN IF NOT EXISTS prev_hash bytea;
ALTER TABLE {t}_audit ADD COLUMN IF NOT EXISTS hash bytea;
ALTER TABLE {t}_audit ALTER COLUMN id DROP DEFAULT;
CREATE TABLE IF NOT EXISTS {t}_audit_head (
    one        boolean PRIMARY KEY DEFAULT true CHECK (one),
    writer_tx  bigint,
    last_id    bigint,
    last_hash  bytea
);
INSERT INTO {t}_audit_head (one) VALUES (true) ON CONFLICT DO NOTHING;

-- The canonical encoding of an audit row, hashed. Each field is written as its length in
-- UTF-8 bytes, ':', and the text, or '-' for NULL, after a version tag; so no two different
-- rows encode alike. featurectl audit verify recomputes it field for field.
CREATE OR REPLACE FUNCTION {t}_audit_hash(a {t}_audit) RETURNS bytea
LANGUAGE sql STABLE AS $$
    SELECT sha256(convert_to('feature-audit-v1' || (
        SELECT string_agg(CASE WHEN f IS NULL THEN '-'
                               ELSE octet_length(convert_to(f, 'UTF8'))::text || ':' || f END,
                          '' ORDER BY n)
        FROM unnest(ARRAY[
            a.id::text,
            encode(a.prev_hash, 'hex'),
            a.kind,
            a.key,
            a.action,
            a.actor,
            ((extract(epoch FROM a.at) * 1000000)::bigint)::text,
            a.version::text,
            a.before::text,
            a.after::text
        ]) WITH ORDINALITY AS x(f, n)
    ), 'UTF8'))
$$;

-- Chain the existing rows, in id order.
DO $$
DECLARE
    r {t}_audit;
    prev bytea;
    last bigint;
BEGIN
    IF EXISTS (SELECT 1 FROM {t}_audit WHERE hash IS NOT NULL) THEN
        RETURN;
    END IF;
    FOR r IN SELECT * FROM {t}_audit ORDER BY id LOOP
        r.prev_hash := prev;
        r.hash := {t}_audit_hash(r);
        UPDATE {t}_audit SET prev_hash = r.prev_hash, hash = r.hash WHERE id = r.id;
        prev := r.hash;
        last := r.id;
    END LOOP;
    UPDATE {t}_audit_head SET last_id = last, last_hash = prev;
END
$$;
ALTER TABLE {t}_audit ALTER COLUMN hash SET NOT NULL;

CREATE OR REPLACE FUNCTION {t}_audit_chain() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    -- The first audit row of a transaction locks the head row until commit: writers chain one
    -- after the other. (Under REPEATABLE READ or SERIALIZABLE, a writer whose snapshot misses
    -- a row chained since gets a serialization failure here instead of forking the chain.)
    -- Later rows of the same transaction find the row theirs already and do not write it
    -- again, so a transaction of many rows stays linear.
    UPDATE {t}_audit_head SET writer_tx = txid_current()
        WHERE writer_tx IS DISTINCT FROM txid_current();
    NEW.prev_hash := (SELECT hash FROM {t}_audit ORDER BY id DESC LIMIT 1);
    NEW.id := nextval('{t}_audit_id_seq');
    NEW.hash := {t}_audit_hash(NEW);
    RETURN NEW;
END
$$;

-- At commit: the head records the transaction's last row (only that row writes it).
CREATE OR REPLACE FUNCTION {t}_audit_commit() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF NEW.id = (SELECT max(id) FROM {t}_audit) THEN
        UPDATE {t}_audit_head SET last_id = NEW.id, last_hash = NEW.hash;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION {t}_audit_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log {t}_audit is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE OR REPLACE FUNCTION {t}_changed() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
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

-- Runs before the rows go: one audit row per row removed, then one notice.
CREATE OR REPLACE FUNCTION {t}_truncated() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    who text;
    n bigint;
    rev bigint;
BEGIN
    who := coalesce(nullif(current_setting('feature.actor', true), ''), session_user);
    IF TG_ARGV[0] = 'segment' THEN
        INSERT INTO {t}_audit (kind, key, action, actor, version, before, after)
        SELECT 'segment', key, 'truncate', who, version + 1, definition, NULL
        FROM {t}_segments ORDER BY key;
    ELSE
        INSERT INTO {t}_audit (kind, key, action, actor, version, before, after)
        SELECT 'flag', key, 'truncate', who, version + 1, definition, NULL
        FROM {t} ORDER BY key;
    END IF;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        SELECT max(id) INTO rev FROM {t}_audit;
        PERFORM pg_notify('{t}_changes', json_build_object('resync', true, 'revision', rev)::text);
    END IF;
    RETURN NULL;
END
$$;

-- The functions that run as their owner find only this schema's objects.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION {t}_changed() SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION {t}_truncated() SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION {t}_audit_chain() SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION {t}_audit_commit() SET search_path = %I, pg_temp', current_schema());
END
$$;

DROP TRIGGER IF EXISTS {t}_audit_chain ON {t}_audit;
CREATE TRIGGER {t}_audit_chain BEFORE INSERT ON {t}_audit
    FOR EACH ROW EXECUTE FUNCTION {t}_audit_chain();
DROP TRIGGER IF EXISTS {t}_audit_commit ON {t}_audit;
CREATE CONSTRAINT TRIGGER {t}_audit_commit AFTER INSERT ON {t}_audit
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION {t}_audit_commit();
DROP TRIGGER IF EXISTS {t}_audit_guard ON {t}_audit;
CREATE TRIGGER {t}_audit_guard BEFORE UPDATE OR DELETE ON {t}_audit
    FOR EACH ROW EXECUTE FUNCTION {t}_audit_guard();
DROP TRIGGER IF EXISTS {t}_audit_guard_truncate ON {t}_audit;
CREATE TRIGGER {t}_audit_guard_truncate BEFORE TRUNCATE ON {t}_audit
    FOR EACH STATEMENT EXECUTE FUNCTION {t}_audit_guard();
DROP TRIGGER IF EXISTS {t}_truncated ON {t};
CREATE TRIGGER {t}_truncated BEFORE TRUNCATE ON {t}
    FOR EACH STATEMENT EXECUTE FUNCTION {t}_truncated('flag');
DROP TRIGGER IF EXISTS {t}_truncated ON {t}_segments;
CREATE TRIGGER {t}_truncated BEFORE TRUNCATE ON {t}_segments
    FOR EACH STATEMENT EXECUTE FUNCTION {t}_truncated('segment');
"#;

/// Version 3: the flag server's API tokens (the SHA-256 of each secret, never the secret).
/// `seq` orders them by creation.
const MIGRATION_3: &str = r#"
CREATE TABLE IF NOT EXISTS {t}_tokens (
    id             text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
    name           text NOT NULL,
    scope          text NOT NULL CHECK (scope IN ('evaluate', 'read', 'write', 'admin')),
    secret_sha256  text NOT NULL CHECK (secret_sha256 ~ '^[0-9a-f]{64}$'),
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text NOT NULL,
    revoked_at     timestamptz,
    revoked_by     text,
    seq            bigserial
);
"#;

/// The schema version the migrations bring a table to.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// The schema version of `table`: 0 when it has no schema yet. Needs `SELECT` on
/// `{table}_migrations` only.
pub async fn schema_version(pool: &PgPool, table: &TableName) -> Result<i32, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(format!("{table}_migrations"))
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(0);
    }
    sqlx::query_scalar(table.sql("SELECT coalesce(max(version), 0) FROM {t}_migrations"))
        .fetch_one(pool)
        .await
}

/// Brings the schema of `table` up to date. Safe to run concurrently and repeatedly. When the
/// schema is up to date it only reads its version, so a role without DDL rights may call it;
/// otherwise it needs the migrator's rights (see [`role_grants`]).
pub async fn migrate(pool: &PgPool, table: &TableName) -> Result<(), sqlx::Error> {
    if schema_version(pool, table).await? >= SCHEMA_VERSION {
        return Ok(());
    }
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

/// The text of `sql/roles.sql`: the GRANTs of the reader, writer and migrator roles, with
/// placeholders.
const ROLES_SQL: &str = include_str!("../sql/roles.sql");

/// The GRANT statements that give three roles the rights they need on a flag table, and no
/// more (the text of the crate's `sql/roles.sql`, also shown in the README):
///
/// - **reader** (every service instance): `SELECT` on the tables; `LISTEN` needs no grant.
/// - **writer** (admin tools, [`PostgresStore`](crate::PostgresStore)): `SELECT, INSERT,
///   UPDATE, DELETE` on the flag and segment tables, `SELECT` on the audit log; the triggers
///   write the audit rows as their owner.
/// - **migrator** (`featurectl migrate`): creates, and so owns, everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleGrants {
    /// To run before the migration, as a superuser or the schema's owner.
    pub before_migration: String,
    /// To run after the migration, as the migrator.
    pub after_migration: String,
}

/// A plain lower-case SQL identifier (role or schema name), safe to put into SQL text.
fn identifier(what: &'static str, name: &str) -> Result<(), PostgresError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(PostgresError::InvalidIdentifier {
            what,
            name: name.chars().take(80).collect(),
        })
    }
}

/// The GRANT statements for `table` in `schema` and the three roles (see [`RoleGrants`]).
/// Names must be plain lower-case identifiers.
pub fn role_grants(
    table: &TableName,
    schema: &str,
    reader: &str,
    writer: &str,
    migrator: &str,
) -> Result<RoleGrants, PostgresError> {
    identifier("schema", schema)?;
    identifier("reader role", reader)?;
    identifier("writer role", writer)?;
    identifier("migrator role", migrator)?;
    let text = ROLES_SQL
        .replace("{t}", table.as_str())
        .replace("{schema}", schema)
        .replace("{reader}", reader)
        .replace("{writer}", writer)
        .replace("{migrator}", migrator);
    let statements = |part: &str| -> String {
        text.split("-- Part ")
            .filter(|p| p.starts_with(part))
            .flat_map(|p| p.lines())
            .filter(|l| l.starts_with("GRANT "))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    Ok(RoleGrants {
        before_migration: statements("1"),
        after_migration: statements("2"),
    })
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
        let g = role_grants(&t, "public", "r", "w", "m").unwrap();
        assert_eq!(
            g.before_migration,
            "GRANT USAGE, CREATE ON SCHEMA public TO m;\nGRANT USAGE ON SCHEMA public TO r, w;\n"
        );
        assert!(g
            .after_migration
            .contains("GRANT SELECT ON ff_audit, ff_migrations TO w;\n"));
        assert!(!g.after_migration.contains("UPDATE ON ff_audit"));
        assert!(role_grants(&t, "public", "r; DROP", "w", "m").is_err());
        // The documentation shows these very statements.
        let docs = include_str!("../../../docs/postgres-roles.md");
        assert!(
            docs.contains(ROLES_SQL),
            "docs/postgres-roles.md differs from sql/roles.sql"
        );
        assert_eq!(t.channel(), "ff_changes");
        assert_eq!(
            t.sql("SELECT * FROM {t}_audit").as_str(),
            "SELECT * FROM ff_audit"
        );
    }
}
