//! Provider credentials: adding them (sealed in the database, or as a reference to a value kept
//! elsewhere), listing, removing, rotating with a grace period, resolving a value at the moment
//! it is needed, and master-key rotation.
//!
//! A stored value is decrypted only inside [`resolve`] and [`check`], and
//! only into a `SecretString` that the caller drops after use. Nothing here logs, audits or
//! returns a value: errors name the credential (`openai/default`, id), never its content.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pairgate_custody::{
    self as custody, CredentialAad, CredentialRef, CustodyError, ExposeSecret, MasterKey, Sealed,
    SecretString,
};
use pairgate_store::StoreError;
use pairgate_store::credentials::{
    CredentialRow, Fenced, Inserted, Replacement, Rewrapped, SealedBlobs, kind,
};
use serde_json::json;

use crate::base::clock::millis as ms;
use crate::base::ids::random_token;
use crate::engine::keys::{GATEWAY_SECRET, SALT, VERIFIER};
use crate::state::AppState;

/// The name a credential gets when none is given.
pub const DEFAULT_NAME: &str = "default";

/// Why a credential operation failed. No variant carries a credential value.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("provider id `{0}` is not valid: use 1 to 40 characters from a-z, 0-9 and -")]
    InvalidProvider(String),
    #[error("credential name `{0}` is not valid: use 1 to 64 characters from a-z, 0-9, -, _ and .")]
    InvalidName(String),
    #[error("{0}")]
    Invalid(String),
    #[error("no credential {0}")]
    NotFound(String),
    #[error("credential {0} already exists: remove it first, or rotate it")]
    Duplicate(String),
    #[error("credential {0} is a reference: change the value at its source instead")]
    NotStored(String),
    /// Decryption or resolution failed for this credential only.
    #[error("credential {label}: {source}")]
    Unusable {
        label: String,
        #[source]
        source: CustodyError,
    },
    #[error(
        "the master key was rotated after this process loaded it: nothing was written; run the \
         command again (or restart the gateway) with the new master key"
    )]
    KeyChanged,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CredentialError {
    /// Whether the caller asked for something invalid (a usage error rather than a failure).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            CredentialError::InvalidProvider(_)
                | CredentialError::InvalidName(_)
                | CredentialError::Invalid(_)
        )
    }
}

type Result<T, E = CredentialError> = std::result::Result<T, E>;

/// Checks a provider id: lowercase `[a-z0-9-]{1,40}`.
pub fn validate_provider(provider: &str) -> Result<()> {
    let ok = (1..=40).contains(&provider.len())
        && provider
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(CredentialError::InvalidProvider(printable(provider)))
    }
}

/// Refuses a provider id this gateway has no provider for (`opneai`): a credential for it could
/// never be used, and the typo would go unnoticed. The console refuses such a credential; the
/// CLI stores it with a warning (an owner may add the key before configuring the provider).
pub fn known_provider(state: &AppState, provider: &str) -> Result<()> {
    let ids = crate::engine::providers::configured_provider_ids(&state.config);
    if ids.iter().any(|id| id == provider) {
        return Ok(());
    }
    Err(CredentialError::Invalid(format!(
        "this gateway has no provider `{}`: use one of {} (or configure [providers.{}] first)",
        printable(provider),
        ids.join(", "),
        printable(provider)
    )))
}

/// Checks a credential name: `[a-z0-9._-]{1,64}`.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        });
    if ok {
        Ok(())
    } else {
        Err(CredentialError::InvalidName(printable(name)))
    }
}

/// A user-supplied identifier, shortened and stripped of control characters for messages.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// How a command names a credential.
#[derive(Debug, Clone, Copy)]
pub enum Selector<'a> {
    Name { provider: &'a str, name: &'a str },
    Id(&'a str),
}

impl Selector<'_> {
    fn label(&self) -> String {
        match self {
            Selector::Name { provider, name } => format!("{provider}/{name}"),
            Selector::Id(id) => printable(id),
        }
    }
}

