//! Criterion benchmark: DPoP proof creation and verification for Ed25519 and ES256.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pairgate_protocol::dpop::{ProofInput, VerifyOptions, create_proof, verify_proof};
use pairgate_protocol::jwk::KnownKey;
use pairgate_protocol::keys::SigningKey;

const URL: &str = "https://gateway.example/v1/chat/completions";
const NOW: i64 = 1_767_225_600;
const TOKEN: &str = "example-access-token";
const BODY: &[u8] =
    br#"{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;

fn input() -> ProofInput<'static> {
    ProofInput {
        htm: "POST",
        htu: URL,
        iat: NOW,
        jti: "bench-jti-0000000001",
        access_token: Some(TOKEN),
        nonce: None,
        body: Some(BODY),
    }
}

fn keys() -> [(&'static str, SigningKey); 2] {
    [
        (
            "ed25519",
            SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[7u8; 32])),
        ),
        (
            "es256",
            SigningKey::P256(
                p256::ecdsa::SigningKey::from_bytes(&[9u8; 32].into()).expect("valid scalar"),
            ),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    for (name, key) in keys() {
        let proof = create_proof(&key, &input());
        let jkt = key.public_key().thumbprint();
        let opts = VerifyOptions {
            access_token: Some(TOKEN),
            expected_jkt: Some(&jkt),
            body: Some(BODY),
            require_body_hash: true,
            ..VerifyOptions::new("POST", URL, NOW)
        };
        assert!(verify_proof(&proof, &opts).is_ok());
        c.bench_function(&format!("create_proof/{name}"), |b| {
            b.iter(|| create_proof(black_box(&key), black_box(&input())))
        });
        c.bench_function(&format!("verify_proof/{name}"), |b| {
            b.iter(|| verify_proof(black_box(&proof), black_box(&opts)))
        });
        // what the gateway does for a grant's key it has seen before
        let known = KnownKey::new(key.public_key());
        let opts = VerifyOptions {
            known_key: Some(&known),
            ..opts
        };
        c.bench_function(&format!("verify_proof, known key/{name}"), |b| {
            b.iter(|| verify_proof(black_box(&proof), black_box(&opts)))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
