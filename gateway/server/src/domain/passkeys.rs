//! The owner's passkeys (WebAuthn through `webauthn-rs`): registration and removal by a signed-in
//! owner who re-enters the password, sign-in with a passkey alone (a discoverable credential, no
//! username), and a passkey as the second factor after the password when the owner requires one.
//!
//! The relying party is derived once from `public_url`: its host is the RP id and its origin the
//! only accepted origin. WebAuthn refuses IP addresses as RP ids and needs a secure context, so a
//! `public_url` on an IP address, or on plain http to anything but `localhost`, makes passkeys
//! unavailable (with that reason) instead of failing at start.
//!
//! Every ceremony's state stays on the server (`webauthn_challenges`, keyed by a digest of the
//! challenge id the browser holds): it is taken exactly once and is refused after
//! [`CHALLENGE_TTL_MS`]. Signature counters are checked by `webauthn-rs` (a counter that did not
//! move forward is refused as a possible clone) and stored after every use.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pairgate_store::{ChallengeRow, OwnerRow, PasskeyRemoval, PasskeyRow, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use webauthn_rs::prelude::{
    DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Uuid,
};

use crate::base::ids::random_token;
use crate::domain::owner::{LockedOut, NewSession, SignIn, check_lockout, password_matches};
use crate::engine::keys::Purpose;
use crate::engine::relying_party::{PasskeysUnavailable, RelyingParty};
use crate::state::AppState;

/// How long a ceremony may take, from its options to the browser's answer.
pub const CHALLENGE_TTL_MS: i64 = 3 * 60 * 1000;

const KIND_REGISTER: &str = "register";
const KIND_LOGIN: &str = "login";
const KIND_SECOND_FACTOR: &str = "second_factor";

/// The options a WebAuthn ceremony needs in the browser, and the id that names its server state.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct PasskeyChallenge {
    /// Sent back with the browser's answer; single use, valid for a few minutes.
    pub challenge_id: String,
    /// `webauthn-rs`'s options (`{ publicKey: ... }`), binary fields as base64url strings.
    pub options: Value,
}

/// A registered passkey as the owner sees it.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct PasskeyView {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// The owner's passkeys and settings.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct PasskeysView {
    /// Whether this gateway can use passkeys at all (see `unavailable_reason`).
    pub available: bool,
    pub unavailable_reason: Option<String>,
    /// Whether a password sign-in must be completed with a passkey.
    pub require_passkey: bool,
    pub data: Vec<PasskeyView>,
}

/// Server-side state of a registration: the name the owner chose, and `webauthn-rs`'s state.
#[derive(Debug, Serialize, Deserialize)]
struct RegisterState {
    name: String,
    reg: PasskeyRegistration,
}

