//! Authentication and authorisation: `Authorization: Bearer <token>`, checked against the
//! token store (or the bootstrap admin token), then the route's scope.
//!
//! - A token is checked with [`feature_store::tokens::authenticate`] (digests compared in
//!   constant time). Verified tokens are kept for at most the cache time (1 s by default,
//!   [`ServerBuilder::token_cache_ttl`](crate::ServerBuilder::token_cache_ttl)): a token
//!   revoked through this server stops at once (the cache is cleared), one revoked in the
//!   store by anything else within that time. Only verified tokens are cached, under the
//!   SHA-256 of their text. While the token store cannot be reached, a token verified in the
//!   last 10 minutes goes on working, so reads and evaluations survive a store outage.
//! - The bootstrap token (`FEATURE_SERVER_ADMIN_TOKEN`, given to
//!   [`ServerBuilder::bootstrap_token`](crate::ServerBuilder::bootstrap_token)) is accepted as
//!   an admin token named `bootstrap`: its SHA-256 is kept, and a presented token's SHA-256 is
//!   compared with it in constant time. Use it to create the first real tokens, then unset it.
//! - OFREP's `X-API-Key: <token>` header is accepted in place of `Authorization: Bearer`
//!   (on every route; `Authorization` wins when both are sent).
//! - Missing, malformed, unknown and revoked tokens answer 401 (`WWW-Authenticate: Bearer`);
//!   a scope too weak for the route answers 403; a token store that fails answers 503. Each
//!   failure is logged (never the token) and counted in
//!   `feature_server_auth_failures_total{reason}`.

use crate::problem::Problem;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use feature_store::tokens::{authenticate, Scope, TokenRecord};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Who made a request: the token's name (the actor of changes), id and scope. Handlers find
/// it in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name: the actor recorded in the audit log.
    pub name: String,
    /// The token's id (`bootstrap` for the bootstrap token).
    pub id: String,
    /// What the token may do.
    pub scope: Scope,
}

/// OFREP's API-key header, accepted in place of `Authorization: Bearer`.
pub const API_KEY: &str = "x-api-key";

/// Name and id of the bootstrap admin token.
pub const BOOTSTRAP_NAME: &str = "bootstrap";

/// How long a verified token keeps working while the token store cannot be reached: reads
/// and evaluations go on through a store outage (a token the store answers is unknown or
/// revoked is forgotten at once).
pub(crate) const STALE_WHILE_STORE_DOWN: Duration = Duration::from_secs(600);

/// Verified tokens by the SHA-256 of their text, each with the time it was verified.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], (TokenRecord, Instant)>>,
    /// Raised by every [`TokenCache::clear`]: a verification that started before a clear
    /// (and so may predate a revocation) is not cached.
    generation: AtomicU64,
}

impl TokenCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (TokenRecord, Instant)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The record if it was verified less than `age` ago.
    fn get(&self, digest: &[u8; 32], age: Duration) -> Option<TokenRecord> {
        match self.lock().get(digest) {
            Some((r, at)) if at.elapsed() < age => Some(r.clone()),
            _ => None,
        }
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keeps a record verified by a lookup that started at `generation`.
    fn put(&self, digest: [u8; 32], record: TokenRecord, generation: u64) {
        let mut map = self.lock();
        if self.generation() != generation {
            return;
        }
        if map.len() > 10_000 {
            map.retain(|_, (_, at)| at.elapsed() < STALE_WHILE_STORE_DOWN);
            if map.len() > 10_000 {
                map.clear();
            }
        }
        map.insert(digest, (record, Instant::now()));
    }

    fn forget(&self, digest: &[u8; 32]) {
        self.lock().remove(digest);
    }

    /// Forgets every verified token (after a revocation).
    pub(crate) fn clear(&self) {
        let mut map = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.clear();
    }
}

pub(crate) fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// The middleware of a route that needs `scope`: authenticates, checks the scope and puts the
/// [`Caller`] in the request's extensions.
pub(crate) async fn require(
    State(state): State<AppState>,
    scope: Scope,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_owned();
    match caller(&state, req.headers(), &path).await {
        Ok(c) if c.scope.grants(scope) => {
            req.extensions_mut().insert(c);
            next.run(req).await
        }
        Ok(c) => {
            fail(&state, "scope", &path);
            tracing::debug!(token = %c.name, "scope too weak");
            Problem::forbidden(format!(
                "this needs a token of scope {scope} (or stronger); this one is {}",
                c.scope
            ))
            .into_response()
        }
        Err(p) => p.into_response(),
    }
}