/// What the owner sees of a credential: never its value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
pub struct CredentialInfo {
    pub id: String,
    pub provider: String,
    pub name: String,
    /// `stored` or `reference`.
    pub kind: String,
    /// Where a reference points (variable, file, keychain entry, program), for references.
    pub source: Option<String>,
    /// Keyed fingerprint of the value (12 hex characters); see `custody::fingerprint`.
    pub fingerprint: String,
    pub last4: String,
    pub created_at: i64,
    /// When the value was last rotated.
    pub rotated_at: Option<i64>,
    /// Until when the value before the last rotation is still usable.
    pub grace_until: Option<i64>,
}

impl CredentialInfo {
    fn of(row: &CredentialRow, now: i64) -> CredentialInfo {
        let source = row
            .reference
            .as_deref()
            .and_then(|r| serde_json::from_str::<CredentialRef>(r).ok())
            .map(|r| r.describe());
        CredentialInfo {
            id: row.id.clone(),
            provider: row.provider.clone(),
            name: row.name.clone(),
            kind: row.kind.clone(),
            source,
            fingerprint: row.fingerprint.clone(),
            last4: row.last4.clone(),
            created_at: row.created_at,
            rotated_at: (row.updated_at != row.created_at).then_some(row.updated_at),
            grace_until: row.previous_until.filter(|&u| u > now),
        }
    }

    /// `provider/name`, how messages name a credential.
    pub fn label(&self) -> String {
        format!("{}/{}", self.provider, self.name)
    }
}

/// A credential's usable values: the current one and, during a rotation's grace period, the
/// previous one with its end. `Debug` shows no value (`SecretString` redacts itself).
#[derive(Debug)]
pub struct ActiveSecrets {
    pub current: SecretString,
    pub previous: Option<(SecretString, i64)>,
}

/// The outcome of [`check`]: the credential, and the fingerprints of the values that were just
/// decrypted or fetched.
#[derive(Debug, Clone, serde::Serialize, ts_rs::TS)]
pub struct CheckReport {
    #[serde(flatten)]
    pub info: CredentialInfo,
    /// Fingerprint of the value resolved now (for a reference it can differ from the one
    /// recorded when it was added, if the value changed at its source).
    pub resolved_fingerprint: String,
    pub resolved_last4: String,
    /// The previous value, when still in its grace period.
    pub previous: Option<PreviousCheck>,
}

/// The previous value of a rotated credential, as checked.
#[derive(Debug, Clone, serde::Serialize, ts_rs::TS)]
pub struct PreviousCheck {
    pub fingerprint: String,
    pub last4: String,
    pub until: i64,
}

/// The outcome of [`rotate_master_key`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct MasterKeyRotation {
    pub old_key_id: String,
    pub new_key_id: String,
    /// Stored credentials whose data keys were re-wrapped.
    pub credentials: usize,
}

fn new_id() -> String {
    format!("cr_{}", random_token(12))
}

fn unusable(label: String) -> impl FnOnce(CustodyError) -> CredentialError {
    move |source| CredentialError::Unusable { label, source }
}

fn sealed(blobs: SealedBlobs) -> Sealed {
    Sealed {
        wrapped_dek: blobs.wrapped_dek,
        ciphertext: blobs.ciphertext,
    }
}

/// Adds a value sealed in the database. `actor` is recorded in the audit log.
pub async fn add_stored(
    state: &AppState,
    provider: &str,
    name: &str,
    value: SecretString,
    actor: &str,
) -> Result<CredentialInfo> {
    validate_provider(provider)?;
    validate_name(name)?;
    if value.expose_secret().trim().is_empty() {
        return Err(CredentialError::Invalid(
            "the credential value is empty".into(),
        ));
    }
    crate::domain::master_key::ensure_current(state).await;
    let master = state.keys.master();
    let id = new_id();
    let label = format!("{provider}/{name}");
    let aad = CredentialAad {
        credential_id: &id,
        provider,
    };
    let sealed = custody::seal(&master, &aad, &value).map_err(unusable(label))?;
    let now = crate::base::clock::now_ms();
    let row = CredentialRow {
        id: id.clone(),
        provider: provider.into(),
        name: name.into(),
        kind: kind::STORED.into(),
        wrapped_dek: Some(sealed.wrapped_dek.clone()),
        ciphertext: Some(sealed.ciphertext.clone()),
        reference: None,
        fingerprint: custody::fingerprint(state.keys.fingerprint_key(), &value),
        last4: custody::last4(&value),
        previous_wrapped_dek: None,
        previous_ciphertext: None,
        previous_until: None,
        created_at: now,
        updated_at: now,
    };
    drop(value);
    insert(state, &row, actor, now).await
}

