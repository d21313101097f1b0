//! Public JWKs (RFC 7517/7518/8037): strict parsing of Ed25519 and P-256 keys, RFC 7638
//! thumbprints, the human-comparable fingerprint, and the JWS `alg` allow-list.

use ed25519_dalek::Verifier as _;
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::b64;
use crate::keys::KeyKind;

/// JWK members that carry private or symmetric key material; a public JWK must have none.
pub const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a JWK was rejected. Messages never contain key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    /// The JWK is not a JSON object.
    #[error("the jwk is not a JSON object")]
    NotAnObject,
    /// A private member (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`, `k`) is present.
    #[error("the jwk contains private key material")]
    PrivateKey,
    /// `kty` is `oct`: symmetric keys are never accepted.
    #[error("symmetric (oct) keys are not accepted")]
    Symmetric,
    /// `kty` is neither `OKP` nor `EC`.
    #[error("unsupported jwk key type")]
    UnsupportedKty,
    /// `crv` is not `Ed25519` (for OKP) or `P-256` (for EC).
    #[error("unsupported jwk curve")]
    UnsupportedCrv,
    /// A required member is absent.
    #[error("the jwk member `{0}` is missing")]
    MissingMember(&'static str),
    /// A member is not a string, not base64url, or has the wrong length.
    #[error("the jwk member `{0}` is invalid")]
    InvalidMember(&'static str),
    /// The coordinates are not a valid, canonically encoded point (or are the identity).
    #[error("the jwk is not a valid public key")]
    InvalidPoint,
    /// An Ed25519 key of small order, for which signatures can be forged.
    #[error("the jwk is a weak (small-order) key")]
    WeakKey,
    /// A private JWK whose public members do not match its private scalar or seed.
    #[error("the private jwk does not match its public members")]
    PublicPrivateMismatch,
}

/// A public key accepted for DPoP: Ed25519 or ECDSA P-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicKey {
    /// Ed25519 (`kty` `OKP`, `crv` `Ed25519`).
    Ed25519(ed25519_dalek::VerifyingKey),
    /// ECDSA over P-256 (`kty` `EC`, `crv` `P-256`).
    P256(p256::ecdsa::VerifyingKey),
}

impl PublicKey {
    /// Parses a public JWK, rejecting private members, `oct`, unknown `kty`/`crv`, wrong
    /// lengths, invalid or non-canonical points and weak Ed25519 keys. Optional members such as
    /// `kid`, `use` or `alg` are ignored.
    pub fn from_jwk(jwk: &Value) -> Result<PublicKey, JwkError> {
        let obj = jwk.as_object().ok_or(JwkError::NotAnObject)?;
        if PRIVATE_MEMBERS.iter().any(|m| obj.contains_key(*m)) {
            return Err(JwkError::PrivateKey);
        }
        Self::from_public_members(obj)
    }

