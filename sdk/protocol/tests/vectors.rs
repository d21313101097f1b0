//! Regenerates the language-neutral test vectors (sdk/test-vectors/vectors.json) from the crate
//! and checks them, and checks that docs/protocol.md embeds the identical JSON.
//!
//! Run with `PAIRGATE_BLESS=1` to rewrite the file and the doc block instead of comparing.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use pairgate_protocol::dpop::{
    self, ProofInput, VerifyOptions, create_proof, proof_claims_json, proof_header_json,
    verify_proof,
};
use pairgate_protocol::keys::SigningKey;
use pairgate_protocol::pairing::{PairingError, PairingId, PairingSecret, PairingString};
use pairgate_protocol::user_code;
use serde::Serialize;
use serde_json::Value;

const DOC_MARKER: &str = "<!-- vectors:begin -->";
const HTM: &str = "POST";
const HTU: &str = "https://gateway.example/v1/chat/completions";
const IAT: i64 = 1_767_225_600;
const ACCESS_TOKEN: &str = "example-access-token";
const BODY: &str = r#"{"model":"openai/gpt-4o-mini"}"#;
/// RFC 8032 §7.1 TEST 1 secret key.
const ED25519_SEED_HEX: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
/// RFC 6979 §A.2.5 private key.
const P256_SCALAR_HEX: &str = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721";

#[derive(Serialize)]
struct Vectors {
    description: &'static str,
    ed25519: KeyVector,
    p256: KeyVector,
    pairing: PairingVector,
    user_codes: Vec<UserCodeVector>,
    pairing_errors: Vec<PairingErrorVector>,
}

#[derive(Serialize)]
struct KeyVector {
    private_hex: String,
    private_jwk: Value,
    public_jwk: Value,
    thumbprint_input: String,
    thumbprint: String,
    fingerprint: String,
    proof: ProofVector,
}

#[derive(Serialize)]
struct ProofVector {
    alg: &'static str,
    htm: &'static str,
    htu: &'static str,
    iat: i64,
    jti: &'static str,
    access_token: &'static str,
    body: &'static str,
    ath: String,
    bsh: String,
    header_json: String,
    claims_json: String,
    compact: String,
}

#[derive(Serialize)]
struct PairingVector {
    id_hex: String,
    secret_hex: String,
    gateway_url: &'static str,
    pairing_id: String,
    encoded: String,
}

#[derive(Serialize)]
struct UserCodeVector {
    input: &'static str,
    normalized: Option<String>,
}

/// A string every SDK must refuse, and why (protocol §3, parsing steps).
#[derive(Serialize)]
struct PairingErrorVector {
    input: String,
    error: &'static str,
}

fn error_name(e: &PairingError) -> &'static str {
    match e {
        PairingError::TooLong => "too_long",
        PairingError::WrongPrefix => "wrong_prefix",
        PairingError::Malformed => "malformed",
        PairingError::BadChecksum => "bad_checksum",
        PairingError::BadUrl => "bad_url",
        PairingError::BadId => "bad_id",
    }
}

/// `pgpair1.<payload>.<check>` over arbitrary raw bytes, with a correct checksum.
fn with_checksum(raw: &[u8]) -> String {
    use sha2::Digest;
    let body = format!("pgpair1.{}", pairgate_protocol::b64::encode(raw));
    let check = pairgate_protocol::b64::encode(&sha2::Sha256::digest(body.as_bytes())[..4]);
    format!("{body}.{check}")
}

