//! The flag server's API tokens in Redis: hash `{prefix}:tokens`, token id → record (JSON),
//! changed by Lua scripts so that an insert never overwrites and a revocation happens once.

use crate::store::{store_err, RedisStore};
use async_trait::async_trait;
use feature_store::tokens::{Scope, TokenRecord, TokenStore};
use feature_store::{check_name, now_rfc3339, WriteError};
use redis::Script;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A token record as stored.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stored {
    id: String,
    name: String,
    scope: String,
    secret_sha256: String,
    created_at: String,
    created_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked_by: Option<String>,
    #[serde(default)]
    seq: u64,
}

impl Stored {
    /// The record, or `None` (skipped) if the stored scope is not one this version knows.
    fn record(self) -> Option<TokenRecord> {
        Some(TokenRecord {
            scope: Scope::parse(&self.scope)?,
            id: self.id,
            name: self.name,
            secret_sha256: self.secret_sha256,
            created_at: self.created_at,
            created_by: self.created_by,
            revoked_at: self.revoked_at,
        })
    }
}

/// KEYS: tokens hash, sequence counter. ARGV: id, record JSON. 1 if inserted (or already
/// inserted with the same secret: a retry after a lost reply), 0 if the id holds another
/// token.
const INSERT: &str = r"
local t = cjson.decode(ARGV[2])
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held then
  if cjson.decode(held)['secretSha256'] == t['secretSha256'] then return 1 end
  return 0
end
t['seq'] = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(t))
return 1
";

/// KEYS: tokens hash. ARGV: id, time, actor. 1 if revoked now, 0 if absent or already revoked.
const REVOKE: &str = r"
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local t = cjson.decode(raw)
if t['revokedAt'] then return 0 end
t['revokedAt'] = ARGV[2]
t['revokedBy'] = ARGV[3]
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(t))
return 1
";

fn decode(raw: &str) -> Option<Stored> {
    serde_json::from_str(raw).ok()
}

#[async_trait]
impl TokenStore for RedisStore {
    async fn insert_token(&self, t: &TokenRecord) -> Result<(), WriteError> {
        check_name("name", &t.name)?;
        check_name("actor", &t.created_by)?;
        let json = serde_json::to_string(&Stored {
            id: t.id.clone(),
            name: t.name.clone(),
            scope: t.scope.as_str().to_owned(),
            secret_sha256: t.secret_sha256.clone(),
            created_at: t.created_at.clone(),
            created_by: t.created_by.clone(),
            revoked_at: t.revoked_at.clone(),
            revoked_by: None,
            seq: 0,
        })
        .unwrap_or_default();
        let inserted: i64 = self
            .run("insert token", || async {
                let mut c = self.conn().await.map_err(store_err("insert token"))?;
                Script::new(INSERT)
                    .key(&self.keys().tokens)
                    .key(&self.keys().tokens_seq)
                    .arg(&t.id)
                    .arg(&json)
                    .invoke_async(&mut c)
                    .await
                    .map_err(store_err("insert token"))
            })
            .await?;
        if inserted == 0 {
            return Err(WriteError::BadName {
                what: "id",
                value: t.id.clone(),
                reason: "a token with this id exists",
            });
        }
        Ok(())
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRecord>, WriteError> {
        let raw: Option<String> = self
            .run("read token", || async {
                let mut c = self.conn().await.map_err(store_err("read token"))?;
                redis::cmd("HGET")
                    .arg(&self.keys().tokens)
                    .arg(id)
                    .query_async(&mut c)
                    .await
                    .map_err(store_err("read token"))
            })
            .await?;
        Ok(raw.as_deref().and_then(decode).and_then(Stored::record))
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, WriteError> {
        let all: HashMap<String, String> = self
            .run("list tokens", || async {
                let mut c = self.conn().await.map_err(store_err("list tokens"))?;
                redis::cmd("HGETALL")
                    .arg(&self.keys().tokens)
                    .query_async(&mut c)
                    .await
                    .map_err(store_err("list tokens"))
            })
            .await?;
        let mut stored: Vec<Stored> = all.values().filter_map(|raw| decode(raw)).collect();
        stored.sort_by(|a, b| (a.seq, &a.id).cmp(&(b.seq, &b.id)));
        Ok(stored.into_iter().filter_map(Stored::record).collect())
    }

    async fn revoke_token(&self, id: &str, actor: &str) -> Result<bool, WriteError> {
        check_name("actor", actor)?;
        let at = now_rfc3339();
        let done: i64 = self
            .run("revoke token", || async {
                let mut c = self.conn().await.map_err(store_err("revoke token"))?;
                Script::new(REVOKE)
                    .key(&self.keys().tokens)
                    .arg(id)
                    .arg(&at)
                    .arg(actor)
                    .invoke_async(&mut c)
                    .await
                    .map_err(store_err("revoke token"))
            })
            .await?;
        Ok(done == 1)
    }
}
