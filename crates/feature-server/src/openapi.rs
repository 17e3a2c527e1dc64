//! The OpenAPI 3.1 document, generated from the handlers' annotations (utoipa) and served at
//! `/api/v1/openapi.json`.

use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "feature flag server",
        description = "Admin API of the feature flag server: flags and segments in the flag \
                       file's format, versions as ETags, conditional writes, audit history, \
                       evaluation with traces, validation, tokens. Errors are RFC 9457 \
                       problem documents."
    ),
    paths(
        crate::flags::list,
        crate::flags::get,
        crate::flags::put,
        crate::flags::delete,
        crate::flags::enable,
        crate::flags::disable,
        crate::history::list,
        crate::history::restore,
        crate::segments::list,
        crate::segments::get,
        crate::segments::put,
        crate::segments::delete,
        crate::evaluate::evaluate,
        crate::validate::validate,
        crate::tokens::create,
        crate::tokens::list,
        crate::tokens::revoke,
        crate::sdk::flags,
        crate::sdk::stream,
        crate::ofrep::evaluate_flag,
        crate::ofrep::evaluate_bulk,
        crate::ofrep::events,
        crate::health::health,
        crate::health::metrics,
        openapi_json,
    ),
    components(schemas(
        crate::problem::ProblemDocument,
        crate::problem::DiagnosticBody,
        crate::items::ItemPage,
        crate::history::HistoryPage,
        crate::history::HistoryItem,
        crate::evaluate::EvaluateRequest,
        crate::evaluate::EvaluateResponse,
        crate::evaluate::EvaluationBody,
        crate::validate::ValidateResponse,
        crate::tokens::CreateToken,
        crate::tokens::CreatedToken,
        crate::tokens::TokenInfo,
        crate::tokens::TokenList,
        crate::ofrep::OfrepRequest,
        crate::sdk::SseMessage,
        crate::health::HealthBody,
        crate::health::StoreHealth,
    )),
    modifiers(&Bearer),
    tags(
        (name = "flags", description = "Flags in the flag file's format"),
        (name = "segments", description = "Segments in the flag file's format"),
        (name = "history", description = "The audit log, and restoring from it"),
        (name = "evaluate", description = "Evaluation with traces"),
        (name = "validate", description = "Validation of flag documents"),
        (name = "tokens", description = "API tokens (admin scope)"),
        (name = "sdk", description = "The SDK endpoints relays and this project's clients follow"),
        (name = "ofrep", description = "The OpenFeature Remote Evaluation Protocol"),
        (name = "operations", description = "Health and metrics"),
    )
)]
pub(crate) struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (`feat_<id>_<secret>`). Scopes: evaluate < read < write \
                         < admin, each granting the ones before.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "The same API token, in OFREP's header.",
            ))),
        );
    }
}

/// This document.
#[utoipa::path(
    get, path = "/api/v1/openapi.json", tag = "operations",
    security(("bearer" = ["evaluate"])),
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", body = Object),
        (status = 401, description = "No valid token", body = crate::ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn openapi_json(State(_): State<AppState>) -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
