//! The owner's passkey routes (thin: the logic is in `crate::domain::passkeys`). Management takes the
//! `Owner` extractor (session + CSRF) and sensitive changes re-check the password; the two
//! sign-in routes are open, and answer alike whether or not any passkey exists.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::response::Response;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::base::clock::now_ms;
use crate::base::error::ApiError;
use crate::domain::passkeys::{self, PasskeyChallenge, PasskeyView, PasskeysView};
use crate::http::owner_session::Owner;
use crate::http::routes::admin::{json_body, session_response, user_agent};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterStartBody {
    name: String,
    password: String,
}

/// The browser's answer to a ceremony (the credential as `webauthn-rs` JSON, base64url fields).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinishBody {
    challenge_id: String,
    credential: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequireBody {
    require: bool,
    password: String,
}

/// `GET /admin/api/passkeys`: the owner's passkeys, whether one is required, and whether this
/// gateway can use passkeys at all.
pub async fn list(
    State(state): State<AppState>,
    owner: Owner,
) -> Result<Json<PasskeysView>, ApiError> {
    Ok(Json(passkeys::list(&state, &owner.owner_id).await?))
}

/// `POST /admin/api/passkeys/register/start` `{ name, password }`.
pub async fn register_start(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    owner: Owner,
    body: axum::body::Bytes,
) -> Result<Json<PasskeyChallenge>, ApiError> {
    let b: RegisterStartBody = json_body(&body)?;
    let client = addr.ip().to_string();
    Ok(Json(
        passkeys::start_registration(
            &state,
            &owner.owner_id,
            &b.name,
            &b.password,
            &client,
            now_ms(),
        )
        .await?,
    ))
}

/// `POST /admin/api/passkeys/register/finish` `{ challenge_id, credential }`.
pub async fn register_finish(
    State(state): State<AppState>,
    owner: Owner,
    body: axum::body::Bytes,
) -> Result<Json<PasskeyView>, ApiError> {
    let b: FinishBody = json_body(&body)?;
    Ok(Json(
        passkeys::finish_registration(
            &state,
            &owner.owner_id,
            &b.challenge_id,
            b.credential,
            now_ms(),
        )
        .await?,
    ))
}

/// `POST /admin/api/passkeys/{id}/delete`.
pub async fn remove(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    passkeys::remove(&state, &owner.owner_id, &id).await?;
    Ok(Json(json!({ "removed": id })))
}

/// `POST /admin/api/passkeys/require` `{ require, password }`.
pub async fn require(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    owner: Owner,
    body: axum::body::Bytes,
) -> Result<Json<PasskeysView>, ApiError> {
    let b: RequireBody = json_body(&body)?;
    let client = addr.ip().to_string();
    passkeys::set_required(
        &state,
        &owner.owner_id,
        b.require,
        &b.password,
        &client,
        now_ms(),
    )
    .await?;
    Ok(Json(passkeys::list(&state, &owner.owner_id).await?))
}

/// `GET /admin/api/login/passkey/options` (open): which sign-in methods this gateway offers, so the
/// login page shows "Sign in with a passkey" only when the gateway can use passkeys. Says
/// nothing about the owner (not even whether any passkey exists).
pub async fn login_options(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "passkeys": matches!(*state.passkeys, crate::engine::relying_party::RelyingParty::Ready(_)),
    }))
}

/// `POST /admin/api/login/passkey/start` (open): a challenge for any of the gateway's passkeys.
pub async fn login_start(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
) -> Result<Json<PasskeyChallenge>, ApiError> {
    let client = addr.ip().to_string();
    Ok(Json(
        passkeys::start_login(&state, &client, now_ms()).await?,
    ))
}

/// `POST /admin/api/login/passkey/finish` (open) `{ challenge_id, credential }`: completes a
/// passkey sign-in or the second factor after the password, and starts the session.
pub async fn login_finish(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let b: FinishBody = json_body(&body)?;
    let client = addr.ip().to_string();
    let done = passkeys::finish_login(
        &state,
        &b.challenge_id,
        b.credential,
        &client,
        user_agent(&headers),
        now_ms(),
    )
    .await?;
    Ok(session_response(&state, &done.owner.username, done.session))
}
