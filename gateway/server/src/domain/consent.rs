//! App-initiated consent (RFC 8628 device authorization): the app asks for a policy and shows a
//! user code and its key fingerprint; only the authenticated owner can approve (narrowing the
//! request, never widening it) or deny; the app then redeems its device code once.

use std::net::IpAddr;

use pairgate_policy::GrantPolicy;
use pairgate_protocol::jwk::fingerprint_of;
use pairgate_protocol::oauth::{DeviceAuthorizationResponse, TokenResponse};
use pairgate_protocol::user_code;
use pairgate_store::{DeviceRow, StoreError};
use serde_json::json;

use crate::base::clock::millis as ms;
use crate::base::error::ApiError;
use crate::base::net::client_key;
use crate::config::CONSENT_PENDING_PER_CLIENT;
use crate::domain::pairing::{new_grant, new_refresh, token_response};
use crate::domain::proof::ProofRequest;
use crate::engine::keys::Purpose;
use crate::state::AppState;

/// Pending requests allowed at once, from everyone (bounds the table and the owner's queue).
pub const MAX_PENDING: i64 = 500;
/// Seconds an app must wait between polls.
pub const POLL_INTERVAL_SECS: u64 = 5;

/// The device authorization answer plus the key fingerprint the app shows its user.
#[derive(Debug, serde::Serialize)]
pub struct Started {
    #[serde(flatten)]
    pub device: DeviceAuthorizationResponse,
    pub key_fingerprint: String,
}

