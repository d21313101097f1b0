//! Tests for DPoP proof creation and verification; shared fixtures and positive cases.

use serde_json::{Value, json};

use super::*;
use crate::b64;
use crate::jwk::JwkError;

const URL: &str = "https://gateway.example/v1/chat/completions";
const NOW: i64 = 1_767_225_600;
const TOKEN: &str = "example-access-token";
const NONCE: &str = "server-nonce-1";
const BODY: &[u8] = br#"{"model":"openai/gpt-4o-mini"}"#;

fn ed_key() -> SigningKey {
    SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]))
}

fn ec_key() -> SigningKey {
    SigningKey::P256(p256::ecdsa::SigningKey::from_bytes(&[9u8; 32].into()).unwrap())
}

fn input() -> ProofInput<'static> {
    ProofInput {
        htm: "POST",
        htu: URL,
        iat: NOW,
        jti: "jti-0001",
        access_token: Some(TOKEN),
        nonce: Some(NONCE),
        body: Some(BODY),
    }
}

/// Strict options that the proof from `input()` satisfies.
fn opts() -> VerifyOptions<'static> {
    VerifyOptions {
        access_token: Some(TOKEN),
        expected_nonce: Some(NONCE),
        body: Some(BODY),
        require_body_hash: true,
        ..VerifyOptions::new("POST", URL, NOW)
    }
}

fn header(key: &SigningKey, alg: &str) -> Value {
    json!({"typ": "dpop+jwt", "alg": alg, "jwk": key.public_key().to_jwk()})
}

fn claims(input: &ProofInput<'_>) -> Value {
    serde_json::from_str(&proof_claims_json(input)).unwrap()
}

fn sign_raw(key: &SigningKey, header: &[u8], claims: &[u8]) -> String {
    let signing_input = format!("{}.{}", b64::encode(header), b64::encode(claims));
    let signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", b64::encode(&signature))
}

fn forge(key: &SigningKey, header: &Value, claims: &Value) -> String {
    sign_raw(
        key,
        header.to_string().as_bytes(),
        claims.to_string().as_bytes(),
    )
}

fn with_header(key: &SigningKey, edit: impl FnOnce(&mut Value)) -> String {
    let mut h = header(key, key.default_alg().as_str());
    edit(&mut h);
    forge(key, &h, &claims(&input()))
}

fn with_claims(key: &SigningKey, edit: impl FnOnce(&mut Value)) -> String {
    let mut c = claims(&input());
    edit(&mut c);
    forge(key, &header(key, key.default_alg().as_str()), &c)
}

fn remove(value: &mut Value, name: &str) {
    value.as_object_mut().unwrap().remove(name);
}

mod negative;

#[test]
fn positive_cases_for_every_alg() {
    let ed = ed_key();
    let ec = ec_key();
    let proofs = [
        (create_proof(&ed, &input()), Alg::EdDSA, &ed),
        (
            create_proof_with_alg(&ed, Alg::Ed25519, &input()).unwrap(),
            Alg::Ed25519,
            &ed,
        ),
        (create_proof(&ec, &input()), Alg::ES256, &ec),
    ];
    for (proof, alg, key) in proofs {
        let jkt = key.public_key().thumbprint();
        let options = VerifyOptions {
            expected_jkt: Some(&jkt),
            ..opts()
        };
        let verified = verify_proof(&proof, &options).unwrap();
        assert_eq!(verified.alg, alg);
        assert_eq!(verified.jkt, jkt);
        assert_eq!(verified.jti, "jti-0001");
        assert_eq!(verified.iat, NOW);
        assert_eq!(verified.key, key.public_key());
        assert!(verified.body_hash_checked);
    }
    assert_eq!(
        create_proof_with_alg(&ec, Alg::EdDSA, &input()),
        Err(ProofError::AlgKeyMismatch)
    );
}

