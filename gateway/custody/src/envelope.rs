//! Envelope encryption of provider credentials: one random data key (DEK) per credential,
//! wrapped under a key-encryption key (KEK) derived from the master key.
//!
//! # Byte layouts (version 0x01)
//!
//! ```text
//! ciphertext  = 0x01 || nonce(24) || XChaCha20-Poly1305(DEK, nonce, value_utf8, AAD_value)
//!               length = 41 + len(value)
//! wrapped_dek = 0x01 || nonce(24) || key_id(8) || XChaCha20-Poly1305(KEK, nonce, DEK(32), AAD_dek)
//!               length = 81
//!
//! AAD_value = "pairgate/custody/value/v1" || 0x00 || 0x01
//!             || u32be(len id) || id || u32be(len provider) || provider
//! AAD_dek   = "pairgate/custody/dek/v1"   || 0x00 || 0x01 || key_id(8)
//!             || u32be(len id) || id || u32be(len provider) || provider
//!
//! KEK    = HKDF-SHA256(master, info = "pairgate/custody/internal/v1" || 0x00 || "kek")
//! key_id = first 8 bytes of the master key's id (see `MasterKey::key_id`), in clear so a
//!          wrong master key is reported as such instead of as corruption.
//! ```
//!
//! Both AADs bind the credential id and provider, so bytes copied to another row fail.
//! Nonces are 24 random bytes from the OS RNG.

use rand_core::{OsRng, RngCore};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::blob::{self, BlobError, KID_LEN};
use crate::error::{CustodyError, Result};
use crate::master::{MasterKey, hmac_sha256};

const VALUE_PURPOSE: &str = "pairgate/custody/value/v1";
const DEK_PURPOSE: &str = "pairgate/custody/dek/v1";
const DEK_LEN: usize = 32;

/// What a sealed credential is bound to; both fields go into the AEAD associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialAad<'a> {
    /// The gateway's stable id of the credential row.
    pub credential_id: &'a str,
    /// The provider name (e.g. `openai`).
    pub provider: &'a str,
}

impl CredentialAad<'_> {
    fn fields(&self) -> [&str; 2] {
        [self.credential_id, self.provider]
    }

    fn corrupt(&self) -> CustodyError {
        CustodyError::Corrupt {
            credential_id: self.credential_id.to_owned(),
        }
    }

    fn map_blob(&self, e: BlobError) -> CustodyError {
        match e {
            BlobError::Version(version) => CustodyError::UnsupportedVersion { version },
            BlobError::Truncated | BlobError::Auth => self.corrupt(),
        }
    }
}

/// The two blobs the gateway stores for one credential.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The credential's data key, wrapped under the master key (81 bytes).
    pub wrapped_dek: Vec<u8>,
    /// The credential value, encrypted under the data key.
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("wrapped_dek_len", &self.wrapped_dek.len())
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// Encrypts a credential value under a fresh data key and wraps that key under `master`.
pub fn seal(
    master: &MasterKey,
    aad: &CredentialAad<'_>,
    plaintext: &SecretString,
) -> Result<Sealed> {
    let mut dek = Zeroizing::new([0u8; DEK_LEN]);
    OsRng.fill_bytes(dek.as_mut_slice());
    let value_aad = blob::aad(VALUE_PURPOSE, &[], &aad.fields());
    let ciphertext = blob::seal(&dek, &[], plaintext.expose_secret().as_bytes(), &value_aad)
        .ok_or_else(|| CustodyError::BadSecret {
            source_desc: format!("credential `{}`", aad.credential_id),
            reason: "too large to encrypt",
        })?;
    let wrapped_dek = wrap(master, aad, &dek)?;
    Ok(Sealed {
        wrapped_dek,
        ciphertext,
    })
}

