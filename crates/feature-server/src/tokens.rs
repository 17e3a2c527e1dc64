//! `/api/v1/tokens` (admin scope): create a token (its text is answered once, never again),
//! list tokens (without secrets), revoke one.

use crate::auth::Caller;
use crate::problem::{Problem, ProblemDocument};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use feature_store::tokens::{create_token, CreateTokenError, Scope, TokenRecord, TokenStore};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// A token to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateToken {
    /// A name for people and for the audit log (the actor of changes made with it).
    pub(crate) name: String,
    /// `evaluate`, `read`, `write` or `admin`; each grants the ones before it.
    pub(crate) scope: String,
}

/// A token as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenInfo {
    /// The public part of the token: how it is revoked.
    pub(crate) id: String,
    /// Its name.
    pub(crate) name: String,
    /// `evaluate`, `read`, `write` or `admin`.
    pub(crate) scope: String,
    /// When it was created (RFC 3339).
    pub(crate) created_at: String,
    /// Who created it.
    pub(crate) created_by: String,
    /// When it was revoked, if it was.
    pub(crate) revoked_at: Option<String>,
}

impl From<TokenRecord> for TokenInfo {
    fn from(r: TokenRecord) -> Self {
        TokenInfo {
            id: r.id,
            name: r.name,
            scope: r.scope.as_str().to_owned(),
            created_at: r.created_at,
            created_by: r.created_by,
            revoked_at: r.revoked_at,
        }
    }
}

/// A token just created, with its text: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedToken {
    /// The record.
    #[serde(flatten)]
    pub(crate) info: TokenInfo,
    /// The token to send as `Authorization: Bearer <token>`; it cannot be read again.
    pub(crate) token: String,
}

/// Every token, revoked ones included, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenList {
    /// The tokens.
    pub(crate) items: Vec<TokenInfo>,
}

fn store(state: &AppState) -> Result<&Arc<dyn TokenStore>, Problem> {
    state
        .tokens
        .as_ref()
        .ok_or_else(|| Problem::read_only("this server has no token store"))
}

/// Creates a token; its text is in this answer only.
#[utoipa::path(
    post, path = "/api/v1/tokens", tag = "tokens",
    request_body(content = CreateToken, content_type = "application/json"),
    security(("bearer" = ["admin"])),
    responses(
        (status = 201, description = "Created; `token` is shown this once", body = CreatedToken),
        (status = 400, description = "Not a token request, or a bad name or scope", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Scope too weak", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 405, description = "The server has no token store", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let tokens = store(&state)?;
    let req: CreateToken = serde_json::from_slice(&body)
        .map_err(|e| Problem::bad_request(format!("not a token request: {e}")))?;
    let scope = Scope::parse(&req.scope).ok_or_else(|| {
        Problem::bad_request(format!(
            "unknown scope {:?}: evaluate, read, write or admin",
            req.scope
        ))
    })?;
    let (record, text) = create_token(tokens.as_ref(), &req.name, scope, &caller.name)
        .await
        .map_err(|e| match e {
            CreateTokenError::Store(w) => Problem::from(w),
            CreateTokenError::Mint(m) => match m {
                feature_store::tokens::TokenError::Name(w) => Problem::from(w),
                other => Problem::unavailable(other.to_string()),
            },
            other => Problem::unavailable(other.to_string()),
        })?;
    tracing::info!(id = %record.id, name = %record.name, scope = %record.scope, by = %caller.name, "token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            info: record.into(),
            token: text,
        }),
    )
        .into_response())
}

/// Lists tokens (never their secrets).
#[utoipa::path(
    get, path = "/api/v1/tokens", tag = "tokens",
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "Every token, oldest first", body = TokenList),
        (status = 401, description = "No valid token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Scope too weak", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 405, description = "The server has no token store", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<TokenList>, Problem> {
    let tokens = store(&state)?;
    let items = tokens.tokens().await.map_err(Problem::from)?;
    Ok(Json(TokenList {
        items: items.into_iter().map(TokenInfo::from).collect(),
    }))
}

/// Revokes a token: it stops working at once on this server.
#[utoipa::path(
    delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "The token's id")),
    security(("bearer" = ["admin"])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No valid token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Scope too weak", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such token, or already revoked", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 405, description = "The server has no token store", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let tokens = store(&state)?;
    let done = tokens.revoke_token(&id, &caller.name).await;
    // Cleared whatever the answer: a revocation whose reply was lost may still have happened.
    state.cache.clear();
    state.hub.token_revoked();
    if done.map_err(Problem::from)? {
        tracing::info!(id = %id, by = %caller.name, "token revoked");
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(Problem::not_found(format!(
            "no token {id:?}, or it was already revoked"
        )))
    }
}
