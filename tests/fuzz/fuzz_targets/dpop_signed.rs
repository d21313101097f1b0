//! Fuzz target: proofs with a valid signature over fuzzed header and claims JSON, so the checks
//! after the signature (claim types, `htm`, `htu`, `iat`, `ath`, `jkt`, `bsh`) are reached.
//!
//! Input: `<header JSON> 0xFF <claims JSON>` (without the separator the header is the one a
//! well-behaved client sends). Signed with the Ed25519 key of `sdk/test-vectors/vectors.json`.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use pairgate_protocol::{
    Alg, SigningKey, VerifyOptions, b64, dpop::proof_header_json, verify_proof,
};

static KEY: LazyLock<SigningKey> = LazyLock::new(|| {
    let jwk = serde_json::json!({
        "crv": "Ed25519",
        "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
        "kty": "OKP",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    });
    SigningKey::from_private_jwk(&jwk).expect("the test-vector key parses")
});

fuzz_target!(|data: &[u8]| {
    let key = &*KEY;
    let (header, claims) = match data.iter().position(|b| *b == 0xFF) {
        Some(i) => (data[..i].to_vec(), &data[i + 1..]),
        None => (proof_header_json(key, Alg::EdDSA).into_bytes(), data),
    };
    let signing_input = format!("{}.{}", b64::encode(&header), b64::encode(claims));
    let proof = format!(
        "{signing_input}.{}",
        b64::encode(&key.sign(signing_input.as_bytes()))
    );
    let mut opts = VerifyOptions::new(
        "POST",
        "https://gateway.example/v1/chat/completions",
        1_767_225_600,
    );
    opts.access_token = Some("example-access-token");
    opts.body = Some(br#"{"model":"openai/gpt-4o-mini"}"#);
    opts.expected_jkt = Some("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    if let Ok(verified) = verify_proof(&proof, &opts) {
        // Anything accepted is bound to the signing key and inside the time window.
        assert_eq!(verified.jkt, key.public_key().thumbprint());
        assert!((verified.iat - opts.now).abs() <= opts.max_age_secs.max(opts.max_future_secs));
    }
});
