//! The master key: construction (random, raw, base64, Argon2id passphrase), HKDF subkeys,
//! a public key id and the stored verifier.
//!
//! # Derivations
//!
//! All subkeys are HKDF-SHA256 with no salt and the master key as input key material:
//!
//! * public [`MasterKey::derive`]: `info = "pairgate/custody/derive/v1" || 0x00 || label`
//! * internal: `info = "pairgate/custody/internal/v1" || 0x00 || name` with names `key-id`,
//!   `kek` (wraps data keys), `verifier`, `fingerprint`.
//!
//! The two prefixes differ before the `0x00`, so no caller label can produce an internal key.
//!
//! The key id is `HMAC-SHA256(internal("key-id"), "key-id")[..8]`, shown as 16 hex chars.
//!
//! # Verifier layout (69 bytes)
//!
//! ```text
//! 0x01 || nonce(24) || key_id(8) || XChaCha20-Poly1305(internal("verifier"), nonce,
//!         "pairgate master key verifier" (28 bytes), AAD)          (28 + 16 tag bytes)
//! AAD = "pairgate/custody/verifier/v1" || 0x00 || 0x01 || key_id(8)
//! ```

use std::fmt;

use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::blob::{self, BlobError, KID_LEN};
use crate::error::{CustodyError, Result};

const DERIVE_PREFIX: &[u8] = b"pairgate/custody/derive/v1\0";
const INTERNAL_PREFIX: &[u8] = b"pairgate/custody/internal/v1\0";
const VERIFIER_PURPOSE: &str = "pairgate/custody/verifier/v1";
const VERIFIER_PLAINTEXT: &[u8] = b"pairgate master key verifier";
const KEY_LEN: usize = 32;

/// Argon2id cost parameters for passphrase-derived master keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Parallelism (lanes).
    pub p: u32,
}

impl Default for KdfParams {
    /// OWASP-style Argon2id: 64 MiB, 3 iterations, 1 lane.
    fn default() -> Self {
        Self {
            m_kib: 65_536,
            t: 3,
            p: 1,
        }
    }
}

impl KdfParams {
    /// Tiny parameters for tests only (64 KiB, 1 iteration): never use for real keys.
    pub const fn testing() -> Self {
        Self {
            m_kib: 64,
            t: 1,
            p: 1,
        }
    }

    /// Below the OWASP minimum for Argon2id (19 MiB with t=2)?
    pub(crate) fn is_weak(&self) -> bool {
        self.m_kib < 19_456 || self.t < 2
    }
}

/// A fresh random 16-byte salt for [`MasterKey::from_passphrase`] (store it with the config).
pub fn new_salt() -> [u8; 16] {
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    salt
}

/// The gateway's 32-byte master key. Never printed: `Debug` shows only its key id.
pub struct MasterKey {
    key: SecretBox<[u8; KEY_LEN]>,
    kid: [u8; KID_LEN],
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey(<redacted>, id={})", self.key_id())
    }
}

impl MasterKey {
    /// Wraps raw key bytes (the caller's copy is wiped).
    pub fn from_bytes(mut bytes: [u8; KEY_LEN]) -> Self {
        let key = SecretBox::init_with_mut(|k: &mut [u8; KEY_LEN]| k.copy_from_slice(&bytes));
        bytes.zeroize();
        Self::with_key(key)
    }

    /// A new random key from the OS RNG.
    pub fn generate() -> Self {
        Self::with_key(SecretBox::init_with_mut(|k: &mut [u8; KEY_LEN]| {
            OsRng.fill_bytes(k)
        }))
    }

