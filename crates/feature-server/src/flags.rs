//! `/api/v1/flags`: list, read, create or replace, delete, enable and disable flags.
//!
//! Writes are conditional (see the crate docs): `If-Match: "N"` (the `ETag` read) changes the
//! flag only while it is at version N, `If-Match: *` while it exists, `If-None-Match: *`
//! creates it only while it does not exist; 412 otherwise, 428 without either.

use crate::auth::Caller;
use crate::items::{
    check_compiles, check_key, get_item, item_response, list_items, read_body, write_problem,
    ItemPage, ListQuery, Precondition,
};
use crate::problem::{Problem, ProblemDocument};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use feature_core::model::Flag;
use feature_store::{ChangeOp, FlagStore, ItemKind, Written};

/// Lists flags, in key order, a page at a time.
#[utoipa::path(
    get, path = "/api/v1/flags", tag = "flags",
    params(ListQuery),
    security(("bearer" = ["read"])),
    responses(
        (status = 200, description = "A page of flags", body = ItemPage),
        (status = 400, description = "Bad paging", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Scope too weak", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list(State(state): State<AppState>, Query(q): Query<ListQuery>) -> Response {
    list_items(&state, ItemKind::Flag, q).await
}

/// One flag, in the flag file's format, with its version as `ETag`.
#[utoipa::path(
    get, path = "/api/v1/flags/{key}", tag = "flags",
    params(("key" = String, Path, description = "The flag's key")),
    security(("bearer" = ["read"])),
    responses(
        (status = 200, description = "The flag", body = Object,
            headers(("ETag" = String, description = "The flag's version, e.g. \"3\""))),
        (status = 401, description = "No valid token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Scope too weak", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such flag", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get(State(state): State<AppState>, Path(key): Path<String>) -> Response {
    get_item(&state, ItemKind::Flag, &key).await
}

/// Creates (`If-None-Match: *`) or replaces (`If-Match`) a flag. The body is the flag in the
/// flag file's format (`key` may be left out; `version` and `updatedAt` are ignored).
#[utoipa::path(
    put, path = "/api/v1/flags/{key}", tag = "flags",
    params(
        ("key" = String, Path, description = "The flag's key"),
        ("If-Match" = Option<String>, Header, description = "Replace: the ETag read, or *"),
        ("If-None-Match" = Option<String>, Header, description = "Create: *"),
    ),
    request_body(content = Object, description = "The flag, in the flag file's format", content_type = "application/json"),
    security(("bearer" = ["write"])),
    responses(
        (status = 200, description = "Replaced", body = Object, headers(("ETag" = String, description = "The new version"))),
        (status = 201, description = "Created", body = Object, headers(("ETag" = String, description = "The new version"))),
        (status = 400, description = "Bad precondition headers", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Scope too weak", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 405, description = "The server is read-only", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 412, description = "The flag changed, exists or is missing", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "The flag does not validate; nothing was written", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 428, description = "No If-Match or If-None-Match", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn put(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let store = state.store()?;
    let pre = Precondition::from_headers(&headers)?;
    let flag: Flag = read_body(ItemKind::Flag, &key, &body)?;
    check_key(ItemKind::Flag, &key, &flag.key)?;
    check_compiles(ItemKind::Flag, &key, Some(&flag), None, Some(&body))?;
    write_flag(store.as_ref(), key, flag, pre, &caller.name).await
}

/// Writes a flag under a precondition: 201 for a create, 200 for a replace.
pub(crate) async fn write_flag(
    store: &dyn FlagStore,
    key: String,
    mut flag: Flag,
    pre: Precondition,
    actor: &str,
) -> Result<Response, Problem> {
    flag.key = key;
    flag.created_at = None;
    flag.updated_at = None;
    let (status, written) = match pre {
        Precondition::Absent => {
            flag.version = None;
            (StatusCode::CREATED, store.create(&flag, actor).await)
        }
        Precondition::Version(v) => {
            flag.version = Some(v);
            (StatusCode::OK, store.update(&flag, actor).await)
        }
        Precondition::Exists => {
            flag.version = None;
            (StatusCode::OK, store.update(&flag, actor).await)
        }
    };
    written_response(status, written.map_err(write_problem)?, ItemKind::Flag)
}

pub(crate) fn written_response(
    status: StatusCode,
    w: Written,
    kind: ItemKind,
) -> Result<Response, Problem> {
    match &w.row {
        Some(row) => Ok(item_response(status, row)),
        None => Err(Problem::not_found(format!(
            "{kind} {:?} is gone after the write",
            w.key
        ))),
    }
}

/// Deletes a flag (`If-Match` required).
#[utoipa::path(
    delete, path = "/api/v1/flags/{key}", tag = "flags",
    params(
        ("key" = String, Path, description = "The flag's key"),
        ("If-Match" = Option<String>, Header, description = "The ETag read, or *"),
    ),
    security(("bearer" = ["write"])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Bad precondition headers", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Scope too weak", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 405, description = "The server is read-only", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 412, description = "The flag changed or is missing", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 428, description = "No If-Match", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    delete_item(&state, ItemKind::Flag, key, &headers, &caller.name).await
}

/// Deletes a flag or segment in one conditional batch (the store checks the version and
/// deletes atomically).
pub(crate) async fn delete_item(
    state: &AppState,
    kind: ItemKind,
    key: String,
    headers: &HeaderMap,
    actor: &str,
) -> Result<Response, Problem> {
    let store = state.store()?;
    let pre = Precondition::from_headers(headers)?;
    if pre == Precondition::Absent {
        return Err(Problem::bad_request(
            "a delete takes If-Match (the ETag read, or *)",
        ));
    }
    feature_store::check_name("key", &key).map_err(Problem::from)?;
    let change = feature_store::Change {
        op: ChangeOp::Delete,
        kind,
        key,
        version: pre.version(),
        before: None,
        after: None,
    };
    store
        .apply_changes(std::slice::from_ref(&change), actor)
        .await
        .map_err(|e| write_problem(e.source))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Switches a flag's targeting on (`If-Match` required).
#[utoipa::path(
    post, path = "/api/v1/flags/{key}/enable", tag = "flags",
    params(
        ("key" = String, Path, description = "The flag's key"),
        ("If-Match" = Option<String>, Header, description = "The ETag read, or *"),
    ),
    security(("bearer" = ["write"])),
    responses(
        (status = 200, description = "The flag after the change", body = Object, headers(("ETag" = String, description = "The new version"))),
        (status = 400, description = "Bad precondition headers", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Scope too weak", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 405, description = "The server is read-only", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 412, description = "The flag changed or is missing", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 428, description = "No If-Match", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn enable(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    switch(&state, key, &headers, &caller.name, true).await
}

/// Switches a flag's targeting off: it serves its off variation (`If-Match` required).
#[utoipa::path(
    post, path = "/api/v1/flags/{key}/disable", tag = "flags",
    params(
        ("key" = String, Path, description = "The flag's key"),
        ("If-Match" = Option<String>, Header, description = "The ETag read, or *"),
    ),
    security(("bearer" = ["write"])),
    responses(
        (status = 200, description = "The flag after the change", body = Object, headers(("ETag" = String, description = "The new version"))),
        (status = 400, description = "Bad precondition headers", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Scope too weak", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 405, description = "The server is read-only", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 412, description = "The flag changed or is missing", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 428, description = "No If-Match", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn disable(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    switch(&state, key, &headers, &caller.name, false).await
}

/// Enable or disable: the version named is checked, then the store's atomic switch runs. The
/// switch changes `enabled` only and keeps every other field as stored, so a change landing
/// between the check and the switch is never overwritten; it is recorded as `enable` /
/// `disable`. (Known limit: the check and the switch are two steps, so a switch racing an edit
/// made with the same version may both succeed; only PUT and DELETE guarantee one winner.)
async fn switch(
    state: &AppState,
    key: String,
    headers: &HeaderMap,
    actor: &str,
    on: bool,
) -> Result<Response, Problem> {
    let store = state.store()?;
    let pre = Precondition::from_headers(headers)?;
    if pre == Precondition::Absent {
        return Err(Problem::bad_request(
            "enable and disable take If-Match (the ETag read, or *)",
        ));
    }
    feature_store::check_name("key", &key).map_err(Problem::from)?;
    let row = store
        .row(ItemKind::Flag, &key)
        .await
        .map_err(Problem::from)?
        .ok_or_else(|| {
            write_problem(feature_store::WriteError::NotFound {
                kind: ItemKind::Flag,
                key: key.clone(),
            })
        })?;
    if let Some(v) = pre.version() {
        if row.version != v {
            return Err(Problem::precondition_failed(format!(
                "flag {key:?} is at version {}, not {v}: it was changed meanwhile",
                row.version
            )));
        }
    }
    let w = if on {
        store.enable(&key, actor).await
    } else {
        store.disable(&key, actor).await
    }
    .map_err(write_problem)?;
    written_response(StatusCode::OK, w, ItemKind::Flag)
}
