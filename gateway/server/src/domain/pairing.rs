//! Pairing and tokens: the owner creates a pairing string; an app redeems it once with a DPoP
//! proof, which binds its key to a new grant; refresh and key rotation keep that binding.

use std::net::IpAddr;
use std::time::Duration;

use pairgate_protocol::dpop::VerifiedProof;
use pairgate_protocol::oauth::{TOKEN_TYPE_DPOP, TokenResponse};
use pairgate_protocol::pairing::{PairingId, PairingString};
use pairgate_store::grants::status;
use pairgate_store::{GrantRow, NewRefresh, PairingRow};
use serde_json::json;

use crate::base::clock::millis as ms;
use crate::base::error::ApiError;
use crate::base::ids::random_token;
use crate::base::net::client_key;
use crate::domain::proof::ProofRequest;
use crate::domain::tokens;
use crate::engine::keys::{Purpose, digests_equal};
use crate::state::AppState;

/// What can keep an owner's action on a pairing or a grant from being done.
#[derive(Debug, thiserror::Error)]
pub enum OwnerActionError {
    #[error("the pairing lifetime exceeds pairing.max_ttl")]
    LifetimeTooLong,
    #[error("no grant {0}")]
    UnknownGrant(String),
    /// The grant is not in a state the action applies to.
    #[error("the grant is {status}")]
    WrongState { status: String },
    #[error(transparent)]
    Policy(#[from] crate::domain::grant_policy::PolicyError),
    #[error("cannot make a pairing string: {0}")]
    PairingString(String),
    #[error(transparent)]
    Store(#[from] pairgate_store::StoreError),
}

/// A pairing as shown to the owner once: the string carries the secret.
#[derive(Debug, serde::Serialize, ts_rs::TS)]
pub struct CreatedPairing {
    pub id: String,
    pub pairing_string: String,
    pub expires_at: i64,
}

/// The owner creates a pairing with the grant's policy decided up front.
pub async fn create(
    state: &AppState,
    app_name: Option<String>,
    policy: &serde_json::Value,
    ttl: Option<Duration>,
    actor: &str,
    now: i64,
) -> Result<CreatedPairing, OwnerActionError> {
    let ttl = ttl.unwrap_or(state.config.pairing_ttl);
    if ttl > state.config.pairing_max_ttl {
        return Err(OwnerActionError::LifetimeTooLong);
    }
    let policy = crate::domain::grant_policy::normalize(policy)?;
    let gateway_url = state
        .config
        .public_url
        .as_str()
        .trim_end_matches('/')
        .to_string();
    let ps = PairingString::generate(&gateway_url, &mut rand_core::OsRng)
        .map_err(|e| OwnerActionError::PairingString(e.to_string()))?;
    let row = PairingRow {
        id: ps.id.to_string(),
        secret_hmac: state
            .keys
            .digest(Purpose::PairingSecret, ps.secret.as_bytes()),
        app_name,
        policy,
        created_at: now,
        expires_at: now + ms(ttl),
        used_at: None,
        cancelled_at: None,
        grant_id: None,
    };
    state.store.insert_pairing(&row).await?;
    state
        .store
        .audit(
            actor,
            "pairing.created",
            Some(&row.id),
            Some(&json!({ "expires_at": row.expires_at, "app_name": row.app_name })),
        )
        .await?;
    Ok(CreatedPairing {
        id: row.id,
        pairing_string: ps.encode(),
        expires_at: row.expires_at,
    })
}

/// Issues a token pair for a grant bound to `jkt` (the refresh token is already stored).
pub fn token_response(
    state: &AppState,
    grant_id: &str,
    jkt: &str,
    refresh: String,
    now: i64,
) -> Result<TokenResponse, ApiError> {
    let ttl = state.config.access_token_ttl;
    let access = tokens::issue_access(
        &state.keys,
        state.config.public_url.as_str().trim_end_matches('/'),
        grant_id,
        jkt,
        now,
        ttl,
    )?;
    Ok(TokenResponse {
        access_token: access,
        token_type: TOKEN_TYPE_DPOP.into(),
        expires_in: ttl.as_secs(),
        refresh_token: Some(refresh),
        scope: None,
        grant_id: grant_id.to_string(),
    })
}

/// A fresh refresh token: (token for the app, row for the database).
pub fn new_refresh(state: &AppState, now: i64) -> (String, NewRefresh) {
    let (token, token_hash) = tokens::new_refresh(&state.keys);
    (
        token,
        NewRefresh {
            token_hash,
            expires_at: now + ms(state.config.refresh_token_ttl),
        },
    )
}

/// A new grant row bound to the proof's key.
pub fn new_grant(
    app_name: String,
    policy: String,
    proof: &VerifiedProof,
    origin: &str,
    now: i64,
) -> GrantRow {
    GrantRow {
        id: format!("gr_{}", random_token(16)),
        app_name,
        policy,
        jkt: proof.jkt.clone(),
        alg: proof.alg.as_str().to_string(),
        status: status::ACTIVE.into(),
        origin: origin.into(),
        created_at: now,
        updated_at: now,
        last_used_at: None,
        revoked_at: None,
    }
}

/// Redeems a pairing string with the app's proof. Unknown ids and wrong secrets get the same
/// answer, so a guess reveals nothing; only a holder of the secret learns "expired" or "used".
/// The proof is verified only once the string is known good (a guess costs no signature check
/// and no replay-cache entry).
pub async fn redeem(
    state: &AppState,
    code: &str,
    app_name: Option<String>,
    proof: &ProofRequest<'_>,
    now: i64,
) -> Result<TokenResponse, ApiError> {
    let parsed = PairingString::parse(code).map_err(|_| ApiError::InvalidPairing)?;
    let digest = state
        .keys
        .digest(Purpose::PairingSecret, parsed.secret.as_bytes());
    let id: PairingId = parsed.id;
    let row = state.store.get_pairing(&id.to_string()).await?;
    let Some(row) = row.filter(|r| digests_equal(&r.secret_hmac, &digest)) else {
        tracing::warn!("pairing redemption with an unknown pairing or a wrong secret");
        return Err(ApiError::InvalidPairing);
    };
    if row.cancelled_at.is_some() {
        return Err(ApiError::InvalidPairing);
    }
    if row.used_at.is_some() {
        return Err(ApiError::PairingUsed);
    }
    if row.expires_at <= now {
        return Err(ApiError::ExpiredPairing);
    }
    let proof = &crate::domain::proof::verify(state, proof, now).await?;
    let name = row
        .app_name
        .clone()
        .or(app_name)
        .unwrap_or_else(|| "unnamed app".into());
    let name: String = name.chars().filter(|c| !c.is_control()).take(100).collect();
    let grant = new_grant(name, row.policy.clone(), proof, "pairing", now);
    let (refresh, refresh_row) = new_refresh(state, now);
    if !state
        .store
        .redeem_pairing(&row.id, now, &grant, &refresh_row)
        .await?
    {
        // Lost a race with another redemption (or expired meanwhile).
        let again = state.store.get_pairing(&row.id).await?;
        return Err(match again {
            Some(r) if r.used_at.is_some() => ApiError::PairingUsed,
            _ => ApiError::ExpiredPairing,
        });
    }
    state
        .store
        .audit(
            &format!("app:{}", grant.id),
            "pairing.redeemed",
            Some(&row.id),
            Some(&json!({ "grant_id": grant.id, "app_name": grant.app_name, "jkt": grant.jkt })),
        )
        .await?;
    token_response(state, &grant.id, &grant.jkt, refresh, now)
}

/// [`redeem`] behind the brute-force lockout: failed redemptions are counted per client address
/// (IPv6: per /64); once an address is locked, its attempts are refused before any lookup.
/// There is no global lock: with 256-bit secrets guessing is hopeless anyway, and a global lock
/// would let strangers block every legitimate redemption.
pub async fn redeem_guarded(
    state: &AppState,
    code: &str,
    app_name: Option<String>,
    proof: &ProofRequest<'_>,
    client: IpAddr,
    now: i64,
) -> Result<TokenResponse, ApiError> {
    let key = client_key(client).to_string();
    if let Some(retry) = state.pairing_attempts.locked(&key, now) {
        tracing::warn!(
            %client,
            "pairing redemption locked out after repeated failures"
        );
        return Err(ApiError::TooManyRequests {
            code: "too_many_attempts",
            message: "too many failed pairing attempts from this address; wait and try again"
                .into(),
            retry_after_secs: retry,
        });
    }
    let result = redeem(state, code, app_name, proof, now).await;
    if matches!(result, Err(ApiError::InvalidPairing)) {
        state.pairing_attempts.fail(&key, now);
    }
    result
}

/// Exchanges a refresh token, presented with a proof by the bound key, for a new pair. The whole
/// grant is checked first, as on every app route: status, validity window and source addresses.
/// A refused refresh consumes nothing: after a resume (or from an allowed address) the same
/// refresh token works.
pub async fn refresh(
    state: &AppState,
    token: &str,
    proof: &ProofRequest<'_>,
    client: IpAddr,
    now: i64,
) -> Result<TokenResponse, ApiError> {
    let invalid = || ApiError::InvalidGrant {
        message: "the refresh token is not valid",
    };
    if !token.starts_with(tokens::REFRESH_PREFIX) || token.len() > 200 {
        return Err(invalid());
    }
    let digest = state.keys.digest(Purpose::RefreshToken, token.as_bytes());
    let Some((grant, token_jkt)) = state.store.refresh_token_grant(&digest, now).await? else {
        return Err(match state.store.used_refresh_token(&digest).await? {
            Some((grant_id, jkt)) => reused(state, &grant_id, &jkt, proof, now).await?,
            None => invalid(),
        });
    };
    let proof = crate::domain::proof::verify(state, proof, now).await?;
    if proof.jkt != token_jkt {
        return Err(invalid());
    }
    let grant = crate::domain::grants::check_row(grant, Some(client), now)?.row;
    let (next, next_row) = new_refresh(state, now);
    let Some((grant_id, jkt)) = state
        .store
        .use_refresh_token(&digest, &proof.jkt, now, &next_row)
        .await?
    else {
        // Suspended or revoked meanwhile (the status is checked in the same statement), or the
        // token was used by a concurrent refresh.
        crate::domain::grants::active_grant(state, &grant.id).await?;
        return Err(invalid());
    };
    token_response(state, &grant_id, &jkt, next, now)
}

/// A refresh token presented again with a valid proof by its own key: one of two parties holding
/// the key is not the app (RFC 9700 §4.14.2), so the grant's whole refresh-token family ends and
/// the owner's audit log says so. Without a proof by the token's key nothing changes, so a
/// leaked old token alone cannot end an app's session.
async fn reused(
    state: &AppState,
    grant_id: &str,
    jkt: &str,
    proof: &ProofRequest<'_>,
    now: i64,
) -> Result<ApiError, ApiError> {
    let proof = crate::domain::proof::verify(state, proof, now).await?;
    if proof.jkt != jkt {
        return Ok(ApiError::InvalidGrant {
            message: "the refresh token is not valid",
        });
    }
    // The owner revoked the grant (which ends its tokens): say so, it is no theft.
    match state.store.get_grant(grant_id).await? {
        Some(g) if g.status == pairgate_store::grants::status::REVOKED => {
            return Ok(ApiError::GrantRevoked);
        }
        None => return Ok(ApiError::GrantRevoked),
        Some(_) => {}
    }
    let ended = state.store.end_refresh_family(grant_id, now).await?;
    tracing::warn!(
        grant = grant_id,
        ended,
        "a used refresh token was presented again by its key: the grant's refresh tokens are revoked"
    );
    state
        .store
        .audit(
            &format!("app:{grant_id}"),
            "grant.refresh_token_reused",
            Some(grant_id),
            Some(&json!({ "refresh_tokens_revoked": ended })),
        )
        .await?;
    Ok(ApiError::InvalidGrant {
        message: "this refresh token was already used, so every refresh token of this grant is \
                  now revoked (RFC 9700); pair again, or ask the owner",
    })
}

/// Moves a grant to another key: the request is authenticated by the old key (access token +
/// proof) and carries a second proof made with the new key for the same request.
pub async fn rotate_key(
    state: &AppState,
    grant: &GrantRow,
    new_proof: &VerifiedProof,
    now: i64,
) -> Result<TokenResponse, ApiError> {
    if new_proof.jkt == grant.jkt {
        return Err(ApiError::bad_request(
            "invalid_request",
            "the new key must differ from the current key",
        ));
    }
    let (refresh, refresh_row) = new_refresh(state, now);
    let ok = state
        .store
        .rotate_grant_key(
            &grant.id,
            &grant.jkt,
            &new_proof.jkt,
            new_proof.alg.as_str(),
            now,
            &refresh_row,
        )
        .await?;
    if !ok {
        return Err(ApiError::InvalidToken(
            "the grant changed meanwhile; authenticate again",
        ));
    }
    state
        .store
        .audit(
            &format!("app:{}", grant.id),
            "grant.key_rotated",
            Some(&grant.id),
            Some(&json!({ "old_jkt": grant.jkt, "new_jkt": new_proof.jkt })),
        )
        .await?;
    token_response(state, &grant.id, &new_proof.jkt, refresh, now)
}

/// Owner actions on a grant: revoke, suspend, resume.
pub async fn set_status(
    state: &AppState,
    grant_id: &str,
    action: GrantAction,
    actor: &str,
    now: i64,
) -> Result<(), OwnerActionError> {
    let (from, to, name): (&[&str], &str, &str) = match action {
        GrantAction::Revoke => (
            &[status::ACTIVE, status::SUSPENDED],
            status::REVOKED,
            "grant.revoked",
        ),
        GrantAction::Suspend => (&[status::ACTIVE], status::SUSPENDED, "grant.suspended"),
        GrantAction::Resume => (&[status::SUSPENDED], status::ACTIVE, "grant.resumed"),
    };
    if !state
        .store
        .set_grant_status(grant_id, from, to, now)
        .await?
    {
        return match state.store.get_grant(grant_id).await? {
            None => Err(OwnerActionError::UnknownGrant(grant_id.to_owned())),
            Some(g) => Err(OwnerActionError::WrongState { status: g.status }),
        };
    }
    state.store.audit(actor, name, Some(grant_id), None).await?;
    Ok(())
}

/// What the owner can do to a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantAction {
    Revoke,
    Suspend,
    Resume,
}

/// Issues the optional bearer key for a grant (replacing any earlier one); shown once.
pub async fn issue_bearer(
    state: &AppState,
    grant_id: &str,
    valid_for: Duration,
    actor: &str,
    now: i64,
) -> Result<(String, i64), OwnerActionError> {
    let key = format!(
        "{}{}",
        crate::domain::grants::BEARER_PREFIX,
        random_token(32)
    );
    let digest = state.keys.digest(Purpose::BearerKey, key.as_bytes());
    let expires = now + ms(valid_for);
    if !state
        .store
        .set_grant_bearer(grant_id, Some((&digest, expires)), now)
        .await?
    {
        return Err(OwnerActionError::UnknownGrant(grant_id.to_owned()));
    }
    state
        .store
        .audit(
            actor,
            "grant.bearer_issued",
            Some(grant_id),
            Some(&json!({ "expires_at": expires })),
        )
        .await?;
    tracing::warn!(
        grant_id,
        "a bearer key was issued: requests with it carry no proof of possession"
    );
    Ok((key, expires))
}

/// Revokes the optional bearer key of a grant.
pub async fn revoke_bearer(
    state: &AppState,
    grant_id: &str,
    actor: &str,
    now: i64,
) -> Result<(), OwnerActionError> {
    if !state.store.set_grant_bearer(grant_id, None, now).await? {
        return Err(OwnerActionError::UnknownGrant(grant_id.to_owned()));
    }
    state
        .store
        .audit(actor, "grant.bearer_revoked", Some(grant_id), None)
        .await?;
    Ok(())
}