    /// Parses the public members of a JWK object without looking at private members.
    pub(crate) fn from_public_members(obj: &Map<String, Value>) -> Result<PublicKey, JwkError> {
        match str_member(obj, "kty")? {
            "OKP" => {
                if str_member(obj, "crv")? != "Ed25519" {
                    return Err(JwkError::UnsupportedCrv);
                }
                let x: [u8; 32] = coordinate(obj, "x")?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&x)
                    .map_err(|_| JwkError::InvalidPoint)?;
                // Decompression accepts a non-canonical y (>= p); insist on the canonical
                // encoding so that one key has exactly one thumbprint.
                if key.to_edwards().compress().to_bytes() != x {
                    return Err(JwkError::InvalidPoint);
                }
                if key.is_weak() {
                    return Err(JwkError::WeakKey);
                }
                Ok(PublicKey::Ed25519(key))
            }
            "EC" => {
                if str_member(obj, "crv")? != "P-256" {
                    return Err(JwkError::UnsupportedCrv);
                }
                let x: [u8; 32] = coordinate(obj, "x")?;
                let y: [u8; 32] = coordinate(obj, "y")?;
                let point =
                    p256::EncodedPoint::from_affine_coordinates(&x.into(), &y.into(), false);
                let key = p256::ecdsa::VerifyingKey::from_encoded_point(&point)
                    .map_err(|_| JwkError::InvalidPoint)?;
                Ok(PublicKey::P256(key))
            }
            "oct" => Err(JwkError::Symmetric),
            _ => Err(JwkError::UnsupportedKty),
        }
    }

    /// The public JWK with only the required members (`kty`, `crv`, `x`, and `y` for EC).
    pub fn to_jwk(&self) -> Value {
        match self {
            PublicKey::Ed25519(_) => json!({"kty": "OKP", "crv": "Ed25519", "x": self.x()}),
            PublicKey::P256(_) => {
                json!({"kty": "EC", "crv": "P-256", "x": self.x(), "y": self.y()})
            }
        }
    }

    /// The key type.
    pub fn kind(&self) -> KeyKind {
        match self {
            PublicKey::Ed25519(_) => KeyKind::Ed25519,
            PublicKey::P256(_) => KeyKind::P256,
        }
    }

    /// The exact UTF-8 text hashed by [`Self::thumbprint`] (RFC 7638 §3): the required members
    /// in lexicographic order, no whitespace. The same text is the `jwk` serialisation that
    /// [`crate::dpop::create_proof`] embeds in proof headers.
    pub fn thumbprint_input(&self) -> String {
        match self {
            PublicKey::Ed25519(_) => {
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, self.x())
            }
            PublicKey::P256(_) => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                self.x(),
                self.y()
            ),
        }
    }

    /// The RFC 7638 JWK SHA-256 thumbprint, base64url (43 characters). This is the DPoP `jkt`.
    pub fn thumbprint(&self) -> String {
        b64::encode(&Sha256::digest(self.thumbprint_input().as_bytes()))
    }

    /// A short human-comparable form of the thumbprint shown during consent: its first 16
    /// characters in four groups of four joined by `-` (e.g. `kPrK-_qmx-VWaY-VA9w`). It keeps 96
    /// bits of the thumbprint and is compared case-sensitively.
    pub fn fingerprint(&self) -> String {
        fingerprint_of(&self.thumbprint())
    }

    /// The alg an SDK uses by default for this key: `EdDSA` or `ES256`.
    pub fn default_alg(&self) -> Alg {
        match self {
            PublicKey::Ed25519(_) => Alg::EdDSA,
            PublicKey::P256(_) => Alg::ES256,
        }
    }

    /// Verifies a JWS signature over `message`: Ed25519 with the checks of ed25519-dalek's
    /// `verify_strict` (rejects non-canonical and small-order components, see
    /// [`verify_ed25519_strict`]), ES256 as raw `r || s` of exactly 64 bytes.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::Ed25519(key) => {
                let Ok(bytes) = <[u8; 64]>::try_from(signature) else {
                    return false;
                };
                verify_ed25519_strict(key, message, &bytes)
            }
            PublicKey::P256(key) => {
                if signature.len() != 64 {
                    return false;
                }
                let Ok(sig) = p256::ecdsa::Signature::from_slice(signature) else {
                    return false;
                };
                key.verify(message, &sig).is_ok()
            }
        }
    }

    fn x(&self) -> String {
        match self {
            PublicKey::Ed25519(key) => b64::encode(key.as_bytes()),
            PublicKey::P256(key) => {
                let point = key.to_encoded_point(false);
                point.x().map(|x| b64::encode(x)).unwrap_or_default()
            }
        }
    }

    fn y(&self) -> String {
        match self {
            PublicKey::Ed25519(_) => String::new(),
            PublicKey::P256(key) => {
                let point = key.to_encoded_point(false);
                point.y().map(|y| b64::encode(y)).unwrap_or_default()
            }
        }
    }
}

/// The canonical encodings of the eight points of small order (the torsion subgroup: the
/// identity, one point of order 2, two of order 4, four of order 8). `jwk_tests.rs` proves the
/// list is exactly those points.
pub(crate) const SMALL_ORDER_ENCODINGS: [[u8; 32]; 8] = [
    hex32("0100000000000000000000000000000000000000000000000000000000000000"),
    hex32("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    hex32("0000000000000000000000000000000000000000000000000000000000000000"),
    hex32("0000000000000000000000000000000000000000000000000000000000000080"),
    hex32("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
    hex32("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"),
    hex32("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
    hex32("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"),
];

/// 32 bytes from 64 hex digits, at compile time.
const fn hex32(hex: &str) -> [u8; 32] {
    const fn digit(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not a lowercase hex digit"),
        }
    }
    let h = hex.as_bytes();
    assert!(h.len() == 64);
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = digit(h[2 * i]) << 4 | digit(h[2 * i + 1]);
        i += 1;
    }
    out
}

/// Ed25519 verification that accepts exactly what ed25519-dalek's `verify_strict` accepts,
/// without decoding the signature's `R` (a square root, an eighth of the check's time).
///
/// `verify_strict` decodes `R`, refuses it or the key when of small order, then recomputes
/// `R' = [s]B - [k]A` and compares its canonical encoding with `R`'s bytes. Equal bytes mean `R`
/// is the canonical encoding of the valid point `R'`, so decoding `R` cannot fail there and gives
/// `R'`; `R'` has small order exactly when its canonical encoding is one of
/// [`SMALL_ORDER_ENCODINGS`]. So: key not weak, `R`'s bytes not in that list, and the plain
/// (cofactorless) check, which also refuses a non-canonical `s`. `jwk_tests.rs` checks the two
/// agree, on a signature only the small-order rule refuses among others.
pub(crate) fn verify_ed25519_strict(
    key: &ed25519_dalek::VerifyingKey,
    message: &[u8],
    signature: &[u8; 64],
) -> bool {
    let sig = ed25519_dalek::Signature::from_bytes(signature);
    !key.is_weak()
        && !SMALL_ORDER_ENCODINGS.contains(sig.r_bytes())
        && key.verify(message, &sig).is_ok()
}

/// A public key already parsed and checked, with its encoded coordinates and thumbprint: a
/// verifier that expects proofs by this key (the gateway keeps one per grant) passes it in
/// [`crate::dpop::VerifyOptions::known_key`], and a proof whose `jwk` names exactly this key
/// (same `kty`, `crv` and coordinate strings, no private member) skips the point's decoding and
/// checks and the thumbprint's hashing. Any other `jwk` is parsed in full, as without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownKey {
    key: PublicKey,
    x: String,
    y: Option<String>,
    jkt: String,
}