#[test]
fn lenient_where_the_rfc_allows() {
    let key = ed_key();
    let minimal = ProofInput {
        access_token: None,
        nonce: None,
        body: None,
        ..input()
    };
    let plain = VerifyOptions::new("POST", URL, NOW);
    let verified = verify_proof(&create_proof(&key, &minimal), &plain).unwrap();
    assert!(!verified.body_hash_checked);

    // ath and nonce are ignored when the verifier does not expect them.
    assert!(
        verify_proof(
            &create_proof(&key, &input()),
            &VerifyOptions {
                body: Some(BODY),
                ..plain
            }
        )
        .is_ok()
    );

    // Query, fragment, host case and the default port are not significant.
    for htu in [
        "https://gateway.example/v1/chat/completions?stream=true#x",
        "HTTPS://GATEWAY.example:443/v1/chat/completions",
    ] {
        let proof = create_proof(&key, &ProofInput { htu, ..minimal });
        assert!(verify_proof(&proof, &plain).is_ok(), "{htu}");
    }
    let with_query = VerifyOptions {
        url: "https://gateway.example/v1/chat/completions?a=b",
        ..plain
    };
    assert!(verify_proof(&create_proof(&key, &minimal), &with_query).is_ok());

    // Window edges are inclusive; a 128-character jti is fine.
    for iat in [NOW - 60, NOW + 10] {
        assert!(verify_proof(&create_proof(&key, &ProofInput { iat, ..minimal }), &plain).is_ok());
    }
    let jti = "j".repeat(128);
    assert!(
        verify_proof(
            &create_proof(
                &key,
                &ProofInput {
                    jti: &jti,
                    ..minimal
                }
            ),
            &plain
        )
        .is_ok()
    );

    // A bsh over the empty body verifies when the request has no body.
    let empty = ProofInput {
        body: Some(b""),
        ..minimal
    };
    assert!(
        verify_proof(&create_proof(&key, &empty), &plain)
            .unwrap()
            .body_hash_checked
    );
}

#[test]
fn debug_redacts_the_access_token() {
    let shown = format!("{:?} {:?}", input(), opts());
    assert!(!shown.contains(TOKEN));
    assert!(shown.contains("<redacted>") && shown.contains(URL));
}

#[test]
fn error_codes_follow_rfc9449() {
    assert_eq!(ProofError::UseNonce.code(), "use_dpop_nonce");
    assert_eq!(ProofError::KeyMismatch.code(), "invalid_token");
    assert_eq!(ProofError::AthMismatch.code(), "invalid_token");
    assert_eq!(ProofError::BadSignature.code(), "invalid_dpop_proof");
    assert_eq!(
        ProofError::BadJwk(JwkError::InvalidPoint).code(),
        "invalid_dpop_proof"
    );
}

#[test]
fn claims_and_header_have_the_documented_shape() {
    let key = ed_key();
    assert_eq!(
        proof_claims_json(&input()),
        format!(
            r#"{{"jti":"jti-0001","htm":"POST","htu":"{URL}","iat":{NOW},"ath":"{}","nonce":"{NONCE}","bsh":"{}"}}"#,
            access_token_hash(TOKEN),
            body_hash(BODY)
        )
    );
    assert!(proof_header_json(&key, Alg::EdDSA).starts_with(
        r#"{"typ":"dpop+jwt","alg":"EdDSA","jwk":{"crv":"Ed25519","kty":"OKP","x":""#
    ));
    // RFC 9449 §4.1 / RFC 6749 example value for ath.
    assert_eq!(
        access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
        "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    );
    assert_eq!(
        body_hash(b""),
        "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
    );
}

#[test]
fn jti_is_fresh_and_short() {
    let mut rng = rand_core::OsRng;
    let (a, b) = (new_jti(&mut rng), new_jti(&mut rng));
    assert_eq!(a.len(), 22);
    assert_ne!(a, b);
}

/// A known key changes no verdict: the same proof verifies to the same result with it, a proof by
/// another key is parsed in full (and refused by `expected_jkt`), and a `jwk` with the known
/// coordinates but a private member is still refused.
#[test]
fn a_known_key_is_a_shortcut_not_a_permission() {
    for (key, other) in [(ed_key(), ec_key()), (ec_key(), ed_key())] {
        let known = crate::jwk::KnownKey::new(key.public_key());
        assert_eq!(known.thumbprint(), key.public_key().thumbprint());
        let jkt = key.public_key().thumbprint();
        let with = VerifyOptions {
            expected_jkt: Some(&jkt),
            known_key: Some(&known),
            ..opts()
        };
        let without = VerifyOptions {
            known_key: None,
            ..with
        };
        let proof = create_proof(&key, &input());
        assert_eq!(
            verify_proof(&proof, &with).unwrap(),
            verify_proof(&proof, &without).unwrap()
        );
        assert_eq!(
            verify_proof(&create_proof(&other, &input()), &with),
            Err(ProofError::KeyMismatch)
        );
        let with_private = with_header(&key, |h| {
            h["jwk"]["d"] = json!(b64::encode(&[1u8; 32]));
        });
        assert_eq!(
            verify_proof(&with_private, &with),
            verify_proof(&with_private, &without)
        );
        assert!(verify_proof(&with_private, &with).is_err());
        // a signature by another key under the known key's jwk fails as it always did
        let forged = forge(
            &other,
            &header(&key, key.default_alg().as_str()),
            &claims(&input()),
        );
        assert!(verify_proof(&forged, &with).is_err());
    }
}
