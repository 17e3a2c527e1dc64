//! The flag server's API tokens in PostgreSQL: table `{t}_tokens` (schema version 3).

use crate::store::{store_err, ts, PostgresStore};
use async_trait::async_trait;
use feature_store::tokens::{Scope, TokenRecord, TokenStore};
use feature_store::{check_name, WriteError};
use sqlx::postgres::PgRow;
use sqlx::Row as _;

fn record(r: &PgRow) -> Result<TokenRecord, sqlx::Error> {
    let scope: String = r.try_get("scope")?;
    Ok(TokenRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        scope: Scope::parse(&scope).ok_or_else(|| sqlx::Error::ColumnDecode {
            index: "scope".into(),
            source: format!("unknown scope {scope:?}").into(),
        })?,
        secret_sha256: r.try_get("secret_sha256")?,
        created_at: r.try_get("created_at")?,
        created_by: r.try_get("created_by")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

fn columns() -> String {
    format!(
        "id, name, scope, secret_sha256, {} AS created_at, created_by, {} AS revoked_at",
        ts("created_at"),
        ts("revoked_at")
    )
}

#[async_trait]
impl TokenStore for PostgresStore {
    async fn insert_token(&self, t: &TokenRecord) -> Result<(), WriteError> {
        check_name("name", &t.name)?;
        check_name("actor", &t.created_by)?;
        self.timed("insert token", async {
            sqlx::query(self.table().sql(
                "INSERT INTO {t}_tokens (id, name, scope, secret_sha256, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6::timestamptz)",
            ))
            .bind(&t.id)
            .bind(&t.name)
            .bind(t.scope.as_str())
            .bind(&t.secret_sha256)
            .bind(&t.created_by)
            .bind(&t.created_at)
            .execute(self.pool())
            .await
            .map_err(store_err("insert token"))?;
            Ok(())
        })
        .await
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRecord>, WriteError> {
        self.timed("read token", async {
            let sql = format!("SELECT {} FROM {{t}}_tokens WHERE id = $1", columns());
            sqlx::query(self.table().sql(&sql))
                .bind(id)
                .fetch_optional(self.pool())
                .await
                .and_then(|r| r.as_ref().map(record).transpose())
                .map_err(store_err("read token"))
        })
        .await
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, WriteError> {
        self.timed("list tokens", async {
            let sql = format!("SELECT {} FROM {{t}}_tokens ORDER BY seq", columns());
            sqlx::query(self.table().sql(&sql))
                .fetch_all(self.pool())
                .await
                .and_then(|rows| rows.iter().map(record).collect())
                .map_err(store_err("list tokens"))
        })
        .await
    }

    async fn revoke_token(&self, id: &str, actor: &str) -> Result<bool, WriteError> {
        check_name("actor", actor)?;
        self.timed("revoke token", async {
            let done = sqlx::query(self.table().sql(
                "UPDATE {t}_tokens SET revoked_at = now(), revoked_by = $2 \
                 WHERE id = $1 AND revoked_at IS NULL",
            ))
            .bind(id)
            .bind(actor)
            .execute(self.pool())
            .await
            .map_err(store_err("revoke token"))?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }
}
