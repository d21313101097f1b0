//! The owner's JSON API (what the admin UI calls): setup, login and sessions; pairings, consent
//! decisions, grants, audit. Every route but setup and login takes the `Owner` extractor.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, header};
use pairgate_protocol::jwk::fingerprint_of;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::base::clock::now_ms;
use crate::base::error::ApiError;
use crate::domain::consent::{Decision, PendingView};
use crate::domain::owner::{self, LoginOutcome, NewSession, SESSION_COOKIE};
use crate::domain::pairing::GrantAction;
use crate::domain::passkeys::PasskeyChallenge;
use crate::http::owner_session::Owner;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupBody {
    token: String,
    username: String,
    password: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    username: String,
    password: String,
}

pub(crate) fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_request",
            format!("the JSON body is not valid: {e}"),
        )
    })
}

/// The logged-in owner and the CSRF token the console sends on every state-changing request.
#[derive(Debug, serde::Serialize, ts_rs::TS)]
pub struct SessionView {
    pub username: String,
    pub csrf_token: String,
}

/// What `POST /admin/api/login` answers: a session, or (when the owner requires a passkey) the
/// challenge a passkey must answer at `/admin/api/login/passkey/finish` before there is one.
#[derive(Debug, serde::Serialize, ts_rs::TS)]
#[serde(untagged)]
pub enum LoginView {
    Session(SessionView),
    PasskeyRequired { passkey_required: PasskeyChallenge },
}

fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The response that starts a session: its cookie, and the session view with the CSRF token.
pub(crate) fn session_response(state: &AppState, username: &str, s: NewSession) -> Response {
    let secure = if state.config.public_url.scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    let max_age = (s.expires_at - now_ms()) / 1000;
    let cookie = format!(
        "{SESSION_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}",
        s.token
    );
    let mut res = Json(LoginView::Session(SessionView {
        username: username.to_owned(),
        csrf_token: s.csrf,
    }))
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    no_store(res)
}

pub(crate) fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
}

/// `POST /admin/api/setup`: create the owner with the one-time setup token.
pub async fn setup(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let b: SetupBody = json_body(&body)?;
    let now = now_ms();
    let owner = owner::create_owner(&state, Some(&b.token), &b.username, &b.password, now).await?;
    let session = owner::start_session(&state, &owner, user_agent(&headers), now).await?;
    Ok(session_response(&state, &owner.username, session))
}

/// `POST /admin/api/login`: a session, or a passkey challenge when the owner requires a passkey.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let b: LoginBody = json_body(&body)?;
    let outcome = owner::login(
        &state,
        &b.username,
        &b.password,
        &addr.ip().to_string(),
        user_agent(&headers),
        now_ms(),
    )
    .await?;
    Ok(match outcome {
        LoginOutcome::Session(owner, session) => session_response(&state, &owner.username, session),
        LoginOutcome::PasskeyRequired(challenge) => no_store(
            Json(LoginView::PasskeyRequired {
                passkey_required: challenge,
            })
            .into_response(),
        ),
    })
}

/// `GET /admin/api/session`: who is logged in, and the CSRF token for this session.
pub async fn session(
    State(state): State<AppState>,
    owner: Owner,
) -> Result<Json<SessionView>, ApiError> {
    let o = state
        .store
        .owner_by_id(&owner.owner_id)
        .await?
        .ok_or(ApiError::OwnerRequired)?;
    Ok(Json(SessionView {
        username: o.username,
        csrf_token: owner.csrf,
    }))
}

