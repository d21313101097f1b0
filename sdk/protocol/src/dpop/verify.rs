//! `verify_proof`: the RFC 9449 §4.3 checklist (all of it except the replay cache, which the
//! caller keeps keyed by `jkt` + `jti`, inserting only after a successful verification).

use serde_json::{Map, Value};
use subtle::ConstantTimeEq as _;

use super::{
    DEFAULT_MAX_AGE_SECS, DEFAULT_MAX_FUTURE_SECS, DPOP_TYP, MAX_JTI_CHARS, MAX_PROOF_BYTES,
    ProofError, access_token_hash, body_hash, normalize_htu,
};
use crate::b64;
use crate::json::parse_object;
use crate::jwk::{Alg, KnownKey, PublicKey};

/// Header members that would make the verifier fetch keys, honour unknown extensions or
/// otherwise change processing. Their presence rejects the proof.
pub const FORBIDDEN_HEADERS: &[&str] = &["crit", "jku", "x5u", "x5c", "x5t", "x5t#S256", "zip"];

/// What the request looks like and what the proof must satisfy. `Debug` redacts the access
/// token and the body.
#[derive(Clone, Copy)]
pub struct VerifyOptions<'a> {
    /// The request method, compared exactly with `htm`.
    pub method: &'a str,
    /// The request URL as the client addressed it (public scheme, host and port), normalised
    /// with [`normalize_htu`] before comparison.
    pub url: &'a str,
    /// Current time, Unix seconds.
    pub now: i64,
    /// Maximum accepted `now - iat` (default 60).
    pub max_age_secs: i64,
    /// Maximum accepted `iat - now` (default 10).
    pub max_future_secs: i64,
    /// The access token presented with the request: `ath` becomes mandatory.
    pub access_token: Option<&'a str>,
    /// The thumbprint the token or grant is bound to (`cnf.jkt`).
    pub expected_jkt: Option<&'a str>,
    /// The current server nonce: `nonce` becomes mandatory and must equal it.
    pub expected_nonce: Option<&'a str>,
    /// The raw request body; `None` is treated as empty when a `bsh` is present.
    pub body: Option<&'a [u8]>,
    /// Reject proofs without `bsh`.
    pub require_body_hash: bool,
    /// A key proofs are expected to carry, already parsed ([`KnownKey`]): a `jwk` naming exactly
    /// it is not decoded again. It grants nothing: `expected_jkt` and the signature are still
    /// checked, and any other key is parsed in full.
    pub known_key: Option<&'a KnownKey>,
}

impl<'a> VerifyOptions<'a> {
    /// Options with the default time window (60 s old, 10 s ahead) and nothing else required.
    pub fn new(method: &'a str, url: &'a str, now: i64) -> Self {
        VerifyOptions {
            method,
            url,
            now,
            max_age_secs: DEFAULT_MAX_AGE_SECS,
            max_future_secs: DEFAULT_MAX_FUTURE_SECS,
            access_token: None,
            expected_jkt: None,
            expected_nonce: None,
            body: None,
            require_body_hash: false,
            known_key: None,
        }
    }
}

impl std::fmt::Debug for VerifyOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("now", &self.now)
            .field("max_age_secs", &self.max_age_secs)
            .field("max_future_secs", &self.max_future_secs)
            .field("access_token", &self.access_token.map(|_| "<redacted>"))
            .field("expected_jkt", &self.expected_jkt)
            .field("expected_nonce", &self.expected_nonce)
            .field("body", &self.body.map(<[u8]>::len))
            .field("require_body_hash", &self.require_body_hash)
            .field("known_key", &self.known_key.map(KnownKey::thumbprint))
            .finish()
    }
}

/// A proof that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// RFC 7638 thumbprint of the proof key.
    pub jkt: String,
    /// The proof id, for the replay cache (key it by `jkt` + `jti`).
    pub jti: String,
    /// Issued-at, Unix seconds (the replay cache entry can expire at `iat + max_age`).
    pub iat: i64,
    /// The proof key.
    pub key: PublicKey,
    /// The alg the proof was signed with.
    pub alg: Alg,
    /// Whether a `bsh` claim was present and matched the body.
    pub body_hash_checked: bool,
}

