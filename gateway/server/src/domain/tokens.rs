//! Access tokens (short-lived JWTs signed by the gateway with josekit, bound to the app's key by
//! `cnf.jkt`) and refresh tokens (random, stored only as a keyed digest).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use josekit::jws::JwsHeader;
use josekit::jwt::{self, JwtPayload};
use serde_json::json;

use crate::base::error::ApiError;
use crate::base::ids::random_token;
pub use crate::engine::keys::AccessClaims;
use crate::engine::keys::{GatewayKeys, Purpose};

/// Prefix of refresh tokens (recognisable by secret scanners).
pub const REFRESH_PREFIX: &str = "pgrt_";
const AUDIENCE: &str = "pairgate";

/// Issues an access token for a grant bound to `jkt`.
pub fn issue_access(
    keys: &GatewayKeys,
    issuer: &str,
    grant_id: &str,
    jkt: &str,
    now_ms: i64,
    ttl: Duration,
) -> Result<String, ApiError> {
    let mut header = JwsHeader::new();
    header.set_token_type("at+jwt");
    let mut p = JwtPayload::new();
    // Whole seconds: `iat` and `exp` are NumericDate integers (RFC 7519), as everywhere else
    // on the wire.
    let now = UNIX_EPOCH + Duration::from_secs(now_ms.max(0) as u64 / 1000);
    p.set_issuer(issuer);
    p.set_subject(grant_id);
    p.set_audience(vec![AUDIENCE]);
    let iat = now_ms.max(0) / 1000;
    p.set_claim("iat", Some(json!(iat)))
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("token claims: {e}")))?;
    p.set_expires_at(&(now + Duration::from_secs(ttl.as_secs().max(1))));
    p.set_jwt_id(random_token(12));
    p.set_claim("cnf", Some(json!({ "jkt": jkt })))
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("token claims: {e}")))?;
    jwt::encode_with_signer(&p, &header, keys.token_signer())
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("token signing: {e}")))
}

/// Verifies an access token's signature, audience and expiry. A token verified before is
/// found in [`GatewayKeys::verified_tokens`]; its expiry is checked on every use.
pub fn verify_access(
    keys: &GatewayKeys,
    token: &str,
    now_ms: i64,
) -> Result<AccessClaims, ApiError> {
    if token.len() > 4096 {
        return Err(ApiError::InvalidToken("the access token is not valid"));
    }
    let claims = match keys.verified_tokens().get(token) {
        Some(claims) => claims,
        None => {
            let claims = decode_access(keys, token)?;
            keys.verified_tokens().insert(token, claims.clone());
            claims
        }
    };
    if claims.expires_at <= now_ms {
        return Err(ApiError::InvalidToken(
            "the access token has expired; refresh it",
        ));
    }
    Ok(claims)
}

/// An access token's signature, type and audience checked, and what it says (expiry not
/// checked).
fn decode_access(keys: &GatewayKeys, token: &str) -> Result<AccessClaims, ApiError> {
    let (payload, header) = jwt::decode_with_verifier(token, keys.token_verifier())
        .map_err(|_| ApiError::InvalidToken("the access token is not valid"))?;
    if header.token_type() != Some("at+jwt") {
        return Err(ApiError::InvalidToken("the access token is not valid"));
    }
    let aud_ok = payload.audience().is_some_and(|a| a.contains(&AUDIENCE));
    let exp = payload
        .expires_at()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64);
    let (Some(sub), Some(exp), true) = (payload.subject(), exp, aud_ok) else {
        return Err(ApiError::InvalidToken("the access token is not valid"));
    };
    let jkt = payload
        .claim("cnf")
        .and_then(|c| c.get("jkt"))
        .and_then(|j| j.as_str())
        .ok_or(ApiError::InvalidToken("the access token is not valid"))?;
    Ok(AccessClaims {
        grant_id: sub.to_string(),
        jkt: jkt.to_string(),
        expires_at: exp,
    })
}