    /// Derives a key from a passphrase with Argon2id (v0x13). CPU/memory heavy: call it from
    /// a blocking thread. The salt must be at least 8 bytes (use [`new_salt`]).
    pub fn from_passphrase(
        passphrase: &SecretString,
        salt: &[u8],
        params: &KdfParams,
    ) -> Result<Self> {
        let pass = passphrase.expose_secret();
        if pass.is_empty() {
            return Err(CustodyError::BadSecret {
                source_desc: "passphrase".into(),
                reason: "it is empty",
            });
        }
        let argon_params =
            Params::new(params.m_kib, params.t, params.p, Some(KEY_LEN)).map_err(|e| {
                CustodyError::Kdf {
                    reason: e.to_string(),
                }
            })?;
        let mut blocks = Zeroizing::new(vec![Block::default(); argon_params.block_count()]);
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
        let mut outcome = Ok(());
        let key = SecretBox::init_with_mut(|k: &mut [u8; KEY_LEN]| {
            outcome = argon.hash_password_into_with_memory(
                pass.as_bytes(),
                salt,
                k,
                blocks.as_mut_slice(),
            );
        });
        outcome.map_err(|e| CustodyError::Kdf {
            reason: e.to_string(),
        })?;
        Ok(Self::with_key(key))
    }

    /// Parses the one raw-key format: 32 bytes as standard (padded) base64, surrounding
    /// whitespace ignored. `source_desc` names the origin in errors (e.g. `file /etc/x`).
    pub fn from_base64(text: &str, source_desc: &str) -> Result<Self> {
        let bad = |reason| CustodyError::BadKeyMaterial {
            source_desc: source_desc.to_owned(),
            reason,
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(bad("it is empty"));
        }
        if text.len() != 44 {
            return Err(bad(
                "wrong length (expected 32 bytes written as 44 standard base64 characters)",
            ));
        }
        let mut buf = Zeroizing::new([0u8; 48]);
        let n = STANDARD
            .decode_slice(text, buf.as_mut_slice())
            .map_err(|_| {
                bad("not valid standard base64 (expected 44 characters, A-Z a-z 0-9 + / =)")
            })?;
        if n != KEY_LEN {
            return Err(bad(
                "wrong length (expected 32 bytes written as 44 standard base64 characters)",
            ));
        }
        let key = SecretBox::init_with_mut(|k: &mut [u8; KEY_LEN]| {
            k.copy_from_slice(&buf[..KEY_LEN]);
        });
        Ok(Self::with_key(key))
    }

    /// The key in the raw-key format (standard base64, no newline), for writing it to a
    /// file, keychain or backup.
    pub fn export_base64(&self) -> SecretString {
        SecretString::from(STANDARD.encode(self.key.expose_secret()))
    }

    /// An HKDF-SHA256 subkey for `label` (e.g. `"pairgate/pairing-hmac/v1"`). Deterministic;
    /// different labels give independent keys.
    pub fn derive(&self, label: &str) -> SecretBox<[u8; KEY_LEN]> {
        self.expand(DERIVE_PREFIX, label.as_bytes())
    }

    /// Short non-secret identifier (16 hex chars) for logs and rotation bookkeeping.
    pub fn key_id(&self) -> String {
        blob::hex(&self.kid)
    }

    /// A versioned check value to store on first start; see the module docs for its layout.
    pub fn verifier(&self) -> Vec<u8> {
        let k = self.internal("verifier");
        let aad = blob::aad(VERIFIER_PURPOSE, &self.kid, &[]);
        // Sealing 28 bytes cannot exceed the AEAD's size limit, so this is never empty.
        blob::seal(k.expose_secret(), &self.kid, VERIFIER_PLAINTEXT, &aad).unwrap_or_default()
    }

    /// Checks a stored verifier: `WrongMasterKey` if it was made by another key,
    /// `CorruptVerifier` if it is damaged, `UnsupportedVersion` for an unknown format.
    pub fn check_verifier(&self, stored: &[u8]) -> Result<()> {
        let parsed = blob::parse(stored, KID_LEN).map_err(|e| match e {
            BlobError::Version(version) => CustodyError::UnsupportedVersion { version },
            BlobError::Truncated | BlobError::Auth => CustodyError::CorruptVerifier,
        })?;
        if !self.kid_matches(parsed.extra) {
            return Err(CustodyError::WrongMasterKey);
        }
        let k = self.internal("verifier");
        let aad = blob::aad(VERIFIER_PURPOSE, parsed.extra, &[]);
        let plain = blob::open(k.expose_secret(), &parsed, &aad)
            .map_err(|_| CustodyError::CorruptVerifier)?;
        if plain.as_slice() != VERIFIER_PLAINTEXT {
            return Err(CustodyError::CorruptVerifier);
        }
        Ok(())
    }