/// Decrypts a sealed credential. Errors: `WrongMasterKey` (data key wrapped by another
/// master key), `Corrupt` (tampered, truncated or moved to another id/provider),
/// `UnsupportedVersion`.
pub fn open(master: &MasterKey, aad: &CredentialAad<'_>, sealed: &Sealed) -> Result<SecretString> {
    let dek = unwrap(master, aad, &sealed.wrapped_dek)?;
    let parsed = blob::parse(&sealed.ciphertext, 0).map_err(|e| aad.map_blob(e))?;
    let value_aad = blob::aad(VALUE_PURPOSE, &[], &aad.fields());
    let mut plain = blob::open(&dek, &parsed, &value_aad).map_err(|e| aad.map_blob(e))?;
    // Move the bytes out of the zeroizing buffer without copying them.
    let bytes = std::mem::take(&mut *plain);
    match String::from_utf8(bytes) {
        Ok(s) => Ok(SecretString::from(s)),
        Err(e) => {
            drop(Zeroizing::new(e.into_bytes()));
            Err(aad.corrupt())
        }
    }
}

/// Re-wraps a data key from `old` to `new` master key (rotation); the value ciphertext is
/// unchanged. Fails like [`open`] if `old` did not wrap it.
pub fn rewrap(
    old: &MasterKey,
    new: &MasterKey,
    aad: &CredentialAad<'_>,
    wrapped_dek: &[u8],
) -> Result<Vec<u8>> {
    let dek = unwrap(old, aad, wrapped_dek)?;
    wrap(new, aad, &dek)
}

/// The id (as in [`MasterKey::key_id`]) of the master key that wrapped this data key, read
/// from its clear header; lets an interrupted rotation find rows still under the old key.
pub fn wrapped_key_id(wrapped_dek: &[u8]) -> Result<String> {
    let parsed = blob::parse(wrapped_dek, KID_LEN).map_err(|e| match e {
        BlobError::Version(version) => CustodyError::UnsupportedVersion { version },
        BlobError::Truncated | BlobError::Auth => CustodyError::Corrupt {
            credential_id: "<wrapped data key>".into(),
        },
    })?;
    Ok(blob::hex(parsed.extra))
}

/// A short keyed fingerprint (12 hex chars) of a credential value, to spot duplicates and
/// changes. Keyed by the master key, so a database row alone cannot confirm a guessed key.
pub fn fingerprint(master: &MasterKey, secret: &SecretString) -> String {
    let k = master.internal("fingerprint");
    let tag = Zeroizing::new(hmac_sha256(
        k.expose_secret(),
        secret.expose_secret().as_bytes(),
    ));
    blob::hex(&tag[..6])
}

/// The last characters of a value for display: the last 4 for values of 16+ characters,
/// fewer for shorter ones (never more than a quarter), `"****"` under 8 characters.
pub fn last4(secret: &SecretString) -> String {
    let s = secret.expose_secret();
    let n = s.chars().count();
    if n < 8 {
        return "****".into();
    }
    let shown = (n / 4).min(4);
    s.chars().skip(n - shown).collect()
}

fn wrap(master: &MasterKey, aad: &CredentialAad<'_>, dek: &[u8; DEK_LEN]) -> Result<Vec<u8>> {
    let kek = master.internal("kek");
    let dek_aad = blob::aad(DEK_PURPOSE, master.kid(), &aad.fields());
    blob::seal(kek.expose_secret(), master.kid(), dek, &dek_aad).ok_or_else(|| aad.corrupt())
}

