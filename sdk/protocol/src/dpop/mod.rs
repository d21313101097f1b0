//! DPoP proofs (RFC 9449): creation for SDKs, verification for the gateway, and the pairgate
//! `bsh` body-hash extension claim.

mod error;
mod htu;
mod verify;

#[cfg(test)]
mod tests;

use rand_core::CryptoRngCore;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

pub use error::ProofError;
pub use htu::normalize_htu;
pub use verify::{VerifiedProof, VerifyOptions, verify_proof};

use crate::b64;
use crate::jwk::Alg;
use crate::keys::SigningKey;

/// The JWS `typ` of a DPoP proof.
pub const DPOP_TYP: &str = "dpop+jwt";
/// pairgate extension claim: base64url(SHA-256(raw request body bytes)).
pub const BODY_HASH_CLAIM: &str = "bsh";
/// Maximum length of a compact proof, in bytes.
pub const MAX_PROOF_BYTES: usize = 8 * 1024;
/// Maximum length of the `jti` claim, in characters (Unicode scalar values).
pub const MAX_JTI_CHARS: usize = 128;
/// Default accepted proof age (`now - iat`), seconds.
pub const DEFAULT_MAX_AGE_SECS: i64 = 60;
/// Default accepted clock skew into the future (`iat - now`), seconds.
pub const DEFAULT_MAX_FUTURE_SECS: i64 = 10;

/// The `bsh` value for a request body: base64url(SHA-256(body)). An empty body hashes too.
pub fn body_hash(body: &[u8]) -> String {
    b64::encode(&Sha256::digest(body))
}

/// The `ath` value for an access token: base64url(SHA-256(ASCII token)).
pub fn access_token_hash(token: &str) -> String {
    b64::encode(&Sha256::digest(token.as_bytes()))
}

/// A fresh `jti`: 128 random bits, base64url (22 characters).
pub fn new_jti(rng: &mut impl CryptoRngCore) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    b64::encode(&bytes)
}

/// What a proof is bound to. `Debug` redacts the access token and the body.
#[derive(Clone, Copy)]
pub struct ProofInput<'a> {
    /// HTTP method, e.g. `POST` (sent as-is; the gateway compares it exactly).
    pub htm: &'a str,
    /// Request URL; the query and fragment may be included, they are ignored by the verifier.
    pub htu: &'a str,
    /// Issued-at, Unix seconds.
    pub iat: i64,
    /// Unique proof id, see [`new_jti`].
    pub jti: &'a str,
    /// The access token the request carries; adds `ath`.
    pub access_token: Option<&'a str>,
    /// The last `DPoP-Nonce` received from the gateway, if any.
    pub nonce: Option<&'a str>,
    /// The exact request body bytes; adds `bsh` when `Some` (also for an empty body).
    pub body: Option<&'a [u8]>,
}

impl std::fmt::Debug for ProofInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProofInput")
            .field("htm", &self.htm)
            .field("htu", &self.htu)
            .field("iat", &self.iat)
            .field("jti", &self.jti)
            .field("access_token", &self.access_token.map(|_| "<redacted>"))
            .field("nonce", &self.nonce)
            .field("body", &self.body.map(<[u8]>::len))
            .finish()
    }
}

/// Claims in their wire order: jti, htm, htu, iat, ath, nonce, bsh.
#[derive(Serialize)]
struct Claims<'a> {
    jti: &'a str,
    htm: &'a str,
    htu: &'a str,
    iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ath: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bsh: Option<String>,
}

/// The proof header JSON: `{"typ":"dpop+jwt","alg":…,"jwk":{…}}`, the jwk with its required
/// members in lexicographic order (identical to the RFC 7638 thumbprint input).
pub fn proof_header_json(key: &SigningKey, alg: Alg) -> String {
    format!(
        r#"{{"typ":"{DPOP_TYP}","alg":"{}","jwk":{}}}"#,
        alg.as_str(),
        key.public_key().thumbprint_input()
    )
}

/// The proof claims JSON, compact, in the order jti, htm, htu, iat, ath, nonce, bsh.
pub fn proof_claims_json(input: &ProofInput<'_>) -> String {
    let claims = Claims {
        jti: input.jti,
        htm: input.htm,
        htu: input.htu,
        iat: input.iat,
        ath: input.access_token.map(access_token_hash),
        nonce: input.nonce,
        bsh: input.body.map(body_hash),
    };
    serde_json::to_string(&claims).expect("serialising strings and integers cannot fail")
}

/// Creates a compact DPoP proof signed with the key's default alg (`EdDSA` or `ES256`).
pub fn create_proof(key: &SigningKey, input: &ProofInput<'_>) -> String {
    sign_compact(
        key,
        &proof_header_json(key, key.default_alg()),
        &proof_claims_json(input),
    )
}

/// Like [`create_proof`] with an explicit alg (e.g. the fully-specified `Ed25519`).
pub fn create_proof_with_alg(
    key: &SigningKey,
    alg: Alg,
    input: &ProofInput<'_>,
) -> Result<String, ProofError> {
    if !alg.fits(&key.public_key()) {
        return Err(ProofError::AlgKeyMismatch);
    }
    Ok(sign_compact(
        key,
        &proof_header_json(key, alg),
        &proof_claims_json(input),
    ))
}

/// `b64(header).b64(claims).b64(signature over the first two parts)`.
fn sign_compact(key: &SigningKey, header_json: &str, claims_json: &str) -> String {
    let signing_input = format!(
        "{}.{}",
        b64::encode(header_json.as_bytes()),
        b64::encode(claims_json.as_bytes())
    );
    let signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", b64::encode(&signature))
}