/// Adds a reference to a value kept outside the database. The reference is resolved once now,
/// so a broken one is refused (and nothing is stored) and the owner sees its fingerprint.
pub async fn add_reference(
    state: &AppState,
    provider: &str,
    name: &str,
    reference: CredentialRef,
    actor: &str,
) -> Result<CredentialInfo> {
    validate_provider(provider)?;
    validate_name(name)?;
    validate_reference(&reference)?;
    let label = format!("{provider}/{name}");
    let value = custody::resolve(&reference, &custody::process_env)
        .await
        .map_err(unusable(label))?;
    let now = crate::base::clock::now_ms();
    let row = CredentialRow {
        id: new_id(),
        provider: provider.into(),
        name: name.into(),
        kind: kind::REFERENCE.into(),
        wrapped_dek: None,
        ciphertext: None,
        reference: Some(
            serde_json::to_string(&reference)
                .map_err(|e| CredentialError::Invalid(format!("reference: {e}")))?,
        ),
        fingerprint: custody::fingerprint(state.keys.fingerprint_key(), &value),
        last4: custody::last4(&value),
        previous_wrapped_dek: None,
        previous_ciphertext: None,
        previous_until: None,
        created_at: now,
        updated_at: now,
    };
    drop(value);
    insert(state, &row, actor, now).await
}

/// Refuses references the gateway could never use.
fn validate_reference(reference: &CredentialRef) -> Result<()> {
    match reference {
        CredentialRef::Env { var } if var.starts_with(crate::config::ENV_PREFIX) => {
            Err(CredentialError::Invalid(format!(
                "environment variable names starting with {} are reserved for configuration \
                 (the gateway refuses to start with an unknown one); use another name",
                crate::config::ENV_PREFIX
            )))
        }
        CredentialRef::Env { var } if var.is_empty() || var.contains(['=', '\0']) => Err(
            CredentialError::Invalid(format!("`{}` is not a variable name", printable(var))),
        ),
        CredentialRef::Command { program, .. } if program.is_empty() => Err(
            CredentialError::Invalid("the command reference names no program".into()),
        ),
        _ => Ok(()),
    }
}

async fn insert(
    state: &AppState,
    row: &CredentialRow,
    actor: &str,
    now: i64,
) -> Result<CredentialInfo> {
    let info = CredentialInfo::of(row, now);
    match state
        .store
        .insert_credential(row, &state.keys.master().key_id())
        .await?
    {
        Fenced::KeyChanged => return Err(CredentialError::KeyChanged),
        Fenced::Done(Inserted::Duplicate) => return Err(CredentialError::Duplicate(info.label())),
        Fenced::Done(Inserted::Yes) => {}
    }
    state
        .store
        .audit(
            actor,
            "credential.added",
            Some(&info.id),
            Some(&json!({
                "provider": info.provider,
                "name": info.name,
                "kind": info.kind,
                "source": info.source,
                "fingerprint": info.fingerprint,
                "last4": info.last4,
            })),
        )
        .await?;
    Ok(info)
}

async fn find(state: &AppState, sel: Selector<'_>) -> Result<CredentialRow> {
    let row = match sel {
        Selector::Name { provider, name } => {
            validate_provider(provider)?;
            validate_name(name)?;
            state.store.credential_by_name(provider, name).await?
        }
        Selector::Id(id) => state.store.get_credential(id).await?,
    };
    row.ok_or_else(|| CredentialError::NotFound(sel.label()))
}

/// Every credential, without values. Previous values whose grace period ended are dropped.
pub async fn list(state: &AppState) -> Result<Vec<CredentialInfo>> {
    let now = crate::base::clock::now_ms();
    state.store.clear_expired_previous(now).await?;
    let rows = state.store.list_credentials().await?;
    Ok(rows.iter().map(|r| CredentialInfo::of(r, now)).collect())
}

