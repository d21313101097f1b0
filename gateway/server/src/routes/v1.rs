//! The OpenAI-compatible surface under `/v1` and resource calls under `/r`: thin handlers that
//! take an authenticated `AppRequest` and hand it to the relay.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use pairgate_policy::GrantPolicy;
use pairgate_policy::decide::model_allowed;
use serde_json::{Value, json};

use crate::auth::extract::AppRequest;
use crate::error::ApiError;
use crate::relay::pipeline;
use crate::state::AppState;

/// `POST /v1/chat/completions`.
pub async fn chat(State(state): State<AppState>, req: AppRequest) -> Response {
    pipeline::unified(state, req, "chat").await
}

/// `POST /v1/embeddings`.
pub async fn embeddings(State(state): State<AppState>, req: AppRequest) -> Response {
    pipeline::unified(state, req, "embeddings").await
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
        json!({ "object": "list", "data": allowed_models(&state, &req.grant_policy) }),
    ))
}

/// `GET /v1/models/{provider}/{model}` (or a bare model of the default provider).
pub async fn model(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: AppRequest,
) -> Result<Json<Value>, ApiError> {
    let policy = &req.grant_policy;
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
    req: AppRequest,
) -> Response {
    crate::relay::resource::handle(state, req, &resource, &rest).await
}
