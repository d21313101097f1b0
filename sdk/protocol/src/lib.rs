//! The pairgate wire contract: pairing strings, user codes, DPoP proofs, JWK thumbprints and
//! error bodies, shared by the gateway (verification) and the SDKs (signing).
//!
//! This crate performs no I/O: no files, no network and no clock. Time is always passed in as
//! Unix seconds and randomness as a [`rand_core::CryptoRngCore`]. The normative description of
//! every format lives in `docs/protocol.md`; the language-neutral test vectors in
//! `sdk/test-vectors/vectors.json` are checked against this crate by `tests/vectors.rs`.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod b64;
pub mod dpop;
pub mod error;
pub mod jwk;
pub mod keys;
pub mod oauth;
pub mod pairing;
pub mod user_code;

mod json;

#[cfg(test)]
mod proptests;

pub use dpop::{
    ProofError, ProofInput, VerifiedProof, VerifyOptions, create_proof, normalize_htu, verify_proof,
};
pub use jwk::{Alg, JwkError, KnownKey, PublicKey};
pub use keys::{KeyKind, SigningKey};
pub use pairing::{PairingError, PairingId, PairingSecret, PairingString};
