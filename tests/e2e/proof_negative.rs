//! The negative suite: bad proofs, tokens and pairings, each refused with the right status and
//! error code, and never echoing what was sent.

use pairgate_protocol::keys::KeyKind;
use pairgate_protocol::oauth::GRANT_TYPE_PAIRING;
use pairgate_tests::app::{
    self, RawApp, call, claims, craft, header, oauth_post, pairing_string, proof,
};
use pairgate_tests::gateway::run_cli;
use pairgate_tests::{Backend, Gateway};
use serde_json::{Value, json};

struct Ctx {
    gw: Gateway,
    a: RawApp,
    b: RawApp,
}

/// (case, expected status, expected error code)
const RESOURCE_CASES: &[(&str, u16, &str)] = &[
    ("no_authorization_header", 401, "invalid_token"),
    ("no_dpop_header", 401, "invalid_dpop_proof"),
    ("two_dpop_headers", 401, "invalid_dpop_proof"),
    ("bearer_scheme_for_dpop_token", 401, "invalid_token"),
    ("garbage_access_token", 401, "invalid_token"),
    ("token_of_another_key", 401, "invalid_token"),
    ("wrong_ath", 401, "invalid_token"),
    ("missing_ath", 401, "invalid_dpop_proof"),
    ("bad_signature", 401, "invalid_dpop_proof"),
    ("alg_none", 401, "invalid_dpop_proof"),
    ("hs256_with_public_key_as_secret", 401, "invalid_dpop_proof"),
    ("es256_header_with_ed25519_key", 401, "invalid_dpop_proof"),
    ("eddsa_header_with_p256_key", 401, "invalid_dpop_proof"),
    ("private_d_in_jwk", 401, "invalid_dpop_proof"),
    ("weak_ed25519_key", 401, "invalid_dpop_proof"),
    ("wrong_typ", 401, "invalid_dpop_proof"),
    ("missing_typ", 401, "invalid_dpop_proof"),
    ("missing_jwk", 401, "invalid_dpop_proof"),
    ("missing_jti", 401, "invalid_dpop_proof"),
    ("missing_htm", 401, "invalid_dpop_proof"),
    ("missing_htu", 401, "invalid_dpop_proof"),
    ("missing_iat", 401, "invalid_dpop_proof"),
    ("iat_as_string", 401, "invalid_dpop_proof"),
    ("htm_mismatch", 401, "invalid_dpop_proof"),
    ("htu_other_host", 401, "invalid_dpop_proof"),
    ("htu_other_path", 401, "invalid_dpop_proof"),
    ("htu_other_scheme", 401, "invalid_dpop_proof"),
    ("stale_iat", 401, "invalid_dpop_proof"),
    ("future_iat", 401, "invalid_dpop_proof"),
    ("replayed_jti", 401, "invalid_dpop_proof"),
    ("oversize_proof", 401, "invalid_dpop_proof"),
    ("oversize_jti", 401, "invalid_dpop_proof"),
    ("not_a_jws", 401, "invalid_dpop_proof"),
    ("four_part_jws", 401, "invalid_dpop_proof"),
    ("tampered_body_with_digest", 401, "invalid_dpop_proof"),
];

const TOKEN_CASES: &[(&str, u16, &str)] = &[
    ("token_request_without_proof", 400, "invalid_dpop_proof"),
    ("token_proof_for_another_url", 400, "invalid_dpop_proof"),
    ("unsupported_grant_type", 400, "unsupported_grant_type"),
    ("json_instead_of_form", 400, "invalid_request"),
    ("missing_pairing_code", 400, "invalid_request"),
    ("malformed_pairing_code", 400, "invalid_pairing"),
    ("unknown_pairing", 400, "invalid_pairing"),
    ("wrong_secret_for_a_real_pairing", 400, "invalid_pairing"),
    ("used_pairing", 400, "pairing_already_used"),
    ("expired_pairing", 400, "expired_pairing"),
    ("cancelled_pairing", 400, "invalid_pairing"),
    ("refresh_token_with_another_key", 400, "invalid_grant"),
    ("unknown_refresh_token", 400, "invalid_grant"),
    ("unknown_device_code", 400, "invalid_grant"),
];

fn auth(a: &RawApp) -> String {
    format!("DPoP {}", a.access_token)
}