/// One rejected string per parsing step, built from the valid vector.
fn pairing_errors(id: &[u8; 16], secret: &[u8; 32], encoded: &str) -> Vec<PairingErrorVector> {
    let raw = |url: &str| [id.as_slice(), secret.as_slice(), url.as_bytes()].concat();
    let (body, check) = encoded.rsplit_once('.').unwrap();
    let flipped = if check.starts_with('A') { "B" } else { "A" };
    let inputs = [
        format!("pgpair1.{}.AAAAAA", "A".repeat(2048)),
        encoded.replacen("pgpair1.", "pgpair2.", 1),
        format!("PGPAIR1.{}", &encoded["pgpair1.".len()..]),
        "pgpair1.AAAAAAAA".to_owned(),
        format!("{body}.{}", &check[..5]),
        format!("{body}=.{check}"),
        format!("{body}.{flipped}{}", &check[1..]),
        with_checksum(&raw("")),
        with_checksum(&raw("ftp://gateway.example")),
        with_checksum(&raw("https://gateway.example/?x=1")),
        with_checksum(&raw("https://user@gateway.example")),
        with_checksum(&raw("https://gateway.example/a b")),
        with_checksum(&[id.as_slice(), secret.as_slice(), &[0xff, 0xfe]].concat()),
    ];
    inputs
        .into_iter()
        .map(|input| {
            let error = error_name(&PairingString::parse(&input).unwrap_err());
            PairingErrorVector { input, error }
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> [u8; N] {
    let bytes: Vec<u8> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

fn input(jti: &'static str) -> ProofInput<'static> {
    ProofInput {
        htm: HTM,
        htu: HTU,
        iat: IAT,
        jti,
        access_token: Some(ACCESS_TOKEN),
        nonce: None,
        body: Some(BODY.as_bytes()),
    }
}

fn key_vector(key: &SigningKey, private_hex: &str, jti: &'static str) -> KeyVector {
    let public = key.public_key();
    let compact = create_proof(key, &input(jti));
    assert_eq!(
        create_proof(key, &input(jti)),
        compact,
        "signing must be deterministic"
    );

    let jkt = public.thumbprint();
    let opts = VerifyOptions {
        access_token: Some(ACCESS_TOKEN),
        expected_jkt: Some(&jkt),
        body: Some(BODY.as_bytes()),
        require_body_hash: true,
        ..VerifyOptions::new(HTM, HTU, IAT)
    };
    let verified = verify_proof(&compact, &opts).unwrap();
    assert_eq!((verified.jti.as_str(), verified.iat), (jti, IAT));
    assert!(verified.body_hash_checked);

    KeyVector {
        private_hex: private_hex.to_owned(),
        private_jwk: key.to_private_jwk(),
        public_jwk: public.to_jwk(),
        thumbprint_input: public.thumbprint_input(),
        thumbprint: jkt,
        fingerprint: public.fingerprint(),
        proof: ProofVector {
            alg: key.default_alg().as_str(),
            htm: HTM,
            htu: HTU,
            iat: IAT,
            jti,
            access_token: ACCESS_TOKEN,
            body: BODY,
            ath: dpop::access_token_hash(ACCESS_TOKEN),
            bsh: dpop::body_hash(BODY.as_bytes()),
            header_json: proof_header_json(key, key.default_alg()),
            claims_json: proof_claims_json(&input(jti)),
            compact,
        },
    }
}

fn generate() -> Vectors {
    let ed = SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&unhex(
        ED25519_SEED_HEX,
    )));
    let ec = SigningKey::P256(
        p256::ecdsa::SigningKey::from_bytes(&unhex::<32>(P256_SCALAR_HEX).into()).unwrap(),
    );
    for key in [&ed, &ec] {
        let reloaded = SigningKey::from_private_jwk(&key.to_private_jwk()).unwrap();
        assert_eq!(reloaded.public_key(), key.public_key());
    }

    let id: [u8; 16] = std::array::from_fn(|i| i as u8);
    let secret: [u8; 32] = std::array::from_fn(|i| 0x20 + i as u8);
    let pairing = PairingString {
        id: PairingId(id),
        secret: PairingSecret(secret),
        gateway_url: "https://gateway.example".to_owned(),
    };
    let encoded = pairing.encode();
    assert_eq!(PairingString::parse(&encoded).unwrap(), pairing);
    let rejected = pairing_errors(&id, &secret, &encoded);

    let user_codes = [
        "WDJB-MJHT",
        "wdjbmjht",
        " wdjb mjht ",
        "w-d-j-b-m-j-h-t",
        "WDJB-MJH",
        "WDJA-MJHT",
        "WDJB-MJH1",
    ]
    .into_iter()
    .map(|input| UserCodeVector {
        input,
        normalized: user_code::normalize(input).ok(),
    })
    .collect();

    Vectors {
        description: "pairgate protocol test vectors; see docs/protocol.md. Regenerate with PAIRGATE_BLESS=1 cargo test -p pairgate-protocol --test vectors",
        ed25519: key_vector(&ed, ED25519_SEED_HEX, "vector-ed25519-0001"),
        p256: key_vector(&ec, P256_SCALAR_HEX, "vector-p256-0001"),
        pairing: PairingVector {
            id_hex: hex(&id),
            secret_hex: hex(&secret),
            gateway_url: "https://gateway.example",
            pairing_id: pairing.id.to_string(),
            encoded,
        },
        user_codes,
        pairing_errors: rejected,
    }
}

fn paths() -> (PathBuf, PathBuf) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    (
        root.join("../test-vectors/vectors.json"),
        root.join("../../docs/protocol.md"),
    )
}

/// Byte range of the JSON inside the fenced block that follows the marker line.
fn doc_block(doc: &str) -> std::ops::Range<usize> {
    let marker = doc
        .find(&format!("\n{DOC_MARKER}\n"))
        .expect("doc has no vectors marker");
    let fence = "```json\n";
    let start = marker + DOC_MARKER.len() + 2;
    assert!(
        doc[start..].starts_with(fence),
        "the marker must be followed by a ```json fence"
    );
    let start = start + fence.len();
    let end = if doc[start..].starts_with("```") {
        start
    } else {
        start + doc[start..].find("\n```").expect("unterminated json fence") + 1
    };
    start..end
}

#[test]
fn vectors_match_file_and_doc() {
    let expected = serde_json::to_string_pretty(&generate()).unwrap() + "\n";
    let (json_path, doc_path) = paths();
    let doc = std::fs::read_to_string(&doc_path).unwrap();
    let block = doc_block(&doc);

    if std::env::var("PAIRGATE_BLESS").as_deref() == Ok("1") {
        std::fs::write(&json_path, &expected).unwrap();
        let mut blessed = doc.clone();
        blessed.replace_range(block, &expected);
        std::fs::write(&doc_path, blessed).unwrap();
        eprintln!("blessed {} and {}", json_path.display(), doc_path.display());
        return;
    }

    // Compared as JSON values, not text: when the whole workspace is built, feature unification
    // can turn on serde_json's `preserve_order`, which changes the key order of the output.
    let on_disk = std::fs::read_to_string(&json_path).unwrap();
    let parse = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
    assert!(
        parse(&on_disk) == parse(&expected),
        "vectors.json is out of date; rerun with PAIRGATE_BLESS=1 and review the diff"
    );
    assert!(
        parse(&doc[block]) == parse(&on_disk),
        "docs/protocol.md vectors block differs from vectors.json; rerun with PAIRGATE_BLESS=1"
    );
}

/// Checks the file as another-language SDK would: from the stored values only.
#[test]
fn stored_proofs_verify() {
    let (json_path, _) = paths();
    let vectors: Value =
        serde_json::from_str(&std::fs::read_to_string(json_path).unwrap()).unwrap();
    for name in ["ed25519", "p256"] {
        let v = &vectors[name];
        let proof = v["proof"]["compact"].as_str().unwrap();
        let jkt = v["thumbprint"].as_str().unwrap();
        let opts = VerifyOptions {
            access_token: Some(ACCESS_TOKEN),
            expected_jkt: Some(jkt),
            body: Some(BODY.as_bytes()),
            require_body_hash: true,
            ..VerifyOptions::new(HTM, HTU, IAT)
        };
        let verified = verify_proof(proof, &opts).unwrap();
        assert_eq!(verified.key.to_jwk(), v["public_jwk"]);
        let key = SigningKey::from_private_jwk(&v["private_jwk"]).unwrap();
        assert_eq!(key.public_key(), verified.key);
    }
}
