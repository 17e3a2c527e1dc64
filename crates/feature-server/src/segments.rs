//! `/api/v1/segments`: list, read, create or replace, delete segments, with the same
//! preconditions as flags.

use crate::auth::Caller;
use crate::flags::{delete_item, written_response};
use crate::items::{
    check_compiles, check_key, get_item, list_items, read_body, write_problem, ItemPage, ListQuery,
    Precondition,
};
use crate::problem::{Problem, ProblemDocument};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use feature_core::model::Segment;
use feature_store::{segment_definition, Change, ChangeOp, ItemKind};

/// Lists segments, in key order, a page at a time (`enabled` does not apply).
#[utoipa::path(
    get, path = "/api/v1/segments", tag = "segments",
    params(ListQuery),
    security(("bearer" = ["read"])),
    responses(
        (status = 200, description = "A page of segments", body = ItemPage),
        (status = 400, description = "Bad paging", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Scope too weak", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list(State(state): State<AppState>, Query(q): Query<ListQuery>) -> Response {
    list_items(&state, ItemKind::Segment, q).await
}

/// One segment, in the flag file's format, with its version as `ETag`.
#[utoipa::path(
    get, path = "/api/v1/segments/{key}", tag = "segments",
    params(("key" = String, Path, description = "The segment's key")),
    security(("bearer" = ["read"])),
    responses(
        (status = 200, description = "The segment", body = Object,
            headers(("ETag" = String, description = "The segment's version, e.g. \"3\""))),
        (status = 401, description = "No valid token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Scope too weak", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such segment", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get(State(state): State<AppState>, Path(key): Path<String>) -> Response {
    get_item(&state, ItemKind::Segment, &key).await
}

/// Creates (`If-None-Match: *`) or replaces (`If-Match`) a segment.
#[utoipa::path(
    put, path = "/api/v1/segments/{key}", tag = "segments",
    params(
        ("key" = String, Path, description = "The segment's key"),
        ("If-Match" = Option<String>, Header, description = "Replace: the ETag read, or *"),
        ("If-None-Match" = Option<String>, Header, description = "Create: *"),
    ),
    request_body(content = Object, description = "The segment, in the flag file's format", content_type = "application/json"),
    security(("bearer" = ["write"])),
    responses(
        (status = 200, description = "Replaced", body = Object, headers(("ETag" = String, description = "The new version"))),
        (status = 201, description = "Created", body = Object, headers(("ETag" = String, description = "The new version"))),
        (status = 400, description = "Bad precondition headers", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Scope too weak", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 405, description = "The server is read-only", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 412, description = "The segment changed, exists or is missing", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "The segment does not validate; nothing was written", body = ProblemDocument, content_type = "application/problem+json"),
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
    let mut seg: Segment = read_body(ItemKind::Segment, &key, &body)?;
    check_key(ItemKind::Segment, &key, &seg.key)?;
    check_compiles(ItemKind::Segment, &key, None, Some(&seg), Some(&body))?;
    seg.key = key.clone();
    let actor = caller.name.as_str();
    match pre {
        Precondition::Absent => {
            // A batch create is refused atomically when the segment exists.
            let change = Change {
                op: ChangeOp::Create,
                kind: ItemKind::Segment,
                key: key.clone(),
                version: None,
                before: None,
                after: Some(segment_definition(&seg)),
            };
            let mut w = store
                .apply_changes(std::slice::from_ref(&change), actor)
                .await
                .map_err(|e| write_problem(e.source))?;
            let w = w
                .pop()
                .ok_or_else(|| Problem::not_found("nothing written"))?;
            written_response(StatusCode::CREATED, w, ItemKind::Segment)
        }
        Precondition::Version(v) => update_segment(store.as_ref(), &key, &seg, v, actor).await,
        Precondition::Exists => {
            // Replace only while it exists: at the version read just now.
            let row = store
                .row(ItemKind::Segment, &key)
                .await
                .map_err(Problem::from)?
                .ok_or_else(|| {
                    write_problem(feature_store::WriteError::NotFound {
                        kind: ItemKind::Segment,
                        key: key.clone(),
                    })
                })?;
            update_segment(store.as_ref(), &key, &seg, row.version, actor).await
        }
    }
}

/// Replaces a segment only while it exists at `version`: one update of a batch, which the
/// stores refuse when the segment is missing or at another version (`put_segment` would
/// create a segment deleted meanwhile).
async fn update_segment(
    store: &dyn feature_store::FlagStore,
    key: &str,
    seg: &feature_core::model::Segment,
    version: u64,
    actor: &str,
) -> Result<Response, Problem> {
    let change = Change {
        op: ChangeOp::Update,
        kind: ItemKind::Segment,
        key: key.to_owned(),
        version: Some(version),
        before: None,
        after: Some(segment_definition(seg)),
    };
    let mut w = store
        .apply_changes(std::slice::from_ref(&change), actor)
        .await
        .map_err(|e| write_problem(e.source))?;
    let w = w
        .pop()
        .ok_or_else(|| Problem::not_found("nothing written"))?;
    written_response(StatusCode::OK, w, ItemKind::Segment)
}

/// Deletes a segment (`If-Match` required).
#[utoipa::path(
    delete, path = "/api/v1/segments/{key}", tag = "segments",
    params(
        ("key" = String, Path, description = "The segment's key"),
        ("If-Match" = Option<String>, Header, description = "The ETag read, or *"),
    ),
    security(("bearer" = ["write"])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Bad precondition headers", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Scope too weak", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 405, description = "The server is read-only", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 412, description = "The segment changed or is missing", body = ProblemDocument, content_type = "application/problem+json"),
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
    delete_item(&state, ItemKind::Segment, key, &headers, &caller.name).await
}