async fn resource_case(c: &Ctx, name: &str) -> (u16, Value, String) {
    let url = c.gw.url("/v1/grant");
    let t = Some(c.a.access_token.as_str());
    let good = || proof(&c.a.key, "GET", &url, t, None);
    let with = |h: Value, cl: Value| craft(&c.a.key, &h, &cl);
    let std_claims = || claims("GET", &url, t);
    let remove = |k: &str| {
        let mut cl = std_claims();
        cl.as_object_mut().unwrap().remove(k);
        with(header(&c.a.key), cl)
    };
    let hdr_with = |k: &str, v: Value| {
        let mut h = header(&c.a.key);
        h[k] = v;
        with(h, std_claims())
    };
    let claim_with = |k: &str, v: Value| {
        let mut cl = std_claims();
        cl[k] = v;
        with(header(&c.a.key), cl)
    };
    let au = auth(&c.a);
    let (headers, body): (Vec<(&str, String)>, Option<Vec<u8>>) = match name {
        "no_authorization_header" => (vec![("dpop", good())], None),
        "no_dpop_header" => (vec![("authorization", au.clone())], None),
        "two_dpop_headers" => (
            vec![
                ("authorization", au.clone()),
                ("dpop", good()),
                ("dpop", good()),
            ],
            None,
        ),
        "bearer_scheme_for_dpop_token" => (
            vec![
                ("authorization", format!("Bearer {}", c.a.access_token)),
                ("dpop", good()),
            ],
            None,
        ),
        "garbage_access_token" => {
            let p = proof(&c.a.key, "GET", &url, Some("not-a-token"), None);
            (
                vec![("authorization", "DPoP not-a-token".into()), ("dpop", p)],
                None,
            )
        }
        "token_of_another_key" => {
            let p = proof(&c.b.key, "GET", &url, t, None);
            (vec![("authorization", au.clone()), ("dpop", p)], None)
        }
        "wrong_ath" => (
            vec![
                ("authorization", au.clone()),
                ("dpop", claim_with("ath", json!("AAAA"))),
            ],
            None,
        ),
        "missing_ath" => (
            vec![("authorization", au.clone()), ("dpop", remove("ath"))],
            None,
        ),
        "bad_signature" => {
            let mut p = good();
            let last = p.pop().unwrap();
            p.push(if last == 'A' { 'B' } else { 'A' });
            (vec![("authorization", au.clone()), ("dpop", p)], None)
        }
        "alg_none" => {
            let mut h = header(&c.a.key);
            h["alg"] = "none".into();
            let p = with(h, std_claims());
            let unsigned = format!("{}.", p.rsplit_once('.').unwrap().0);
            (
                vec![("authorization", au.clone()), ("dpop", unsigned)],
                None,
            )
        }
        "hs256_with_public_key_as_secret" => (
            vec![
                ("authorization", au.clone()),
                ("dpop", hdr_with("alg", "HS256".into())),
            ],
            None,
        ),
        "es256_header_with_ed25519_key" => (
            vec![
                ("authorization", au.clone()),
                ("dpop", hdr_with("alg", "ES256".into())),
            ],
            None,
        ),
        "eddsa_header_with_p256_key" => {
            let tb = Some(c.b.access_token.as_str());
            let mut h = header(&c.b.key);
            h["alg"] = "EdDSA".into();
            let p = craft(&c.b.key, &h, &claims("GET", &url, tb));
            (vec![("authorization", auth(&c.b)), ("dpop", p)], None)
        }
        "private_d_in_jwk" => {
            let mut h = header(&c.a.key);
            h["jwk"] = c.a.key.to_private_jwk();
            (
                vec![
                    ("authorization", au.clone()),
                    ("dpop", with(h, std_claims())),
                ],
                None,
            )
        }
        "weak_ed25519_key" => {
            let mut h = header(&c.a.key);
            let mut identity = [0u8; 32];
            identity[0] = 1;
            h["jwk"] = json!({ "kty": "OKP", "crv": "Ed25519", "x": pairgate_protocol::b64::encode(&identity) });
            (
                vec![
                    ("authorization", au.clone()),
                    ("dpop", with(h, std_claims())),
                ],
                None,
            )
        }
        "wrong_typ" => (
            vec![
                ("authorization", au.clone()),
                ("dpop", hdr_with("typ", "JWT".into())),
            ],
            None,
        ),
        "missing_typ" => {
            let mut h = header(&c.a.key);
            h.as_object_mut().unwrap().remove("typ");
            (
                vec![
                    ("authorization", au.clone()),
                    ("dpop", with(h, std_claims())),
                ],
                None,
            )
        }
        "missing_jwk" => {
            let mut h = header(&c.a.key);
            h.as_object_mut().unwrap().remove("jwk");
            (
                vec![
                    ("authorization", au.clone()),
                    ("dpop", with(h, std_claims())),
                ],
                None,
            )
        }
        "missing_jti" | "missing_htm" | "missing_htu" | "missing_iat" => (
            vec![
                ("authorization", au.clone()),
                ("dpop", remove(&name["missing_".len()..])),
            ],
            None,
        ),
        "iat_as_string" => (
            vec![
                ("authorization", au.clone()),
                ("dpop", claim_with("iat", json!(app::now().to_string()))),
            ],
            None,
        ),
        "htm_mismatch" => (
            vec![
                ("authorization", au.clone()),
                ("dpop", claim_with("htm", json!("POST"))),
            ],
            None,
        ),
        "htu_other_host" => (
            vec![
                ("authorization", au.clone()),
                (
                    "dpop",
                    claim_with("htu", json!("http://evil.example/v1/grant")),
                ),
            ],
            None,
        ),
        "htu_other_path" => (
            vec![
                ("authorization", au.clone()),
                ("dpop", claim_with("htu", json!(c.gw.url("/v1/models")))),
            ],
            None,
        ),
        "htu_other_scheme" => {
            let other = url.replacen("http://", "https://", 1);
            (
                vec![
                    ("authorization", au.clone()),
                    ("dpop", claim_with("htu", json!(other))),
                ],
                None,
            )
        }
        "stale_iat" => (
            vec![
                ("authorization", au.clone()),
                ("dpop", claim_with("iat", json!(app::now() - 600))),
            ],
            None,
        ),
        "future_iat" => (
            vec![
                ("authorization", au.clone()),
                ("dpop", claim_with("iat", json!(app::now() + 600))),
            ],
            None,
        ),
        "replayed_jti" => {
            let p = good();
            let (s, _, _) = call(
                &c.gw,
                "GET",
                "/v1/grant",
                &[("authorization", &au), ("dpop", &p)],
                None,
            )
            .await;
            assert_eq!(s, 200, "the first use of the proof passes");
            (vec![("authorization", au.clone()), ("dpop", p)], None)
        }
        "oversize_proof" => (
            vec![
                ("authorization", au.clone()),
                ("dpop", claim_with("pad", json!("x".repeat(12_000)))),
            ],
            None,
        ),
        "oversize_jti" => (
            vec![
                ("authorization", au.clone()),
                ("dpop", claim_with("jti", json!("j".repeat(300)))),
            ],
            None,
        ),
        "not_a_jws" => (
            vec![("authorization", au.clone()), ("dpop", "hello".into())],
            None,
        ),
        "four_part_jws" => (
            vec![
                ("authorization", au.clone()),
                ("dpop", format!("{}.AAAA", good())),
            ],
            None,
        ),
        "tampered_body_with_digest" => {
            let p = proof(&c.a.key, "GET", &url, t, Some(b"{\"model\":\"cheap\"}"));
            (
                vec![("authorization", au.clone()), ("dpop", p)],
                Some(b"{\"model\":\"expensive\"}".to_vec()),
            )
        }
        other => panic!("no case {other}"),
    };
    let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body, h) = call(&c.gw, "GET", "/v1/grant", &hs, body.as_deref()).await;
    let challenge = h
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, body, challenge)
}

