//! OFREP, the OpenFeature Remote Evaluation Protocol (version 0.3.0 of its OpenAPI document):
//! any OpenFeature SDK's OFREP provider evaluates this server's flags.
//!
//! - `POST /ofrep/v1/evaluate/flags/{key}` and `POST /ofrep/v1/evaluate/flags` (bulk) take
//!   `{"context": {...}}`. The context is read as the OpenFeature provider of this project
//!   reads OpenFeature contexts (`feature_openfeature::context_from`): `targetingKey` → the
//!   context's key (none: an anonymous user), other fields → attributes, `kind` names the
//!   kind, and `kind: "multi"` with one object per kind makes a multi-kind context. A body that
//!   is not JSON is `PARSE_ERROR`, a context that is not an object or does not read is
//!   `INVALID_CONTEXT` (`TARGETING_KEY_MISSING` for a kind without a key), all 400.
//! - Answers carry `value` (absent when the flag serves nothing: the caller's default),
//!   `variant`, `reason` (OpenFeature's, mapped by `feature_openfeature::reason_for`) and
//!   `metadata` (`feature_openfeature::metadata_for`: `reasonKind`, `variationIndex`, `ruleId`,
//!   the flag's `version`...). A missing flag is 404 `FLAG_NOT_FOUND`, a flag that does not
//!   compile `PARSE_ERROR` (400), anything else `GENERAL` (500). The server does not know the
//!   type a client asks for: `TYPE_MISMATCH` is found by the client's provider.
//! - Bulk answers carry an `ETag` made of the server's revision and the context, so it
//!   changes with any flag change and differs per context; `If-None-Match` with it is 304.
//!   They also name the change stream `GET /ofrep/v1/events` in `eventStreams` (ADR-0008):
//!   `message` events whose data is `{"type":"refetchEvaluation","etag":...}`, one per change
//!   (changes close together are coalesced), and a heartbeat comment every 15 s. The stream
//!   tells only that something changed, never a value, so it needs no token: browsers'
//!   `EventSource` cannot send one.

use crate::problem::ProblemDocument;
use crate::sdk::with_etag;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use feature::{Client, Context, ErrorKind};
use open_feature::{EvaluationContext, EvaluationContextFieldValue, FlagMetadataValue};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;
use utoipa::ToSchema;

/// The path of the change stream, as bulk answers name it.
const EVENTS: &str = "/ofrep/v1/events";

/// The body of both evaluation requests.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub(crate) struct OfrepRequest {
    /// The evaluation context: `targetingKey` and attributes (`kind`, and one object per kind
    /// for a multi-kind context).
    #[schema(value_type = Object)]
    context: Value,
}

/// A failed request or evaluation, as OFREP words it.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    code: &'static str,
    details: String,
}

impl Failure {
    fn new(status: StatusCode, code: &'static str, details: impl Into<String>) -> Self {
        Failure {
            status,
            code,
            details: details.into(),
        }
    }

    /// The body, with the flag's key when there is one.
    fn body(&self, key: Option<&str>) -> Value {
        let mut m = Map::new();
        if let Some(k) = key {
            m.insert("key".into(), Value::String(k.to_owned()));
        }
        m.insert("errorCode".into(), Value::String(self.code.to_owned()));
        m.insert("errorDetails".into(), Value::String(self.details.clone()));
        Value::Object(m)
    }

    fn response(&self, key: Option<&str>) -> Response {
        (self.status, Json(self.body(key))).into_response()
    }
}

