//! Unit tests for `jwk`: parsing, rejection rules, thumbprints (RFC 8037 A.3) and `alg`.

use super::*;

const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

fn okp(x: &str) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "x": x})
}

fn p256_jwk() -> Value {
    // RFC 6979 A.2.5 public key.
    json!({
        "kty": "EC", "crv": "P-256",
        "x": "YP7UuiVanTHJYet0xjVtaMBJuJI7Yfps5mliLmDyn7Y",
        "y": "eQP-EAi4vJmkGunpVii8ZPLxsgwtfp9Rd6PClNRGIpk",
    })
}

#[test]
fn rfc8037_a3_thumbprint() {
    let key = PublicKey::from_jwk(&okp(RFC8037_X)).unwrap();
    assert_eq!(
        key.thumbprint_input(),
        r#"{"crv":"Ed25519","kty":"OKP","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#
    );
    assert_eq!(
        key.thumbprint(),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
    assert_eq!(key.fingerprint(), "kPrK-_qmx-VWaY-VA9w");
    assert_eq!(key.to_jwk(), okp(RFC8037_X));
    assert_eq!(key.kind(), KeyKind::Ed25519);
}

#[test]
fn p256_roundtrip_and_thumbprint_ignores_optional_members() {
    let key = PublicKey::from_jwk(&p256_jwk()).unwrap();
    assert_eq!(key.to_jwk(), p256_jwk());
    let mut with_extras = p256_jwk();
    with_extras["kid"] = json!("k1");
    with_extras["use"] = json!("sig");
    let same = PublicKey::from_jwk(&with_extras).unwrap();
    assert_eq!(same, key);
    assert_eq!(same.thumbprint(), key.thumbprint());
    assert_eq!(key.thumbprint().len(), 43);
    assert_eq!(key.default_alg(), Alg::ES256);
}

#[test]
fn rejects_private_and_symmetric_members() {
    for member in PRIVATE_MEMBERS {
        let mut jwk = okp(RFC8037_X);
        jwk[*member] = json!("AAAA");
        assert_eq!(
            PublicKey::from_jwk(&jwk),
            Err(JwkError::PrivateKey),
            "{member}"
        );
    }
    let oct = json!({"kty": "oct", "alg": "HS256"});
    assert_eq!(PublicKey::from_jwk(&oct), Err(JwkError::Symmetric));
}

#[test]
fn rejects_unknown_types_curves_and_shapes() {
    let cases = [
        (json!([]), JwkError::NotAnObject),
        (
            json!({"crv": "Ed25519", "x": RFC8037_X}),
            JwkError::MissingMember("kty"),
        ),
        (json!({"kty": 1}), JwkError::InvalidMember("kty")),
        (
            json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}),
            JwkError::UnsupportedKty,
        ),
        (
            json!({"kty": "okp", "crv": "Ed25519", "x": RFC8037_X}),
            JwkError::UnsupportedKty,
        ),
        (
            json!({"kty": "OKP", "crv": "X25519", "x": RFC8037_X}),
            JwkError::UnsupportedCrv,
        ),
        (
            json!({"kty": "OKP", "crv": "Ed448", "x": RFC8037_X}),
            JwkError::UnsupportedCrv,
        ),
        (
            json!({"kty": "EC", "crv": "secp256k1", "x": "", "y": ""}),
            JwkError::UnsupportedCrv,
        ),
        (
            json!({"kty": "OKP", "crv": "Ed25519"}),
            JwkError::MissingMember("x"),
        ),
        (okp("AAAA"), JwkError::InvalidMember("x")),
        (okp(&format!("{RFC8037_X}A")), JwkError::InvalidMember("x")),
        (okp(&format!("{RFC8037_X}=")), JwkError::InvalidMember("x")),
    ];
    for (jwk, expected) in cases {
        assert_eq!(PublicKey::from_jwk(&jwk), Err(expected), "{jwk}");
    }
    let mut missing_y = p256_jwk();
    missing_y.as_object_mut().unwrap().remove("y");
    assert_eq!(
        PublicKey::from_jwk(&missing_y),
        Err(JwkError::MissingMember("y"))
    );
}