async fn token_case(c: &Ctx, name: &str) -> (u16, Value) {
    let url = c.gw.url("/oauth/token");
    let key = app::key(KeyKind::Ed25519);
    let p = || proof(&key, "POST", &url, None, None);
    let redeem = |code: String| {
        let pr = p();
        async move {
            oauth_post(
                &c.gw,
                "/oauth/token",
                &[("grant_type", GRANT_TYPE_PAIRING), ("pairing_code", &code)],
                Some(&pr),
            )
            .await
        }
    };
    let (status, body, _) = match name {
        "token_request_without_proof" => {
            oauth_post(
                &c.gw,
                "/oauth/token",
                &[("grant_type", GRANT_TYPE_PAIRING), ("pairing_code", "x")],
                None,
            )
            .await
        }
        "token_proof_for_another_url" => {
            // The proof is checked once the pairing string is known good (a guess is refused
            // before any signature check), so this needs a real one.
            let code = pairing_string(&c.gw, &[]).await;
            let pr = proof(&key, "POST", &c.gw.url("/v1/grant"), None, None);
            let refused = oauth_post(
                &c.gw,
                "/oauth/token",
                &[("grant_type", GRANT_TYPE_PAIRING), ("pairing_code", &code)],
                Some(&pr),
            )
            .await;
            assert_eq!(redeem(code).await.0, 200, "a refused proof uses up nothing");
            refused
        }
        "unsupported_grant_type" => {
            oauth_post(
                &c.gw,
                "/oauth/token",
                &[("grant_type", "password")],
                Some(&p()),
            )
            .await
        }
        "json_instead_of_form" => {
            let res = reqwest::Client::new()
                .post(&url)
                .header("dpop", p())
                .json(&json!({ "grant_type": GRANT_TYPE_PAIRING }))
                .send()
                .await
                .unwrap();
            (
                res.status().as_u16(),
                res.json().await.unwrap(),
                Default::default(),
            )
        }
        "missing_pairing_code" => {
            oauth_post(
                &c.gw,
                "/oauth/token",
                &[("grant_type", GRANT_TYPE_PAIRING)],
                Some(&p()),
            )
            .await
        }
        "malformed_pairing_code" => redeem("pgpair1.not-really".into()).await,
        "unknown_pairing" => {
            let s = pairgate_protocol::pairing::PairingString::generate(
                &c.gw.base_url,
                &mut rand_core::OsRng,
            )
            .unwrap();
            redeem(s.encode()).await
        }
        "wrong_secret_for_a_real_pairing" => {
            let real =
                pairgate_protocol::pairing::PairingString::parse(&pairing_string(&c.gw, &[]).await)
                    .unwrap();
            let mut fake = pairgate_protocol::pairing::PairingString::generate(
                &c.gw.base_url,
                &mut rand_core::OsRng,
            )
            .unwrap();
            fake.id = real.id;
            redeem(fake.encode()).await
        }
        "used_pairing" => {
            let s = pairing_string(&c.gw, &[]).await;
            assert_eq!(redeem(s.clone()).await.0, 200);
            redeem(s).await
        }
        "expired_pairing" => {
            let s = pairing_string(&c.gw, &["--ttl", "1s"]).await;
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
            redeem(s).await
        }
        "cancelled_pairing" => {
            let s = pairing_string(&c.gw, &[]).await;
            let id = pairgate_protocol::pairing::PairingString::parse(&s)
                .unwrap()
                .id
                .to_string();
            assert_eq!(run_cli(&c.gw, &["pair", "cancel", &id], None).await.0, 0);
            redeem(s).await
        }
        "refresh_token_with_another_key" => {
            oauth_post(
                &c.gw,
                "/oauth/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &c.a.refresh_token),
                ],
                Some(&p()),
            )
            .await
        }
        "unknown_refresh_token" => {
            oauth_post(
                &c.gw,
                "/oauth/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", "pgrt_nothing"),
                ],
                Some(&p()),
            )
            .await
        }
        "unknown_device_code" => {
            oauth_post(
                &c.gw,
                "/oauth/token",
                &[
                    (
                        "grant_type",
                        pairgate_protocol::oauth::GRANT_TYPE_DEVICE_CODE,
                    ),
                    ("device_code", "pgdc_nothing"),
                ],
                Some(&p()),
            )
            .await
        }
        other => panic!("no case {other}"),
    };
    (status, body)
}

