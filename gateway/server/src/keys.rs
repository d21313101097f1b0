//! The gateway's own key material, all derived once at start from the master key: HMAC keys
//! for stored secrets (pairing secrets, refresh tokens, bearer keys, owner sessions), the access
//! token signing key, and the DPoP nonce key. Nothing here is ever derived per request.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use josekit::jws::HS256;
use josekit::jws::alg::hmac::{HmacJwsSigner, HmacJwsVerifier};
use pairgate_custody::{
    ExposeSecret, KdfParams, MasterKey, MasterKeySource, PassphraseFrom, SecretBox,
};
use pairgate_store::Store;
use sha2::Sha256;

use crate::config::{Config, MasterKeySourceKind};
use crate::serve::StartError;

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

/// Derived keys. `Debug` prints nothing secret.
pub struct GatewayKeys {
    master: MasterKey,
    /// One HMAC key per [`Purpose`], in declaration order.
    hmac: [SecretBox<[u8; 32]>; 6],
    nonce: SecretBox<[u8; 32]>,
    token_signer: HmacJwsSigner,
    token_verifier: HmacJwsVerifier,
}

impl std::fmt::Debug for GatewayKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayKeys")
            .field("master", &self.master)
            .finish_non_exhaustive()
    }
}

impl GatewayKeys {
    pub fn new(master: MasterKey) -> Result<GatewayKeys, StartError> {
        let d = |label: &str| master.derive(label);
        let token_key = d("pairgate/access-token/v1");
        let fail = |e: josekit::JoseError| StartError::MasterKey(format!("token key: {e}"));
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
            master,
        })
    }

    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// HMAC-SHA256 of `data` under the purpose's key, base64url: what the database stores in
    /// place of a secret. Lookups compare these digests, never the secrets.
    pub fn digest(&self, purpose: Purpose, data: &[u8]) -> String {
        let key = &self.hmac[purpose as usize];
        URL_SAFE_NO_PAD.encode(mac(key.expose_secret(), data))
    }

    /// The DPoP nonce for a time window (stateless, so every replica sharing the master key
    /// issues and accepts the same nonces).
    pub fn nonce_for_window(&self, window: i64) -> String {
        URL_SAFE_NO_PAD.encode(&mac(self.nonce.expose_secret(), &window.to_be_bytes())[..18])
    }

    pub fn token_signer(&self) -> &HmacJwsSigner {
        &self.token_signer
    }

    pub fn token_verifier(&self) -> &HmacJwsVerifier {
        &self.token_verifier
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

const VERIFIER: &str = "master_key_verifier";
const SALT: &str = "master_key_salt";

/// Loads the master key from the configured source and checks it against the verifier stored
/// in the database (written on first start). Returns the key and the path of a key file this
/// call created, if any.
pub async fn load_master_key(
    config: &Config,
    store: &Store,
) -> Result<(MasterKey, Option<std::path::PathBuf>), StartError> {
    let fail = |e: &dyn std::fmt::Display| StartError::MasterKey(e.to_string());
    let db = |e: pairgate_store::StoreError| StartError::Database(e.to_string());
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
    let loaded = pairgate_custody::load(&source, &pairgate_custody::process_env)
        .await
        .map_err(|e| fail(&e))?;
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
    Ok((loaded.key, created))
}

/// A fresh random secret of `n` bytes, base64url: tokens, codes, ids.
pub fn random_token(n: usize) -> String {
    use rand_core::RngCore;
    let mut bytes = vec![0u8; n];
    rand_core::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Seconds of a duration as i64 milliseconds (saturating).
pub fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