#[test]
fn rejects_weak_and_noncanonical_ed25519_points() {
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert_eq!(
        PublicKey::from_jwk(&okp(&b64::encode(&identity))),
        Err(JwkError::WeakKey)
    );
    // y = 0 decodes to a point of order 4.
    assert_eq!(
        PublicKey::from_jwk(&okp(&b64::encode(&[0u8; 32]))),
        Err(JwkError::WeakKey)
    );

    // Non-canonical encodings of y = p + k (k < 19) are rejected even when they decompress.
    let mut decompressed = 0;
    for k in 0u8..19 {
        let mut bytes = [0xffu8; 32];
        bytes[0] = 0xed + k;
        bytes[31] = 0x7f;
        if ed25519_dalek::VerifyingKey::from_bytes(&bytes).is_ok() {
            decompressed += 1;
        }
        assert!(
            PublicKey::from_jwk(&okp(&b64::encode(&bytes))).is_err(),
            "p + {k}"
        );
    }
    assert!(
        decompressed > 0,
        "test must exercise decompressible non-canonical points"
    );
}

#[test]
fn rejects_invalid_p256_points() {
    let zero = b64::encode(&[0u8; 32]);
    let all_ones = b64::encode(&[0xffu8; 32]);
    let mut off_curve = p256_jwk();
    off_curve["y"] = json!(zero);
    let identity_like = json!({"kty": "EC", "crv": "P-256", "x": zero, "y": zero});
    let out_of_field = json!({"kty": "EC", "crv": "P-256", "x": all_ones, "y": all_ones});
    for jwk in [off_curve, identity_like, out_of_field] {
        assert_eq!(
            PublicKey::from_jwk(&jwk),
            Err(JwkError::InvalidPoint),
            "{jwk}"
        );
    }
}

#[test]
fn alg_allow_list_and_fit() {
    let ed = PublicKey::from_jwk(&okp(RFC8037_X)).unwrap();
    let ec = PublicKey::from_jwk(&p256_jwk()).unwrap();
    for (name, alg) in [
        ("EdDSA", Alg::EdDSA),
        ("Ed25519", Alg::Ed25519),
        ("ES256", Alg::ES256),
    ] {
        assert_eq!(Alg::parse(name), Some(alg));
        assert_eq!(alg.as_str(), name);
    }
    for bad in [
        "none", "None", "HS256", "RS256", "PS256", "ES256K", "ES384", "eddsa", "", "ES256 ",
    ] {
        assert_eq!(Alg::parse(bad), None, "{bad}");
    }
    assert!(Alg::EdDSA.fits(&ed) && Alg::Ed25519.fits(&ed) && !Alg::ES256.fits(&ed));
    assert!(Alg::ES256.fits(&ec) && !Alg::EdDSA.fits(&ec) && !Alg::Ed25519.fits(&ec));
}

#[test]
fn fingerprint_grouping() {
    assert_eq!(
        fingerprint_of("ABCDEFGHIJKLMNOPQRSTUV"),
        "ABCD-EFGH-IJKL-MNOP"
    );
}

#[test]
fn the_small_order_list_is_exactly_the_eight_torsion_points() {
    let mut seen = std::collections::HashSet::new();
    for enc in SMALL_ORDER_ENCODINGS {
        let point = ed25519_dalek::VerifyingKey::from_bytes(&enc).expect("a point");
        assert!(point.is_weak(), "{enc:02x?} is of small order");
        assert_eq!(point.to_edwards().compress().to_bytes(), enc, "canonical");
        assert!(seen.insert(enc));
    }
    // The torsion subgroup has eight points, so eight distinct canonical encodings are all.
    assert_eq!(seen.len(), 8);
    for (i, p) in curve25519_dalek::constants::EIGHT_TORSION
        .iter()
        .enumerate()
    {
        assert!(seen.contains(&p.compress().to_bytes()), "torsion point {i}");
    }
}