impl KnownKey {
    /// Remembers `key` (parsed by [`PublicKey::from_jwk`] or made by this crate).
    pub fn new(key: PublicKey) -> KnownKey {
        let y = matches!(key, PublicKey::P256(_)).then(|| key.y());
        KnownKey {
            x: key.x(),
            y,
            jkt: key.thumbprint(),
            key,
        }
    }

    /// The key.
    pub fn key(&self) -> &PublicKey {
        &self.key
    }

    /// Its RFC 7638 thumbprint.
    pub fn thumbprint(&self) -> &str {
        &self.jkt
    }

    /// Whether `jwk` is exactly this key: what [`PublicKey::from_jwk`] would return for it.
    pub fn is(&self, jwk: &Value) -> bool {
        let Some(obj) = jwk.as_object() else {
            return false;
        };
        let member = |name: &str| obj.get(name).and_then(Value::as_str);
        let (kty, crv) = match self.key {
            PublicKey::Ed25519(_) => ("OKP", "Ed25519"),
            PublicKey::P256(_) => ("EC", "P-256"),
        };
        !PRIVATE_MEMBERS.iter().any(|m| obj.contains_key(*m))
            && member("kty") == Some(kty)
            && member("crv") == Some(crv)
            && member("x") == Some(self.x.as_str())
            && member("y") == self.y.as_deref()
    }
}

/// Groups the first 16 characters of a thumbprint as `XXXX-XXXX-XXXX-XXXX`.
pub fn fingerprint_of(thumbprint: &str) -> String {
    let head: Vec<char> = thumbprint.chars().take(16).collect();
    head.chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// The JWS algorithms accepted in DPoP proofs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// `EdDSA` (RFC 8037) with an Ed25519 key.
    EdDSA,
    /// `Ed25519`, the fully-specified name (RFC 9864) for EdDSA with Ed25519.
    Ed25519,
    /// `ES256`: ECDSA P-256 with SHA-256, raw `r || s` signature.
    ES256,
}

impl Alg {
    /// The `alg` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::EdDSA => "EdDSA",
            Alg::Ed25519 => "Ed25519",
            Alg::ES256 => "ES256",
        }
    }

    /// Parses an `alg` value, case-sensitively. Everything but `EdDSA`, `Ed25519` and `ES256`
    /// (e.g. `none`, `HS256`, `RS256`, `ES256K`, `eddsa`) yields `None`.
    pub fn parse(alg: &str) -> Option<Alg> {
        match alg {
            "EdDSA" => Some(Alg::EdDSA),
            "Ed25519" => Some(Alg::Ed25519),
            "ES256" => Some(Alg::ES256),
            _ => None,
        }
    }

    /// Whether this alg may be used with `key`.
    pub fn fits(self, key: &PublicKey) -> bool {
        matches!(
            (self, key),
            (Alg::EdDSA | Alg::Ed25519, PublicKey::Ed25519(_)) | (Alg::ES256, PublicKey::P256(_))
        )
    }
}

impl std::fmt::Display for Alg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(crate) fn str_member<'a>(
    obj: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a str, JwkError> {
    match obj.get(name) {
        None => Err(JwkError::MissingMember(name)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(JwkError::InvalidMember(name)),
    }
}

pub(crate) fn coordinate<const N: usize>(
    obj: &Map<String, Value>,
    name: &'static str,
) -> Result<[u8; N], JwkError> {
    b64::decode_array(str_member(obj, name)?).map_err(|_| JwkError::InvalidMember(name))
}

#[cfg(test)]
#[path = "jwk_tests.rs"]
mod tests;
