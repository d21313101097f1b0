//! The gateway's own key material, all derived once at start: HMAC keys for stored secrets
//! (pairing secrets, refresh tokens, bearer keys, owner sessions), the access token signing key,
//! and the DPoP nonce key. Nothing here is ever derived per request.
//!
//! These keys come from the *gateway secret*, not from the master key: 32 random bytes generated
//! on first start and kept in `meta` sealed under the master key (same envelope as a stored
//! credential). Rotating the master key re-seals the gateway secret and changes nothing derived
//! from it, so pairings, grants, access and refresh tokens survive a master-key rotation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use josekit::jws::HS256;
use josekit::jws::alg::hmac::{HmacJwsSigner, HmacJwsVerifier};
use pairgate_custody::{
    CredentialAad, CustodyError, ExposeSecret, KdfParams, MasterKey, MasterKeySource,
    PassphraseFrom, Sealed, SecretBox, SecretString,
};
use pairgate_store::Store;
use pairgate_store::credentials::MASTER_KEY_ID;
use sha2::Sha256;

use crate::config::{Config, MasterKeySourceKind};

/// What a keyed hash is for; each purpose has its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    PairingSecret,
    RefreshToken,
    DeviceCode,
    BearerKey,
    OwnerSession,
    SetupToken,
}

/// Why the keys could not be loaded: the master key (its source, its verifier) or the database.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("{0}")]
    Database(String),
}

/// Derived keys. `Debug` prints nothing secret.
pub struct GatewayKeys {
    /// Replaced, never mutated, when a running gateway picks up a rotated master key (see
    /// `crate::domain::master_key`); readers hold an `Arc` for the duration of one seal or open.
    master: RwLock<Arc<MasterKey>>,
    /// Serialises reloads of the master key (see `crate::domain::master_key::reload`).
    reload: crate::engine::master_key_files::ReloadGate,
    /// One HMAC key per [`Purpose`], in declaration order.
    hmac: [SecretBox<[u8; 32]>; 6],
    nonce: SecretBox<[u8; 32]>,
    token_signer: HmacJwsSigner,
    token_verifier: HmacJwsVerifier,
    /// Keys credential fingerprints (see [`GatewayKeys::fingerprint_key`]).
    fingerprint: MasterKey,
    /// Access tokens already verified under `token_verifier`.
    verified: VerifiedTokens,
}

/// What a valid access token says (`crate::domain::tokens::verify_access`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    pub grant_id: String,
    pub jkt: String,
    pub expires_at: i64,
}

/// How many verified access tokens [`VerifiedTokens`] keeps before it starts over.
pub const VERIFIED_TOKENS_KEPT: usize = 4_096;

/// Access tokens this process has verified (signature, type, audience), by their exact text,
/// with what they say: an app sends the same token with every request until it refreshes it, and
/// its check (HMAC through OpenSSL, two JSON parses) is then a map lookup. Only a token that
/// verified gets in, so a stranger cannot fill it; expiry is still checked on every use; it
/// starts over when full. It belongs to one [`GatewayKeys`]: tokens signed under another key are
/// never found in it.
#[derive(Debug, Default)]
pub struct VerifiedTokens(Mutex<HashMap<Box<str>, AccessClaims>>);

impl VerifiedTokens {
    /// What `token` says, if it verified before.
    pub fn get(&self, token: &str) -> Option<AccessClaims> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned()
    }

    /// Remembers a token that verified.
    pub fn insert(&self, token: &str, claims: AccessClaims) {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() >= VERIFIED_TOKENS_KEPT {
            kept.clear();
        }
        kept.insert(token.into(), claims);
    }

    /// How many tokens are kept.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for GatewayKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayKeys")
            .field("master", &self.master())
            .finish_non_exhaustive()
    }
}