/// How a consent request names the app's key.
#[derive(Debug)]
pub enum KeyBinding<'a> {
    /// A DPoP proof by the key, and optionally `dpop_jkt`, which must then be its thumbprint.
    Proof(&'a ProofRequest<'a>, Option<&'a str>),
    /// Only `dpop_jkt` (RFC 9449 §10): the key proves itself at the token poll.
    Thumbprint(&'a str),
}

/// An app starts a consent request; its key is bound now, so the owner sees its fingerprint.
/// The caps (per client address, then overall) are checked before the proof is verified.
pub async fn start(
    state: &AppState,
    app_name: &str,
    requested: &serde_json::Value,
    binding: KeyBinding<'_>,
    client: IpAddr,
    now: i64,
) -> Result<Started, ApiError> {
    let app_name: String = app_name
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect();
    let policy = crate::domain::grant_policy::parse(requested)?;
    let key = client_key(client).to_string();
    if let Err(retry) = state.consent_starts.take(&key, now) {
        tracing::warn!(%client, "consent requests refused: this address has too many waiting");
        return Err(ApiError::TooManyRequests {
            code: "too_many_pending_requests",
            message: format!(
                "this address already started {CONSENT_PENDING_PER_CLIENT} consent requests; wait \
                 for the owner to decide them or for them to expire"
            ),
            retry_after_secs: retry,
        });
    }
    // Counted before anything slow, so concurrent requests cannot slip past the cap; given back
    // when no request is queued after all.
    let queued = async {
        if state.store.count_pending_device_requests(now).await? >= MAX_PENDING {
            return Err(ApiError::TooManyRequests {
                code: "too_many_pending_requests",
                message: "too many consent requests are waiting for the owner".into(),
                retry_after_secs: 60,
            });
        }
        let (jkt, alg) = match binding {
            KeyBinding::Proof(proof, named) => {
                let proof = crate::domain::proof::verify(state, proof, now).await?;
                if named.is_some_and(|j| j != proof.jkt) {
                    return Err(ApiError::bad_request(
                        "invalid_dpop_proof",
                        "the DPoP proof's key is not the one dpop_jkt names",
                    ));
                }
                (proof.jkt, proof.alg.as_str().to_string())
            }
            // The algorithm is learnt from the first token poll's proof.
            KeyBinding::Thumbprint(jkt) => (jkt.to_string(), String::new()),
        };
        queue(state, app_name, &policy, jkt, alg, now).await
    }
    .await;
    if queued.is_err() {
        state.consent_starts.give_back(&key, now);
    }
    queued
}

/// Stores a consent request whose proof was verified.
async fn queue(
    state: &AppState,
    app_name: String,
    policy: &GrantPolicy,
    jkt: String,
    alg: String,
    now: i64,
) -> Result<Started, ApiError> {
    let device_code = format!("pgdc_{}", user_code::new_device_code(&mut rand_core::OsRng));
    let code = user_code::generate(&mut rand_core::OsRng);
    let ttl = state.config.consent_ttl;
    let row = DeviceRow {
        device_code_hash: state
            .keys
            .digest(Purpose::DeviceCode, device_code.as_bytes()),
        user_code: code.clone(),
        app_name: app_name.clone(),
        requested_policy: serde_json::to_string(&policy)
            .map_err(|e| ApiError::Internal(e.into()))?,
        granted_policy: None,
        jkt: jkt.clone(),
        alg,
        status: "pending".into(),
        created_at: now,
        expires_at: now + ms(ttl),
        last_poll_at: None,
        grant_id: None,
    };
    state.store.insert_device_request(&row).await?;
    state
        .store
        .audit(
            "app",
            "consent.requested",
            Some(&code),
            Some(&json!({ "app_name": app_name, "jkt": jkt })),
        )
        .await?;
    let base = state
        .config
        .public_url
        .as_str()
        .trim_end_matches('/')
        .to_string();
    Ok(Started {
        device: DeviceAuthorizationResponse {
            device_code,
            user_code: code.clone(),
            verification_uri: format!("{base}/admin/consent"),
            verification_uri_complete: format!("{base}/admin/consent?user_code={code}"),
            expires_in: ttl.as_secs(),
            interval: POLL_INTERVAL_SECS,
        },
        key_fingerprint: fingerprint_of(&jkt),
    })
}

/// The app polls with its device code and a proof by the key it started with. An unknown device
/// code is refused before the proof is verified.
pub async fn poll(
    state: &AppState,
    device_code: &str,
    proof: &ProofRequest<'_>,
    now: i64,
) -> Result<TokenResponse, ApiError> {
    let invalid = ApiError::InvalidGrant {
        message: "the device code is not valid",
    };
    if !device_code.starts_with("pgdc_") || device_code.len() > 200 {
        return Err(invalid);
    }
    let hash = state
        .keys
        .digest(Purpose::DeviceCode, device_code.as_bytes());
    let Some(row) = state.store.device_by_code_hash(&hash).await? else {
        return Err(invalid);
    };
    let proof = &crate::domain::proof::verify(state, proof, now).await?;
    state.store.record_device_poll(&hash, now).await?;
    if row.jkt != proof.jkt {
        return Err(ApiError::InvalidGrant {
            message: "the device code was requested with another key",
        });
    }
    if row.expires_at <= now && row.status != "redeemed" {
        return Err(ApiError::ExpiredToken);
    }
    match row.status.as_str() {
        "pending" => {
            let too_fast = row
                .last_poll_at
                .is_some_and(|t| now - t < (POLL_INTERVAL_SECS as i64 * 1000) - 500);
            Err(if too_fast {
                ApiError::SlowDown
            } else {
                ApiError::AuthorizationPending
            })
        }
        "denied" => Err(ApiError::AccessDenied),
        "approved" => {
            let policy = row
                .granted_policy
                .clone()
                .unwrap_or_else(|| row.requested_policy.clone());
            let grant = new_grant(row.app_name.clone(), policy, proof, "consent", now);
            let (refresh, refresh_row) = new_refresh(state, now);
            if !state
                .store
                .redeem_device_request(&hash, now, &grant, &refresh_row)
                .await?
            {
                return Err(invalid);
            }
            state
                .store
                .audit(
                    &format!("app:{}", grant.id),
                    "consent.redeemed",
                    Some(&row.user_code),
                    Some(&json!({ "grant_id": grant.id })),
                )
                .await?;
            token_response(state, &grant.id, &grant.jkt, refresh, now)
        }
        _ => Err(invalid),
    }
}

/// The owner's decision on a consent request.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Approve; `Some` narrows the request to the owner's policy (intersected with the request).
    Approve(Option<serde_json::Value>),
    Deny,
}