    /// The raw key-id bytes embedded in wrapped data keys and verifiers.
    pub(crate) fn kid(&self) -> &[u8; KID_LEN] {
        &self.kid
    }

    /// Constant-time comparison of stored key-id bytes with this key's id.
    pub(crate) fn kid_matches(&self, stored: &[u8]) -> bool {
        bool::from(self.kid.as_slice().ct_eq(stored))
    }

    /// An internal subkey (`key-id`, `kek`, `verifier`, `fingerprint`).
    pub(crate) fn internal(&self, name: &str) -> SecretBox<[u8; KEY_LEN]> {
        self.expand(INTERNAL_PREFIX, name.as_bytes())
    }

    fn expand(&self, prefix: &[u8], label: &[u8]) -> SecretBox<[u8; KEY_LEN]> {
        let hk = Hkdf::<Sha256>::new(None, self.key.expose_secret());
        SecretBox::init_with_mut(|okm: &mut [u8; KEY_LEN]| {
            // 32 bytes is far below HKDF-SHA256's 8160-byte limit, so expansion cannot fail.
            let _ = hk.expand_multi_info(&[prefix, label], okm);
        })
    }

    fn with_key(key: SecretBox<[u8; KEY_LEN]>) -> Self {
        let mut this = Self {
            key,
            kid: [0u8; KID_LEN],
        };
        let k = this.internal("key-id");
        let tag = hmac_sha256(k.expose_secret(), b"key-id");
        this.kid.copy_from_slice(&tag[..KID_LEN]);
        this
    }
}