#[tokio::test]
async fn every_bad_proof_token_and_pairing_is_refused_with_the_right_error() {
    let gw = Gateway::start(Backend::Sqlite).await;
    let a = app::raw_pair(&gw, KeyKind::Ed25519, &[]).await;
    let b = app::raw_pair(&gw, KeyKind::P256, &[]).await;
    let c = Ctx { gw, a, b };
    assert!(RESOURCE_CASES.len() + TOKEN_CASES.len() >= 40);
    let mut failures = Vec::new();
    for (name, status, code) in RESOURCE_CASES {
        let (s, body, challenge) = resource_case(&c, name).await;
        let got = body["error"]["code"].as_str().unwrap_or("").to_string();
        if s != *status || got != *code {
            failures.push(format!("{name}: expected {status} {code}, got {s} {body}"));
        }
        if !challenge.starts_with(&format!("DPoP error=\"{code}\"")) {
            failures.push(format!("{name}: WWW-Authenticate was {challenge:?}"));
        }
        let text = body.to_string();
        if text.contains(&c.a.access_token) || text.contains("eyJ") {
            failures.push(format!(
                "{name}: the error body echoes a token or proof: {text}"
            ));
        }
    }
    for (name, status, code) in TOKEN_CASES {
        let (s, body) = token_case(&c, name).await;
        if s != *status || body["error"] != *code {
            failures.push(format!("{name}: expected {status} {code}, got {s} {body}"));
        }
        if body.to_string().contains("pgpair1.") || body.to_string().contains("pgrt_") {
            failures.push(format!("{name}: the error body echoes a secret: {body}"));
        }
    }
    // The app still works after all of that.
    let p = proof(
        &c.a.key,
        "GET",
        &c.gw.url("/v1/grant"),
        Some(&c.a.access_token),
        None,
    );
    assert_eq!(
        call(
            &c.gw,
            "GET",
            "/v1/grant",
            &[("authorization", &auth(&c.a)), ("dpop", &p)],
            None
        )
        .await
        .0,
        200
    );
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn concurrent_replays_of_one_proof_have_exactly_one_winner() {
    let gw = Gateway::start(Backend::Sqlite).await;
    let a = app::raw_pair(&gw, KeyKind::Ed25519, &[]).await;
    let p = proof(
        &a.key,
        "GET",
        &gw.url("/v1/grant"),
        Some(&a.access_token),
        None,
    );
    let au = auth(&a);
    let headers = [("authorization", au.as_str()), ("dpop", p.as_str())];
    let calls = (0..8).map(|_| call(&gw, "GET", "/v1/grant", &headers, None));
    let results = futures_util::future::join_all(calls).await;
    assert_eq!(results.iter().filter(|r| r.0 == 200).count(), 1);
    assert_eq!(results.iter().filter(|r| r.0 == 401).count(), 7);
}

#[tokio::test]
async fn grants_can_require_the_body_digest_and_gateways_can_require_nonces() {
    let gw = Gateway::builder(Backend::Sqlite)
        .env("PAIRGATE_DPOP__REQUIRE_NONCE", "true")
        .start()
        .await;
    // Without a nonce: use_dpop_nonce with the nonce to use; the SDK retries with it.
    let key = app::key(KeyKind::Ed25519);
    let code = pairing_string(&gw, &["--require-body-hash"]).await;
    let p = proof(&key, "POST", &gw.url("/oauth/token"), None, None);
    let (s, body, headers) = oauth_post(
        &gw,
        "/oauth/token",
        &[("grant_type", GRANT_TYPE_PAIRING), ("pairing_code", &code)],
        Some(&p),
    )
    .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("use_dpop_nonce")),
        "{body}"
    );
    assert!(headers.contains_key("dpop-nonce"));
    let client = pairgate_sdk::Client::pair(
        &code,
        Default::default(),
        pairgate_sdk::MemoryStorage::new(),
    )
    .await
    .unwrap();
    let res = client.get("/v1/grant").send().await.unwrap();
    assert_eq!(
        res.status(),
        200,
        "the SDK always sends the digest and the nonce"
    );
}