/// Removes a credential (its sealed bytes go with the row).
pub async fn remove(state: &AppState, sel: Selector<'_>, actor: &str) -> Result<CredentialInfo> {
    let row = find(state, sel).await?;
    let info = CredentialInfo::of(&row, crate::base::clock::now_ms());
    if !state.store.delete_credential(&row.id).await? {
        return Err(CredentialError::NotFound(sel.label()));
    }
    state
        .store
        .audit(
            actor,
            "credential.removed",
            Some(&info.id),
            Some(&json!({
                "provider": info.provider,
                "name": info.name,
                "kind": info.kind,
                "fingerprint": info.fingerprint,
            })),
        )
        .await?;
    Ok(info)
}

/// Replaces a stored value. The old value stays usable until `grace` has passed (a zero grace
/// drops it at once), so requests already using it can finish.
pub async fn rotate(
    state: &AppState,
    sel: Selector<'_>,
    new: SecretString,
    grace: Duration,
    actor: &str,
) -> Result<CredentialInfo> {
    if new.expose_secret().trim().is_empty() {
        return Err(CredentialError::Invalid(
            "the credential value is empty".into(),
        ));
    }
    let row = find(state, sel).await?;
    let label = format!("{}/{}", row.provider, row.name);
    if row.kind != kind::STORED {
        return Err(CredentialError::NotStored(label));
    }
    crate::domain::master_key::ensure_current(state).await;
    let master = state.keys.master();
    let fingerprint = custody::fingerprint(state.keys.fingerprint_key(), &new);
    if fingerprint == row.fingerprint {
        return Err(CredentialError::Invalid(format!(
            "the new value of {label} is the same as the current one"
        )));
    }
    let aad = CredentialAad {
        credential_id: &row.id,
        provider: &row.provider,
    };
    let sealed = custody::seal(&master, &aad, &new).map_err(unusable(label.clone()))?;
    let last4 = custody::last4(&new);
    drop(new);
    let now = crate::base::clock::now_ms();
    let until = (!grace.is_zero()).then(|| now + ms(grace));
    let blobs = SealedBlobs {
        wrapped_dek: sealed.wrapped_dek.clone(),
        ciphertext: sealed.ciphertext.clone(),
    };
    let replacement = Replacement {
        sealed: &blobs,
        fingerprint: &fingerprint,
        last4: &last4,
        previous_until: until,
    };
    match state
        .store
        .replace_credential_value(&row.id, &replacement, now, &master.key_id())
        .await?
    {
        Fenced::KeyChanged => return Err(CredentialError::KeyChanged),
        Fenced::Done(false) => return Err(CredentialError::NotFound(label)),
        Fenced::Done(true) => {}
    }
    state
        .store
        .audit(
            actor,
            "credential.rotated",
            Some(&row.id),
            Some(&json!({
                "provider": row.provider,
                "name": row.name,
                "old_fingerprint": row.fingerprint,
                "fingerprint": fingerprint,
                "last4": last4,
                "grace_until": until,
            })),
        )
        .await?;
    let updated = find(state, Selector::Id(&row.id)).await?;
    Ok(CredentialInfo::of(&updated, now))
}

/// The current value of a credential: decrypted now (stored) or fetched now (reference).
pub async fn resolve(state: &AppState, provider: &str, name: &str) -> Result<SecretString> {
    Ok(resolve_inner(state, provider, name, false).await?.1.current)
}

