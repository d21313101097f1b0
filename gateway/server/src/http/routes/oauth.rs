//! The OAuth endpoints apps talk to before they have a grant: the token endpoint (pairing,
//! device code and refresh grants, all DPoP-bound), device authorization (consent requests) and
//! the RFC 8414 metadata document. Errors here use the RFC 6749 body shape.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, header};
use pairgate_protocol::error::codes;
use pairgate_protocol::oauth::{GRANT_TYPE_DEVICE_CODE, GRANT_TYPE_PAIRING, GRANT_TYPE_REFRESH};
use serde_json::{Value, json};

use crate::base::clock::now_ms;
use crate::base::error::{ApiError, OAuthError, ProofSite};
use crate::domain::proof;
use crate::engine::replay::Partition;
use crate::state::AppState;

pub const TOKEN_PATH: &str = "/oauth/token";
pub const DEVICE_PATH: &str = "/oauth/device_authorization";

/// Parses an `application/x-www-form-urlencoded` body; repeated parameters are refused.
pub fn form(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return Err(ApiError::bad_request(
            codes::INVALID_REQUEST,
            "send the parameters as application/x-www-form-urlencoded",
        ));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| ApiError::bad_request(codes::INVALID_REQUEST, "the form body is malformed"))?;
    let mut map = HashMap::new();
    for (k, v) in pairs {
        if map.insert(k.clone(), v).is_some() {
            return Err(ApiError::bad_request(
                codes::INVALID_REQUEST,
                format!("parameter {k} is repeated"),
            ));
        }
    }
    Ok(map)
}

fn param<'a>(form: &'a HashMap<String, String>, name: &'static str) -> Result<&'a str, ApiError> {
    form.get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(codes::INVALID_REQUEST, format!("missing parameter {name}"))
        })
}

/// A JSON answer with `Cache-Control: no-store` and the current nonce when nonces are on.
pub fn no_store(state: &AppState, body: impl serde::Serialize, now: i64) -> Response {
    let mut res = Json(body).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if state.config.dpop_require_nonce
        && let Ok(v) = HeaderValue::from_str(&proof::current_nonce(state, now))
    {
        res.headers_mut().insert("dpop-nonce", v);
    }
    res
}

/// The cheap checks every open OAuth request passes before anything costly (a database lookup,
/// a signature check, a replay-cache entry): exactly one `DPoP` header, then the client
/// address's request rate (`oauth.client_requests_per_minute`).
fn admit(state: &AppState, headers: &HeaderMap, client: IpAddr, now: i64) -> Result<(), ApiError> {
    proof::single_proof_header(headers, ProofSite::TokenEndpoint)?;
    rate(state, client, now)
}

/// The client address's request rate on the open OAuth endpoints.
fn rate(state: &AppState, client: IpAddr, now: i64) -> Result<(), ApiError> {
    state.oauth_rate.check(client, now).map_err(|retry| {
        tracing::warn!(%client, "OAuth request rate exceeded");
        ApiError::TooManyRequests {
            code: "too_many_requests",
            message: "too many token requests from this address; slow down and retry later".into(),
            retry_after_secs: retry,
        }
    })
}

/// A proof request for an open OAuth endpoint.
fn token_proof<'a>(
    path: &'a str,
    headers: &'a HeaderMap,
    body: &'a [u8],
    partition: Partition,
) -> proof::ProofRequest<'a> {
    proof::ProofRequest {
        method: "POST",
        path,
        headers,
        body: Some(body),
        access_token: None,
        expected_jkt: None,
        require_body_hash: false,
        site: ProofSite::TokenEndpoint,
        partition,
        known_key: None,
    }
}

