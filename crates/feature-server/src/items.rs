//! What flags and segments share: the item body (the flag file's format with `key`,
//! `version` and `updatedAt`), its `ETag`, preconditions of writes, reading and checking a
//! body, and paging of lists.

use crate::problem::{DiagnosticBody, Problem};
use crate::state::{AppState, Backend};
use axum::http::header::{ETAG, IF_MATCH, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use feature_core::model::{Flag, FlagDocument, Segment};
use feature_core::{compile, Locator, PathSeg, Severity};
use feature_store::{ItemKind, Row, WriteError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::hash::{Hash, Hasher};
use utoipa::{IntoParams, ToSchema};

/// What a write requires of the item's current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precondition {
    /// `If-None-Match: *`: the item must not exist (create).
    Absent,
    /// `If-Match: "N"`: the item must be at version N.
    Version(u64),
    /// `If-Match: *`: the item must exist, at any version.
    Exists,
}

impl Precondition {
    /// The precondition of a write: 428 without one, 400 for both headers or a list of
    /// several entity tags, 412 for an entity tag that cannot be one of ours (weak, or not a
    /// version).
    pub(crate) fn from_headers(h: &HeaderMap) -> Result<Precondition, Problem> {
        let text = |v: &HeaderValue| {
            v.to_str()
                .map(|s| s.trim().to_owned())
                .map_err(|_| Problem::bad_request("the precondition header is not text"))
        };
        match (h.get(IF_MATCH), h.get(IF_NONE_MATCH)) {
            (Some(_), Some(_)) => Err(Problem::bad_request(
                "give If-Match or If-None-Match, not both",
            )),
            (None, None) => Err(Problem::precondition_required()),
            (None, Some(v)) => {
                if text(v)? == "*" {
                    Ok(Precondition::Absent)
                } else {
                    Err(Problem::bad_request(
                        "a write takes If-None-Match: * only (create if absent)",
                    ))
                }
            }
            (Some(v), None) => {
                let t = text(v)?;
                if t == "*" {
                    return Ok(Precondition::Exists);
                }
                if t.contains(',') {
                    return Err(Problem::bad_request(
                        "If-Match takes one entity tag (the ETag read) or *",
                    ));
                }
                t.strip_prefix('"')
                    .and_then(|s| s.strip_suffix('"'))
                    .and_then(|s| s.parse::<u64>().ok())
                    .map(Precondition::Version)
                    .ok_or_else(|| {
                        Problem::precondition_failed(format!(
                            "If-Match {t} is not a version of this item (ETags look like \"3\")"
                        ))
                    })
            }
        }
    }

    /// The version a store's conditional write takes (`None`: any).
    pub(crate) fn version(self) -> Option<u64> {
        match self {
            Precondition::Version(v) => Some(v),
            _ => None,
        }
    }
}

/// The strong entity tag of a version: `"3"`.
pub(crate) fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// The entity tag of an item of a read-only source (no versions): a hash of its body.
fn content_etag(body: &Value) -> HeaderValue {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.to_string().hash(&mut h);
    HeaderValue::from_str(&format!("\"c{:016x}\"", h.finish()))
        .unwrap_or(HeaderValue::from_static("\"c0\""))
}

/// A stored row as the API shows it: the definition with `key`, `version` and `updatedAt`.
pub(crate) fn row_body(row: &Row) -> Value {
    let mut v = row.definition.clone();
    if let Value::Object(m) = &mut v {
        m.insert("key".into(), Value::String(row.key.clone()));
        m.insert("version".into(), Value::from(row.version));
        if let Some(at) = &row.updated_at {
            m.insert("updatedAt".into(), Value::String(at.clone()));
        }
    }
    v
}

/// An item with its `ETag`, `status` 200 or 201.
pub(crate) fn item_response(status: StatusCode, row: &Row) -> Response {
    let mut r = (status, Json(row_body(row))).into_response();
    r.headers_mut().insert(ETAG, etag(row.version));
    r
}

/// An item read from the client's snapshot (a read-only source, or a store that is down):
/// its version as `ETag` when it has one, else a hash of its content.
pub(crate) fn static_item_response(body: Value) -> Response {
    let tag = match body.get("version").and_then(Value::as_u64) {
        Some(v) => etag(v),
        None => content_etag(&body),
    };
    let mut r = Json(body).into_response();
    r.headers_mut().insert(ETAG, tag);
    r
}

/// One item, from the store or the read-only source's document.
pub(crate) async fn get_item(state: &AppState, kind: ItemKind, key: &str) -> Response {
    match &state.backend {
        Backend::Store(store) => match store.row(kind, key).await {
            Ok(Some(row)) => item_response(StatusCode::OK, &row),
            Ok(None) => {
                Problem::not_found(format!("{kind} {key:?} does not exist")).into_response()
            }
            Err(e) if is_unavailable(&e) => {
                tracing::warn!(error = %e, "store unavailable: answering from the client's flags");
                snapshot_item(state, kind, key)
            }
            Err(e) => Problem::from(e).into_response(),
        },
        Backend::ReadOnly(_) => snapshot_item(state, kind, key),
    }
}

/// Whether a store error means the store is unreachable (reads then come from the client).
fn is_unavailable(e: &WriteError) -> bool {
    matches!(e, WriteError::Store { .. } | WriteError::Timeout { .. })
}

fn snapshot_item(state: &AppState, kind: ItemKind, key: &str) -> Response {
    match document_bodies(state, kind)
        .into_iter()
        .find(|(k, _)| k == key)
    {
        Some((_, body)) => static_item_response(body),
        None => Problem::not_found(format!("{kind} {key:?} does not exist")).into_response(),
    }
}

/// The items of a read-only source, by key.
fn document_bodies(state: &AppState, kind: ItemKind) -> Vec<(String, Value)> {
    let snap = state.client.snapshot();
    let doc: &FlagDocument = snap.document();
    let with_key = |key: &str, mut v: Value| {
        if let Value::Object(m) = &mut v {
            m.insert("key".into(), Value::String(key.to_owned()));
        }
        v
    };
    match kind {
        ItemKind::Flag => doc
            .flags
            .iter()
            .map(|(k, f)| {
                (
                    k.clone(),
                    with_key(k, serde_json::to_value(f).unwrap_or_default()),
                )
            })
            .collect(),
        ItemKind::Segment => doc
            .segments
            .iter()
            .map(|(k, s)| {
                (
                    k.clone(),
                    with_key(k, serde_json::to_value(s).unwrap_or_default()),
                )
            })
            .collect(),
    }
}

/// Filters and paging of `GET /api/v1/flags` and `GET /api/v1/segments`.
///
/// Paging is by cursor: items come in key order; `next` in a page is the `cursor` of the next
/// page (the last key of this one), absent on the last page. Items created or deleted
/// between pages never shift the others.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only items whose key starts with this.
    pub(crate) prefix: Option<String>,
    /// Flags only: only flags whose targeting is on (`true`) or off (`false`).
    pub(crate) enabled: Option<bool>,
    /// Flags only: only flags carrying this tag.
    pub(crate) tag: Option<String>,
    /// At most this many items (1 to 1000, default 100).
    pub(crate) limit: Option<usize>,
    /// The `next` of the previous page: items with keys after it.
    pub(crate) cursor: Option<String>,
}

