//! The flag server's API tokens in the `feature_tokens` table (hashes only; see
//! [`feature_store::tokens`]).

use crate::store::SqliteStore;
use async_trait::async_trait;
use feature_store::tokens::{Scope, TokenRecord, TokenStore};
use feature_store::{check_name, now_rfc3339, WriteError};
use sqlx::sqlite::SqliteRow;
use sqlx::Row as _;

fn store_err(operation: &'static str) -> impl FnOnce(sqlx::Error) -> WriteError {
    move |e| WriteError::Store {
        store: "sqlite",
        operation,
        source: Box::new(e),
    }
}

/// A scope name this crate never writes (edited by hand): the record is unusable.
#[derive(Debug, thiserror::Error)]
#[error("token {id}: unknown scope {scope:?}")]
struct UnknownScope {
    id: String,
    scope: String,
}

fn decode(r: &SqliteRow) -> Result<TokenRecord, WriteError> {
    let get = |c: &str| r.try_get::<String, _>(c).map_err(store_err("tokens"));
    let id = get("id")?;
    let scope_name = get("scope")?;
    let Some(scope) = Scope::parse(&scope_name) else {
        return Err(WriteError::Store {
            store: "sqlite",
            operation: "tokens",
            source: Box::new(UnknownScope {
                id,
                scope: scope_name,
            }),
        });
    };
    Ok(TokenRecord {
        id,
        name: get("name")?,
        scope,
        secret_sha256: get("secret_sha256")?,
        created_at: get("created_at")?,
        created_by: get("created_by")?,
        revoked_at: r
            .try_get::<Option<String>, _>("revoked_at")
            .map_err(store_err("tokens"))?,
    })
}

const COLS: &str = "id, name, scope, secret_sha256, created_at, created_by, revoked_at";

#[async_trait]
impl TokenStore for SqliteStore {
    async fn insert_token(&self, record: &TokenRecord) -> Result<(), WriteError> {
        self.opened().await?;
        sqlx::query(
            "INSERT INTO feature_tokens \
             (id, name, scope, secret_sha256, created_at, created_by, revoked_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&record.id)
        .bind(&record.name)
        .bind(record.scope.as_str())
        .bind(&record.secret_sha256)
        .bind(&record.created_at)
        .bind(&record.created_by)
        .bind(&record.revoked_at)
        .execute(&self.db.pool)
        .await
        .map_err(store_err("insert token"))?;
        Ok(())
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRecord>, WriteError> {
        self.opened().await?;
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM feature_tokens WHERE id = ?"));
        let r = sqlx::query(sql)
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await
            .map_err(store_err("tokens"))?;
        r.as_ref().map(decode).transpose()
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, WriteError> {
        self.opened().await?;
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM feature_tokens ORDER BY rowid"));
        let rows = sqlx::query(sql)
            .fetch_all(&self.db.pool)
            .await
            .map_err(store_err("tokens"))?;
        rows.iter().map(decode).collect()
    }

    async fn revoke_token(&self, id: &str, actor: &str) -> Result<bool, WriteError> {
        check_name("actor", actor)?;
        self.opened().await?;
        let done = sqlx::query(
            "UPDATE feature_tokens SET revoked_at = ?, revoked_by = ? \
             WHERE id = ? AND revoked_at IS NULL",
        )
        .bind(now_rfc3339())
        .bind(actor)
        .bind(id)
        .execute(&self.db.pool)
        .await
        .map_err(store_err("revoke token"))?;
        Ok(done.rows_affected() == 1)
    }
}
