//! `/health` (no token: the client's health report and whether the store answers, no
//! secrets) and `/metrics` (Prometheus text: the server's registry, where the client's
//! metrics and the HTTP metrics are registered).

use crate::state::{AppState, Backend};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use feature::health::{Health, Status};
use feature_store::ItemKind;
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;
use utoipa::ToSchema;

/// The store part of the health report.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StoreHealth {
    /// `postgres`, `redis`, `sqlite`, or `read-only` for a read-only source.
    pub(crate) name: String,
    /// Whether the store answered a read within 2 s (a read-only source: always).
    pub(crate) reachable: bool,
}

/// The health report: the client's (status, provider, flags loaded, evaluation statistics)
/// with the store's reachability under `store`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HealthBody {
    /// `healthy`, `degraded` or `unhealthy`; the client's report's other fields beside it.
    pub(crate) status: String,
    /// The store.
    pub(crate) store: StoreHealth,
}

/// Health of the server: 200 unless no flags were ever loaded (503).
#[utoipa::path(
    get, path = "/health", tag = "operations",
    responses(
        (status = 200, description = "Healthy or degraded (serving the last good flags)", body = HealthBody),
        (status = 503, description = "Unhealthy: no flags were ever loaded", body = HealthBody),
    )
)]
pub(crate) async fn health(State(state): State<AppState>) -> Response {
    let report = Health::new(state.client.clone(), state.stats.clone()).check();
    let store = match &state.backend {
        Backend::Store(s) => StoreHealth {
            name: s.name().to_owned(),
            reachable: {
                let mut last = state.probe.lock().await;
                match *last {
                    Some((at, reachable)) if at.elapsed() < Duration::from_secs(1) => reachable,
                    _ => {
                        let reachable = matches!(
                            tokio::time::timeout(
                                Duration::from_secs(2),
                                s.row(ItemKind::Flag, "health-probe")
                            )
                            .await,
                            Ok(Ok(_))
                        );
                        *last = Some((std::time::Instant::now(), reachable));
                        reachable
                    }
                }
            },
        },
        Backend::ReadOnly(_) => StoreHealth {
            name: "read-only".into(),
            reachable: true,
        },
    };
    let code = if report.status == Status::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let mut body = serde_json::to_value(&report).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut body {
        m.insert(
            "store".into(),
            serde_json::to_value(&store).unwrap_or(Value::Null),
        );
    }
    (code, Json(body)).into_response()
}

/// Prometheus metrics in the text format.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    security(("bearer" = ["read"])),
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 401, description = "No valid token", body = crate::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Scope too weak", body = crate::ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let families = state.registry.gather();
    match prometheus::TextEncoder::new().encode_to_string(&families) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => crate::Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics",
            "Metrics cannot be encoded",
            e.to_string(),
        )
        .into_response(),
    }
}
