//! The owner: account setup (a one-time setup link printed at first start, or the CLI), Argon2id
//! passwords, server-side sessions with a CSRF token derived from the session, login lockout.
//! Passkeys (a second factor, or a sign-in of their own) are in `passkeys.rs`.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use pairgate_store::{OwnerRow, SessionRow};
use serde_json::json;

use crate::base::ids::random_token;
use crate::domain::passkeys::PasskeyChallenge;
use crate::engine::keys::{Purpose, digests_equal};
use crate::state::AppState;

/// Cookie carrying the session token.
pub const SESSION_COOKIE: &str = "pairgate_session";
/// Header carrying the CSRF token on state-changing owner requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
const SETUP_META: &str = "owner_setup_token";
const SESSION_TTL_MS: i64 = 7 * 24 * 3600 * 1000;
/// A session unused this long ends.
pub const SESSION_IDLE_MS: i64 = 12 * 3600 * 1000;

/// A new session: the cookie value (shown once) and its CSRF token.
#[derive(Debug)]
pub struct NewSession {
    pub token: String,
    pub csrf: String,
    pub expires_at: i64,
}

/// The CSRF token of a session: derived, so it survives page reloads without being stored.
pub fn csrf_for(state: &AppState, session_token: &str) -> String {
    state.keys.digest(
        Purpose::OwnerSession,
        format!("csrf:{session_token}").as_bytes(),
    )
}

/// Why the owner account was not created.
#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    #[error("the setup link is not valid (it is replaced at every start)")]
    BadSetupToken,
    #[error("the username must be 1-64 letters, digits or . _ - @")]
    BadUsername,
    #[error("the password must be at least 12 characters")]
    WeakPassword,
    #[error("the owner account already exists")]
    Exists,
    #[error("password hashing: {0}")]
    Hashing(String),
    #[error(transparent)]
    Store(#[from] pairgate_store::StoreError),
}

fn hash_password(password: &str) -> Result<String, OwnerError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| OwnerError::Hashing(e.to_string()))
}

fn check_new_credentials(username: &str, password: &str) -> Result<(), OwnerError> {
    let ok_name = !username.is_empty()
        && username.len() <= 64
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if !ok_name {
        return Err(OwnerError::BadUsername);
    }
    if password.chars().count() < 12 || password.len() > 1024 {
        return Err(OwnerError::WeakPassword);
    }
    Ok(())
}

/// At start: if there is no owner yet, issue a fresh one-time setup token (replacing any older
/// one) and return it for the setup link.
pub async fn setup_token_if_needed(
    state: &AppState,
) -> Result<Option<String>, pairgate_store::StoreError> {
    if state.store.owner_count().await? > 0 {
        state.store.meta_delete(SETUP_META).await?;
        return Ok(None);
    }
    let token = format!("pgsetup_{}", random_token(24));
    state
        .store
        .meta_set(
            SETUP_META,
            &state.keys.digest(Purpose::SetupToken, token.as_bytes()),
        )
        .await?;
    Ok(Some(token))
}

/// Creates the first owner. Over HTTP this needs the setup token; the local CLI passes `None`.
pub async fn create_owner(
    state: &AppState,
    setup_token: Option<&str>,
    username: &str,
    password: &str,
    now: i64,
) -> Result<OwnerRow, OwnerError> {
    if let Some(token) = setup_token {
        let stored = state.store.meta_get(SETUP_META).await?;
        let given = state.keys.digest(Purpose::SetupToken, token.as_bytes());
        if !stored.is_some_and(|s| digests_equal(&s, &given)) {
            return Err(OwnerError::BadSetupToken);
        }
    }
    check_new_credentials(username, password)?;
    let owner = OwnerRow {
        id: format!("ow_{}", random_token(12)),
        username: username.into(),
        password_hash: hash_password(password)?,
        created_at: now,
    };
    if !state.store.create_first_owner(&owner).await? {
        return Err(OwnerError::Exists);
    }
    state.store.meta_delete(SETUP_META).await?;
    state
        .store
        .audit(
            &format!("owner:{}", owner.id),
            "owner.created",
            Some(&owner.username),
            None,
        )
        .await?;
    Ok(owner)
}

/// The key a client's sign-in failures count under: the [`client_key`] of its address (IPv4, or
/// the /64 of IPv6); a client that is not an address (the local CLI) is its own key.
///
/// [`client_key`]: crate::base::net::client_key
pub fn lockout_key(client: &str) -> String {
    client
        .parse::<std::net::IpAddr>()
        .map(|ip| crate::base::net::client_key(ip).to_string())
        .unwrap_or_else(|_| client.to_string())
}

/// Counts a failed sign-in (password or passkey) against the client's address.
pub fn record_failure(state: &AppState, client: &str, now: i64) {
    state.login_attempts.fail(&lockout_key(client), now);
}

