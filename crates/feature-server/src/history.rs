//! `/api/v1/flags/{key}/history`: the audit log of a flag, newest first, a page at a time;
//! and restoring the definition an entry recorded.

use crate::auth::Caller;
use crate::flags::write_flag;
use crate::items::{check_compiles, flag_of, page_limit, Precondition};
use crate::problem::{Problem, ProblemDocument};
use crate::state::{AppState, Backend};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use feature_store::{HistoryEntry, ItemKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// Paging of the history: newest first; `before` is the `next` of the previous page.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryQuery {
    /// At most this many entries (1 to 1000, default 50).
    pub(crate) limit: Option<usize>,
    /// Entries older than this entry id (the `next` of the previous page).
    pub(crate) before: Option<String>,
}

/// One change of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HistoryItem {
    /// The entry's id (restore it with `POST .../history/{id}/restore`).
    pub(crate) id: String,
    /// `create`, `update`, `delete`, `enable` or `disable`.
    pub(crate) action: String,
    /// Who made the change: the token's name.
    pub(crate) actor: String,
    /// When (RFC 3339, UTC).
    pub(crate) at: String,
    /// The flag's version after the change.
    pub(crate) version: u64,
    /// The definition before (absent for a create).
    #[schema(value_type = Option<Object>)]
    pub(crate) before: Option<Value>,
    /// The definition after (absent for a delete).
    #[schema(value_type = Option<Object>)]
    pub(crate) after: Option<Value>,
}

impl From<HistoryEntry> for HistoryItem {
    fn from(e: HistoryEntry) -> Self {
        HistoryItem {
            id: e.id,
            action: e.action,
            actor: e.actor,
            at: e.at,
            version: e.version,
            before: e.before,
            after: e.after,
        }
    }
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HistoryPage {
    /// Newest first.
    pub(crate) items: Vec<HistoryItem>,
    /// The `before` of the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next: Option<String>,
}

/// The audit log of a flag: actor, time, action, definitions before and after.
#[utoipa::path(
    get, path = "/api/v1/flags/{key}/history", tag = "history",
    params(("key" = String, Path, description = "The flag's key"), HistoryQuery),
    security(("bearer" = ["read"])),
    responses(
        (status = 200, description = "A page of the audit log (empty for a read-only source)", body = HistoryPage),
        (status = 400, description = "Bad paging (an unknown `before`)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Scope too weak", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, Problem> {
    let limit = page_limit(q.limit, 50)?;
    let Backend::Store(store) = &state.backend else {
        return Ok(Json(HistoryPage {
            items: Vec::new(),
            next: None,
        })
        .into_response());
    };
    // One more than asked tells whether there is a next page.
    let mut entries = store
        .history_page(ItemKind::Flag, &key, limit + 1, q.before.as_deref())
        .await
        .map_err(Problem::from)?;
    let more = entries.len() > limit;
    entries.truncate(limit);
    let next = more.then(|| entries.last().map(|e| e.id.clone())).flatten();
    Ok(Json(HistoryPage {
        items: entries.into_iter().map(HistoryItem::from).collect(),
        next,
    })
    .into_response())
}

/// Restores the definition an entry recorded (after the change; for a delete, what was
/// deleted), as a new change. Needs `If-Match` while the flag exists, `If-None-Match: *` to
/// bring back a deleted one.
#[utoipa::path(
    post, path = "/api/v1/flags/{key}/history/{id}/restore", tag = "history",
    params(
        ("key" = String, Path, description = "The flag's key"),
        ("id" = String, Path, description = "The entry's id"),
        ("If-Match" = Option<String>, Header, description = "The flag's current ETag, or *"),
        ("If-None-Match" = Option<String>, Header, description = "* to re-create a deleted flag"),
    ),
    security(("bearer" = ["write"])),
    responses(
        (status = 200, description = "Restored", body = Object, headers(("ETag" = String, description = "The new version"))),
        (status = 201, description = "Re-created", body = Object, headers(("ETag" = String, description = "The new version"))),
        (status = 400, description = "Bad precondition headers", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Scope too weak", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such entry", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 405, description = "The server is read-only", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 412, description = "The flag changed, exists or is missing", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "The recorded definition no longer validates", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 428, description = "No If-Match or If-None-Match", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn restore(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((key, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let store = state.store()?;
    let pre = Precondition::from_headers(&headers)?;
    let entry = store
        .history_entry(ItemKind::Flag, &key, &id)
        .await
        .map_err(Problem::from)?
        .ok_or_else(|| Problem::not_found(format!("flag {key:?} has no history entry {id:?}")))?;
    let def = entry
        .after
        .as_ref()
        .or(entry.before.as_ref())
        .ok_or_else(|| Problem::not_found(format!("entry {id:?} recorded no definition")))?;
    let flag = flag_of(&key, def)?;
    check_compiles(ItemKind::Flag, &key, Some(&flag), None, None)?;
    write_flag(store.as_ref(), key, flag, pre, &caller.name).await
}