async fn resolve_inner(
    state: &AppState,
    provider: &str,
    name: &str,
    with_previous: bool,
) -> Result<(String, ActiveSecrets)> {
    validate_provider(provider)?;
    validate_name(name)?;
    let label = format!("{provider}/{name}");
    let now = crate::base::clock::now_ms();
    let active = state
        .store
        .active_value(provider, name, now)
        .await?
        .ok_or_else(|| CredentialError::NotFound(label.clone()))?;
    let aad = CredentialAad {
        credential_id: &active.id,
        provider: &active.provider,
    };
    let current = match (active.current, &active.reference) {
        (Some(blobs), _) => open_stored(state, &aad, &sealed(blobs))
            .await
            .map_err(unusable(label.clone()))?,
        (None, Some(reference)) => {
            let r: CredentialRef = serde_json::from_str(reference).map_err(|_| {
                CredentialError::Store(StoreError::Corrupt(format!(
                    "credential {label} has an unreadable reference"
                )))
            })?;
            custody::resolve(&r, &custody::process_env)
                .await
                .map_err(unusable(label.clone()))?
        }
        (None, None) => {
            return Err(StoreError::Corrupt(format!("credential {label} has no value")).into());
        }
    };
    let previous = match active.previous {
        Some((blobs, until)) if with_previous => Some((
            open_stored(state, &aad, &sealed(blobs))
                .await
                .map_err(unusable(format!("{label} (previous value)")))?,
            until,
        )),
        _ => None,
    };
    Ok((active.id, ActiveSecrets { current, previous }))
}

/// Opens a stored value with the master key in use; when its data key was wrapped under
/// another one (the master key was rotated while this gateway runs), reloads the master key
/// from the configured source and tries once more.
async fn open_stored(
    state: &AppState,
    aad: &CredentialAad<'_>,
    sealed: &Sealed,
) -> std::result::Result<SecretString, CustodyError> {
    match custody::open(&state.keys.master(), aad, sealed) {
        Err(e) if crate::domain::master_key::reload_for_wrap(state, &sealed.wrapped_dek).await => {
            drop(e);
            custody::open(&state.keys.master(), aad, sealed)
        }
        other => other,
    }
}

/// Decrypts or fetches a credential (and its previous value in grace) and reports their
/// fingerprints: proves the credential is usable without showing it.
pub async fn check(state: &AppState, sel: Selector<'_>, actor: &str) -> Result<CheckReport> {
    let now = crate::base::clock::now_ms();
    state.store.clear_expired_previous(now).await?;
    let row = find(state, sel).await?;
    let (_, secrets) = resolve_inner(state, &row.provider, &row.name, true).await?;
    let report = CheckReport {
        info: CredentialInfo::of(&row, now),
        resolved_fingerprint: custody::fingerprint(state.keys.fingerprint_key(), &secrets.current),
        resolved_last4: custody::last4(&secrets.current),
        previous: secrets.previous.as_ref().map(|(v, until)| PreviousCheck {
            fingerprint: custody::fingerprint(state.keys.fingerprint_key(), v),
            last4: custody::last4(v),
            until: *until,
        }),
    };
    drop(secrets);
    state
        .store
        .audit(
            actor,
            "credential.checked",
            Some(&row.id),
            Some(&json!({
                "provider": row.provider,
                "name": row.name,
                "fingerprint": report.resolved_fingerprint,
            })),
        )
        .await?;
    Ok(report)
}