/// HMAC-SHA256 of `msg` under a 32-byte key.
pub(crate) fn hmac_sha256(key: &[u8; KEY_LEN], msg: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; this constructor cannot fail for 32 bytes.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return [0u8; 32],
    };
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derive_is_deterministic_and_label_separated() {
        let a = MasterKey::from_bytes([1u8; 32]);
        let a2 = MasterKey::from_bytes([1u8; 32]);
        let b = MasterKey::from_bytes([2u8; 32]);
        let d = |k: &MasterKey, l: &str| *k.derive(l).expose_secret();
        assert_eq!(
            d(&a, "pairgate/pairing-hmac/v1"),
            d(&a2, "pairgate/pairing-hmac/v1")
        );
        assert_ne!(
            d(&a, "pairgate/pairing-hmac/v1"),
            d(&a, "pairgate/token-mac/v1")
        );
        assert_ne!(
            d(&a, "pairgate/pairing-hmac/v1"),
            d(&b, "pairgate/pairing-hmac/v1")
        );
        // Public labels can never reach internal subkeys.
        assert_ne!(d(&a, "kek"), *a.internal("kek").expose_secret());
        assert_ne!(d(&a, "x"), [1u8; 32]);
    }

    #[test]
    fn key_id_is_stable_short_hex_and_key_specific() {
        let a = MasterKey::from_bytes([1u8; 32]);
        let id = a.key_id();
        assert_eq!(id.len(), 16);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(id, MasterKey::from_bytes([1u8; 32]).key_id());
        assert_ne!(id, MasterKey::from_bytes([2u8; 32]).key_id());
        assert_ne!(
            MasterKey::generate().key_id(),
            MasterKey::generate().key_id()
        );
    }

    #[test]
    fn verifier_accepts_right_key_and_rejects_wrong_one() {
        let k = MasterKey::generate();
        let v = k.verifier();
        assert_eq!(v.len(), 1 + 24 + 8 + VERIFIER_PLAINTEXT.len() + 16);
        assert_eq!(v[0], 0x01);
        k.check_verifier(&v).unwrap();
        let err = MasterKey::generate().check_verifier(&v).unwrap_err();
        assert!(matches!(err, CustodyError::WrongMasterKey), "{err}");
        assert!(err.to_string().starts_with("wrong master key"));
    }

    #[test]
    fn verifier_damage_and_version_are_reported_clearly() {
        let k = MasterKey::generate();
        let mut v = k.verifier();
        let last = v.len() - 1;
        v[last] ^= 1;
        assert!(matches!(
            k.check_verifier(&v),
            Err(CustodyError::CorruptVerifier)
        ));
        assert!(matches!(
            k.check_verifier(&v[..20]),
            Err(CustodyError::CorruptVerifier)
        ));
        assert!(matches!(
            k.check_verifier(&[]),
            Err(CustodyError::CorruptVerifier)
        ));
        v[0] = 0x7f;
        let err = k.check_verifier(&v).unwrap_err();
        assert!(matches!(
            err,
            CustodyError::UnsupportedVersion { version: 0x7f }
        ));
        assert!(err.to_string().contains("0x7f"), "{err}");
    }

    #[test]
    fn passphrase_derivation_is_deterministic_and_salted() {
        let p = SecretString::from("correct horse battery staple");
        let params = KdfParams::testing();
        let salt = new_salt();
        let a = MasterKey::from_passphrase(&p, &salt, &params).unwrap();
        let b = MasterKey::from_passphrase(&p, &salt, &params).unwrap();
        assert_eq!(a.key_id(), b.key_id());
        let c = MasterKey::from_passphrase(&p, &new_salt(), &params).unwrap();
        assert_ne!(a.key_id(), c.key_id());
        let other = SecretString::from("correct horse battery stapler");
        let d = MasterKey::from_passphrase(&other, &salt, &params).unwrap();
        assert_ne!(a.key_id(), d.key_id());
    }

    #[test]
    fn passphrase_rejects_empty_short_salt_and_bad_params() {
        let params = KdfParams::testing();
        let err = MasterKey::from_passphrase(&SecretString::from(""), &new_salt(), &params);
        assert!(matches!(err, Err(CustodyError::BadSecret { .. })));
        let p = SecretString::from("hunter2-but-longer");
        let err = MasterKey::from_passphrase(&p, b"short", &params).unwrap_err();
        assert!(matches!(err, CustodyError::Kdf { .. }), "{err}");
        assert!(!err.to_string().contains("hunter2"));
        let bad = KdfParams {
            m_kib: 1,
            t: 0,
            p: 0,
        };
        assert!(matches!(
            MasterKey::from_passphrase(&p, &new_salt(), &bad),
            Err(CustodyError::Kdf { .. })
        ));
        assert!(!KdfParams::default().is_weak());
        assert!(KdfParams::testing().is_weak());
    }

    #[test]
    fn base64_roundtrip_whitespace_and_garbage() {
        let k = MasterKey::generate();
        let text = k.export_base64();
        assert_eq!(text.expose_secret().len(), 44);
        let padded = format!("  \n{}\r\n\t", text.expose_secret());
        let back = MasterKey::from_base64(&padded, "test").unwrap();
        assert_eq!(back.key_id(), k.key_id());
        for junk in [
            "",
            "   ",
            "not base64 at all",
            "QUJD",
            &"A".repeat(44),
            &"*".repeat(44),
        ] {
            let err = MasterKey::from_base64(junk, "file /x/master.key").unwrap_err();
            assert!(
                matches!(err, CustodyError::BadKeyMaterial { .. }),
                "{junk}: {err}"
            );
            assert!(err.to_string().contains("file /x/master.key"));
        }
    }

    #[test]
    fn debug_output_never_contains_key_material() {
        let bytes = [0xA5u8; 32];
        let k = MasterKey::from_bytes(bytes);
        let dbg = format!("{k:?}");
        assert!(dbg.starts_with("MasterKey(<redacted>, id="), "{dbg}");
        assert!(dbg.contains(&k.key_id()));
        let b64 = STANDARD.encode(bytes);
        assert!(!dbg.contains(&b64) && !dbg.contains(&b64[..12]));
        assert!(!dbg.contains(&blob::hex(&bytes[..6])));
        let exported = k.export_base64();
        let sdbg = format!("{exported:?}");
        assert!(!sdbg.contains(&b64[..12]), "{sdbg}");
        let derived = format!("{:?}", k.derive("label"));
        assert!(!derived.contains(&blob::hex(&k.derive("label").expose_secret()[..6])));
    }
}
