//! `POST /api/v1/validate`: a flag document (JSON, or YAML with a YAML content type) → its
//! located diagnostics: the compiler's, then the server's [`Linter`](crate::Linter)'s
//! (`featurectl serve` gives it the lints of `featurectl validate`). Nothing is written.

use crate::problem::{DiagnosticBody, Problem, ProblemDocument};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::Json;
use feature_core::{parse_document, Format, Severity};
use serde::Serialize;
use utoipa::ToSchema;

/// What validation found.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ValidateResponse {
    /// No errors (warnings allowed).
    pub(crate) valid: bool,
    /// Number of errors.
    pub(crate) errors: usize,
    /// Number of warnings.
    pub(crate) warnings: usize,
    /// Flags in the document.
    pub(crate) flags: usize,
    /// Every problem, located in the text sent, in text order.
    pub(crate) diagnostics: Vec<DiagnosticBody>,
}

/// Validates a flag document: parse and compile, every problem with line and column.
#[utoipa::path(
    post, path = "/api/v1/validate", tag = "validate",
    request_body(content = Object, description = "A flag document (`{\"flags\": {...}, \"segments\": {...}}`); YAML with Content-Type application/yaml", content_type = "application/json"),
    security(("bearer" = ["read"])),
    responses(
        (status = 200, description = "The diagnostics (a document that cannot be parsed gives one, located)", body = ValidateResponse),
        (status = 400, description = "The body is empty", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Scope too weak", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "The body is not UTF-8 text", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn validate(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ValidateResponse>, Problem> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| Problem::invalid("the body is not UTF-8 text", Vec::new()))?;
    if text.trim().is_empty() {
        return Err(Problem::bad_request(
            "the body is empty: send a flag document",
        ));
    }
    let yaml = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("yaml"));
    let format = if yaml { Format::Yaml } else { Format::Json };
    let parsed = match parse_document(text, format) {
        Ok(p) => p,
        Err(e) => {
            return Ok(Json(ValidateResponse {
                valid: false,
                errors: 1,
                warnings: 0,
                flags: 0,
                diagnostics: vec![DiagnosticBody {
                    severity: "error",
                    flag: String::new(),
                    path: String::new(),
                    line: Some(e.line),
                    column: Some(e.column),
                    message: e.message,
                }],
            }))
        }
    };
    let locator = parsed.locator.clone();
    let snapshot = parsed.compile(None);
    let mut diags = snapshot.diagnostics().to_vec();
    if let Some(lint) = &state.linter {
        diags.extend(lint(&snapshot, &locator));
    }
    diags.sort_by_key(|d| (d.line.unwrap_or(usize::MAX), d.column.unwrap_or(usize::MAX)));
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    Ok(Json(ValidateResponse {
        valid: errors == 0,
        errors,
        warnings: diags.len() - errors,
        flags: snapshot.len(),
        diagnostics: diags.iter().map(DiagnosticBody::from).collect(),
    }))
}