/// Moves everything sealed under the current master key to `new`, in one database transaction:
/// every stored credential's data keys (current and previous) are re-wrapped, the gateway
/// secret is re-sealed, and the verifier (plus, for a passphrase key, its salt) replaced. Values
/// and the gateway secret do not change, so nothing derived from them does either. A failure
/// (or crash) anywhere leaves the database as it was, still under the old key.
pub async fn rotate_master_key(
    state: &AppState,
    new: &MasterKey,
    new_salt: Option<&[u8]>,
    actor: &str,
) -> Result<MasterKeyRotation> {
    let old = state.keys.master();
    let (old_kid, new_kid) = (old.key_id(), new.key_id());
    if old_kid == new_kid {
        return Err(CredentialError::Invalid(
            "the new master key is the current one".into(),
        ));
    }
    let stored_secret = state
        .store
        .meta_get(GATEWAY_SECRET)
        .await?
        .ok_or_else(|| StoreError::Corrupt("the gateway secret is missing".into()))?;
    let secret =
        crate::engine::keys::reseal_gateway_secret(&old, new, &stored_secret).map_err(|e| {
            CredentialError::Unusable {
                label: "gateway secret".into(),
                source: e,
            }
        })?;
    let verifier = STANDARD.encode(new.verifier());
    let salt = new_salt.map(|s| STANDARD.encode(s));
    let mut meta = vec![
        (VERIFIER, verifier.as_str()),
        (GATEWAY_SECRET, secret.as_str()),
    ];
    if let Some(salt) = &salt {
        meta.push((SALT, salt.as_str()));
    }
    let outcome = state
        .store
        .rewrap_credentials(
            &old_kid,
            &new_kid,
            |k| {
                let aad = CredentialAad {
                    credential_id: &k.id,
                    provider: &k.provider,
                };
                let label = || format!("{} ({})", k.id, k.provider);
                let current =
                    custody::rewrap(&old, new, &aad, &k.wrapped_dek).map_err(unusable(label()))?;
                let previous = k
                    .previous_wrapped_dek
                    .as_deref()
                    .map(|p| custody::rewrap(&old, new, &aad, p))
                    .transpose()
                    .map_err(unusable(format!("{} (previous value)", label())))?;
                Ok::<_, CredentialError>((current, previous))
            },
            &meta,
        )
        .await?;
    let credentials = match outcome {
        Rewrapped::Done { credentials } => credentials,
        Rewrapped::KeyChanged => return Err(CredentialError::KeyChanged),
        Rewrapped::Failed(e) => return Err(e),
    };
    let rotation = MasterKeyRotation {
        old_key_id: old_kid,
        new_key_id: new_kid,
        credentials,
    };
    state
        .store
        .audit(
            actor,
            "master_key.rotated",
            None,
            Some(&serde_json::to_value(&rotation).unwrap_or_default()),
        )
        .await?;
    Ok(rotation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_ids_and_names_are_checked() {
        for ok in ["openai", "azure-openai", "x", &"a".repeat(40)] {
            assert!(validate_provider(ok).is_ok(), "{ok}");
        }
        for bad in ["", "OpenAI", "open_ai", "a/b", "é", &"a".repeat(41), "a b"] {
            let err = validate_provider(bad).unwrap_err();
            assert!(err.is_usage(), "{bad}: {err}");
        }
        for ok in ["default", "work.2", "team_a-1"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Default", "a/b", &"n".repeat(65), "tab\t"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        let err = validate_name("x\u{1b}[31my").unwrap_err().to_string();
        assert!(!err.contains('\u{1b}'), "{err}");
    }

    #[test]
    fn references_to_config_variables_are_refused() {
        let err = validate_reference(&CredentialRef::Env {
            var: "PAIRGATE_OPENAI".into(),
        })
        .unwrap_err();
        assert!(
            err.is_usage() && err.to_string().contains("reserved"),
            "{err}"
        );
        assert!(
            validate_reference(&CredentialRef::Env {
                var: "OPENAI_API_KEY".into()
            })
            .is_ok()
        );
        assert!(
            validate_reference(&CredentialRef::Command {
                program: String::new(),
                args: vec![],
                timeout: Duration::from_secs(1),
            })
            .is_err()
        );
    }

    #[test]
    fn info_shows_grace_only_while_it_lasts_and_never_a_value() {
        let row = CredentialRow {
            id: "cr_x".into(),
            provider: "openai".into(),
            name: "default".into(),
            kind: kind::REFERENCE.into(),
            wrapped_dek: None,
            ciphertext: None,
            reference: Some(r#"{"kind":"env","var":"OPENAI_KEY"}"#.into()),
            fingerprint: "0123456789ab".into(),
            last4: "wxyz".into(),
            previous_wrapped_dek: None,
            previous_ciphertext: None,
            previous_until: Some(100),
            created_at: 1,
            updated_at: 5,
        };
        let info = CredentialInfo::of(&row, 50);
        assert_eq!(info.grace_until, Some(100));
        assert_eq!(info.rotated_at, Some(5));
        assert_eq!(
            info.source.as_deref(),
            Some("environment variable OPENAI_KEY")
        );
        assert_eq!(CredentialInfo::of(&row, 100).grace_until, None);
        assert_eq!(info.label(), "openai/default");
    }
}
