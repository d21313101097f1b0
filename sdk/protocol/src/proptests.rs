//! Property tests: roundtrips, idempotence, and "never panics" on arbitrary input.

use proptest::prelude::*;

use crate::dpop::{ProofInput, VerifyOptions, create_proof, verify_proof};
use crate::keys::SigningKey;
use crate::pairing::{PairingId, PairingSecret, PairingString};
use crate::{b64, user_code};

const URL: &str = "https://gateway.example/v1/chat/completions";

fn key() -> SigningKey {
    SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]))
}

fn valid_proof() -> String {
    let input = ProofInput {
        htm: "POST",
        htu: URL,
        iat: 1_000,
        jti: "j",
        access_token: None,
        nonce: None,
        body: None,
    };
    create_proof(&key(), &input)
}

proptest! {
    #[test]
    fn b64_roundtrip(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let text = b64::encode(&bytes);
        prop_assert!(!text.contains('='));
        prop_assert_eq!(b64::decode(&text).unwrap(), bytes);
    }

    #[test]
    fn b64_decode_is_canonical(text in "[A-Za-z0-9_-]{0,40}") {
        if let Ok(bytes) = b64::decode(&text) {
            prop_assert_eq!(b64::encode(&bytes), text);
        }
    }

    #[test]
    fn pairing_roundtrip(
        id in any::<[u8; 16]>(),
        secret in any::<[u8; 32]>(),
        scheme in prop_oneof!["http", "https"],
        host in "[a-z][a-z0-9-]{0,20}(\\.[a-z]{2,6}){0,2}",
        port in proptest::option::of(1u16..),
        path in "(/[A-Za-z0-9._~-]{1,10}){0,3}",
    ) {
        // Labels with `--` in positions 3-4 are reserved for IDNA (`xn--...`): not valid hosts.
        prop_assume!(!host.split('.').any(|label| label.get(2..4) == Some("--")));
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let gateway_url = format!("{scheme}://{host}{port}{path}");
        let pairing = PairingString { id: PairingId(id), secret: PairingSecret(secret), gateway_url };
        let encoded = pairing.encode();
        prop_assert_eq!(PairingString::parse(&encoded).unwrap(), pairing);
        // The form secret scanners look for.
        let parts: Vec<&str> = encoded.split('.').collect();
        prop_assert_eq!(parts.len(), 3);
        prop_assert!(parts[1].len() >= 70 && parts[2].len() == 6);
    }

    #[test]
    fn pairing_parse_never_panics(input in any::<String>()) {
        let _ = PairingString::parse(&input);
        let _ = PairingString::parse(&format!("pgpair1.{input}"));
    }

    #[test]
    fn user_code_normalize_idempotent(input in "[A-Za-z -]{0,20}") {
        if let Ok(code) = user_code::normalize(&input) {
            prop_assert_eq!(user_code::normalize(&code).unwrap(), code.clone());
            prop_assert_eq!(user_code::normalize(&code.to_lowercase()).unwrap(), code);
        }
    }

    #[test]
    fn verify_never_panics(input in any::<String>(), dots in "[A-Za-z0-9_.-]{0,300}") {
        let opts = VerifyOptions::new("POST", URL, 1_000);
        prop_assert!(verify_proof(&input, &opts).is_err());
        prop_assert!(verify_proof(&dots, &opts).is_err());
    }

    #[test]
    fn any_single_character_change_is_rejected(index in any::<prop::sample::Index>(), c in "[A-Za-z0-9_.-]") {
        let proof = valid_proof();
        let opts = VerifyOptions::new("POST", URL, 1_000);
        prop_assert!(verify_proof(&proof, &opts).is_ok());
        let at = index.index(proof.len());
        let mut mutated = proof.clone();
        mutated.replace_range(at..=at, &c);
        prop_assume!(mutated != proof);
        prop_assert!(verify_proof(&mutated, &opts).is_err());
    }
}
