//! The OpenAI-compatible surface under `/v1`, the providers' native APIs beside it
//! (`/v1/messages`, `/v1/responses`), and resource calls under `/r`: thin handlers that take an
//! authenticated `AppRequest` and hand it to the relay (a `RelayRequest` on every route that
//! reaches a provider: admission makes its proof's claim across replicas).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, header};
use pairgate_policy::GrantPolicy;
use pairgate_policy::decide::model_allowed;
use pairgate_policy::native::Api;
use serde_json::{Value, json};

use crate::base::error::ApiError;
use crate::domain::grants::{AppRequest, RelayRequest};
use crate::relay::pipeline;
use crate::state::AppState;

/// `POST /v1/chat/completions`.
pub async fn chat(State(state): State<AppState>, RelayRequest(req): RelayRequest) -> Response {
    pipeline::unified(state, req, "chat").await
}

/// `POST /v1/embeddings`.
pub async fn embeddings(
    State(state): State<AppState>,
    RelayRequest(req): RelayRequest,
) -> Response {
    pipeline::unified(state, req, "embeddings").await
}

/// `POST /v1/messages`: Anthropic's Messages API.
pub async fn messages(
    State(state): State<AppState>,
    headers: HeaderMap,
    RelayRequest(req): RelayRequest,
) -> Response {
    crate::relay::native::handle(state, req, headers, Api::Messages).await
}

/// `POST /v1/messages/count_tokens`.
pub async fn count_tokens(
    State(state): State<AppState>,
    headers: HeaderMap,
    RelayRequest(req): RelayRequest,
) -> Response {
    crate::relay::native::handle(state, req, headers, Api::CountTokens).await
}

/// `POST /v1/responses`: OpenAI's Responses API.
pub async fn responses(
    State(state): State<AppState>,
    headers: HeaderMap,
    RelayRequest(req): RelayRequest,
) -> Response {
    crate::relay::native::handle(state, req, headers, Api::Responses).await
}

/// Anthropic's error `type` for an HTTP status (what its SDKs and tools expect to read).
fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// Middleware on the Anthropic routes: the gateway's own errors (refusals, limits, proof
/// failures) answered in Anthropic's error shape, `{"type": "error", "error": {"type",
/// "message"}}`, keeping the gateway's `code`. The provider's own errors are already in it and
/// pass unchanged.
pub async fn anthropic_errors(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let res = next.run(req).await;
    let status = res.status().as_u16();
    let json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status < 400 || !json {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return ApiError::Internal(anyhow::anyhow!("reading an error body failed")).into_response();
    };
    let reshaped = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .filter(|v| v["type"] != "error" && v["error"].is_object())
        .map(|v| {
            let e = &v["error"];
            json!({
                "type": "error",
                "error": {
                    "type": anthropic_error_type(status),
                    "message": e["message"].as_str().unwrap_or_default(),
                    "code": e["code"],
                },
            })
        });
    let body = match reshaped {
        Some(v) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Body::from(v.to_string())
        }
        None => Body::from(bytes),
    };
    Response::from_parts(parts, body)
}

fn model_object(provider: &str, id: &str) -> Value {
    json!({ "id": format!("{provider}/{id}"), "object": "model", "created": 0, "owned_by": provider })
}

/// The models this grant may use, across providers.
fn allowed_models(state: &AppState, policy: &GrantPolicy) -> Vec<Value> {
    let mut out = Vec::new();
    for p in state.relay.providers() {
        if !p
            .descriptor
            .actions
            .iter()
            .any(|a| a == "chat" || a == "embeddings")
        {
            continue;
        }
        for m in &p.descriptor.models {
            if model_allowed(policy, &format!("{}/{}", p.id, m.id)) {
                out.push(model_object(&p.id, &m.id));
            }
        }
    }
    out
}

/// `GET /v1/models`: only the models this grant may use, in OpenAI's list shape.
pub async fn models(
    State(state): State<AppState>,
    req: AppRequest,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "object": "list", "data": allowed_models(&state, &req.grant.policy) }),
    ))
}

/// `GET /v1/models/{provider}/{model}` (or a bare model of the default provider).
pub async fn model(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: AppRequest,
) -> Result<Json<Value>, ApiError> {
    let policy = &req.grant.policy;
    let not_found = || ApiError::Upstream {
        status: 404,
        code: "model_not_found".into(),
        message: format!(
            "the model `{}` does not exist or this app may not use it",
            id.chars().take(100).collect::<String>()
        ),
        kind: "invalid_request_error",
    };
    let (provider, bare) = state
        .relay
        .resolve_model(&id, &state.config.default_provider)
        .map_err(|_| not_found())?;
    let known = provider.descriptor.models.iter().any(|m| m.id == bare);
    if !known || !model_allowed(policy, &format!("{}/{bare}", provider.id)) {
        return Err(not_found());
    }
    Ok(Json(model_object(&provider.id, &bare)))
}

/// `POST /r/{resource}/{*rest}`: a resource action (`/r/resend/send-email`) or a provider-native
/// path the plugin declares for pass-through.
pub async fn resource(
    State(state): State<AppState>,
    Path((resource, rest)): Path<(String, String)>,
    RelayRequest(req): RelayRequest,
) -> Response {
    crate::relay::resource::handle(state, req, &resource, &rest).await
}