/// `POST /admin/api/logout`: ends this session and clears the cookie.
pub async fn logout(State(state): State<AppState>, owner: Owner) -> Result<Response, ApiError> {
    state.store.delete_session(&owner.session_hash).await?;
    state
        .store
        .audit(&owner.actor(), "owner.logout", None, None)
        .await?;
    let mut res = Json(json!({ "ok": true })).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("pairgate_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    Ok(res)
}

/// `GET /admin/api/sessions`.
pub async fn sessions(
    State(state): State<AppState>,
    owner: Owner,
) -> Result<Json<Value>, ApiError> {
    let rows = state.store.list_sessions(&owner.owner_id, now_ms()).await?;
    let list: Vec<Value> = rows
        .iter()
        .map(|r| json!({ "current": r.id_hash == owner.session_hash, "created_at": r.created_at, "last_seen_at": r.last_seen_at, "expires_at": r.expires_at, "user_agent": r.user_agent }))
        .collect();
    Ok(Json(json!({ "data": list })))
}

/// `POST /admin/api/sessions/revoke-all`: sign out everywhere.
pub async fn revoke_sessions(
    State(state): State<AppState>,
    owner: Owner,
) -> Result<Json<Value>, ApiError> {
    let n = state.store.delete_owner_sessions(&owner.owner_id).await?;
    state
        .store
        .audit(
            &owner.actor(),
            "owner.sessions_revoked",
            None,
            Some(&json!({ "count": n })),
        )
        .await?;
    Ok(Json(json!({ "revoked": n })))
}

/// A grant as the owner sees it (the app's key only as its fingerprint).
#[derive(Debug, serde::Serialize, ts_rs::TS)]
pub struct GrantView {
    pub id: String,
    pub app_name: String,
    /// `active`, `suspended` or `revoked`.
    pub status: String,
    pub origin: String,
    pub key_fingerprint: String,
    pub key_alg: String,
    pub policy: Value,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

fn grant_view(g: &pairgate_store::GrantRow) -> GrantView {
    GrantView {
        id: g.id.clone(),
        app_name: g.app_name.clone(),
        status: g.status.clone(),
        origin: g.origin.clone(),
        key_fingerprint: fingerprint_of(&g.jkt),
        key_alg: g.alg.clone(),
        policy: serde_json::from_str::<Value>(&g.policy).unwrap_or_default(),
        created_at: g.created_at,
        last_used_at: g.last_used_at,
        revoked_at: g.revoked_at,
    }
}

/// `GET /admin/api/grants`.
pub async fn grants(State(state): State<AppState>, _owner: Owner) -> Result<Json<Value>, ApiError> {
    let rows = state.store.list_grants().await?;
    Ok(Json(
        json!({ "data": rows.iter().map(grant_view).collect::<Vec<_>>() }),
    ))
}

/// `GET /admin/api/grants/{id}`.
pub async fn grant(
    State(state): State<AppState>,
    _owner: Owner,
    Path(id): Path<String>,
) -> Result<Json<GrantView>, ApiError> {
    let g = state
        .store
        .get_grant(&id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(grant_view(&g)))
}

/// `POST /admin/api/grants/{id}/{revoke|suspend|resume}`.
pub async fn grant_action(
    State(state): State<AppState>,
    owner: Owner,
    Path((id, action)): Path<(String, String)>,
) -> Result<Json<GrantView>, ApiError> {
    let action = match action.as_str() {
        "revoke" => GrantAction::Revoke,
        "suspend" => GrantAction::Suspend,
        "resume" => GrantAction::Resume,
        _ => return Err(ApiError::NotFound),
    };
    crate::domain::pairing::set_status(&state, &id, action, &owner.actor(), now_ms()).await?;
    let g = state
        .store
        .get_grant(&id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(grant_view(&g)))
}

/// `PUT /admin/api/grants/{id}/policy`: the grant's whole new policy (as a pairing takes it).
#[derive(Debug, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    #[ts(type = "Partial<GrantPolicy>")]
    pub policy: Value,
}

/// `PUT /admin/api/grants/{id}/policy`: replace a grant's policy (widen or narrow); it applies
/// from the app's next request.
pub async fn edit_policy(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<GrantView>, ApiError> {
    let b: PolicyBody = json_body(&body)?;
    let g = crate::domain::grant_policy::replace(&state, &id, &b.policy, &owner.actor(), now_ms())
        .await?;
    Ok(Json(grant_view(&g)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPairingBody {
    #[serde(default)]
    app_name: Option<String>,
    #[serde(default)]
    ttl_secs: Option<u64>,
    #[serde(default)]
    policy: Option<Value>,
}

/// `POST /admin/api/pairings`: create a pairing string (shown once).
pub async fn create_pairing(
    State(state): State<AppState>,
    owner: Owner,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let b: NewPairingBody = json_body(&body)?;
    let policy = b.policy.unwrap_or_else(|| json!({}));
    let created = crate::domain::pairing::create(
        &state,
        b.app_name,
        &policy,
        b.ttl_secs.map(Duration::from_secs),
        &owner.actor(),
        now_ms(),
    )
    .await?;
    Ok(Json(
        serde_json::to_value(created).map_err(|e| ApiError::Internal(e.into()))?,
    ))
}

/// `GET /admin/api/pairings`: unused pairings (their secrets are not recoverable).
pub async fn pairings(
    State(state): State<AppState>,
    _owner: Owner,
) -> Result<Json<Value>, ApiError> {
    let rows = state.store.list_open_pairings(now_ms()).await?;
    Ok(Json(json!({ "data": rows })))
}

/// `POST /admin/api/pairings/{id}/cancel`.
pub async fn cancel_pairing(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !state.store.cancel_pairing(&id, now_ms()).await? {
        return Err(ApiError::NotFound);
    }
    state
        .store
        .audit(&owner.actor(), "pairing.cancelled", Some(&id), None)
        .await?;
    Ok(Json(json!({ "cancelled": id })))
}

/// `GET /admin/api/consents`: pending consent requests.
pub async fn consents(
    State(state): State<AppState>,
    _owner: Owner,
) -> Result<Json<Value>, ApiError> {
    let rows = state.store.pending_device_requests(now_ms()).await?;
    Ok(Json(
        json!({ "data": rows.iter().map(PendingView::of).collect::<Vec<_>>() }),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    #[serde(default)]
    policy: Option<Value>,
}

/// `POST /admin/api/consents/{user_code}/approve` (optionally narrowing with `policy`).
pub async fn approve(
    State(state): State<AppState>,
    owner: Owner,
    Path(code): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let b: ApproveBody = if body.is_empty() {
        ApproveBody::default()
    } else {
        json_body(&body)?
    };
    let granted = crate::domain::consent::decide(
        &state,
        &code,
        Decision::Approve(b.policy),
        &owner.actor(),
        now_ms(),
    )
    .await?;
    Ok(Json(json!({ "approved": code, "policy": granted })))
}

/// `POST /admin/api/consents/{user_code}/deny`.
pub async fn deny(
    State(state): State<AppState>,
    owner: Owner,
    Path(code): Path<String>,
) -> Result<Json<Value>, ApiError> {
    crate::domain::consent::decide(&state, &code, Decision::Deny, &owner.actor(), now_ms()).await?;
    Ok(Json(json!({ "denied": code })))
}

/// `GET /admin/api/audit`: the newest audit events.
pub async fn audit(State(state): State<AppState>, _owner: Owner) -> Result<Json<Value>, ApiError> {
    let rows = state.store.audit_recent(200).await?;
    Ok(Json(json!({ "data": rows })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BearerBody {
    #[serde(default)]
    valid_for_secs: Option<u64>,
}

/// `POST /admin/api/grants/{id}/bearer`: issue the optional (weaker) bearer key, shown once.
pub async fn issue_bearer(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let b: BearerBody = if body.is_empty() {
        BearerBody::default()
    } else {
        json_body(&body)?
    };
    let valid = Duration::from_secs(
        b.valid_for_secs
            .unwrap_or(30 * 24 * 3600)
            .clamp(60, 365 * 24 * 3600),
    );
    let (key, expires_at) =
        crate::domain::pairing::issue_bearer(&state, &id, valid, &owner.actor(), now_ms()).await?;
    Ok(Json(json!({
        "bearer_key": key,
        "expires_at": expires_at,
        "warning": "a bearer key works without the app's private key: anyone who copies it can use this grant until it expires or is revoked",
    })))
}

/// `POST /admin/api/grants/{id}/bearer/revoke`.
pub async fn revoke_bearer(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    crate::domain::pairing::revoke_bearer(&state, &id, &owner.actor(), now_ms()).await?;
    Ok(Json(json!({ "revoked": id })))
}