/// A client address locked out of owner sign-in after its own repeated failures.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("too many failed sign-ins from this address; wait and try again")]
pub struct LockedOut {
    pub retry_after_secs: u64,
}

/// Why an owner sign-in with a password was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error(transparent)]
    LockedOut(#[from] LockedOut),
    /// Unknown user or wrong password: the same answer for both.
    #[error("owner authentication required")]
    BadCredentials,
    #[error(transparent)]
    Passkey(#[from] crate::domain::passkeys::PasskeyError),
    #[error(transparent)]
    Store(#[from] pairgate_store::StoreError),
}

/// Refuses a sign-in attempt from a client address locked out after its own repeated failures.
/// Only that address is refused (even with the right password, so guessing cannot go on from
/// it); failures elsewhere never lock out the owner's address.
pub fn check_lockout(state: &AppState, client: &str, now: i64) -> Result<(), LockedOut> {
    match state.login_attempts.locked(&lockout_key(client), now) {
        Some(retry) => {
            tracing::warn!(client, "owner login locked out after repeated failures");
            Err(LockedOut {
                retry_after_secs: retry,
            })
        }
        None => Ok(()),
    }
}

/// Whether `password` matches an Argon2id PHC hash (constant time in the password).
pub fn password_matches(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// What a correct password leads to.
#[derive(Debug)]
pub enum LoginOutcome {
    /// Signed in.
    Session(OwnerRow, NewSession),
    /// The owner requires a passkey: no session until this challenge is answered.
    PasskeyRequired(PasskeyChallenge),
}

/// Checks a login; every failure looks the same, is counted, and locks out after repeats.
pub async fn login(
    state: &AppState,
    username: &str,
    password: &str,
    client: &str,
    user_agent: Option<&str>,
    now: i64,
) -> Result<LoginOutcome, SignInError> {
    check_lockout(state, client, now)?;
    let owner = state.store.owner_by_username(username).await?;
    // Verify against a dummy hash when the user is unknown, so timing does not tell.
    let hash = owner
        .as_ref()
        .map(|o| o.password_hash.clone())
        .unwrap_or_else(|| DUMMY_HASH.to_string());
    let ok = password_matches(&hash, password);
    let Some(owner) = owner.filter(|_| ok) else {
        record_failure(state, client, now);
        tracing::warn!(client, "failed owner login");
        return Err(SignInError::BadCredentials);
    };
    if let Some(challenge) = crate::domain::passkeys::second_factor(state, &owner, now).await? {
        return Ok(LoginOutcome::PasskeyRequired(challenge));
    }
    let signed_in = SignIn {
        client,
        user_agent,
        method: "password",
        passkey: None,
    };
    let session = signed_in.start(state, &owner, now).await?;
    Ok(LoginOutcome::Session(owner, session))
}

/// A completed sign-in: how, and from where.
#[derive(Debug)]
pub struct SignIn<'a> {
    pub client: &'a str,
    pub user_agent: Option<&'a str>,
    /// `password`, `passkey` or `password+passkey`.
    pub method: &'static str,
    /// The passkey used: `(id, name)`.
    pub passkey: Option<(&'a str, &'a str)>,
}

impl SignIn<'_> {
    /// Starts the session and writes `owner.login` (with the method) to the audit log.
    pub async fn start(
        &self,
        state: &AppState,
        owner: &OwnerRow,
        now: i64,
    ) -> Result<NewSession, pairgate_store::StoreError> {
        let session = start_session(state, owner, self.user_agent, now).await?;
        let mut detail = json!({ "client": self.client, "method": self.method });
        if let Some((_, name)) = self.passkey {
            detail["passkey"] = json!(name);
        }
        state
            .store
            .audit(
                &format!("owner:{}", owner.id),
                "owner.login",
                self.passkey.map(|(id, _)| id),
                Some(&detail),
            )
            .await?;
        Ok(session)
    }
}

/// Creates a session for an authenticated owner.
pub async fn start_session(
    state: &AppState,
    owner: &OwnerRow,
    user_agent: Option<&str>,
    now: i64,
) -> Result<NewSession, pairgate_store::StoreError> {
    let token = format!("pgs_{}", random_token(32));
    let csrf = csrf_for(state, &token);
    let row = SessionRow {
        id_hash: state.keys.digest(Purpose::OwnerSession, token.as_bytes()),
        owner_id: owner.id.clone(),
        csrf_hash: state.keys.digest(Purpose::OwnerSession, csrf.as_bytes()),
        created_at: now,
        last_seen_at: now,
        expires_at: now + SESSION_TTL_MS,
        user_agent: user_agent.map(|u| u.chars().take(200).collect()),
    };
    state.store.insert_session(&row).await?;
    Ok(NewSession {
        token,
        csrf,
        expires_at: row.expires_at,
    })
}

/// A precomputed Argon2id hash of a random string, for constant-time failure on unknown users.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0yNnlPgfSJXbyduUD0xDSNkIaTEemn3jBoTjdTg1mXw";
