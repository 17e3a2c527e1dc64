//! Authentication and authorisation: `Authorization: Bearer <token>`, checked against the
//! token store (or the bootstrap admin token), then the route's scope.
//!
//! - A token is checked with [`feature_store::tokens::authenticate`] (digests compared in
//!   constant time). Verified tokens are kept for at most the cache time (1 s by default,
//!   [`ServerBuilder::token_cache_ttl`](crate::ServerBuilder::token_cache_ttl)): a token
//!   revoked through this server stops at once (the cache is cleared), one revoked in the
//!   store by anything else within that time. Only verified tokens are cached, under the
//!   SHA-256 of their text.
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

/// Verified tokens by the SHA-256 of their text, each with the time it was verified.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], (TokenRecord, Instant)>>,
}

impl TokenCache {
    fn get(&self, digest: &[u8; 32], ttl: Duration) -> Option<TokenRecord> {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(digest) {
            Some((r, at)) if at.elapsed() < ttl => Some(r.clone()),
            Some(_) => {
                map.remove(digest);
                None
            }
            None => None,
        }
    }

    fn put(&self, digest: [u8; 32], record: TokenRecord) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.clear();
        }
        map.insert(digest, (record, Instant::now()));
    }

    /// Forgets every verified token (after a revocation).
    pub(crate) fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
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
            Some(store) => match authenticate(store.as_ref(), token).await {
                Ok(Some(r)) => {
                    if !ttl.is_zero() {
                        state.cache.put(d, r.clone());
                    }
                    Some(r)
                }
                Ok(None) => None,
                Err(e) => {
                    fail(state, "store", path);
                    return Err(Problem::from(e));
                }
            },
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