/// What the owner sees about a request before deciding.
#[derive(Debug, serde::Serialize, ts_rs::TS)]
pub struct PendingView {
    pub user_code: String,
    pub app_name: String,
    pub requested_policy: serde_json::Value,
    pub key_fingerprint: String,
    pub created_at: i64,
    pub expires_at: i64,
}

impl PendingView {
    pub fn of(row: &DeviceRow) -> PendingView {
        PendingView {
            user_code: row.user_code.clone(),
            app_name: row.app_name.clone(),
            requested_policy: serde_json::from_str(&row.requested_policy).unwrap_or_default(),
            key_fingerprint: fingerprint_of(&row.jkt),
            created_at: row.created_at,
            expires_at: row.expires_at,
        }
    }
}

/// Why the owner's decision on a consent request was not applied.
#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    #[error("too many wrong user codes; wait and try again")]
    TooManyAttempts { retry_after_secs: u64 },
    #[error("no pending consent request has this user code")]
    UnknownCode,
    /// Already decided or expired (`state` says which).
    #[error("the request is {state}")]
    NotPending { state: String },
    #[error("the request was decided or expired meanwhile")]
    DecidedMeanwhile,
    #[error(transparent)]
    Policy(#[from] crate::domain::grant_policy::PolicyError),
    /// The stored request or the narrowed policy is not what it must be (a bug, never the
    /// owner's input).
    #[error("consent request: {0}")]
    Inconsistent(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Applies the owner's decision. Callers must have authenticated the owner; this function is
/// reachable only from owner routes and the local CLI.
pub async fn decide(
    state: &AppState,
    user_code_input: &str,
    decision: Decision,
    actor: &str,
    now: i64,
) -> Result<serde_json::Value, DecisionError> {
    if let Some(retry) = state.code_attempts.locked(actor, now) {
        tracing::warn!(
            actor,
            "user code lookups locked out after repeated failures"
        );
        return Err(DecisionError::TooManyAttempts {
            retry_after_secs: retry,
        });
    }
    let not_found = |state: &AppState| {
        state.code_attempts.fail(actor, now);
        tracing::warn!(actor, "consent decision for an unknown user code");
        DecisionError::UnknownCode
    };
    let Ok(code) = user_code::normalize(user_code_input) else {
        return Err(not_found(state));
    };
    let Some(row) = state.store.device_by_user_code(&code).await? else {
        return Err(not_found(state));
    };
    if row.status != "pending" || row.expires_at <= now {
        let state = if row.expires_at <= now {
            "expired".to_owned()
        } else {
            row.status.clone()
        };
        return Err(DecisionError::NotPending { state });
    }
    let requested: GrantPolicy = serde_json::from_str(&row.requested_policy).map_err(|e| {
        DecisionError::Inconsistent(format!("stored request policy is invalid: {e}"))
    })?;
    let (granted, action) = match decision {
        Decision::Deny => (None, "consent.denied"),
        Decision::Approve(None) => (Some(requested.clone()), "consent.approved"),
        Decision::Approve(Some(owner)) => {
            let owner = crate::domain::grant_policy::parse(&owner)?;
            (
                Some(GrantPolicy::narrow(&requested, &owner)),
                "consent.approved",
            )
        }
    };
    if let Some(g) = &granted
        && !g.is_within(&requested)
    {
        return Err(DecisionError::Inconsistent(
            "narrowed policy is wider than the request".into(),
        ));
    }
    let granted_json = granted
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| DecisionError::Inconsistent(e.to_string()))?;
    if !state
        .store
        .decide_device_request(&code, granted_json.as_deref(), now)
        .await?
    {
        return Err(DecisionError::DecidedMeanwhile);
    }
    let granted_value = granted
        .map(|g| serde_json::to_value(g).unwrap_or_default())
        .unwrap_or(serde_json::Value::Null);
    state
        .store
        .audit(
            actor,
            action,
            Some(&code),
            Some(&json!({ "app_name": row.app_name, "granted": granted_value })),
        )
        .await?;
    Ok(granted_value)
}