#[tokio::test]
async fn pairing_guesses_are_locked_out_and_logged() {
    let gw = Gateway::start(Backend::Sqlite).await;
    let key = app::key(KeyKind::Ed25519);
    let url = gw.url("/oauth/token");
    for _ in 0..20 {
        let guess = pairgate_protocol::pairing::PairingString::generate(
            &gw.base_url,
            &mut rand_core::OsRng,
        )
        .unwrap()
        .encode();
        let p = proof(&key, "POST", &url, None, None);
        let (s, body, _) = oauth_post(
            &gw,
            "/oauth/token",
            &[("grant_type", GRANT_TYPE_PAIRING), ("pairing_code", &guess)],
            Some(&p),
        )
        .await;
        assert_eq!((s, body["error"].as_str()), (400, Some("invalid_pairing")));
    }
    // Even the right string is refused while locked out: guessing cannot continue.
    let real = pairing_string(&gw, &[]).await;
    let p = proof(&key, "POST", &url, None, None);
    let (s, body, headers) = oauth_post(
        &gw,
        "/oauth/token",
        &[("grant_type", GRANT_TYPE_PAIRING), ("pairing_code", &real)],
        Some(&p),
    )
    .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (429, Some("too_many_attempts")),
        "{body}"
    );
    assert!(headers.contains_key("retry-after"));
    let logs = gw.logs();
    assert!(logs.contains("pairing redemption locked out"), "{logs}");
    assert!(
        !logs.contains(&real),
        "the pairing string never reaches the log"
    );
}
