//! App routes about the grant itself: what it may do, and rotating its key.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use pairgate_protocol::dpop::BODY_HASH_CLAIM;
use serde_json::{Value, json};

use crate::base::error::{ApiError, ProofSite};
use crate::domain::grants::AppRequest;
use crate::domain::proof;
use crate::engine::replay::Partition;
use crate::state::AppState;

/// `GET /v1/grant`: the app's own grant: policy, key, validity, and what remains of its limits
/// and budgets.
pub async fn grant(
    State(state): State<AppState>,
    req: AppRequest,
) -> Result<Json<Value>, ApiError> {
    let g = &req.grant.row;
    let quotas = state.relay.quota_limits(req.grant.policy_json());
    let remaining = state
        .limiter
        .remaining_with_quotas(&g.id, &req.grant.policy, &quotas, req.now_ms)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("limits: {e}")))?;
    Ok(Json(json!({
        "remaining": remaining,
        "object": "grant",
        "id": g.id,
        "app_name": g.app_name,
        "status": g.status,
        "origin": g.origin,
        "key_thumbprint": g.jkt,
        "key_alg": g.alg,
        "policy": req.grant.policy_json(),
        // Unix seconds, like every time on the wire (the policy's own fields are milliseconds).
        "expires_at": req.grant.policy.expires_at.map(|ms| ms.div_euclid(1000)),
        "created_at": g.created_at.div_euclid(1000),
        "body_hash_claim": BODY_HASH_CLAIM,
        "auth": match req.auth {
            crate::domain::grants::AppAuth::Dpop { .. } => "dpop",
            crate::domain::grants::AppAuth::Bearer => "bearer (weaker: no proof of possession)",
        },
    })))
}

/// `POST /v1/grant/rotate-key`: authenticated by the current key; the `new-dpop` header holds a
/// proof for the same request (same method, URL and access token) made with the new key. Like
/// every app route, only for a grant usable now from this address (`AppRequest`).
pub async fn rotate_key(
    State(state): State<AppState>,
    headers: http::HeaderMap,
    req: AppRequest,
) -> Result<Response, ApiError> {
    let Some(access_token) = req.access_token() else {
        return Err(ApiError::Forbidden {
            code: "dpop_required",
            message: "key rotation needs proof of possession, not a bearer key".into(),
        });
    };
    let mut values = headers.get_all("new-dpop").iter();
    let new_proof = match (values.next(), values.next()) {
        (Some(v), None) => v.to_str().map_err(|_| {
            ApiError::bad_request("invalid_request", "the New-DPoP header is not ASCII")
        })?,
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "exactly one New-DPoP header is allowed",
            ));
        }
        (None, _) => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "the New-DPoP header with a proof by the new key is required",
            ));
        }
    };
    let mut h = http::HeaderMap::new();
    h.insert(
        "dpop",
        http::HeaderValue::from_str(new_proof)
            .map_err(|_| ApiError::bad_request("invalid_request", "New-DPoP is malformed"))?,
    );
    let verified = proof::verify(
        &state,
        &proof::ProofRequest {
            method: "POST",
            path: ROTATE_PATH,
            headers: &h,
            body: Some(&req.body),
            access_token: Some(access_token),
            expected_jkt: None,
            require_body_hash: false,
            site: ProofSite::Resource,
            partition: Partition::Apps,
            known_key: None,
        },
        req.now_ms,
    )
    .await?;
    let tokens =
        crate::domain::pairing::rotate_key(&state, &req.grant.row, &verified, req.now_ms).await?;
    Ok(crate::http::routes::oauth::no_store(
        &state, tokens, req.now_ms,
    ))
}

pub const ROTATE_PATH: &str = "/v1/grant/rotate-key";
