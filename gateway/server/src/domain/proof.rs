//! Checking the DPoP proof of an incoming request: exactly one `DPoP` header, the protocol
//! crate's RFC 9449 checklist against the gateway's configured public URL (never the spoofable
//! `Host` header), server nonces, and the replay cache (the partition the caller names).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use pairgate_protocol::dpop::{VerifiedProof, VerifyOptions, verify_proof};
use pairgate_protocol::error::codes;

use crate::base::clock::millis;
use crate::base::error::{ApiError, ProofSite};
use crate::engine::limits::ReplayClaim;
use crate::engine::replay::{Partition, ReplayError};
use crate::state::AppState;

/// How long one server nonce is issued for; the previous one stays valid for another window.
pub const NONCE_WINDOW_MS: i64 = 300_000;

/// The request facts a proof is checked against.
#[derive(Debug)]
pub struct ProofRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    pub body: Option<&'a [u8]>,
    pub access_token: Option<&'a str>,
    pub expected_jkt: Option<&'a str>,
    pub require_body_hash: bool,
    pub site: ProofSite,
    /// The replay cache the proof is remembered in.
    pub partition: Partition,
    /// The key proofs of this request's grant carried before, already parsed.
    pub known_key: Option<&'a pairgate_protocol::KnownKey>,
}

/// The nonce a client should use now.
pub fn current_nonce(state: &AppState, now_ms: i64) -> String {
    state
        .keys
        .nonce_for_window(now_ms.div_euclid(NONCE_WINDOW_MS))
}

fn dpop_error(site: ProofSite, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Dpop {
        code,
        message: message.into(),
        site,
        nonce: None,
    }
}

/// The single `DPoP` header of a request.
pub fn single_proof_header(headers: &HeaderMap, site: ProofSite) -> Result<&str, ApiError> {
    let mut values = headers.get_all("dpop").iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        let msg = if headers.contains_key("dpop") {
            "exactly one DPoP header is allowed"
        } else {
            "a DPoP proof header is required"
        };
        return Err(dpop_error(site, codes::INVALID_DPOP_PROOF, msg));
    };
    value.to_str().map_err(|_| {
        dpop_error(
            site,
            codes::INVALID_DPOP_PROOF,
            "the DPoP header is not ASCII",
        )
    })
}

/// Reads the `nonce` claim without verifying anything (to pick the window it claims).
fn claimed_nonce(proof: &str) -> Option<String> {
    let payload = proof.split('.').nth(1)?;
    if payload.len() > 8192 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("nonce")?.as_str().map(str::to_string)
}

/// Verifies the request's proof and records it in the replay cache (and, with the Redis limits
/// backend, claims it for every replica sharing that Redis).
pub async fn verify(
    state: &AppState,
    req: &ProofRequest<'_>,
    now_ms: i64,
) -> Result<VerifiedProof, ApiError> {
    let (verified, claim) = verify_deferring(state, req, now_ms)?;
    let Some(claim) = claim else {
        return Ok(verified);
    };
    match state.limiter.claim(&claim).await {
        Ok(true) => Ok(verified),
        Ok(false) => Err(replayed(req.site, &verified)),
        Err(e) => {
            tracing::warn!(error = %e, "shared replay check failed; proof refused");
            Err(ApiError::Degraded {
                code: "replay_check_unavailable",
                message: "the shared replay check is unavailable; retry shortly".into(),
            })
        }
    }
}

fn replayed(site: ProofSite, verified: &VerifiedProof) -> ApiError {
    tracing::warn!(jkt = %verified.jkt, "replayed DPoP proof refused");
    dpop_error(
        site,
        codes::INVALID_DPOP_PROOF,
        "this proof was already used (jti replay)",
    )
}

/// [`verify`], except that the claim across replicas (Redis limits backend; `None` otherwise)
/// is returned for the caller to make: a relayed request makes it inside its admission, in the
/// same round trip ([`crate::engine::limits::Limiter::admit_claiming`]). This replica's own
/// replay cache has the proof either way.
pub fn verify_deferring(
    state: &AppState,
    req: &ProofRequest<'_>,
    now_ms: i64,
) -> Result<(VerifiedProof, Option<ReplayClaim>), ApiError> {
    let proof = single_proof_header(req.headers, req.site)?;
    let config = &state.config;
    let url = format!(
        "{}{}",
        config.public_url.as_str().trim_end_matches('/'),
        req.path
    );
    let nonce_now = current_nonce(state, now_ms);
    let expected_nonce = if config.dpop_require_nonce {
        let previous = state
            .keys
            .nonce_for_window(now_ms.div_euclid(NONCE_WINDOW_MS) - 1);
        match claimed_nonce(proof) {
            Some(n) if n == previous => Some(previous),
            _ => Some(nonce_now.clone()),
        }
    } else {
        None
    };
    let mut opts = VerifyOptions::new(req.method, &url, now_ms.div_euclid(1000));
    opts.max_age_secs = millis(config.dpop_max_age) / 1000;
    opts.max_future_secs = millis(config.dpop_max_future) / 1000;
    opts.access_token = req.access_token;
    opts.expected_jkt = req.expected_jkt;
    opts.expected_nonce = expected_nonce.as_deref();
    opts.body = req.body;
    opts.require_body_hash = req.require_body_hash;
    opts.known_key = req.known_key;
    let verified = verify_proof(proof, &opts).map_err(|e| {
        let code = e.code();
        ApiError::Dpop {
            code,
            message: e.to_string(),
            site: req.site,
            nonce: (code == codes::USE_DPOP_NONCE).then(|| nonce_now.clone()),
        }
    })?;
    let expires = (verified.iat + opts.max_age_secs + 1) * 1000;
    let expires = expires.max(now_ms + 1000);
    let cache = match req.partition {
        Partition::Apps => &state.replay,
        Partition::Strangers => &state.stranger_replay,
    };
    match cache.check_and_insert(&verified.jkt, &verified.jti, now_ms, expires) {
        Ok(()) => {
            let claim = state
                .limiter
                .replay_claim(&verified.jkt, &verified.jti, expires - now_ms);
            Ok((verified, claim))
        }
        Err(ReplayError::Replayed) => Err(replayed(req.site, &verified)),
        Err(ReplayError::Full) => Err(ApiError::TooManyRequests {
            code: "replay_cache_full",
            message: "too many proofs in flight; retry shortly".into(),
            retry_after_secs: 1,
        }),
    }
}