/// The WebAuthn user handle of an owner: stable, and reveals nothing about the account.
pub fn owner_handle(owner_id: &str) -> Uuid {
    let digest = Sha256::digest(format!("pairgate owner {owner_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

fn credential_key(id: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

fn challenge_hash(state: &AppState, id: &str) -> String {
    state
        .keys
        .digest(Purpose::OwnerSession, format!("webauthn:{id}").as_bytes())
}

/// Why a passkey ceremony (registration, sign-in, settings) was refused.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    #[error(transparent)]
    Unavailable(#[from] PasskeysUnavailable),
    #[error(transparent)]
    LockedOut(#[from] LockedOut),
    #[error("too many passkey sign-ins started from this address; wait and try again")]
    TooManyStarts { retry_after_secs: u64 },
    /// The signed-in owner no longer exists.
    #[error("owner authentication required")]
    OwnerGone,
    #[error("the password is not correct")]
    WrongPassword,
    #[error("the passkey name must be 1-64 characters")]
    BadName,
    #[error("the {what} is not a WebAuthn credential: {reason}")]
    NotACredential { what: &'static str, reason: String },
    #[error("this passkey request is unknown, already used or expired; start again")]
    ChallengeInvalid,
    #[error("this passkey request belongs to another session")]
    OtherSession,
    #[error("the new passkey was not accepted: {0}")]
    NewKeyRefused(String),
    #[error("this passkey is already registered")]
    Exists,
    #[error("no such passkey")]
    Unknown,
    #[error(
        "this is your last passkey and signing in requires one: turn off \"require a passkey\" \
         first, or add another passkey"
    )]
    LastRequired,
    #[error("register a passkey before requiring one")]
    NoPasskey,
    /// A refused assertion: every reason looks the same to the client (it is logged).
    #[error("the passkey was not accepted")]
    Rejected,
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn internal(what: &str, e: impl std::fmt::Display) -> PasskeyError {
    PasskeyError::Internal(format!("{what}: {e}"))
}

fn view(p: &PasskeyRow) -> PasskeyView {
    PasskeyView {
        id: p.id.clone(),
        name: p.name.clone(),
        created_at: p.created_at,
        last_used_at: p.last_used_at,
    }
}

fn parse_passkey(row: &PasskeyRow) -> Result<Passkey, PasskeyError> {
    serde_json::from_str(&row.passkey).map_err(|e| internal("stored passkey", e))
}

/// Stores a ceremony's state and returns what the browser needs.
async fn new_challenge(
    state: &AppState,
    kind: &str,
    owner_id: Option<&str>,
    ceremony: &impl Serialize,
    options: Value,
    now: i64,
) -> Result<PasskeyChallenge, PasskeyError> {
    let id = format!("pgwc_{}", random_token(24));
    let row = ChallengeRow {
        id_hash: challenge_hash(state, &id),
        kind: kind.into(),
        owner_id: owner_id.map(str::to_string),
        state: serde_json::to_string(ceremony).map_err(|e| internal("ceremony state", e))?,
        expires_at: now + CHALLENGE_TTL_MS,
    };
    state.store.insert_challenge(&row, now).await?;
    Ok(PasskeyChallenge {
        challenge_id: id,
        options,
    })
}

/// Takes a ceremony's state (once); unknown, used, expired or of another kind: refused.
async fn take_challenge(
    state: &AppState,
    id: &str,
    kinds: &[&str],
    now: i64,
) -> Result<ChallengeRow, PasskeyError> {
    let row = if id.len() > 100 {
        None
    } else {
        state
            .store
            .take_challenge(&challenge_hash(state, id), now)
            .await?
    };
    row.filter(|r| kinds.contains(&r.kind.as_str()))
        .ok_or(PasskeyError::ChallengeInvalid)
}

fn options<T: Serialize>(o: &T) -> Result<Value, PasskeyError> {
    serde_json::to_value(o).map_err(|e| internal("webauthn options", e))
}

fn parse<T: serde::de::DeserializeOwned>(what: &'static str, v: Value) -> Result<T, PasskeyError> {
    serde_json::from_value(v).map_err(|e| PasskeyError::NotACredential {
        what,
        reason: e.to_string(),
    })
}

/// The owner's passkeys and settings.
pub async fn list(state: &AppState, owner_id: &str) -> Result<PasskeysView, PasskeyError> {
    let rows = state.store.list_passkeys(owner_id).await?;
    let unavailable_reason = match state.passkeys.as_ref() {
        RelyingParty::Ready(_) => None,
        RelyingParty::Unavailable(why) => Some(why.clone()),
    };
    Ok(PasskeysView {
        available: unavailable_reason.is_none(),
        unavailable_reason,
        require_passkey: state.store.owner_requires_passkey(owner_id).await?,
        data: rows.iter().map(view).collect(),
    })
}

/// Re-checks the signed-in owner's password before a sensitive change (a stolen session alone
/// cannot add a passkey or drop the requirement). Failures count towards the login lockout.
async fn confirm_password(
    state: &AppState,
    owner_id: &str,
    password: &str,
    client: &str,
    now: i64,
) -> Result<OwnerRow, PasskeyError> {
    check_lockout(state, client, now)?;
    let owner = state
        .store
        .owner_by_id(owner_id)
        .await?
        .ok_or(PasskeyError::OwnerGone)?;
    if !password_matches(&owner.password_hash, password) {
        crate::domain::owner::record_failure(state, client, now);
        tracing::warn!(client, "wrong password when confirming an owner change");
        return Err(PasskeyError::WrongPassword);
    }
    Ok(owner)
}

fn check_name(name: &str) -> Result<String, PasskeyError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(PasskeyError::BadName);
    }
    Ok(name.to_string())
}

/// Starts registering a passkey for the signed-in owner (password re-entered).
pub async fn start_registration(
    state: &AppState,
    owner_id: &str,
    name: &str,
    password: &str,
    client: &str,
    now: i64,
) -> Result<PasskeyChallenge, PasskeyError> {
    let rp = state.passkeys.get()?;
    let name = check_name(name)?;
    let owner = confirm_password(state, owner_id, password, client, now).await?;
    let exclude = state
        .store
        .list_passkeys(owner_id)
        .await?
        .iter()
        .map(|r| parse_passkey(r).map(|p| p.cred_id().clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let (ccr, reg) = rp
        .start_passkey_registration(
            owner_handle(owner_id),
            &owner.username,
            &owner.username,
            Some(exclude),
        )
        .map_err(|e| internal("passkey registration", e))?;
    let mut opts = options(&ccr)?;
    // Passkey-only sign-in has no username, so the authenticator must keep the credential
    // (a discoverable credential); `webauthn-rs` asks for one only "if possible".
    if let Some(sel) = opts
        .pointer_mut("/publicKey/authenticatorSelection")
        .and_then(Value::as_object_mut)
    {
        sel.insert("residentKey".into(), json!("required"));
        sel.insert("requireResidentKey".into(), json!(true));
    }
    let st = RegisterState { name, reg };
    new_challenge(state, KIND_REGISTER, Some(owner_id), &st, opts, now).await
}

/// Completes a registration with the browser's answer.
pub async fn finish_registration(
    state: &AppState,
    owner_id: &str,
    challenge_id: &str,
    credential: Value,
    now: i64,
) -> Result<PasskeyView, PasskeyError> {
    let rp = state.passkeys.get()?;
    let row = take_challenge(state, challenge_id, &[KIND_REGISTER], now).await?;
    if row.owner_id.as_deref() != Some(owner_id) {
        return Err(PasskeyError::OtherSession);
    }
    let st: RegisterState =
        serde_json::from_str(&row.state).map_err(|e| internal("registration state", e))?;
    let cred: RegisterPublicKeyCredential = parse("credential", credential)?;
    let passkey = rp
        .finish_passkey_registration(&cred, &st.reg)
        .map_err(|e| {
            tracing::warn!(error = %e, "passkey registration refused");
            PasskeyError::NewKeyRefused(e.to_string())
        })?;
    let row = PasskeyRow {
        id: format!("pk_{}", random_token(9)),
        owner_id: owner_id.into(),
        credential_id: credential_key(passkey.cred_id().as_ref()),
        name: st.name,
        passkey: serde_json::to_string(&passkey).map_err(|e| internal("passkey", e))?,
        created_at: now,
        last_used_at: None,
    };
    if !state.store.insert_passkey(&row).await? {
        return Err(PasskeyError::Exists);
    }
    state
        .store
        .audit(
            &format!("owner:{owner_id}"),
            "passkey.registered",
            Some(&row.id),
            Some(&json!({ "name": row.name })),
        )
        .await?;
    Ok(view(&row))
}

/// Removes a passkey; refused for the last one while the owner requires a passkey.
pub async fn remove(state: &AppState, owner_id: &str, id: &str) -> Result<(), PasskeyError> {
    match state.store.remove_passkey(owner_id, id).await? {
        PasskeyRemoval::Removed => {}
        PasskeyRemoval::NotFound => return Err(PasskeyError::Unknown),
        PasskeyRemoval::LastRequired => return Err(PasskeyError::LastRequired),
    }
    state
        .store
        .audit(
            &format!("owner:{owner_id}"),
            "passkey.removed",
            Some(id),
            None,
        )
        .await?;
    Ok(())
}

/// Turns "require a passkey at sign-in" on or off (password re-entered).
pub async fn set_required(
    state: &AppState,
    owner_id: &str,
    require: bool,
    password: &str,
    client: &str,
    now: i64,
) -> Result<(), PasskeyError> {
    confirm_password(state, owner_id, password, client, now).await?;
    if !state.store.set_require_passkey(owner_id, require).await? {
        return Err(PasskeyError::NoPasskey);
    }
    let action = if require {
        "passkey.required"
    } else {
        "passkey.not_required"
    };
    state
        .store
        .audit(&format!("owner:{owner_id}"), action, None, None)
        .await?;
    Ok(())
}

/// After a correct password: the second-factor challenge if this owner requires a passkey (and
/// has one), else `None`. Refuses when a passkey is required but passkeys are unavailable.
pub async fn second_factor(
    state: &AppState,
    owner: &OwnerRow,
    now: i64,
) -> Result<Option<PasskeyChallenge>, PasskeyError> {
    if !state.store.owner_requires_passkey(&owner.id).await? {
        return Ok(None);
    }
    let rows = state.store.list_passkeys(&owner.id).await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let rp = state.passkeys.get()?;
    let keys = rows
        .iter()
        .map(parse_passkey)
        .collect::<Result<Vec<_>, _>>()?;
    let (rcr, auth) = rp
        .start_passkey_authentication(&keys)
        .map_err(|e| internal("passkey authentication", e))?;
    let opts = options(&rcr)?;
    new_challenge(state, KIND_SECOND_FACTOR, Some(&owner.id), &auth, opts, now)
        .await
        .map(Some)
}

/// Starts a passkey-only sign-in. The answer is the same whether or not any passkey exists.
pub async fn start_login(
    state: &AppState,
    client: &str,
    now: i64,
) -> Result<PasskeyChallenge, PasskeyError> {
    let rp = state.passkeys.get()?;
    check_lockout(state, client, now)?;
    if let Err(retry) = state
        .passkey_starts
        .take(&crate::domain::owner::lockout_key(client), now)
    {
        return Err(PasskeyError::TooManyStarts {
            retry_after_secs: retry,
        });
    }
    let (mut rcr, auth) = rp
        .start_discoverable_authentication()
        .map_err(|e| internal("passkey authentication", e))?;
    // Started from a button, not from the browser's autofill: a modal request.
    rcr.mediation = None;
    let opts = options(&rcr)?;
    new_challenge(state, KIND_LOGIN, None, &auth, opts, now).await
}

/// How a passkey sign-in ended.
#[derive(Debug)]
pub struct PasskeyLogin {
    pub owner: OwnerRow,
    pub session: NewSession,
}

/// Every refused assertion looks the same to the client, is logged and counts towards the lockout.
fn rejected(state: &AppState, client: &str, now: i64, why: &str) -> PasskeyError {
    crate::domain::owner::record_failure(state, client, now);
    tracing::warn!(client, reason = why, "failed passkey sign-in");
    PasskeyError::Rejected
}

/// Completes a passkey sign-in (passkey only, or the second factor after the password) and
/// starts a session.
pub async fn finish_login(
    state: &AppState,
    challenge_id: &str,
    credential: Value,
    client: &str,
    user_agent: Option<&str>,
    now: i64,
) -> Result<PasskeyLogin, PasskeyError> {
    let rp = state.passkeys.get()?;
    check_lockout(state, client, now)?;
    let cred: PublicKeyCredential = parse("credential", credential)?;
    let row =
        match take_challenge(state, challenge_id, &[KIND_LOGIN, KIND_SECOND_FACTOR], now).await {
            Ok(row) => row,
            Err(e) => {
                crate::domain::owner::record_failure(state, client, now);
                return Err(e);
            }
        };
    let (pk_row, mut passkey, result, method) = if row.kind == KIND_LOGIN {
        let auth: DiscoverableAuthentication =
            serde_json::from_str(&row.state).map_err(|e| internal("login state", e))?;
        let Ok((handle, cred_id)) = rp.identify_discoverable_authentication(&cred) else {
            return Err(rejected(state, client, now, "no user handle"));
        };
        let Some(pk_row) = state
            .store
            .passkey_by_credential_id(&credential_key(cred_id))
            .await?
            .filter(|p| owner_handle(&p.owner_id) == handle)
        else {
            return Err(rejected(state, client, now, "unknown credential"));
        };
        let passkey = parse_passkey(&pk_row)?;
        let key = DiscoverableKey::from(&passkey);
        let result = rp
            .finish_discoverable_authentication(&cred, auth, &[key])
            .map_err(|e| rejected(state, client, now, &e.to_string()))?;
        (pk_row, passkey, result, "passkey")
    } else {
        let auth: PasskeyAuthentication =
            serde_json::from_str(&row.state).map_err(|e| internal("login state", e))?;
        let result = rp
            .finish_passkey_authentication(&cred, &auth)
            .map_err(|e| rejected(state, client, now, &e.to_string()))?;
        let Some(pk_row) = state
            .store
            .passkey_by_credential_id(&credential_key(result.cred_id().as_ref()))
            .await?
            .filter(|p| Some(&p.owner_id) == row.owner_id.as_ref())
        else {
            return Err(rejected(state, client, now, "credential removed"));
        };
        let passkey = parse_passkey(&pk_row)?;
        (pk_row, passkey, result, "password+passkey")
    };
    passkey.update_credential(&result);
    let stored = serde_json::to_string(&passkey).map_err(|e| internal("passkey", e))?;
    state.store.passkey_used(&pk_row.id, &stored, now).await?;
    let owner = state
        .store
        .owner_by_id(&pk_row.owner_id)
        .await?
        .ok_or_else(|| rejected(state, client, now, "owner gone"))?;
    let signed_in = SignIn {
        client,
        user_agent,
        method,
        passkey: Some((&pk_row.id, &pk_row.name)),
    };
    let session = signed_in.start(state, &owner, now).await?;
    Ok(PasskeyLogin { owner, session })
}

#[cfg(test)]
#[path = "passkeys_tests.rs"]
mod tests;
