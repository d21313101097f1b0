//! The extractor behind every app route: a handler that takes an [`AppRequest`] only runs for a
//! request with a valid DPoP-bound access token, a valid proof by the bound key, and a grant that
//! may be used now from the client's address ([`check_grant`]: active, inside its validity
//! window, from one of its `source_ips`); the raw body comes with it (the proof may have bound
//! its digest). Refresh applies the same [`check_grant`].

use std::net::IpAddr;

use axum::extract::{FromRequest, OriginalUri, Request};
use http::HeaderMap;

use crate::base::clock::now_ms;
use crate::base::error::{ApiError, ProofSite};
use crate::domain::grants::{
    AppAuth, AppRequest, BEARER_PREFIX, RelayRequest, check_grant, check_row,
};
use crate::domain::{proof, tokens};
use crate::engine::replay::Partition;
use crate::http::routes::client_ip::ClientIp;
use crate::state::AppState;

/// The token of the single `Authorization: DPoP <token>` header.
pub fn dpop_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(ApiError::InvalidToken(
            "send exactly one Authorization: DPoP <access token> header",
        ));
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::InvalidToken("the Authorization header is not ASCII"))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    let token = token.trim();
    if scheme.eq_ignore_ascii_case("dpop") && !token.is_empty() {
        Ok(token)
    } else if scheme.eq_ignore_ascii_case("bearer") && token.starts_with(BEARER_PREFIX) {
        Err(ApiError::InvalidToken("bearer keys are handled separately"))
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Err(ApiError::InvalidToken(
            "this token is bound to a key: use the DPoP scheme with a proof, not Bearer",
        ))
    } else {
        Err(ApiError::InvalidToken(
            "send Authorization: DPoP <access token>",
        ))
    }
}

impl FromRequest<AppState> for AppRequest {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        app_request(req, state, false).await
    }
}

impl FromRequest<AppState> for RelayRequest {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        app_request(req, state, true).await.map(RelayRequest)
    }
}

/// An app's request, its proof checked; with `defer_claim`, the proof's claim across replicas is
/// left in [`AppRequest::replay`] for the admission to make.
async fn app_request(
    req: Request,
    state: &AppState,
    defer_claim: bool,
) -> Result<AppRequest, ApiError> {
    let now = now_ms();
    let (parts, body) = req.into_parts();
    let request_id = parts
        .headers
        .get(crate::base::ids::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let client_ip = parts.extensions.get::<ClientIp>().map(|c| c.0);
    let method = parts.method.clone();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    if let Some(key) = bearer_key(&parts.headers) {
        let mut r = bearer_request(state, &key, body, client_ip, now, request_id).await?;
        r.method = method;
        r.path_and_query = path_and_query;
        return Ok(r);
    }
    let token = dpop_token(&parts.headers)?.to_string();
    let claims = tokens::verify_access(&state.keys, &token, now)?;
    let body = axum::body::to_bytes(body, state.config.max_body_bytes)
        .await
        .map_err(|_| ApiError::TooLarge)?;
    let grant = state
        .grants
        .get(&state.store, &claims.grant_id, now)
        .await?
        .ok_or(ApiError::InvalidToken("the access token is not valid"))?;
    check_grant(&grant, client_ip, now)?;
    if grant.row.jkt != claims.jkt {
        return Err(ApiError::InvalidToken(
            "the access token was issued to a key this grant no longer uses",
        ));
    }
    let require_body_hash = grant.policy.require_body_hash;
    let path = parts
        .extensions
        .get::<OriginalUri>()
        .map(|u| u.0.path().to_string());
    let path = path.as_deref().unwrap_or(parts.uri.path());
    let request = proof::ProofRequest {
        method: parts.method.as_str(),
        path,
        headers: &parts.headers,
        body: Some(&body),
        access_token: Some(&token),
        expected_jkt: Some(&grant.row.jkt),
        require_body_hash,
        site: ProofSite::Resource,
        partition: Partition::Apps,
        known_key: grant.proof_key(),
    };
    let (proof, replay) = if defer_claim {
        proof::verify_deferring(state, &request, now)?
    } else {
        (proof::verify(state, &request, now).await?, None)
    };
    grant.remember_proof_key(&proof.key);
    // `last_used_at` is coarse (a minute): no write at all while it is fresh.
    if grant.claim_touch(now, pairgate_store::grants::TOUCH_INTERVAL_MS) {
        let store = state.store.clone();
        let id = grant.row.id.clone();
        tokio::spawn(async move {
            let _ = store.touch_grant(&id, now).await;
        });
    }
    Ok(AppRequest {
        request_id,
        method,
        path_and_query,
        grant,
        client_ip,
        auth: AppAuth::Dpop {
            access_token: token,
            proof: Box::new(proof),
        },
        body,
        now_ms: now,
        replay,
    })
}

/// An owner-issued bearer key in `Authorization: Bearer pgbk_...`, if that is what was sent.
fn bearer_key(headers: &HeaderMap) -> Option<String> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let (Some(v), None) = (values.next(), values.next()) else {
        return None;
    };
    let (scheme, token) = v.to_str().ok()?.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer")
        && token.starts_with(BEARER_PREFIX)
        && token.len() <= 200)
        .then(|| token.to_string())
}

async fn bearer_request(
    state: &AppState,
    key: &str,
    body: axum::body::Body,
    client_ip: Option<IpAddr>,
    now: i64,
    request_id: String,
) -> Result<AppRequest, ApiError> {
    let digest = state
        .keys
        .digest(crate::engine::keys::Purpose::BearerKey, key.as_bytes());
    let Some((grant, expires)) = state.store.grant_by_bearer(&digest).await? else {
        return Err(ApiError::InvalidToken("the bearer key is not valid"));
    };
    if expires <= now {
        return Err(ApiError::InvalidToken("the bearer key has expired"));
    }
    let grant = std::sync::Arc::new(check_row(grant, client_ip, now)?);
    let body = axum::body::to_bytes(body, state.config.max_body_bytes)
        .await
        .map_err(|_| ApiError::TooLarge)?;
    Ok(AppRequest {
        request_id,
        method: http::Method::GET,
        path_and_query: String::new(),
        grant,
        client_ip,
        auth: AppAuth::Bearer,
        body,
        now_ms: now,
        replay: None,
    })
}