/// A page of flags or segments.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ItemPage {
    /// The items, in key order, in the flag file's format with `key`, `version` and
    /// `updatedAt`.
    #[schema(value_type = Vec<Object>)]
    pub(crate) items: Vec<Value>,
    /// The cursor of the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next: Option<String>,
}

/// Checks `limit` (1 to 1000, default `default`).
pub(crate) fn page_limit(limit: Option<usize>, default: usize) -> Result<usize, Problem> {
    match limit.unwrap_or(default) {
        n @ 1..=1000 => Ok(n),
        n => Err(Problem::bad_request(format!(
            "limit {n} is out of range (1 to 1000)"
        ))),
    }
}

/// `GET` of a list.
pub(crate) async fn list_items(state: &AppState, kind: ItemKind, q: ListQuery) -> Response {
    let limit = match page_limit(q.limit, 100) {
        Ok(n) => n,
        Err(p) => return p.into_response(),
    };
    let mut items: Vec<(String, Value)> = match &state.backend {
        Backend::Store(store) => match store.rows().await {
            Ok(rows) => rows
                .iter()
                .filter(|r| r.kind == kind)
                .map(|r| (r.key.clone(), row_body(r)))
                .collect(),
            Err(e) if is_unavailable(&e) => {
                tracing::warn!(error = %e, "store unavailable: answering from the client's flags");
                document_bodies(state, kind)
            }
            Err(e) => return Problem::from(e).into_response(),
        },
        Backend::ReadOnly(_) => document_bodies(state, kind),
    };
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let enabled = |v: &Value| v.get("enabled").and_then(Value::as_bool).unwrap_or(true);
    let tagged = |v: &Value, tag: &str| {
        v.get("tags")
            .and_then(Value::as_array)
            .is_some_and(|tags| tags.iter().any(|x| x.as_str() == Some(tag)))
    };
    let mut selected = items.into_iter().filter(|(k, v)| {
        q.prefix.as_deref().is_none_or(|p| k.starts_with(p))
            && q.cursor.as_deref().is_none_or(|c| k.as_str() > c)
            && (kind != ItemKind::Flag || q.enabled.is_none_or(|e| enabled(v) == e))
            && (kind != ItemKind::Flag || q.tag.as_deref().is_none_or(|t| tagged(v, t)))
    });
    let page: Vec<(String, Value)> = selected.by_ref().take(limit).collect();
    let next = if selected.next().is_some() {
        page.last().map(|(k, _)| k.clone())
    } else {
        None
    };
    Json(ItemPage {
        items: page.into_iter().map(|(_, v)| v).collect(),
        next,
    })
    .into_response()
}

