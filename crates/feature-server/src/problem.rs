//! Errors as RFC 9457 problem documents (`application/problem+json`): `type`, `title`,
//! `status`, `detail`, and, for documents that do not validate, the located `diagnostics`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use feature_core::{Diagnostic, Severity};
use feature_store::WriteError;
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error answer of the server: an RFC 9457 problem document (boxed: errors are the cold
/// path, and handlers return `Result<_, Problem>`).
#[derive(Debug, Clone)]
pub struct Problem(Box<ProblemDocument>);

/// An RFC 9457 problem document, the body of every error response of the server.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemDocument {
    /// A URI naming the kind of problem: `urn:feature:problem:<slug>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// For a document that does not validate: every problem, located.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<Vec<DiagnosticBody>>,
    /// For a read-only server: why it does not accept writes.
    #[serde(skip_serializing_if = "Option::is_none", rename = "readOnly")]
    pub read_only: Option<String>,
    #[serde(skip)]
    #[schema(ignore)]
    allow: Option<&'static str>,
    #[serde(skip)]
    #[schema(ignore)]
    bearer_challenge: bool,
}

/// One located problem of a flag document, as `featurectl validate` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DiagnosticBody {
    /// `error` or `warning`.
    pub severity: &'static str,
    /// The flag (or `segment KEY`) concerned; empty for a problem of the whole document.
    pub flag: String,
    /// Where in the document: `flags.my-flag.rules[0].clauses[1]`.
    pub path: String,
    /// Line in the text sent, from 1, when known.
    pub line: Option<usize>,
    /// Column in the text sent, from 1, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl From<&Diagnostic> for DiagnosticBody {
    fn from(d: &Diagnostic) -> Self {
        DiagnosticBody {
            severity: match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            },
            flag: d.flag.clone(),
            path: d.path_string(),
            line: d.line,
            column: d.column,
            message: d.message.clone(),
        }
    }
}

impl Problem {
    /// A problem of kind `slug` with `status`, `title` and `detail`.
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Problem {
        Problem(Box::new(ProblemDocument {
            kind: format!("urn:feature:problem:{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            diagnostics: None,
            read_only: None,
            allow: None,
            bearer_challenge: false,
        }))
    }

    /// The document.
    pub fn document(&self) -> &ProblemDocument {
        &self.0
    }

    /// 400: the request cannot be read.
    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            detail,
        )
    }

    /// 401: no valid token; carries `WWW-Authenticate: Bearer`.
    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        let mut p = Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        );
        p.0.bearer_challenge = true;
        p
    }

    /// 403: the token's scope does not allow this.
    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 405 for a write to a read-only server, saying why; `Allow: GET, HEAD`.
    pub fn read_only(reason: &str) -> Problem {
        let mut p = Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "read-only",
            "The server is read-only",
            format!("this server does not accept changes: {reason}"),
        );
        p.0.read_only = Some(reason.to_owned());
        p.0.allow = Some("GET, HEAD");
        p
    }

    /// 412: the item is not at the version named by `If-Match` (or exists, under
    /// `If-None-Match: *`).
    pub fn precondition_failed(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition-failed",
            "Precondition failed",
            detail,
        )
    }

    /// 428: a write without `If-Match` / `If-None-Match`.
    pub fn precondition_required() -> Problem {
        Problem::new(
            StatusCode::PRECONDITION_REQUIRED,
            "precondition-required",
            "Precondition required",
            "a change needs If-Match: \"<version>\" (the ETag read) or If-Match: *; \
             creating needs If-None-Match: *",
        )
    }

    /// 422 with located diagnostics: the document was not written.
    pub fn invalid(detail: impl Into<String>, diagnostics: Vec<DiagnosticBody>) -> Problem {
        let mut p = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-document",
            "The document does not validate",
            detail,
        );
        p.0.diagnostics = Some(diagnostics);
        p
    }

    /// 503: the store failed or did not answer.
    pub fn unavailable(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store-unavailable",
            "The store is unavailable",
            detail,
        )
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<WriteError> for Problem {
    fn from(e: WriteError) -> Problem {
        match &e {
            WriteError::NotFound { .. } => Problem::not_found(e.to_string()),
            WriteError::AlreadyExists { .. } | WriteError::Conflict { .. } => {
                Problem::precondition_failed(e.to_string())
            }
            WriteError::Invalid { problems, .. } => Problem::invalid(
                "the definition has errors; nothing was written",
                problems.iter().map(DiagnosticBody::from).collect(),
            ),
            WriteError::BadName { .. } => Problem::bad_request(e.to_string()),
            WriteError::BadChange { .. } => Problem::invalid(e.to_string(), Vec::new()),
            WriteError::Store { .. } | WriteError::Timeout { .. } => {
                tracing::warn!(error = %e, "store operation failed");
                // The store's own message may name hosts: say what failed, not where.
                Problem::unavailable(store_failure(&e))
            }
            _ => Problem::unavailable(e.to_string()),
        }
    }
}

fn store_failure(e: &WriteError) -> String {
    match e {
        WriteError::Store {
            store, operation, ..
        } => format!("{store}: {operation} failed"),
        WriteError::Timeout { store, operation } => format!("{store}: {operation} timed out"),
        other => other.to_string(),
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&*self.0).unwrap_or_default();
        let mut resp = (status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(allow) = self.0.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if self.0.bearer_challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"feature\""),
            );
        }
        resp
    }
}

/// Middleware: an error answered by something else than a handler (axum's extractors: a bad
/// query string, path or JSON body; the body limit; the time limit; a method the route does
/// not have) becomes a problem document too, with its status and text as the detail.
pub(crate) async fn problems_everywhere(resp: axum::response::Response) -> Response {
    let status = resp.status();
    // Problem documents, and the JSON error bodies a protocol prescribes (OFREP's
    // `errorCode`/`errorDetails`), are answers already; only bodies of other types (axum's
    // plain-text rejections, empty bodies of layers) become problem documents.
    let answered = resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes() == PROBLEM_JSON.as_bytes() || v.as_bytes().starts_with(b"application/json")
    });
    if !(status.is_client_error() || status.is_server_error()) || answered {
        return resp;
    }
    let allow = resp.headers().get(header::ALLOW).cloned();
    let text = match axum::body::to_bytes(resp.into_body(), 64 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_owned(),
        Err(_) => String::new(),
    };
    let reason = status.canonical_reason().unwrap_or("Error");
    let slug = reason.to_lowercase().replace(' ', "-");
    let detail = if text.is_empty() {
        reason.to_owned()
    } else {
        text
    };
    let mut out = Problem::new(status, &slug, reason, detail).into_response();
    if let Some(a) = allow {
        out.headers_mut().insert(header::ALLOW, a);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_failures_do_not_leak_the_cause() {
        let e = WriteError::Store {
            store: "postgres",
            operation: "update",
            source: "connection to db.internal:5432 refused".into(),
        };
        let p = Problem::from(e);
        assert_eq!(p.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(p.document().detail, "postgres: update failed");
    }
}
