//! Sessions of the UI: a random id (the cookie) → the token, who it is, and a CSRF token.

use feature_server::{Caller, Problem};
use feature_store::tokens::Scope;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One signed-in browser.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The token's text, sent to the API as `Authorization: Bearer`; never sent to the page.
    pub(crate) token: String,
    /// The token's name (the actor of changes).
    pub(crate) name: String,
    /// The token's scope, so the pages hide what it cannot do.
    pub(crate) scope: Scope,
    /// Required in the `X-CSRF-Token` header of every change.
    pub(crate) csrf: String,
    last: Instant,
}

/// The sessions, by id.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

fn random_hex() -> Result<String, Problem> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Problem::unavailable(format!("cannot read random bytes: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Sessions {
    /// A new session for a verified token: its id and the session.
    pub(crate) fn create(
        &self,
        token: String,
        caller: Caller,
    ) -> Result<(String, Session), Problem> {
        let id = random_hex()?;
        let s = Session {
            token,
            name: caller.name,
            scope: caller.scope,
            csrf: random_hex()?,
            last: Instant::now(),
        };
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, s| s.last.elapsed() < Duration::from_secs(3600));
        }
        map.insert(id.clone(), s.clone());
        Ok((id, s))
    }

    /// The session `id` unless it has been idle for `idle`; refreshes its time.
    pub(crate) fn get(&self, id: &str, idle: Duration) -> Option<Session> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let s = map.get_mut(id)?;
        if s.last.elapsed() >= idle {
            map.remove(id);
            return None;
        }
        s.last = Instant::now();
        Some(s.clone())
    }

    /// Ends a session.
    pub(crate) fn remove(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}
