//! `/healthz` (the process is up), `/readyz` (database reachable, migrations applied) and
//! `/metrics` (behind `metrics.token`, or on its own listener, `metrics.listen`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use pairgate_custody::{ExposeSecret, SecretString};
use pairgate_store::Store;
use serde_json::{Value, json};

use crate::base::error::ApiError;
use crate::state::AppState;

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

/// `GET /metrics` on the API listener: Prometheus exposition (no secrets, no per-token labels),
/// only to a scraper presenting `metrics.token` as a bearer token, and not at all when the
/// metrics have their own listener (`metrics.listen`) or no token is configured.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.config.metrics_listen.is_some() {
        return ApiError::NotFound.into_response();
    }
    match &state.config.metrics_token {
        Some(token) => scrape(Some(token), &headers),
        None => ApiError::NotFound.into_response(),
    }
}

/// The router of the separate metrics listener: `GET /metrics`, with the token when one is set.
pub fn metrics_listener_app(token: Option<SecretString>) -> axum::Router {
    let token = Arc::new(token);
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move |headers: HeaderMap| {
            let token = token.clone();
            async move { scrape(token.as_ref().as_ref(), &headers) }
        }),
    )
}

/// The exposition, when `token` is `None` or the request's `Authorization: Bearer` matches it.
fn scrape(token: Option<&SecretString>, headers: &HeaderMap) -> Response {
    if let Some(token) = token {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !token_matches(token.expose_secret(), sent.trim()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer realm=\"metrics\"")],
                "metrics need the bearer token configured as metrics.token\n",
            )
                .into_response();
        }
    }
    let text = crate::base::metrics::render().unwrap_or_default();
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/plain; version=0.0.4"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response()
}

/// Compares digests of both in constant time (neither the token nor its length leaks).
fn token_matches(expected: &str, sent: &str) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let (a, b) = (Sha256::digest(expected), Sha256::digest(sent));
    bool::from(a.as_slice().ct_eq(b.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(value) {
            h.insert(header::AUTHORIZATION, v);
        }
        h
    }

    #[test]
    fn only_the_configured_token_scrapes() {
        let token = SecretString::from("metrics-token-0123456789");
        let status = |h: &HeaderMap| scrape(Some(&token), h).status();
        assert_eq!(
            status(&bearer("Bearer metrics-token-0123456789")),
            StatusCode::OK
        );
        for wrong in [
            "",
            "Bearer ",
            "Bearer metrics-token-012345678",
            "Basic metrics-token-0123456789",
            "metrics-token-0123456789",
        ] {
            assert_eq!(
                status(&bearer(wrong)),
                StatusCode::UNAUTHORIZED,
                "{wrong:?}"
            );
        }
        assert_eq!(scrape(None, &HeaderMap::new()).status(), StatusCode::OK);
    }
}