impl GatewayKeys {
    /// Derives every subkey from the (unsealed) gateway secret; keeps the master key for custody.
    pub fn new(master: MasterKey, secret: GatewaySecret) -> Result<GatewayKeys, KeyError> {
        let d = |label: &str| secret.derive(label);
        let token_key = d("pairgate/access-token/v1");
        let fail = |e: josekit::JoseError| KeyError::MasterKey(format!("token key: {e}"));
        let token_signer = HS256
            .signer_from_bytes(token_key.expose_secret())
            .map_err(fail)?;
        let token_verifier = HS256
            .verifier_from_bytes(token_key.expose_secret())
            .map_err(fail)?;
        Ok(GatewayKeys {
            hmac: [
                d("pairgate/pairing-secret/v1"),
                d("pairgate/refresh-token/v1"),
                d("pairgate/device-code/v1"),
                d("pairgate/bearer-key/v1"),
                d("pairgate/owner-session/v1"),
                d("pairgate/setup-token/v1"),
            ],
            nonce: d("pairgate/dpop-nonce/v1"),
            token_signer,
            token_verifier,
            fingerprint: MasterKey::from_bytes(
                *d("pairgate/credential-fingerprint/v1").expose_secret(),
            ),
            master: RwLock::new(Arc::new(master)),
            reload: tokio::sync::Mutex::new(None),
            verified: VerifiedTokens::default(),
        })
    }

    /// The key credential fingerprints are made with (`custody::fingerprint(key, value)`):
    /// derived from the gateway secret, so fingerprints survive a master-key rotation and a
    /// database alone still cannot confirm a guessed value.
    pub fn fingerprint_key(&self) -> &MasterKey {
        &self.fingerprint
    }

    /// The master key in use now.
    pub fn master(&self) -> Arc<MasterKey> {
        Arc::clone(&self.master.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The gate every reload of the master key passes (see `crate::domain::master_key::reload`).
    pub fn reload_gate(&self) -> &crate::engine::master_key_files::ReloadGate {
        &self.reload
    }

    /// Puts a newly loaded master key in use (the gateway secret, and so every derived key,
    /// does not change with it).
    pub fn replace_master(&self, key: MasterKey) {
        *self.master.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
    }

    /// HMAC-SHA256 of `data` under the purpose's key, base64url: what the database stores in
    /// place of a secret. Lookups compare these digests, never the secrets.
    pub fn digest(&self, purpose: Purpose, data: &[u8]) -> String {
        let key = &self.hmac[purpose as usize];
        URL_SAFE_NO_PAD.encode(mac(key.expose_secret(), data))
    }

    /// The DPoP nonce for a time window (stateless, so every replica sharing the database's
    /// gateway secret issues and accepts the same nonces).
    pub fn nonce_for_window(&self, window: i64) -> String {
        URL_SAFE_NO_PAD.encode(&mac(self.nonce.expose_secret(), &window.to_be_bytes())[..18])
    }

    pub fn token_signer(&self) -> &HmacJwsSigner {
        &self.token_signer
    }

    pub fn token_verifier(&self) -> &HmacJwsVerifier {
        &self.token_verifier
    }

    /// The access tokens verified under [`GatewayKeys::token_verifier`].
    pub fn verified_tokens(&self) -> &VerifiedTokens {
        &self.verified
    }
}

fn mac(key: &[u8; 32], data: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("any key length fits HMAC"));
    m.update(data);
    m.finalize().into_bytes().into()
}

/// Constant-time comparison of two digests.
pub fn digests_equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Meta key of the master key verifier (see `MasterKey::verifier`).
pub const VERIFIER: &str = "master_key_verifier";
/// Meta key of the Argon2id salt of passphrase-derived master keys.
pub const SALT: &str = "master_key_salt";
/// Meta key of the gateway secret, sealed under the master key.
pub const GATEWAY_SECRET: &str = "gateway_secret";

/// The gateway secret's envelope binding (no credential id starts with `meta:`).
const GATEWAY_SECRET_AAD: CredentialAad<'static> = CredentialAad {
    credential_id: "meta:gateway_secret",
    provider: "pairgate",
};
const GATEWAY_SECRET_PREFIX: &str = "v1";
const SUBKEY_PREFIX: &[u8] = b"pairgate/gateway-subkey/v1\0";

/// 32 random bytes every gateway subkey is derived from. `Debug` is redacted.
pub struct GatewaySecret(SecretBox<[u8; 32]>);

impl std::fmt::Debug for GatewaySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatewaySecret(<redacted>)")
    }
}

