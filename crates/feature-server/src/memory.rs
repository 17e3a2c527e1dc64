//! [`MemoryTokenStore`]: tokens kept in the process, for a server whose flags come from a
//! read-only source, for applications that mint their tokens at start, and for tests.
//! Tokens are lost when the process ends.

use async_trait::async_trait;
use feature_store::tokens::{TokenRecord, TokenStore};
use feature_store::{now_rfc3339, WriteError};
use std::sync::Mutex;

/// A [`TokenStore`] in memory. Every operation succeeds; records are kept in creation order.
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    records: Mutex<Vec<TokenRecord>>,
}

impl MemoryTokenStore {
    /// An empty store.
    pub fn new() -> MemoryTokenStore {
        MemoryTokenStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<TokenRecord>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl TokenStore for MemoryTokenStore {
    async fn insert_token(&self, record: &TokenRecord) -> Result<(), WriteError> {
        let mut records = self.lock();
        if records.iter().any(|r| r.id == record.id) {
            return Err(WriteError::BadName {
                what: "token id",
                value: record.id.clone(),
                reason: "it is taken",
            });
        }
        records.push(record.clone());
        Ok(())
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRecord>, WriteError> {
        Ok(self.lock().iter().find(|r| r.id == id).cloned())
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, WriteError> {
        Ok(self.lock().clone())
    }

    async fn revoke_token(&self, id: &str, _actor: &str) -> Result<bool, WriteError> {
        let mut records = self.lock();
        match records
            .iter_mut()
            .find(|r| r.id == id && r.revoked_at.is_none())
        {
            Some(r) => {
                r.revoked_at = Some(now_rfc3339());
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_the_token_contract() {
        feature_store::tokens::check_token_store(&MemoryTokenStore::new()).await;
    }
}
