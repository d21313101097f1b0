//! The table of malformed, forged and mismatching DPoP proofs and what each must be rejected as.

use serde_json::json;

use super::*;

type Case = (&'static str, String, VerifyOptions<'static>, ProofError);

fn negative_cases(key: &SigningKey, other: &SigningKey) -> Vec<Case> {
    let valid = create_proof(key, &input());
    let (signing_input, _) = valid.rsplit_once('.').unwrap();
    let wrong_alg = other.default_alg().as_str();
    let mut weak = [0u8; 32];
    weak[0] = 1;
    let mut cases: Vec<Case> = vec![
        (
            "signature over another message",
            format!("{signing_input}.{}", b64::encode(&key.sign(b"other"))),
            opts(),
            ProofError::BadSignature,
        ),
        (
            "signature of another key",
            format!(
                "{signing_input}.{}",
                b64::encode(&other.sign(signing_input.as_bytes()))
            ),
            opts(),
            ProofError::BadSignature,
        ),
        (
            "empty signature",
            format!("{signing_input}."),
            opts(),
            ProofError::BadSignature,
        ),
        (
            "65-byte signature",
            format!("{signing_input}.{}", b64::encode(&[1u8; 65])),
            opts(),
            ProofError::BadSignature,
        ),
        (
            "jwk of another key",
            with_header(key, |h| h["jwk"] = other.public_key().to_jwk()),
            opts(),
            ProofError::AlgKeyMismatch,
        ),
        (
            "alg none",
            with_header(key, |h| h["alg"] = json!("none")),
            opts(),
            ProofError::UnsupportedAlg,
        ),
        (
            "alg HS256",
            with_header(key, |h| h["alg"] = json!("HS256")),
            opts(),
            ProofError::UnsupportedAlg,
        ),
        (
            "alg RS256",
            with_header(key, |h| h["alg"] = json!("RS256")),
            opts(),
            ProofError::UnsupportedAlg,
        ),
        (
            "alg missing",
            with_header(key, |h| remove(h, "alg")),
            opts(),
            ProofError::UnsupportedAlg,
        ),
        (
            "alg not a string",
            with_header(key, |h| h["alg"] = json!(1)),
            opts(),
            ProofError::UnsupportedAlg,
        ),
        (
            "alg of other key type",
            with_header(key, |h| h["alg"] = json!(wrong_alg)),
            opts(),
            ProofError::AlgKeyMismatch,
        ),
        (
            "private d in jwk",
            with_header(key, |h| h["jwk"] = key.to_private_jwk()),
            opts(),
            ProofError::PrivateKeyInJwk,
        ),
        (
            "weak ed25519 jwk",
            with_header(key, |h| {
                h["alg"] = json!("EdDSA");
                h["jwk"] = json!({"kty": "OKP", "crv": "Ed25519", "x": b64::encode(&weak)});
            }),
            opts(),
            ProofError::WeakKey,
        ),
        (
            "symmetric jwk",
            with_header(key, |h| h["jwk"] = json!({"kty": "oct", "k": "c2VjcmV0"})),
            opts(),
            ProofError::PrivateKeyInJwk,
        ),
        (
            "jwk not an object",
            with_header(key, |h| h["jwk"] = json!("key")),
            opts(),
            ProofError::BadJwk(JwkError::NotAnObject),
        ),
        (
            "jwk missing",
            with_header(key, |h| remove(h, "jwk")),
            opts(),
            ProofError::MissingJwk,
        ),
        (
            "kid only",
            with_header(key, |h| {
                remove(h, "jwk");
                h["kid"] = json!("k1");
            }),
            opts(),
            ProofError::MissingJwk,
        ),
        (
            "crit header",
            with_header(key, |h| h["crit"] = json!(["exp"])),
            opts(),
            ProofError::ForbiddenHeader("crit"),
        ),
        (
            "jku header",
            with_header(key, |h| h["jku"] = json!("https://evil.example/jwks")),
            opts(),
            ProofError::ForbiddenHeader("jku"),
        ),
        (
            "x5u header",
            with_header(key, |h| h["x5u"] = json!("https://evil.example/c")),
            opts(),
            ProofError::ForbiddenHeader("x5u"),
        ),
        (
            "typ jwt",
            with_header(key, |h| h["typ"] = json!("jwt")),
            opts(),
            ProofError::WrongTyp,
        ),
        (
            "typ uppercase",
            with_header(key, |h| h["typ"] = json!("DPOP+JWT")),
            opts(),
            ProofError::WrongTyp,
        ),
        (
            "typ missing",
            with_header(key, |h| remove(h, "typ")),
            opts(),
            ProofError::WrongTyp,
        ),
        (
            "jti missing",
            with_claims(key, |c| remove(c, "jti")),
            opts(),
            ProofError::MissingClaim("jti"),
        ),
        (
            "htm missing",
            with_claims(key, |c| remove(c, "htm")),
            opts(),
            ProofError::MissingClaim("htm"),
        ),
        (
            "htu missing",
            with_claims(key, |c| remove(c, "htu")),
            opts(),
            ProofError::MissingClaim("htu"),
        ),
        (
            "iat missing",
            with_claims(key, |c| remove(c, "iat")),
            opts(),
            ProofError::MissingClaim("iat"),
        ),
        (
            "jti empty",
            with_claims(key, |c| c["jti"] = json!("")),
            opts(),
            ProofError::BadClaim("jti"),
        ),
        (
            "jti number",
            with_claims(key, |c| c["jti"] = json!(5)),
            opts(),
            ProofError::BadClaim("jti"),
        ),
        (
            "jti too long",
            with_claims(key, |c| c["jti"] = json!("j".repeat(129))),
            opts(),
            ProofError::JtiTooLong,
        ),
        (
            "htm other method",
            with_claims(key, |c| c["htm"] = json!("GET")),
            opts(),
            ProofError::MethodMismatch,
        ),
        (
            "htm lowercase",
            with_claims(key, |c| c["htm"] = json!("post")),
            opts(),
            ProofError::MethodMismatch,
        ),
        (
            "htu other host",
            with_claims(key, |c| {
                c["htu"] = json!("https://evil.example/v1/chat/completions")
            }),
            opts(),
            ProofError::UrlMismatch,
        ),
        (
            "htu other path",
            with_claims(key, |c| {
                c["htu"] = json!("https://gateway.example/v1/embeddings")
            }),
            opts(),
            ProofError::UrlMismatch,
        ),
        (
            "htu other scheme",
            with_claims(key, |c| {
                c["htu"] = json!("http://gateway.example/v1/chat/completions")
            }),
            opts(),
            ProofError::UrlMismatch,
        ),
        (
            "htu other port",
            with_claims(key, |c| {
                c["htu"] = json!("https://gateway.example:8443/v1/chat/completions")
            }),
            opts(),
            ProofError::UrlMismatch,
        ),
        (
            "htu path case",
            with_claims(key, |c| {
                c["htu"] = json!("https://gateway.example/V1/chat/completions")
            }),
            opts(),
            ProofError::UrlMismatch,
        ),
        (
            "htu dot segments",
            with_claims(key, |c| {
                c["htu"] = json!("https://gateway.example/v1/x/../chat/completions")
            }),
            opts(),
            ProofError::BadClaim("htu"),
        ),
        (
            "htu relative",
            with_claims(key, |c| c["htu"] = json!("/v1/chat/completions")),
            opts(),
            ProofError::BadClaim("htu"),
        ),
        (
            "iat stale",
            with_claims(key, |c| c["iat"] = json!(NOW - 61)),
            opts(),
            ProofError::IatTooOld,
        ),
        (
            "iat future",
            with_claims(key, |c| c["iat"] = json!(NOW + 11)),
            opts(),
            ProofError::IatInFuture,
        ),
        (
            "iat extreme",
            with_claims(key, |c| c["iat"] = json!(i64::MIN)),
            opts(),
            ProofError::IatTooOld,
        ),
        (
            "iat string",
            with_claims(key, |c| c["iat"] = json!(NOW.to_string())),
            opts(),
            ProofError::BadClaim("iat"),
        ),
        (
            "iat float",
            with_claims(key, |c| c["iat"] = json!(1_767_225_600.0)),
            opts(),
            ProofError::BadClaim("iat"),
        ),
        (
            "iat too big",
            with_claims(key, |c| c["iat"] = json!(u64::MAX)),
            opts(),
            ProofError::BadClaim("iat"),
        ),
        (
            "ath missing",
            with_claims(key, |c| remove(c, "ath")),
            opts(),
            ProofError::MissingClaim("ath"),
        ),
        (
            "ath wrong",
            with_claims(key, |c| c["ath"] = json!(access_token_hash("other"))),
            opts(),
            ProofError::AthMismatch,
        ),
        (
            "ath not a string",
            with_claims(key, |c| c["ath"] = json!(1)),
            opts(),
            ProofError::BadClaim("ath"),
        ),
        (
            "nonce missing",
            with_claims(key, |c| remove(c, "nonce")),
            opts(),
            ProofError::UseNonce,
        ),
        (
            "nonce wrong",
            with_claims(key, |c| c["nonce"] = json!("old-nonce")),
            opts(),
            ProofError::UseNonce,
        ),
        (
            "body tampered",
            valid.clone(),
            VerifyOptions {
                body: Some(br#"{"model":"openai/gpt-4o"}"#),
                ..opts()
            },
            ProofError::BodyHashMismatch,
        ),
        (
            "body missing",
            valid.clone(),
            VerifyOptions {
                body: None,
                ..opts()
            },
            ProofError::BodyHashMismatch,
        ),
        (
            "bsh required",
            with_claims(key, |c| remove(c, "bsh")),
            opts(),
            ProofError::BodyHashRequired,
        ),
        (
            "bsh not a string",
            with_claims(key, |c| c["bsh"] = json!(null)),
            opts(),
            ProofError::BadClaim("bsh"),
        ),
        (
            "expected jkt differs",
            valid.clone(),
            VerifyOptions {
                expected_jkt: Some("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"),
                ..opts()
            },
            ProofError::KeyMismatch,
        ),
        (
            "oversize garbage",
            "a".repeat(MAX_PROOF_BYTES + 1),
            opts(),
            ProofError::TooLarge,
        ),
        (
            "oversize signed proof",
            with_claims(key, |c| c["pad"] = json!("p".repeat(MAX_PROOF_BYTES))),
            opts(),
            ProofError::TooLarge,
        ),
        (
            "two parts",
            signing_input.to_owned(),
            opts(),
            ProofError::Malformed,
        ),
        (
            "four parts",
            format!("{valid}.AAAA"),
            opts(),
            ProofError::Malformed,
        ),
        ("empty", String::new(), opts(), ProofError::Malformed),
        (
            "padded base64",
            format!("{valid}="),
            opts(),
            ProofError::Malformed,
        ),
        (
            "standard base64",
            format!("+{}", &valid[1..]),
            opts(),
            ProofError::Malformed,
        ),
        (
            "non-JSON header",
            sign_raw(key, b"not json", b"{}"),
            opts(),
            ProofError::BadHeader,
        ),
        (
            "header JSON array",
            sign_raw(key, b"[\"dpop+jwt\"]", b"{}"),
            opts(),
            ProofError::BadHeader,
        ),
        (
            "duplicate typ in header",
            sign_raw(
                key,
                proof_header_json(key, key.default_alg())
                    .replacen('{', r#"{"typ":"jwt","#, 1)
                    .as_bytes(),
                proof_claims_json(&input()).as_bytes(),
            ),
            opts(),
            ProofError::BadHeader,
        ),
        (
            "payload not an object",
            sign_raw(
                key,
                proof_header_json(key, key.default_alg()).as_bytes(),
                b"[1]",
            ),
            opts(),
            ProofError::BadPayload,
        ),
        (
            "duplicate htu in payload",
            sign_raw(
                key,
                proof_header_json(key, key.default_alg()).as_bytes(),
                proof_claims_json(&input())
                    .replacen('{', r#"{"htu":"https://evil.example/","#, 1)
                    .as_bytes(),
            ),
            opts(),
            ProofError::BadPayload,
        ),
        (
            "server url unusable",
            valid.clone(),
            VerifyOptions {
                url: "/relative",
                ..opts()
            },
            ProofError::InvalidRequestUrl,
        ),
    ];
    let twin = match key.kind() {
        crate::keys::KeyKind::Ed25519 => {
            SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[8u8; 32]))
        }
        crate::keys::KeyKind::P256 => {
            SigningKey::P256(p256::ecdsa::SigningKey::from_bytes(&[10u8; 32].into()).unwrap())
        }
    };
    cases.push((
        "jwk of another key of the same type",
        with_header(key, |h| h["jwk"] = twin.public_key().to_jwk()),
        opts(),
        ProofError::BadSignature,
    ));
    cases
}

#[test]
fn negative_table() {
    for (key, other) in [(ed_key(), ec_key()), (ec_key(), ed_key())] {
        assert!(verify_proof(&create_proof(&key, &input()), &opts()).is_ok());
        for (name, proof, options, expected) in negative_cases(&key, &other) {
            let result = verify_proof(&proof, &options);
            assert_eq!(
                result.as_ref().err(),
                Some(&expected),
                "{:?}: {name}",
                key.kind()
            );
            let shown = expected.to_string();
            assert!(!shown.contains(TOKEN) && (proof.is_empty() || !shown.contains(&proof)));
        }
    }
}