fn unwrap(
    master: &MasterKey,
    aad: &CredentialAad<'_>,
    wrapped: &[u8],
) -> Result<Zeroizing<[u8; DEK_LEN]>> {
    let parsed = blob::parse(wrapped, KID_LEN).map_err(|e| aad.map_blob(e))?;
    if !master.kid_matches(parsed.extra) {
        return Err(CustodyError::WrongMasterKey);
    }
    let kek = master.internal("kek");
    let dek_aad = blob::aad(DEK_PURPOSE, parsed.extra, &aad.fields());
    let plain = blob::open(kek.expose_secret(), &parsed, &dek_aad).map_err(|e| aad.map_blob(e))?;
    if plain.len() != DEK_LEN {
        return Err(aad.corrupt());
    }
    let mut dek = Zeroizing::new([0u8; DEK_LEN]);
    dek.copy_from_slice(&plain);
    Ok(dek)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const AAD: CredentialAad<'static> = CredentialAad {
        credential_id: "cred_1",
        provider: "openai",
    };

    fn secret() -> SecretString {
        SecretString::from("sk-proj-abcdefghijklmnopqrstuvwxyz0123456789")
    }

    #[test]
    fn seal_open_roundtrip_with_documented_layout() {
        let m = MasterKey::generate();
        let s = seal(&m, &AAD, &secret()).unwrap();
        assert_eq!(s.wrapped_dek.len(), 81);
        assert_eq!(s.wrapped_dek[0], 0x01);
        assert_eq!(&s.wrapped_dek[25..33], m.kid());
        assert_eq!(s.ciphertext[0], 0x01);
        assert_eq!(s.ciphertext.len(), 41 + secret().expose_secret().len());
        assert_eq!(
            open(&m, &AAD, &s).unwrap().expose_secret(),
            secret().expose_secret()
        );
        assert_eq!(wrapped_key_id(&s.wrapped_dek).unwrap(), m.key_id());
        // Two seals of the same value share nothing.
        let s2 = seal(&m, &AAD, &secret()).unwrap();
        assert_ne!(s.ciphertext, s2.ciphertext);
        assert_ne!(s.wrapped_dek, s2.wrapped_dek);
        let dbg = format!("{s:?}");
        assert!(dbg.contains("ciphertext_len") && !dbg.contains("abcdef"));
    }

    #[test]
    fn moved_ciphertext_fails_for_other_id_or_provider() {
        let m = MasterKey::generate();
        let s = seal(&m, &AAD, &secret()).unwrap();
        for other in [
            CredentialAad {
                credential_id: "cred_2",
                provider: "openai",
            },
            CredentialAad {
                credential_id: "cred_1",
                provider: "anthropic",
            },
            CredentialAad {
                credential_id: "cred_1openai",
                provider: "",
            },
        ] {
            let err = open(&m, &other, &s).unwrap_err();
            match &err {
                CustodyError::Corrupt { credential_id } => {
                    assert_eq!(credential_id, other.credential_id)
                }
                e => panic!("unexpected {e}"),
            }
        }
        // Mixing the wrapped key of one row with the ciphertext of another also fails.
        let other_aad = CredentialAad {
            credential_id: "cred_2",
            provider: "openai",
        };
        let s2 = seal(&m, &other_aad, &secret()).unwrap();
        let mixed = Sealed {
            wrapped_dek: s2.wrapped_dek,
            ciphertext: s.ciphertext,
        };
        assert!(matches!(
            open(&m, &other_aad, &mixed),
            Err(CustodyError::Corrupt { .. })
        ));
    }

    #[test]
    fn any_tampered_byte_fails() {
        let m = MasterKey::generate();
        let s = seal(&m, &AAD, &secret()).unwrap();
        for i in 1..s.ciphertext.len() {
            let mut t = s.clone();
            t.ciphertext[i] ^= 0x01;
            assert!(
                matches!(open(&m, &AAD, &t), Err(CustodyError::Corrupt { .. })),
                "ct {i}"
            );
        }
        for i in (1..25).chain(33..s.wrapped_dek.len()) {
            let mut t = s.clone();
            t.wrapped_dek[i] ^= 0x80;
            assert!(
                matches!(open(&m, &AAD, &t), Err(CustodyError::Corrupt { .. })),
                "dek {i}"
            );
        }
        let mut t = s.clone();
        t.ciphertext.truncate(30);
        assert!(matches!(
            open(&m, &AAD, &t),
            Err(CustodyError::Corrupt { .. })
        ));
        let t = Sealed {
            wrapped_dek: vec![],
            ciphertext: s.ciphertext.clone(),
        };
        assert!(matches!(
            open(&m, &AAD, &t),
            Err(CustodyError::Corrupt { .. })
        ));
    }

    #[test]
    fn wrong_master_key_is_reported_as_such() {
        let s = seal(&MasterKey::generate(), &AAD, &secret()).unwrap();
        let err = open(&MasterKey::generate(), &AAD, &s).unwrap_err();
        assert!(matches!(err, CustodyError::WrongMasterKey));
        assert!(!err.to_string().contains("sk-"));
    }

    #[test]
    fn unknown_version_byte_fails_clearly() {
        let m = MasterKey::generate();
        let s = seal(&m, &AAD, &secret()).unwrap();
        let mut t = s.clone();
        t.ciphertext[0] = 0x02;
        let err = open(&m, &AAD, &t).unwrap_err();
        assert!(matches!(
            err,
            CustodyError::UnsupportedVersion { version: 2 }
        ));
        assert_eq!(
            err.to_string(),
            "unsupported custody format version 0x02 (this build understands 0x01)"
        );
        let mut t = s;
        t.wrapped_dek[0] = 0xff;
        assert!(matches!(
            open(&m, &AAD, &t),
            Err(CustodyError::UnsupportedVersion { version: 0xff })
        ));
        assert!(matches!(
            wrapped_key_id(&t.wrapped_dek),
            Err(CustodyError::UnsupportedVersion { version: 0xff })
        ));
    }

    #[test]
    fn rewrap_moves_data_key_to_new_master() {
        let old = MasterKey::generate();
        let new = MasterKey::generate();
        let s = seal(&old, &AAD, &secret()).unwrap();
        let rewrapped = rewrap(&old, &new, &AAD, &s.wrapped_dek).unwrap();
        assert_eq!(wrapped_key_id(&rewrapped).unwrap(), new.key_id());
        let s2 = Sealed {
            wrapped_dek: rewrapped,
            ciphertext: s.ciphertext.clone(),
        };
        assert_eq!(
            open(&new, &AAD, &s2).unwrap().expose_secret(),
            secret().expose_secret()
        );
        assert!(matches!(
            open(&old, &AAD, &s2),
            Err(CustodyError::WrongMasterKey)
        ));
        // Rewrapping needs the right old key and the right binding.
        assert!(matches!(
            rewrap(&new, &old, &AAD, &s.wrapped_dek),
            Err(CustodyError::WrongMasterKey)
        ));
        let other = CredentialAad {
            credential_id: "cred_9",
            provider: "openai",
        };
        assert!(matches!(
            rewrap(&old, &new, &other, &s.wrapped_dek),
            Err(CustodyError::Corrupt { .. })
        ));
    }

    #[test]
    fn fingerprint_is_keyed_short_and_stable() {
        let m = MasterKey::generate();
        let f = fingerprint(&m, &secret());
        assert_eq!(f.len(), 12);
        assert!(f.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(f, fingerprint(&m, &secret()));
        assert_ne!(f, fingerprint(&MasterKey::generate(), &secret()));
        assert_ne!(f, fingerprint(&m, &SecretString::from("sk-other")));
    }

    #[test]
    fn last4_hides_short_values() {
        let l = |s: &str| last4(&SecretString::from(s));
        assert_eq!(l("sk-proj-abcdefghijklmnop"), "mnop");
        assert_eq!(l("0123456789ab"), "9ab");
        assert_eq!(l("01234567"), "67");
        assert_eq!(l("1234567"), "****");
        assert_eq!(l(""), "****");
        assert_eq!(l("ключ-ключ-ключ-ключ"), "ключ");
    }

    proptest! {
        #[test]
        fn roundtrip_arbitrary_strings(value in any::<String>(), id in "[a-z0-9_]{0,12}", provider in "\\PC{0,8}") {
            let m = MasterKey::from_bytes([9u8; 32]);
            let aad = CredentialAad { credential_id: &id, provider: &provider };
            let sealed = seal(&m, &aad, &SecretString::from(value.clone())).unwrap();
            let opened = open(&m, &aad, &sealed).unwrap();
            prop_assert_eq!(opened.expose_secret(), value.as_str());
        }
    }
}