/// A flag or segment read from a request body, checked: the body is JSON of the item's
/// format, its `key` (when given) is the key of the path, and it compiles without errors.
/// Problems are 422 with diagnostics located in the body's text.
pub(crate) fn read_body<T: DeserializeOwned>(
    kind: ItemKind,
    key: &str,
    body: &[u8],
) -> Result<T, Problem> {
    let text = std::str::from_utf8(body)
        .map_err(|_| Problem::invalid("the body is not UTF-8 text", Vec::new()))?;
    let value: T = serde_json::from_str(text).map_err(|e| {
        let classify = e.classify();
        let msg = e.to_string();
        let message = msg
            .rsplit_once(" at line ")
            .map_or(msg.as_str(), |(m, _)| m)
            .to_owned();
        let d = DiagnosticBody {
            severity: "error",
            flag: diag_name(kind, key),
            path: String::new(),
            line: Some(e.line()),
            column: Some(e.column()),
            message,
        };
        let what = if classify == serde_json::error::Category::Data {
            format!("the body is not a {kind} definition; nothing was written")
        } else {
            "the body is not JSON; nothing was written".to_owned()
        };
        Problem::invalid(what, vec![d])
    })?;
    Ok(value)
}

fn diag_name(kind: ItemKind, key: &str) -> String {
    match kind {
        ItemKind::Flag => key.to_owned(),
        ItemKind::Segment => format!("segment {key}"),
    }
}

/// Checks the key of a body against the path's.
pub(crate) fn check_key(kind: ItemKind, path_key: &str, body_key: &str) -> Result<(), Problem> {
    if body_key.is_empty() || body_key == path_key {
        Ok(())
    } else {
        Err(Problem::invalid(
            format!("the body's key {body_key:?} is not the key of the path {path_key:?}"),
            vec![DiagnosticBody {
                severity: "error",
                flag: diag_name(kind, path_key),
                path: "key".into(),
                line: None,
                column: None,
                message: "the key differs from the path's".into(),
            }],
        ))
    }
}

/// Compiles one flag or segment and refuses it (422) when it has errors, locating each in
/// `text` (the request body) when it is given.
pub(crate) fn check_compiles(
    kind: ItemKind,
    key: &str,
    flag: Option<&Flag>,
    segment: Option<&Segment>,
    text: Option<&[u8]>,
) -> Result<(), Problem> {
    feature_store::check_name("key", key).map_err(Problem::from)?;
    let mut doc = FlagDocument::default();
    if let Some(f) = flag {
        doc.flags.insert(key.to_owned(), f.clone().into());
    }
    if let Some(s) = segment {
        doc.segments.insert(key.to_owned(), s.clone().into());
    }
    let snap = compile(doc);
    let errors: Vec<_> = snap
        .diagnostics()
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    let locator = text
        .and_then(|t| std::str::from_utf8(t).ok())
        .map(Locator::new);
    let diagnostics = errors
        .into_iter()
        .map(|d| {
            let mut body = DiagnosticBody::from(d);
            // Paths start at the document (`flags.KEY.…`); the body is the item itself.
            if let (Some(loc), Some(rest)) = (&locator, d.path.get(2..)) {
                if d.path.first() == Some(&PathSeg::key(section(kind))) {
                    if let Some((line, column)) = loc.locate(rest) {
                        body.line = Some(line);
                        body.column = Some(column);
                    }
                }
            }
            body
        })
        .collect();
    Err(Problem::invalid(
        format!("the {kind} has errors; nothing was written"),
        diagnostics,
    ))
}

fn section(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::Flag => "flags",
        ItemKind::Segment => "segments",
    }
}

/// The definition a history entry restores, as a flag.
pub(crate) fn flag_of(key: &str, def: &Value) -> Result<Flag, Problem> {
    let mut f: Flag = serde_json::from_value(def.clone()).map_err(|e| {
        Problem::invalid(
            format!("the recorded definition is not a flag: {e}"),
            Vec::new(),
        )
    })?;
    f.key = key.to_owned();
    Ok(f)
}

/// A conditional write refused because the item is missing answers 412 (RFC 9110: `If-Match`
/// is false when there is no current representation).
pub(crate) fn write_problem(e: WriteError) -> Problem {
    match e {
        WriteError::NotFound { kind, key } => Problem::precondition_failed(format!(
            "{kind} {key:?} does not exist (to create it, send If-None-Match: *)"
        )),
        WriteError::AlreadyExists { kind, key } => Problem::precondition_failed(format!(
            "{kind} {key:?} already exists (to replace it, send If-Match with its ETag)"
        )),
        other => Problem::from(other),
    }
}

/// The schema of a value of any JSON type (a flag's value, a caller's default).
pub(crate) fn any_value() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::AnyValue)
        .description(Some("Any JSON value"))
        .build()
}