/// A new refresh token and the digest the database keeps.
pub fn new_refresh(keys: &GatewayKeys) -> (String, String) {
    let token = format!("{REFRESH_PREFIX}{}", random_token(32));
    let digest = keys.digest(Purpose::RefreshToken, token.as_bytes());
    (token, digest)
}

/// Seconds since the epoch, for clocks in the protocol crate.
pub fn unix_secs(now_ms: i64) -> i64 {
    now_ms.div_euclid(1000)
}

/// The current system time in unix ms (for callers without a request clock).
pub fn system_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod rotation_tests {
    use std::time::Duration;

    use pairgate_custody::MasterKey;

    use crate::engine::keys::{GatewayKeys, GatewaySecret, reseal_gateway_secret};

    /// An access token issued before a master-key rotation verifies after it (the gateway
    /// secret is resealed, not replaced); under another gateway secret it does not.
    #[test]
    fn access_tokens_survive_a_master_key_rotation() {
        let (m1, m2) = (
            MasterKey::from_bytes([1; 32]),
            MasterKey::from_bytes([2; 32]),
        );
        let s1 = GatewaySecret::generate().seal(&m1).unwrap();
        let s2 = reseal_gateway_secret(&m1, &m2, &s1).unwrap();
        let a = GatewayKeys::new(
            MasterKey::from_bytes([1; 32]),
            GatewaySecret::open(&m1, &s1).unwrap(),
        )
        .unwrap();
        let b = GatewayKeys::new(
            MasterKey::from_bytes([2; 32]),
            GatewaySecret::open(&m2, &s2).unwrap(),
        )
        .unwrap();
        let token = super::issue_access(
            &a,
            "http://gw",
            "gr_1",
            "jkt",
            1_000,
            Duration::from_secs(600),
        )
        .unwrap();
        let claims = super::verify_access(&b, &token, 2_000).unwrap();
        assert_eq!(claims.grant_id, "gr_1");
        let other =
            GatewayKeys::new(MasterKey::from_bytes([1; 32]), GatewaySecret::generate()).unwrap();
        assert!(super::verify_access(&other, &token, 2_000).is_err());
    }

    /// A verified token is kept and found again; a changed one is not; a kept one still expires;
    /// what is kept stays bounded.
    #[test]
    fn verified_tokens_are_kept_but_still_checked() {
        use crate::engine::keys::VERIFIED_TOKENS_KEPT;
        let keys =
            GatewayKeys::new(MasterKey::from_bytes([1; 32]), GatewaySecret::generate()).unwrap();
        let issue = |grant: &str| {
            super::issue_access(
                &keys,
                "http://gw",
                grant,
                "jkt",
                1_000,
                Duration::from_secs(600),
            )
            .unwrap()
        };
        let token = issue("gr_1");
        assert!(keys.verified_tokens().is_empty());
        let first = super::verify_access(&keys, &token, 2_000).unwrap();
        assert_eq!(keys.verified_tokens().len(), 1);
        assert_eq!(super::verify_access(&keys, &token, 3_000).unwrap(), first);
        assert_eq!(keys.verified_tokens().len(), 1);
        // Another signature on the same header and claims: refused, and not kept.
        let (signed, sig) = token.rsplit_once('.').unwrap();
        let flipped = if sig.starts_with('A') { "B" } else { "A" };
        let forged = format!("{signed}.{flipped}{}", &sig[1..]);
        assert!(super::verify_access(&keys, &forged, 3_000).is_err());
        assert_eq!(keys.verified_tokens().len(), 1);
        // Kept, yet expired at its time.
        let expired = super::verify_access(&keys, &token, first.expires_at).unwrap_err();
        assert!(expired.to_string().contains("expired"), "{expired}");
        for i in 0..VERIFIED_TOKENS_KEPT + 10 {
            super::verify_access(&keys, &issue(&format!("gr_{i}")), 2_000).unwrap();
            assert!(keys.verified_tokens().len() <= VERIFIED_TOKENS_KEPT);
        }
    }
}