/// Signatures that only one rule of `verify_strict` refuses, and ordinary ones.
fn strict_cases() -> Vec<(&'static str, ed25519_dalek::VerifyingKey, Vec<u8>, [u8; 64])> {
    use curve25519_dalek::{Scalar, constants::ED25519_BASEPOINT_POINT};
    use ed25519_dalek::Signer as _;
    use sha2::Sha512;
    let sk = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let key = sk.verifying_key();
    let mut cases = Vec::new();
    for i in 0..32u8 {
        let msg = format!("header.payload-{i}").into_bytes();
        let sig = sk.sign(&msg).to_bytes();
        cases.push(("valid", key, msg.clone(), sig));
        let mut other = msg.clone();
        other[0] ^= 1;
        cases.push(("other message", key, other, sig));
        for (what, byte) in [
            ("R altered", i as usize % 32),
            ("s altered", 32 + i as usize % 32),
        ] {
            let mut bad = sig;
            bad[byte] ^= 1 << (i % 8);
            cases.push((what, key, msg.clone(), bad));
        }
        // s + L: the same scalar, not canonical.
        let mut wide = sig;
        let l = Scalar::ZERO - Scalar::ONE; // L - 1
        let mut carry = 1u16; // s + (L - 1) + 1
        for (j, b) in l.to_bytes().iter().enumerate() {
            let sum = wide[32 + j] as u16 + *b as u16 + carry;
            wide[32 + j] = sum as u8;
            carry = sum >> 8;
        }
        cases.push(("s not canonical", key, msg.clone(), wide));
        for enc in SMALL_ORDER_ENCODINGS {
            let mut small = sig;
            small[..32].copy_from_slice(&enc);
            cases.push(("R of small order", key, msg.clone(), small));
        }
        // R = the identity with s = k·a: [s]B - [k]A is the identity, so the plain
        // (cofactorless) check accepts it; only the small-order rule refuses it.
        let r = SMALL_ORDER_ENCODINGS[0];
        let k = Scalar::from_hash(
            Sha512::new()
                .chain_update(r)
                .chain_update(key.as_bytes())
                .chain_update(&msg),
        );
        let s = k * sk.to_scalar();
        let mut forged = [0u8; 64];
        forged[..32].copy_from_slice(&r);
        forged[32..].copy_from_slice(s.as_bytes());
        cases.push(("identity R, s = k·a", key, msg.clone(), forged));
        // A weak key (the identity) with R = B and s = 1: [1]B - [k]O = B.
        let weak = ed25519_dalek::VerifyingKey::from_bytes(&SMALL_ORDER_ENCODINGS[0]).unwrap();
        let mut by_weak = [0u8; 64];
        by_weak[..32].copy_from_slice(ED25519_BASEPOINT_POINT.compress().as_bytes());
        by_weak[32..].copy_from_slice(Scalar::ONE.as_bytes());
        cases.push(("weak key", weak, msg, by_weak));
    }
    cases
}

#[test]
fn ed25519_verification_accepts_exactly_what_verify_strict_accepts() {
    let cases = strict_cases();
    let mut plain_only = 0;
    for (what, key, msg, sig) in &cases {
        let signature = ed25519_dalek::Signature::from_bytes(sig);
        let strict = key.verify_strict(msg, &signature).is_ok();
        assert_eq!(
            verify_ed25519_strict(key, msg, sig),
            strict,
            "{what}: disagrees with verify_strict"
        );
        assert_eq!(strict, *what == "valid", "{what}");
        if !strict && key.verify(msg, &signature).is_ok() {
            plain_only += 1;
        }
    }
    // The two forged cases per message pass the plain check: the rules that refuse them ran.
    assert_eq!(plain_only, 2 * 32);
}
