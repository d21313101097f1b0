//! `ProofError`: one variant per DPoP verification failure, with client-safe messages and the
//! OAuth error code each maps to.

use crate::error::codes;
use crate::jwk::JwkError;

/// Why a DPoP proof was rejected.
///
/// `Display` is safe to send to the client: it never contains the proof, the access token or
/// key material, only which rule failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The proof exceeds [`super::MAX_PROOF_BYTES`].
    #[error("DPoP proof is too large")]
    TooLarge,
    /// Not three base64url parts separated by `.`.
    #[error("DPoP proof is not a compact JWS of three base64url parts")]
    Malformed,
    /// The header is not a JSON object (or has duplicate members).
    #[error("DPoP proof header is not a valid JSON object")]
    BadHeader,
    /// `typ` is missing or not exactly `dpop+jwt`.
    #[error("DPoP proof typ must be dpop+jwt")]
    WrongTyp,
    /// `alg` is missing or not one of `EdDSA`, `Ed25519`, `ES256`.
    #[error("DPoP proof alg is missing or not supported")]
    UnsupportedAlg,
    /// `alg` does not match the type of the `jwk`.
    #[error("DPoP proof alg does not match the jwk key type")]
    AlgKeyMismatch,
    /// A header member that changes key selection or processing (`crit`, `jku`, `x5u`, `x5c`,
    /// `x5t`, `x5t#S256`, `zip`) is present.
    #[error("DPoP proof header contains the forbidden member `{0}`")]
    ForbiddenHeader(&'static str),
    /// No `jwk` header member.
    #[error("DPoP proof header has no jwk")]
    MissingJwk,
    /// The `jwk` is not an acceptable public key.
    #[error("DPoP proof jwk is invalid: {0}")]
    BadJwk(JwkError),
    /// The `jwk` contains private key material.
    #[error("DPoP proof jwk contains private key material")]
    PrivateKeyInJwk,
    /// The `jwk` is a weak (small-order) Ed25519 key.
    #[error("DPoP proof jwk is a weak key")]
    WeakKey,
    /// The signature does not verify.
    #[error("DPoP proof signature is invalid")]
    BadSignature,
    /// The payload is not a JSON object (or has duplicate members).
    #[error("DPoP proof payload is not a valid JSON object")]
    BadPayload,
    /// A required claim is absent.
    #[error("DPoP proof is missing the `{0}` claim")]
    MissingClaim(&'static str),
    /// A claim has the wrong type or an invalid value.
    #[error("DPoP proof claim `{0}` is invalid")]
    BadClaim(&'static str),
    /// `jti` is longer than [`super::MAX_JTI_CHARS`].
    #[error("DPoP proof jti is too long")]
    JtiTooLong,
    /// `htm` differs from the request method.
    #[error("DPoP proof htm does not match the request method")]
    MethodMismatch,
    /// `htu` differs from the request URL after normalisation.
    #[error("DPoP proof htu does not match the request URL")]
    UrlMismatch,
    /// The verifier's own request URL could not be normalised (a server-side bug).
    #[error("the request URL cannot be used for DPoP verification")]
    InvalidRequestUrl,
    /// `iat` is older than the accepted window.
    #[error("DPoP proof is too old")]
    IatTooOld,
    /// `iat` is too far in the future.
    #[error("DPoP proof iat is in the future")]
    IatInFuture,
    /// `ath` does not match the access token.
    #[error("DPoP proof ath does not match the access token")]
    AthMismatch,
    /// A server nonce is required and the proof lacks it or carries an old one.
    #[error("DPoP proof must include the current server nonce")]
    UseNonce,
    /// `bsh` does not match the request body.
    #[error("DPoP proof bsh does not match the request body")]
    BodyHashMismatch,
    /// The endpoint requires `bsh` and the proof has none.
    #[error("DPoP proof must include the bsh body hash claim")]
    BodyHashRequired,
    /// The proof key is not the key the token or grant is bound to.
    #[error("DPoP proof key does not match the key bound to the token")]
    KeyMismatch,
}

impl ProofError {
    /// The OAuth `error` code for this failure (RFC 9449 §7.1 / RFC 6750 §3.1):
    /// `use_dpop_nonce` for [`ProofError::UseNonce`], `invalid_token` for
    /// [`ProofError::KeyMismatch`] and [`ProofError::AthMismatch`] (the proof is well formed but
    /// not bound to the presented token), `invalid_dpop_proof` for everything else.
    pub fn code(&self) -> &'static str {
        match self {
            ProofError::UseNonce => codes::USE_DPOP_NONCE,
            ProofError::KeyMismatch | ProofError::AthMismatch => codes::INVALID_TOKEN,
            _ => codes::INVALID_DPOP_PROOF,
        }
    }
}

impl From<JwkError> for ProofError {
    fn from(err: JwkError) -> Self {
        match err {
            JwkError::PrivateKey => ProofError::PrivateKeyInJwk,
            JwkError::WeakKey => ProofError::WeakKey,
            other => ProofError::BadJwk(other),
        }
    }
}