/// Reads the body's context: the context, and the context's JSON (for the bulk `ETag`).
fn read_context(body: &[u8]) -> Result<(Context, Value), Failure> {
    let bad = |code, details: String| Failure::new(StatusCode::BAD_REQUEST, code, details);
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| bad("PARSE_ERROR", format!("the body is not JSON: {e}")))?
    };
    let Value::Object(mut request) = value else {
        return Err(bad(
            "PARSE_ERROR",
            "the body is not an object with a context".into(),
        ));
    };
    let context = request.remove("context").unwrap_or_else(|| json!({}));
    let Value::Object(fields) = &context else {
        return Err(bad(
            "INVALID_CONTEXT",
            "the context is not a JSON object".into(),
        ));
    };
    let mut ec = EvaluationContext::default();
    for (name, v) in fields {
        let field = match v {
            Value::String(s) if name == "targetingKey" => {
                ec.targeting_key = Some(s.clone());
                continue;
            }
            Value::Bool(b) => EvaluationContextFieldValue::Bool(*b),
            Value::String(s) => EvaluationContextFieldValue::String(s.clone()),
            Value::Number(n) => match n.as_i64() {
                Some(i) => EvaluationContextFieldValue::Int(i),
                None => EvaluationContextFieldValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            other => EvaluationContextFieldValue::new_struct(other.clone()),
        };
        ec.custom_fields.insert(name.clone(), field);
    }
    match feature_openfeature::context_from(&ec) {
        Ok(ctx) => Ok((ctx, context)),
        Err(e) => {
            let details = match std::error::Error::source(&e) {
                Some(cause) => format!("{e}: {cause}"),
                None => e.to_string(),
            };
            let code = match e.code() {
                open_feature::EvaluationErrorCode::TargetingKeyMissing => "TARGETING_KEY_MISSING",
                _ => "INVALID_CONTEXT",
            };
            Err(bad(code, details))
        }
    }
}

/// One flag evaluated: the success body, or the failure.
fn evaluate_one(client: &Client, ctx: &Context, key: &str) -> Result<Value, Failure> {
    let eval = client.variation(ctx, key);
    if let Some(kind) = eval.error_kind() {
        return Err(match kind {
            ErrorKind::FlagNotFound => Failure::new(
                StatusCode::NOT_FOUND,
                "FLAG_NOT_FOUND",
                format!("flag {key:?} was not found"),
            ),
            ErrorKind::MalformedFlag => Failure::new(
                StatusCode::BAD_REQUEST,
                "PARSE_ERROR",
                format!("flag {key:?} does not compile"),
            ),
            ErrorKind::UserNotSpecified => Failure::new(
                StatusCode::BAD_REQUEST,
                "INVALID_CONTEXT",
                "the context has no usable key",
            ),
            other => Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "GENERAL",
                format!("flag {key:?}: {other}"),
            ),
        });
    }
    let snapshot = client.snapshot();
    let flag = snapshot.document().flags.get(key).map(|f| &**f);
    let mut m = Map::new();
    m.insert("key".into(), Value::String(key.to_owned()));
    m.insert(
        "reason".into(),
        Value::String(feature_openfeature::reason_for(&eval, flag).to_string()),
    );
    // The variation's name, else its index; a flag without variations serves its `default`.
    let variant = match (&eval.variation_name, eval.variation_index) {
        (Some(name), _) => name.clone(),
        (None, Some(i)) => i.to_string(),
        (None, None) => "default".to_owned(),
    };
    if !eval.value.is_null() {
        m.insert("variant".into(), Value::String(variant));
    }
    let metadata: Map<String, Value> = feature_openfeature::metadata_for(&eval, flag)
        .values
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                FlagMetadataValue::Bool(b) => Value::Bool(b),
                FlagMetadataValue::Int(i) => Value::from(i),
                FlagMetadataValue::Float(f) => json!(f),
                FlagMetadataValue::String(s) => Value::String(s),
            };
            (k, v)
        })
        .collect();
    m.insert("metadata".into(), Value::Object(metadata));
    // Nothing served (no value): the caller's default (OFREP's "code default").
    if !eval.value.is_null() {
        m.insert("value".into(), eval.value);
    }
    Ok(Value::Object(m))
}

/// Evaluates one flag for the context in the body (OFREP).
#[utoipa::path(
    post, path = "/ofrep/v1/evaluate/flags/{key}", tag = "ofrep",
    params(("key" = String, Path, description = "The flag's key")),
    request_body(content = OfrepRequest, content_type = "application/json"),
    security(("bearer" = ["evaluate"]), ("apiKey" = ["evaluate"])),
    responses(
        (status = 200, description = "The evaluation: key, value (absent: use the code default), reason, variant, metadata", body = Object),
        (status = 400, description = "PARSE_ERROR, INVALID_CONTEXT or TARGETING_KEY_MISSING: key, errorCode, errorDetails", body = Object),
        (status = 401, description = "No valid token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Scope too weak", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "FLAG_NOT_FOUND: key, errorCode, errorDetails", body = Object),
        (status = 500, description = "GENERAL: key, errorCode, errorDetails", body = Object),
    )
)]
pub(crate) async fn evaluate_flag(
    State(state): State<AppState>,
    Path(key): Path<String>,
    body: Bytes,
) -> Response {
    let result = read_context(&body).and_then(|(ctx, _)| evaluate_one(&state.client, &ctx, &key));
    match result {
        Ok(v) => Json(v).into_response(),
        Err(f) => f.response(Some(&key)),
    }
}