/// `POST /oauth/token`. In order: the form, a known `grant_type` and its parameters, the DPoP
/// header and the client's rate ([`admit`]); then the credential it names (pairing string,
/// device code, refresh token), and only for a live one the proof. Pairing and refresh proofs
/// go into the apps' replay partition, device-code polls (anyone can start a consent request)
/// into the strangers'.
pub async fn token(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let now = now_ms();
    let client = addr.ip();
    let form = form(&headers, &body)?;
    let grant_type = param(&form, "grant_type")?;
    let credential = match grant_type {
        GRANT_TYPE_PAIRING => param(&form, "pairing_code")?,
        GRANT_TYPE_DEVICE_CODE => param(&form, "device_code")?,
        GRANT_TYPE_REFRESH => param(&form, "refresh_token")?,
        _ => {
            return Err(ApiError::bad_request(
                codes::UNSUPPORTED_GRANT_TYPE,
                "this grant_type is not supported",
            )
            .into());
        }
    };
    admit(&state, &headers, client, now)?;
    let apps = token_proof(TOKEN_PATH, &headers, &body, Partition::Apps);
    let response = match grant_type {
        GRANT_TYPE_PAIRING => {
            let app_name = form.get("client_name").cloned();
            crate::domain::pairing::redeem_guarded(&state, credential, app_name, &apps, client, now)
                .await?
        }
        GRANT_TYPE_DEVICE_CODE => {
            let strangers = token_proof(TOKEN_PATH, &headers, &body, Partition::Strangers);
            crate::domain::consent::poll(&state, credential, &strangers, now).await?
        }
        _ => crate::domain::pairing::refresh(&state, credential, &apps, client, now).await?,
    };
    Ok(no_store(&state, response, now))
}

/// `POST /oauth/device_authorization`: an app asks the owner for access, naming the key it will
/// use by a DPoP proof, or by its thumbprint in `dpop_jkt` (RFC 9449 §10, for generic OAuth
/// clients that sign only token requests), or both (they must agree). The parameters, the DPoP
/// header, the client's rate and the caps on waiting requests come before the proof, which goes
/// into the strangers' replay partition.
pub async fn device_authorization(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let now = now_ms();
    let client = addr.ip();
    let form = form(&headers, &body)?;
    let app_name = param(&form, "client_name")?;
    let requested: Value = match form.get("policy") {
        Some(text) => serde_json::from_str(text)
            .map_err(|_| ApiError::bad_request("invalid_policy", "parameter policy is not JSON"))?,
        None => json!({}),
    };
    let dpop_jkt = match form.get("dpop_jkt").map(String::as_str) {
        None => None,
        Some(j) if is_thumbprint(j) => Some(j),
        Some(_) => {
            return Err(ApiError::bad_request(
                codes::INVALID_REQUEST,
                "dpop_jkt must be the key's RFC 7638 thumbprint: base64url of a SHA-256 digest, 43 characters",
            )
            .into());
        }
    };
    let has_proof = headers.contains_key("dpop");
    if has_proof || dpop_jkt.is_none() {
        admit(&state, &headers, client, now)?;
    } else {
        rate(&state, client, now)?;
    }
    let strangers = token_proof(DEVICE_PATH, &headers, &body, Partition::Strangers);
    // Without a proof, `admit` above refused a request that names no key either.
    let key = match (has_proof, dpop_jkt) {
        (false, Some(jkt)) => crate::domain::consent::KeyBinding::Thumbprint(jkt),
        (_, jkt) => crate::domain::consent::KeyBinding::Proof(&strangers, jkt),
    };
    let response =
        crate::domain::consent::start(&state, app_name, &requested, key, client, now).await?;
    Ok(no_store(&state, response, now))
}

/// An RFC 7638 SHA-256 thumbprint: 43 base64url characters.
fn is_thumbprint(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
pub async fn metadata(State(state): State<AppState>) -> Json<Value> {
    let base = state
        .config
        .public_url
        .as_str()
        .trim_end_matches('/')
        .to_string();
    Json(json!({
        "issuer": base,
        "token_endpoint": format!("{base}{TOKEN_PATH}"),
        "device_authorization_endpoint": format!("{base}{DEVICE_PATH}"),
        "grant_types_supported": [GRANT_TYPE_PAIRING, GRANT_TYPE_DEVICE_CODE, GRANT_TYPE_REFRESH],
        "token_endpoint_auth_methods_supported": ["none"],
        "dpop_signing_alg_values_supported": ["EdDSA", "Ed25519", "ES256"],
        "dpop_bound_access_tokens_required": true,
        "response_types_supported": [],
        "pairgate_body_hash_claim": pairgate_protocol::dpop::BODY_HASH_CLAIM,
        "pairgate_dpop_nonce_required": state.config.dpop_require_nonce,
        "pairgate_key_rotation_endpoint": format!("{base}/v1/grant/rotate-key"),
        "pairgate_grant_endpoint": format!("{base}/v1/grant"),
    }))
}
