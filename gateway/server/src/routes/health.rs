//! `/healthz` (the process is up) and `/readyz` (database reachable, migrations applied).

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use pairgate_store::Store;
use serde_json::{Value, json};

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(store): State<Store>) -> (StatusCode, Json<Value>) {
    match store.check_ready().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({ "status": "ready", "database": "ok" })),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "not_ready", "database": "unavailable" })),
            )
        }
    }
}

/// `GET /metrics`: Prometheus exposition (no secrets, no per-token labels).
pub async fn metrics() -> (
    StatusCode,
    [(http::header::HeaderName, &'static str); 1],
    String,
) {
    let text = crate::metrics::render().unwrap_or_default();
    (
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text,
    )
}