impl GatewaySecret {
    /// A fresh secret from the OS RNG.
    pub fn generate() -> GatewaySecret {
        use rand_core::RngCore;
        GatewaySecret(SecretBox::init_with_mut(|k: &mut [u8; 32]| {
            rand_core::OsRng.fill_bytes(k)
        }))
    }

    /// A subkey: HMAC-SHA256(secret, "pairgate/gateway-subkey/v1" || 0x00 || label). HMAC is a
    /// PRF and the secret is uniformly random, so labels give independent keys.
    fn derive(&self, label: &str) -> SecretBox<[u8; 32]> {
        let mut input = Vec::with_capacity(SUBKEY_PREFIX.len() + label.len());
        input.extend_from_slice(SUBKEY_PREFIX);
        input.extend_from_slice(label.as_bytes());
        SecretBox::init_with_mut(|k: &mut [u8; 32]| {
            *k = mac(self.0.expose_secret(), &input);
        })
    }

    /// Seals the secret under `master`: `v1.<base64 wrapped data key>.<base64 ciphertext>`.
    pub fn seal(&self, master: &MasterKey) -> Result<String, CustodyError> {
        let text = SecretString::from(STANDARD.encode(self.0.expose_secret()));
        let sealed = pairgate_custody::seal(master, &GATEWAY_SECRET_AAD, &text)?;
        Ok(format!(
            "{GATEWAY_SECRET_PREFIX}.{}.{}",
            STANDARD.encode(&sealed.wrapped_dek),
            STANDARD.encode(&sealed.ciphertext)
        ))
    }

    /// Opens a sealed secret (see [`GatewaySecret::seal`]).
    pub fn open(master: &MasterKey, stored: &str) -> Result<GatewaySecret, CustodyError> {
        let sealed = parse_sealed(stored)?;
        let text = pairgate_custody::open(master, &GATEWAY_SECRET_AAD, &sealed)?;
        // Decoded into a buffer that is wiped on drop.
        let mut decoded = None;
        let bytes = SecretBox::<Vec<u8>>::init_with_mut(|buf| {
            buf.resize(48, 0);
            decoded = STANDARD.decode_slice(text.expose_secret(), buf).ok();
        });
        if decoded != Some(32) {
            return Err(corrupt_secret());
        }
        Ok(GatewaySecret(SecretBox::init_with_mut(
            |k: &mut [u8; 32]| k.copy_from_slice(&bytes.expose_secret()[..32]),
        )))
    }
}

fn corrupt_secret() -> CustodyError {
    CustodyError::Corrupt {
        credential_id: GATEWAY_SECRET_AAD.credential_id.into(),
    }
}

fn parse_sealed(stored: &str) -> Result<Sealed, CustodyError> {
    let mut parts = stored.split('.');
    let (Some(GATEWAY_SECRET_PREFIX), Some(dek), Some(ct), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(corrupt_secret());
    };
    match (STANDARD.decode(dek), STANDARD.decode(ct)) {
        (Ok(wrapped_dek), Ok(ciphertext)) => Ok(Sealed {
            wrapped_dek,
            ciphertext,
        }),
        _ => Err(corrupt_secret()),
    }
}

/// Re-seals a stored gateway secret from the `old` to the `new` master key (only its data key
/// is re-wrapped; the secret itself does not change).
pub fn reseal_gateway_secret(
    old: &MasterKey,
    new: &MasterKey,
    stored: &str,
) -> Result<String, CustodyError> {
    let sealed = parse_sealed(stored)?;
    let wrapped = pairgate_custody::rewrap(old, new, &GATEWAY_SECRET_AAD, &sealed.wrapped_dek)?;
    Ok(format!(
        "{GATEWAY_SECRET_PREFIX}.{}.{}",
        STANDARD.encode(&wrapped),
        STANDARD.encode(&sealed.ciphertext)
    ))
}