fn fail(state: &AppState, reason: &'static str, path: &str) {
    state.http.auth_failure(reason);
    tracing::warn!(reason, path, "authentication failed");
}

/// Whether the token of a request (a long-lived stream's) is still valid and of `scope`.
pub(crate) async fn still_allowed(state: &AppState, headers: &HeaderMap, scope: Scope) -> bool {
    caller(state, headers, "stream")
        .await
        .is_ok_and(|c| c.scope.grants(scope))
}

/// The token of a request: `Authorization: Bearer <token>`, or else OFREP's `X-API-Key`.
fn presented(headers: &HeaderMap) -> Result<Option<&str>, ()> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        return value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty())
            .map(Some)
            .ok_or(());
    }
    match headers.get(API_KEY) {
        Some(v) => v
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(Some)
            .ok_or(()),
        None => Ok(None),
    }
}

async fn caller(state: &AppState, headers: &HeaderMap, path: &str) -> Result<Caller, Problem> {
    let token = match presented(headers) {
        Ok(Some(t)) => t,
        Ok(None) => {
            fail(state, "missing", path);
            return Err(Problem::unauthorized(
                "this needs Authorization: Bearer <token> (or X-API-Key: <token>)",
            ));
        }
        Err(()) => {
            fail(state, "malformed", path);
            return Err(Problem::unauthorized(
                "the Authorization header is not Bearer <token>",
            ));
        }
    };
    check_token(state, token, path).await
}

/// Checks a token's text: the bootstrap token, then the cache, then the token store.
pub(crate) async fn check_token(
    state: &AppState,
    token: &str,
    path: &str,
) -> Result<Caller, Problem> {
    let d = digest(token);
    if let Some(boot) = &state.bootstrap {
        if bool::from(d.ct_eq(boot)) {
            return Ok(Caller {
                name: BOOTSTRAP_NAME.to_owned(),
                id: BOOTSTRAP_NAME.to_owned(),
                scope: Scope::Admin,
            });
        }
    }
    let ttl = state.options.token_cache_ttl;
    let record = match state.cache.get(&d, ttl) {
        Some(r) => Some(r),
        None => match &state.tokens {
            None => None,
            Some(store) => {
                let generation = state.cache.generation();
                match authenticate(store.as_ref(), token).await {
                    Ok(Some(r)) => {
                        if !ttl.is_zero() {
                            state.cache.put(d, r.clone(), generation);
                        }
                        Some(r)
                    }
                    Ok(None) => {
                        state.cache.forget(&d);
                        None
                    }
                    // The store cannot say: a token verified recently goes on working, so
                    // reads and evaluations survive a store outage.
                    Err(e) => match state.cache.get(&d, STALE_WHILE_STORE_DOWN) {
                        Some(r) => {
                            tracing::debug!(token = %r.name, "token store unreachable ({e}); using the last verification");
                            Some(r)
                        }
                        None => {
                            fail(state, "store", path);
                            return Err(Problem::from(e));
                        }
                    },
                }
            }
        },
    };
    match record {
        Some(r) => Ok(Caller {
            name: r.name,
            id: r.id,
            scope: r.scope,
        }),
        None => {
            fail(state, "invalid", path);
            Err(Problem::unauthorized(
                "the token is unknown, revoked or malformed",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use feature_store::tokens::mint;

    #[test]
    fn a_verification_that_began_before_a_revocation_is_not_cached() {
        let cache = TokenCache::default();
        let (record, text) = mint("ci", Scope::Read, "t").unwrap();
        let d = digest(&text);
        // A lookup starts, the token is revoked (the cache cleared), then the lookup ends.
        let generation = cache.generation();
        cache.clear();
        cache.put(d, record.clone(), generation);
        assert_eq!(cache.get(&d, Duration::from_secs(60)), None);
        // A lookup after the clear is cached.
        cache.put(d, record.clone(), cache.generation());
        assert_eq!(cache.get(&d, Duration::from_secs(60)), Some(record));
        cache.forget(&d);
        assert_eq!(cache.get(&d, Duration::from_secs(60)), None);
    }
}
