//! Signing keys held by SDKs: generation, JWS signing and private-JWK storage format.

use std::fmt;

use ed25519_dalek::Signer as _;
use rand_core::CryptoRngCore;
use serde_json::{Value, json};

use crate::b64;
use crate::jwk::{Alg, JwkError, PublicKey, coordinate};

/// The supported key types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// Ed25519 (signs with `EdDSA`).
    Ed25519,
    /// ECDSA P-256 (signs with `ES256`).
    P256,
}

/// A private signing key. `Debug` shows only the kind and the public thumbprint.
#[derive(Clone)]
pub enum SigningKey {
    /// Ed25519 private key (32-byte seed).
    Ed25519(ed25519_dalek::SigningKey),
    /// ECDSA P-256 private key (32-byte scalar).
    P256(p256::ecdsa::SigningKey),
}

impl SigningKey {
    /// Generates a fresh key of the given kind.
    pub fn generate(kind: KeyKind, rng: &mut impl CryptoRngCore) -> SigningKey {
        match kind {
            KeyKind::Ed25519 => SigningKey::Ed25519(ed25519_dalek::SigningKey::generate(rng)),
            KeyKind::P256 => SigningKey::P256(p256::ecdsa::SigningKey::random(rng)),
        }
    }

    /// The key kind.
    pub fn kind(&self) -> KeyKind {
        match self {
            SigningKey::Ed25519(_) => KeyKind::Ed25519,
            SigningKey::P256(_) => KeyKind::P256,
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            SigningKey::Ed25519(key) => PublicKey::Ed25519(key.verifying_key()),
            SigningKey::P256(key) => PublicKey::P256(*key.verifying_key()),
        }
    }

    /// The alg used when signing: `EdDSA` for Ed25519, `ES256` for P-256.
    pub fn default_alg(&self) -> Alg {
        match self {
            SigningKey::Ed25519(_) => Alg::EdDSA,
            SigningKey::P256(_) => Alg::ES256,
        }
    }