/// The bulk entity tag: the server's revision and the context.
fn bulk_etag(revision_tag: &str, context: &Value) -> String {
    let mut h = Sha256::new();
    h.update(revision_tag.as_bytes());
    h.update([0]);
    h.update(context.to_string().as_bytes());
    let d = h.finalize();
    let hex: String = d[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// Evaluates every flag for the context in the body (OFREP bulk), with an `ETag`
/// (`If-None-Match` → 304) and the change stream in `eventStreams`.
#[utoipa::path(
    post, path = "/ofrep/v1/evaluate/flags", tag = "ofrep",
    params(
        ("If-None-Match" = Option<String>, Header, description = "The ETag of a previous answer for the same context: 304 while nothing changed"),
        ("flagConfigEtag" = Option<String>, Query, description = "Sent by clients after a change event (ADR-0008); not needed by this server"),
        ("flagConfigLastModified" = Option<String>, Query, description = "Sent by clients after a change event (ADR-0008); not needed by this server"),
    ),
    request_body(content = OfrepRequest, content_type = "application/json"),
    security(("bearer" = ["evaluate"]), ("apiKey" = ["evaluate"])),
    responses(
        (status = 200, description = "flags (each a success or a failure), metadata, eventStreams", body = Object,
            headers(("ETag" = String, description = "Changes with any flag change; differs per context"))),
        (status = 304, description = "Nothing changed for this context"),
        (status = 400, description = "PARSE_ERROR, INVALID_CONTEXT or TARGETING_KEY_MISSING: errorCode, errorDetails", body = Object),
        (status = 401, description = "No valid token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Scope too weak", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn evaluate_bulk(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ctx, context) = match read_context(&body) {
        Ok(c) => c,
        Err(f) => return f.response(None),
    };
    let revision = state.hub.revision();
    let tag = bulk_etag(&state.hub.etag(revision), &context);
    if crate::sdk::not_modified(&headers, &tag) {
        return with_etag(&headers, &tag, StatusCode::NOT_MODIFIED.into_response());
    }
    let snapshot = state.client.snapshot();
    let flags: Vec<Value> = snapshot
        .document()
        .flags
        .keys()
        .map(|key| match evaluate_one(&state.client, &ctx, key) {
            Ok(v) => v,
            Err(f) => f.body(Some(key)),
        })
        .collect();
    let body = json!({
        "flags": flags,
        "metadata": {"revision": revision},
        "eventStreams": [{
            "type": "sse",
            "endpoint": {"requestUri": EVENTS},
            "inactivityDelaySec": 120,
        }],
    });
    with_etag(&headers, &tag, Json(body).into_response())
}

fn refetch(state: &AppState) -> SseEvent {
    let revision = state.hub.revision();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let data = json!({
        "type": "refetchEvaluation",
        "etag": state.hub.etag(revision),
        "lastModified": now,
    });
    SseEvent::default()
        .event("message")
        .id(revision.to_string())
        .data(data.to_string())
}

/// OFREP's change stream (ADR-0008): a `message` event `{"type":"refetchEvaluation"}` after
/// every change of the flags (changes close together coalesced), a heartbeat comment every
/// 15 s. No token: it says only that something changed.
#[utoipa::path(
    get, path = "/ofrep/v1/events", tag = "ofrep",
    responses(
        (status = 200, description = "Server-sent events: message with data {\"type\":\"refetchEvaluation\",\"etag\":...,\"lastModified\":...}", content_type = "text/event-stream", body = crate::sdk::SseMessage),
    )
)]
pub(crate) async fn events(State(state): State<AppState>) -> Response {
    let rx = state.hub.subscribe().rx;
    let heartbeat = state.hub.heartbeat;
    let events = futures_util::stream::unfold((state, rx), |(state, mut rx)| async move {
        match rx.recv().await {
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                // Coalesce what is already queued: one re-fetch covers it all.
                while let Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) = rx.try_recv() {}
                let ev = refetch(&state);
                Some((Ok::<_, Infallible>(ev), (state, rx)))
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    });
    let mut r = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(heartbeat))
        .into_response();
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}