/// Verifies a compact DPoP proof against the request described by `opts`.
///
/// Checks, in order: size; three base64url parts; header JSON object; `typ`; `alg`; forbidden
/// header members; `jwk`; alg/key fit; signature; payload JSON object; `jti`, `htm`, `htu`,
/// `iat` present and typed; optional claims typed; `htm`; `htu`; `iat` window; `nonce`; `ath`;
/// expected `jkt`; `bsh`. The first failure is returned.
pub fn verify_proof(proof: &str, opts: &VerifyOptions<'_>) -> Result<VerifiedProof, ProofError> {
    if proof.len() > MAX_PROOF_BYTES {
        return Err(ProofError::TooLarge);
    }
    let mut parts = proof.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ProofError::Malformed);
    };
    let header_bytes = b64::decode(header_b64).map_err(|_| ProofError::Malformed)?;
    let payload_bytes = b64::decode(payload_b64).map_err(|_| ProofError::Malformed)?;
    let signature = b64::decode(signature_b64).map_err(|_| ProofError::Malformed)?;

    let header = parse_object(&header_bytes).map_err(|_| ProofError::BadHeader)?;
    if header.get("typ").and_then(Value::as_str) != Some(DPOP_TYP) {
        return Err(ProofError::WrongTyp);
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(Alg::parse)
        .ok_or(ProofError::UnsupportedAlg)?;
    if let Some(name) = FORBIDDEN_HEADERS.iter().find(|n| header.contains_key(**n)) {
        return Err(ProofError::ForbiddenHeader(name));
    }
    let jwk = header.get("jwk").ok_or(ProofError::MissingJwk)?;
    let known = opts.known_key.filter(|k| k.is(jwk));
    let key = match known {
        Some(k) => *k.key(),
        None => PublicKey::from_jwk(jwk)?,
    };
    if !alg.fits(&key) {
        return Err(ProofError::AlgKeyMismatch);
    }
    let signing_input = &proof[..header_b64.len() + 1 + payload_b64.len()];
    if !key.verify(signing_input.as_bytes(), &signature) {
        return Err(ProofError::BadSignature);
    }

    let claims = parse_object(&payload_bytes).map_err(|_| ProofError::BadPayload)?;
    let jti = required_str(&claims, "jti")?;
    let htm = required_str(&claims, "htm")?;
    let htu = required_str(&claims, "htu")?;
    let iat = match claims.get("iat") {
        None => return Err(ProofError::MissingClaim("iat")),
        Some(value) => value.as_i64().ok_or(ProofError::BadClaim("iat"))?,
    };
    let ath = optional_str(&claims, "ath")?;
    let nonce = optional_str(&claims, "nonce")?;
    let bsh = optional_str(&claims, super::BODY_HASH_CLAIM)?;
    if jti.is_empty() {
        return Err(ProofError::BadClaim("jti"));
    }
    if jti.chars().count() > MAX_JTI_CHARS {
        return Err(ProofError::JtiTooLong);
    }

    if htm != opts.method {
        return Err(ProofError::MethodMismatch);
    }
    let expected_url = normalize_htu(opts.url).map_err(|_| ProofError::InvalidRequestUrl)?;
    // The same text normalises the same way: only a different one needs its own pass.
    if htu != opts.url && normalize_htu(htu)? != expected_url {
        return Err(ProofError::UrlMismatch);
    }

    if iat < opts.now.saturating_sub(opts.max_age_secs) {
        return Err(ProofError::IatTooOld);
    }
    if iat > opts.now.saturating_add(opts.max_future_secs) {
        return Err(ProofError::IatInFuture);
    }

    if let Some(expected) = opts.expected_nonce
        && !nonce.is_some_and(|n| ct_eq(n, expected))
    {
        return Err(ProofError::UseNonce);
    }

    if let Some(token) = opts.access_token {
        let ath = ath.ok_or(ProofError::MissingClaim("ath"))?;
        if !ct_eq(ath, &access_token_hash(token)) {
            return Err(ProofError::AthMismatch);
        }
    }

    let jkt = known.map_or_else(|| key.thumbprint(), |k| k.thumbprint().to_owned());
    if let Some(expected) = opts.expected_jkt
        && !ct_eq(&jkt, expected)
    {
        return Err(ProofError::KeyMismatch);
    }

    let body_hash_checked = match bsh {
        Some(claimed) => {
            if !ct_eq(claimed, &body_hash(opts.body.unwrap_or_default())) {
                return Err(ProofError::BodyHashMismatch);
            }
            true
        }
        None if opts.require_body_hash => return Err(ProofError::BodyHashRequired),
        None => false,
    };

    Ok(VerifiedProof {
        jkt,
        jti: jti.to_owned(),
        iat,
        key,
        alg,
        body_hash_checked,
    })
}

fn required_str<'a>(
    claims: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a str, ProofError> {
    optional_str(claims, name)?.ok_or(ProofError::MissingClaim(name))
}

fn optional_str<'a>(
    claims: &'a Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'a str>, ProofError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ProofError::BadClaim(name)),
    }
}

/// Constant-time string equality (the length is not secret).
fn ct_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}