    /// Signs `message` as JWS does: 64 bytes either way. Ed25519 is deterministic by design;
    /// ES256 is the raw `r || s` with the RFC 6979 deterministic nonce.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            SigningKey::Ed25519(key) => key.sign(message).to_bytes().to_vec(),
            SigningKey::P256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(message);
                signature.to_bytes().to_vec()
            }
        }
    }

    /// The private JWK (public members plus `d`), the SDK storage format. Treat as a secret.
    pub fn to_private_jwk(&self) -> Value {
        let mut jwk = self.public_key().to_jwk();
        let d = match self {
            SigningKey::Ed25519(key) => b64::encode(key.as_bytes()),
            SigningKey::P256(key) => b64::encode(&key.to_bytes()),
        };
        jwk["d"] = json!(d);
        jwk
    }

    /// Loads a private JWK written by [`Self::to_private_jwk`]. The only place `d` is accepted.
    /// The public members are required and must match the private part; other private members
    /// (RSA's `p`, `q`, …, symmetric `k`) are rejected.
    pub fn from_private_jwk(jwk: &Value) -> Result<SigningKey, JwkError> {
        let obj = jwk.as_object().ok_or(JwkError::NotAnObject)?;
        if obj.contains_key("k") {
            return Err(JwkError::Symmetric);
        }
        if ["p", "q", "dp", "dq", "qi", "oth"]
            .iter()
            .any(|m| obj.contains_key(*m))
        {
            return Err(JwkError::UnsupportedKty);
        }
        let claimed = PublicKey::from_public_members(obj)?;
        let d: [u8; 32] = coordinate(obj, "d")?;
        let key = match claimed {
            PublicKey::Ed25519(_) => SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&d)),
            PublicKey::P256(_) => SigningKey::P256(
                p256::ecdsa::SigningKey::from_bytes(&d.into())
                    .map_err(|_| JwkError::InvalidMember("d"))?,
            ),
        };
        if key.public_key() != claimed {
            return Err(JwkError::PublicPrivateMismatch);
        }
        Ok(key)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kind", &self.kind())
            .field("jkt", &self.public_key().thumbprint())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use rand_core::OsRng;

    use super::*;

    #[test]
    fn sign_and_verify_both_kinds() {
        for kind in [KeyKind::Ed25519, KeyKind::P256] {
            let key = SigningKey::generate(kind, &mut OsRng);
            let signature = key.sign(b"message");
            assert_eq!(signature.len(), 64);
            assert!(key.public_key().verify(b"message", &signature));
            assert!(!key.public_key().verify(b"messagf", &signature));
            assert_eq!(
                key.sign(b"message"),
                signature,
                "signing must be deterministic"
            );
            assert!(key.default_alg().fits(&key.public_key()));
            assert_eq!(key.kind(), kind);
        }
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn known_answer_signatures() {
        // RFC 8032 §7.1 TEST 1 (empty message).
        let seed = hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let ed = SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(
            &seed.try_into().unwrap(),
        ));
        assert_eq!(
            ed.sign(b""),
            hex(
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
            )
        );
        // RFC 6979 §A.2.5, P-256 with SHA-256, message "sample": deterministic k.
        let scalar = hex("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721");
        let ec = SigningKey::P256(p256::ecdsa::SigningKey::from_slice(&scalar).unwrap());
        assert_eq!(
            ec.sign(b"sample"),
            hex(
                "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8"
            )
        );
    }

    #[test]
    fn private_jwk_roundtrip_and_public_view() {
        for kind in [KeyKind::Ed25519, KeyKind::P256] {
            let key = SigningKey::generate(kind, &mut OsRng);
            let jwk = key.to_private_jwk();
            let back = SigningKey::from_private_jwk(&jwk).unwrap();
            assert_eq!(back.public_key(), key.public_key());
            assert_eq!(back.to_private_jwk(), jwk);
            // The private JWK is never accepted as a public one.
            assert_eq!(PublicKey::from_jwk(&jwk), Err(JwkError::PrivateKey));
        }
    }

    #[test]
    fn private_jwk_rejects_mismatch_and_bad_d() {
        let a = SigningKey::generate(KeyKind::Ed25519, &mut OsRng).to_private_jwk();
        let b = SigningKey::generate(KeyKind::Ed25519, &mut OsRng).to_private_jwk();
        let mut mixed = a.clone();
        mixed["x"] = b["x"].clone();
        assert_eq!(
            SigningKey::from_private_jwk(&mixed).err(),
            Some(JwkError::PublicPrivateMismatch)
        );

        let mut no_d = a.clone();
        no_d.as_object_mut().unwrap().remove("d");
        assert_eq!(
            SigningKey::from_private_jwk(&no_d).err(),
            Some(JwkError::MissingMember("d"))
        );

        let mut zero_scalar = SigningKey::generate(KeyKind::P256, &mut OsRng).to_private_jwk();
        zero_scalar["d"] = json!(b64::encode(&[0u8; 32]));
        assert_eq!(
            SigningKey::from_private_jwk(&zero_scalar).err(),
            Some(JwkError::InvalidMember("d"))
        );

        let mut oct = a;
        oct["k"] = json!("AAAA");
        assert_eq!(
            SigningKey::from_private_jwk(&oct).err(),
            Some(JwkError::Symmetric)
        );
    }

    #[test]
    fn debug_never_prints_private_material() {
        for kind in [KeyKind::Ed25519, KeyKind::P256] {
            let key = SigningKey::generate(kind, &mut OsRng);
            let d = key.to_private_jwk()["d"].as_str().unwrap().to_owned();
            let shown = format!("{key:?} {key:#?}");
            assert!(!shown.contains(&d));
            assert!(shown.contains(&key.public_key().thumbprint()));
        }
    }
}
