//! Fuzz target: `verify_proof` on arbitrary proof text, under fixed options (every check on).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pairgate_protocol::{VerifyOptions, verify_proof};

fuzz_target!(|data: &[u8]| {
    let Ok(proof) = std::str::from_utf8(data) else {
        return;
    };
    let mut opts = VerifyOptions::new(
        "POST",
        "https://gateway.example/v1/chat/completions",
        1_767_225_600,
    );
    opts.access_token = Some("example-access-token");
    opts.body = Some(br#"{"model":"openai/gpt-4o-mini"}"#);
    // The same input once with the access token and body, once with nothing required.
    let _ = verify_proof(proof, &opts);
    let _ = verify_proof(
        proof,
        &VerifyOptions::new("GET", "https://gateway.example/v1/models", 0),
    );
});
