//! `POST /api/v1/evaluate`: flags evaluated for a context by the server's client, each with
//! the explanation trace `featurectl eval --explain` prints.

use crate::problem::{Problem, ProblemDocument};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use feature_core::{Context, ErrorKind, Explanation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// What to evaluate.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EvaluateRequest {
    /// The flags to evaluate; absent: every flag, in key order.
    #[serde(default)]
    pub(crate) flags: Option<Vec<String>>,
    /// The evaluation context, as JSON (`{"key": "user-1", "country": "NZ"}`, or with `kind`).
    #[schema(value_type = Object)]
    pub(crate) context: Value,
    /// The caller's default, served when a flag serves nothing (default `null`).
    #[serde(default)]
    #[schema(schema_with = crate::items::any_value)]
    pub(crate) default: Option<Value>,
}

/// One evaluation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EvaluationBody {
    /// The flag's key.
    pub(crate) key: String,
    /// The value served, or the caller's default.
    #[schema(schema_with = crate::items::any_value)]
    pub(crate) value: Value,
    /// Index of the variation served; absent when a default was served.
    pub(crate) variation_index: Option<usize>,
    /// Name of the variation served, when it has one.
    pub(crate) variation_name: Option<String>,
    /// `OFF`, `TARGET_MATCH`, `RULE_MATCH`, `FALLTHROUGH`, `PREREQUISITE_FAILED` or `ERROR`.
    pub(crate) reason: String,
    /// Id of the rule that matched, when it has one.
    pub(crate) rule_id: Option<String>,
    /// Whether the evaluation is part of an experiment.
    pub(crate) in_experiment: bool,
    /// Key of the prerequisite that failed.
    pub(crate) prerequisite_failed: Option<String>,
    /// `FLAG_NOT_FOUND`, `MALFORMED_FLAG`, ... when the reason is `ERROR`.
    pub(crate) error_kind: Option<String>,
    /// Every decision the evaluation took, as `featurectl eval --explain` prints them.
    pub(crate) explain: Vec<String>,
}

/// The evaluations, in the order asked.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EvaluateResponse {
    /// One per flag.
    pub(crate) evaluations: Vec<EvaluationBody>,
}

/// Evaluates flags for a context, with the trace of every decision. An object that is not a
/// valid context evaluates as SDKs do: the default with `ERROR`/`USER_NOT_SPECIFIED`.
#[utoipa::path(
    post, path = "/api/v1/evaluate", tag = "evaluate",
    request_body(content = EvaluateRequest, content_type = "application/json"),
    security(("bearer" = ["evaluate"])),
    responses(
        (status = 200, description = "The evaluations", body = EvaluateResponse),
        (status = 400, description = "The body is not an evaluation request", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Scope too weak", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "The context is not a JSON object", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn evaluate(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<EvaluateResponse>, Problem> {
    let req: EvaluateRequest = serde_json::from_slice(&body)
        .map_err(|e| Problem::bad_request(format!("not an evaluation request: {e}")))?;
    if !req.context.is_object() {
        return Err(Problem::invalid(
            "the context must be a JSON object",
            Vec::new(),
        ));
    }
    let default = req.default.unwrap_or(Value::Null);
    let context = Context::from_json(&req.context);
    let snapshot = state.client.snapshot();
    let keys: Vec<String> = match req.flags {
        Some(k) => k,
        None => snapshot.flags().map(|f| f.key().to_owned()).collect(),
    };
    let evaluations = keys
        .into_iter()
        .map(|key| match &context {
            Err(e) => EvaluationBody {
                value: default.clone(),
                variation_index: None,
                variation_name: None,
                reason: "ERROR".into(),
                rule_id: None,
                in_experiment: false,
                prerequisite_failed: None,
                error_kind: Some(ErrorKind::UserNotSpecified.as_str().into()),
                explain: vec![format!("the context is invalid: {e}")],
                key,
            },
            Ok(ctx) => {
                let mut why = Explanation::default();
                let d = snapshot.evaluate_traced(&key, ctx, &mut why);
                let value = d.value();
                EvaluationBody {
                    variation_index: value.and(d.variation_index()),
                    variation_name: value.and(d.variation_name()).map(str::to_owned),
                    value: value.cloned().unwrap_or_else(|| default.clone()),
                    reason: d.reason_kind().as_str().into(),
                    rule_id: d.rule_id().map(str::to_owned),
                    in_experiment: d.in_experiment(),
                    prerequisite_failed: d.prerequisite_key().map(str::to_owned),
                    error_kind: d.error_kind().map(|k| k.as_str().to_owned()),
                    explain: why.steps.iter().map(ToString::to_string).collect(),
                    key,
                }
            }
        })
        .collect();
    Ok(Json(EvaluateResponse { evaluations }))
}