/// Loads the gateway secret, generating and storing it on first start (of this database: a
/// database from before the gateway secret existed gets a new one, which invalidates its
/// pairings and tokens once). Concurrent first starts agree: the first stored value wins.
pub async fn load_gateway_secret(
    master: &MasterKey,
    store: &Store,
) -> Result<GatewaySecret, KeyError> {
    let db = |e: pairgate_store::StoreError| KeyError::Database(e.to_string());
    let fail = |e: CustodyError| KeyError::MasterKey(format!("gateway secret: {e}"));
    let stored = match store.meta_get(GATEWAY_SECRET).await.map_err(db)? {
        Some(stored) => stored,
        None => {
            let had_data = !store.list_grants().await.map_err(db)?.is_empty();
            let fresh = GatewaySecret::generate().seal(master).map_err(fail)?;
            let stored = store.meta_init(GATEWAY_SECRET, &fresh).await.map_err(db)?;
            if had_data {
                tracing::warn!(
                    "generated the gateway secret for an existing database: earlier pairings, \
                     access and refresh tokens no longer work; apps must pair again"
                );
            }
            stored
        }
    };
    GatewaySecret::open(master, &stored).map_err(fail)
}

/// Loads the master key from the configured source and checks it against the verifier stored
/// in the database (written on first start). Returns the key and the path of a key file this
/// call created, if any.
///
/// For a key file, an in-place rotation that committed but had not yet renamed `KEY.next` over
/// the file (see `crate::domain::master_key`) is recognised: the pending key is used, and with
/// `finish_pending` (at start, never from a running gateway) the rename is completed.
pub async fn load_master_key(
    config: &Config,
    store: &Store,
    finish_pending: bool,
) -> Result<(MasterKey, Option<std::path::PathBuf>), KeyError> {
    let fail = |e: &dyn std::fmt::Display| KeyError::MasterKey(e.to_string());
    let db = |e: pairgate_store::StoreError| KeyError::Database(e.to_string());
    let verifier = store.meta_get(VERIFIER).await.map_err(db)?;
    let mk = &config.master_key;
    let command = |list: &[String]| (list[0].clone(), list[1..].to_vec());
    let key_file = mk
        .path
        .clone()
        .unwrap_or_else(|| config.data_dir.join("master.key"));
    let source = match mk.source {
        MasterKeySourceKind::File => MasterKeySource::File {
            path: key_file.clone(),
            // A lost key file must not be silently replaced once data is sealed under it.
            create_if_missing: verifier.is_none(),
        },
        MasterKeySourceKind::Env => MasterKeySource::Env {
            var: mk.var.clone(),
        },
        MasterKeySourceKind::Systemd => MasterKeySource::SystemdCredential {
            name: mk.name.clone(),
        },
        MasterKeySourceKind::Command => {
            let (program, args) = command(&mk.command);
            MasterKeySource::Command {
                program,
                args,
                timeout: mk.command_timeout,
            }
        }
        MasterKeySourceKind::Keyring => MasterKeySource::Keyring {
            service: mk.keyring_service.clone(),
            user: mk.keyring_user.clone(),
        },
        MasterKeySourceKind::PassphraseEnv
        | MasterKeySourceKind::PassphraseFile
        | MasterKeySourceKind::PassphraseCommand => {
            let salt = store
                .meta_init(SALT, &STANDARD.encode(pairgate_custody::new_salt()))
                .await
                .map_err(db)?;
            let salt = STANDARD
                .decode(salt)
                .map_err(|_| fail(&"stored KDF salt is corrupt"))?;
            let from = match mk.source {
                MasterKeySourceKind::PassphraseEnv => PassphraseFrom::Env(mk.var.clone()),
                MasterKeySourceKind::PassphraseFile => PassphraseFrom::File(key_file.clone()),
                _ => {
                    let (program, args) = command(&mk.command);
                    PassphraseFrom::Command {
                        program,
                        args,
                        timeout: mk.command_timeout,
                    }
                }
            };
            MasterKeySource::Passphrase {
                from,
                salt,
                params: KdfParams::default(),
            }
        }
    };
    let mut loaded = pairgate_custody::load(&source, &pairgate_custody::process_env)
        .await
        .map_err(|e| fail(&e))?;
    if mk.source == MasterKeySourceKind::File
        && let Some(stored) = &verifier
        && let Some(next) =
            crate::engine::master_key_files::pending_file_key(&key_file, &loaded.key, stored).await
    {
        if finish_pending {
            crate::engine::master_key_files::finish_file_rotation(&key_file, &loaded.key.key_id())
                .map_err(|e| fail(&format!("completing a master-key rotation: {e}")))?;
            tracing::warn!(
                old_key_id = %loaded.key.key_id(),
                new_key_id = %next.key_id(),
                "completed an interrupted master-key rotation: the new key replaced the key file"
            );
        }
        loaded.key = next;
    }
    crate::base::redact::remember(loaded.key.export_base64().expose_secret());
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let created = loaded.created.then_some(key_file);
    match verifier {
        None => {
            store
                .meta_set(VERIFIER, &STANDARD.encode(loaded.key.verifier()))
                .await
                .map_err(db)?;
            tracing::info!(key_id = %loaded.key.key_id(), "master key verifier stored");
        }
        Some(stored) => {
            let bytes = STANDARD
                .decode(stored)
                .map_err(|_| fail(&"stored master key verifier is corrupt"))?;
            loaded.key.check_verifier(&bytes).map_err(|e| fail(&e))?;
        }
    }
    // Names the key everything is sealed under; credential writes are fenced on it.
    let kid = loaded.key.key_id();
    let stored_kid = store.meta_init(MASTER_KEY_ID, &kid).await.map_err(db)?;
    if stored_kid != kid {
        return Err(fail(&format!(
            "the database says data is sealed under key {stored_kid}, but the verifier matches \
             key {kid}: the database is inconsistent"
        )));
    }
    Ok((loaded.key, created))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subkeys_come_from_the_gateway_secret_and_survive_master_key_rotation() {
        let secret = GatewaySecret::generate();
        let (m1, m2) = (
            MasterKey::from_bytes([1; 32]),
            MasterKey::from_bytes([2; 32]),
        );
        let s1 = secret.seal(&m1).unwrap();
        assert!(s1.starts_with("v1.") && s1.split('.').count() == 3, "{s1}");
        let s2 = reseal_gateway_secret(&m1, &m2, &s1).unwrap();
        assert_ne!(s1, s2);
        for (key, sealed) in [(&m1, &s2), (&m2, &s1)] {
            let err = GatewaySecret::open(key, sealed).unwrap_err();
            assert!(matches!(err, CustodyError::WrongMasterKey), "{err}");
        }
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
        let digest = |k: &GatewayKeys, p| k.digest(p, b"pgrt_example");
        assert_eq!(
            digest(&a, Purpose::RefreshToken),
            digest(&b, Purpose::RefreshToken)
        );
        assert_ne!(
            digest(&a, Purpose::RefreshToken),
            digest(&a, Purpose::PairingSecret)
        );
        assert_eq!(a.nonce_for_window(7), b.nonce_for_window(7));
        let value = SecretString::from("sk-some-provider-key");
        assert_eq!(
            pairgate_custody::fingerprint(a.fingerprint_key(), &value),
            pairgate_custody::fingerprint(b.fingerprint_key(), &value),
            "fingerprints survive a master-key rotation"
        );
        let other =
            GatewayKeys::new(MasterKey::from_bytes([1; 32]), GatewaySecret::generate()).unwrap();
        assert_ne!(
            digest(&a, Purpose::RefreshToken),
            digest(&other, Purpose::RefreshToken)
        );
        assert_eq!(format!("{secret:?}"), "GatewaySecret(<redacted>)");
    }

    #[test]
    fn a_damaged_sealed_secret_is_reported_as_corrupt() {
        let m = MasterKey::generate();
        let good = GatewaySecret::generate().seal(&m).unwrap();
        let mut flipped = good.clone().into_bytes();
        let last = flipped.len() - 3;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        for bad in [
            "",
            "v1",
            "v1.a.b.c",
            "v2.AAAA.AAAA",
            "v1.!!.!!",
            flipped.as_str(),
        ] {
            let err = GatewaySecret::open(&m, bad).unwrap_err();
            assert!(matches!(err, CustodyError::Corrupt { .. }), "{bad}: {err}");
            assert!(err.to_string().contains("meta:gateway_secret"), "{err}");
        }
    }
}
