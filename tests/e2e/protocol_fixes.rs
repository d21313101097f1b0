//! Protocol behaviours a generic client relies on: the device flow with `dpop_jkt` (RFC 9449
//! §10) and no proof, a `dpop_jkt` that disagrees with the proof, one `New-DPoP` header only,
//! refresh-token reuse ending the token family (RFC 9700), a revoked grant's refresh answering
//! `grant_revoked`, and the times of `/v1/grant` and the access token in whole seconds.

use base64::Engine;
use pairgate_protocol::keys::KeyKind;
use pairgate_protocol::oauth::{GRANT_TYPE_DEVICE_CODE, GRANT_TYPE_REFRESH};
use pairgate_tests::Backend;
use pairgate_tests::app::{call, key, oauth_post, proof, raw_pair};
use pairgate_tests::gateway::run_cli;
use pairgate_tests::providers;
use serde_json::Value;

fn jkt(k: &pairgate_protocol::keys::SigningKey) -> String {
    k.public_key().thumbprint()
}

#[tokio::test]
async fn the_device_flow_names_its_key_by_dpop_jkt_and_the_poll_proves_it() {
    let (gw, _fake) = providers::start(Backend::Sqlite, "").await;
    let app_key = key(KeyKind::P256);
    let thumb = jkt(&app_key);
    // No proof at all, only dpop_jkt: accepted, and the fingerprint is the key's.
    let (status, body, _) = oauth_post(
        &gw,
        "/oauth/device_authorization",
        &[("client_name", "generic"), ("dpop_jkt", &thumb)],
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let device_code = body["device_code"].as_str().unwrap().to_string();
    let user_code = body["user_code"].as_str().unwrap().to_string();
    assert_eq!(
        body["key_fingerprint"],
        pairgate_protocol::jwk::fingerprint_of(&thumb)
    );
    // A malformed dpop_jkt, and neither proof nor dpop_jkt, are refused with what to send.
    let (status, body, _) = oauth_post(
        &gw,
        "/oauth/device_authorization",
        &[("client_name", "generic"), ("dpop_jkt", "short")],
        None,
    )
    .await;
    assert_eq!(
        (status, &body["error"]),
        (400, &Value::from("invalid_request")),
        "{body}"
    );
    let (status, body, _) = oauth_post(
        &gw,
        "/oauth/device_authorization",
        &[("client_name", "generic")],
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // A proof by another key than dpop_jkt names is refused.
    let other = key(KeyKind::Ed25519);
    let p = proof(
        &other,
        "POST",
        &gw.url("/oauth/device_authorization"),
        None,
        None,
    );
    let (status, body, _) = oauth_post(
        &gw,
        "/oauth/device_authorization",
        &[("client_name", "generic"), ("dpop_jkt", &thumb)],
        Some(&p),
    )
    .await;
    assert_eq!(
        (status, &body["error"]),
        (400, &Value::from("invalid_dpop_proof")),
        "{body}"
    );

    let (code, out, err) = run_cli(&gw, &["consent", "approve", &user_code], None).await;
    assert_eq!(code, 0, "{out} {err}");
    let poll = |k: &pairgate_protocol::keys::SigningKey| {
        proof(k, "POST", &gw.url("/oauth/token"), None, None)
    };
    let form = [
        ("grant_type", GRANT_TYPE_DEVICE_CODE),
        ("device_code", device_code.as_str()),
    ];
    let (status, body, _) = oauth_post(&gw, "/oauth/token", &form, Some(&poll(&other))).await;
    assert_eq!(status, 400, "another key cannot redeem it: {body}");
    let (status, body, _) = oauth_post(&gw, "/oauth/token", &form, Some(&poll(&app_key))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP");
}

#[tokio::test]
async fn key_rotation_takes_exactly_one_new_dpop_header() {
    let (gw, _fake) = providers::start(Backend::Sqlite, "").await;
    let app = raw_pair(&gw, KeyKind::Ed25519, &[]).await;
    let url = gw.url("/v1/grant/rotate-key");
    let (a, b) = (key(KeyKind::Ed25519), key(KeyKind::P256));
    let current = proof(&app.key, "POST", &url, Some(&app.access_token), Some(b""));
    let pa = proof(&a, "POST", &url, Some(&app.access_token), Some(b""));
    let pb = proof(&b, "POST", &url, Some(&app.access_token), Some(b""));
    let auth = format!("DPoP {}", app.access_token);
    let (status, body, _) = call(
        &gw,
        "POST",
        "/v1/grant/rotate-key",
        &[
            ("authorization", &auth),
            ("dpop", &current),
            ("new-dpop", &pa),
            ("new-dpop", &pb),
        ],
        Some(b""),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("exactly one New-DPoP"), "{body}");
    // The grant still uses its key: a request by it works.
    let p = proof(
        &app.key,
        "GET",
        &gw.url("/v1/grant"),
        Some(&app.access_token),
        None,
    );
    let (status, body, _) = call(
        &gw,
        "GET",
        "/v1/grant",
        &[("authorization", &auth), ("dpop", &p)],
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["key_thumbprint"], jkt(&app.key));
}

async fn refresh(
    gw: &pairgate_tests::Gateway,
    k: &pairgate_protocol::keys::SigningKey,
    token: &str,
) -> (u16, Value) {
    let p = proof(k, "POST", &gw.url("/oauth/token"), None, None);
    let (status, body, _) = oauth_post(
        gw,
        "/oauth/token",
        &[("grant_type", GRANT_TYPE_REFRESH), ("refresh_token", token)],
        Some(&p),
    )
    .await;
    (status, body)
}

#[tokio::test]
async fn a_reused_refresh_token_ends_the_whole_token_family() {
    let (gw, _fake) = providers::start(Backend::Sqlite, "").await;
    let app = raw_pair(&gw, KeyKind::Ed25519, &[]).await;
    let (status, first) = refresh(&gw, &app.key, &app.refresh_token).await;
    assert_eq!(status, 200, "{first}");
    let successor = first["refresh_token"].as_str().unwrap().to_string();
    // The old token again, by another key: refused, and nothing else changes.
    let (status, body) = refresh(&gw, &key(KeyKind::Ed25519), &app.refresh_token).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &Value::from("invalid_grant")),
        "{body}"
    );
    // The old token again, by its own key: one of two key holders is a thief.
    let (status, body) = refresh(&gw, &app.key, &app.refresh_token).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &Value::from("invalid_grant")),
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or_default()
            .contains("already used"),
        "{body}"
    );
    let (status, body) = refresh(&gw, &app.key, &successor).await;
    assert_eq!(
        status, 400,
        "the successor is revoked with its family: {body}"
    );
    pairgate_tests::owner::create_owner(&gw).await;
    let owner = pairgate_tests::owner::login(&gw).await;
    let (_, audit) = owner.get("/admin/api/audit").await;
    assert!(
        audit.to_string().contains("grant.refresh_token_reused"),
        "the owner sees it in the audit log: {audit}"
    );
}

#[tokio::test]
async fn a_revoked_grants_refresh_answers_grant_revoked() {
    let (gw, _fake) = providers::start(Backend::Sqlite, "").await;
    let app = raw_pair(&gw, KeyKind::Ed25519, &[]).await;
    let (code, out, err) = run_cli(&gw, &["grant", "revoke", &app.grant_id], None).await;
    assert_eq!(code, 0, "{out} {err}");
    let (status, body) = refresh(&gw, &app.key, &app.refresh_token).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "grant_revoked", "{body}");
}

#[tokio::test]
async fn times_are_whole_seconds_and_the_issuer_matches_discovery() {
    let (gw, _fake) = providers::start(Backend::Sqlite, "").await;
    let app = raw_pair(&gw, KeyKind::Ed25519, &["--valid-for", "1d"]).await;
    let auth = format!("DPoP {}", app.access_token);
    let p = proof(
        &app.key,
        "GET",
        &gw.url("/v1/grant"),
        Some(&app.access_token),
        None,
    );
    let (status, grant, _) = call(
        &gw,
        "GET",
        "/v1/grant",
        &[("authorization", &auth), ("dpop", &p)],
        None,
    )
    .await;
    assert_eq!(status, 200, "{grant}");
    let now = pairgate_tests::app::now();
    for field in ["created_at", "expires_at"] {
        let t = grant[field]
            .as_i64()
            .unwrap_or_else(|| panic!("{field}: {grant}"));
        assert!(
            (now - 86_400 * 2..now + 86_400 * 2).contains(&t),
            "{field} is unix seconds: {t} (now {now})"
        );
    }
    let payload = app.access_token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert!(claims["iat"].is_i64() && claims["exp"].is_i64(), "{claims}");
    let meta: Value = reqwest::get(gw.url("/.well-known/oauth-authorization-server"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(claims["iss"], meta["issuer"], "{claims} {meta}");
}

#[tokio::test]
async fn with_nonces_on_every_app_answer_carries_the_next_nonce() {
    let (gw, _fake) = providers::start_with(
        Backend::Sqlite,
        "",
        &[("PAIRGATE_DPOP__REQUIRE_NONCE", "true")],
    )
    .await;
    let app = pairgate_tests::app::pair(&gw, KeyKind::Ed25519, &[]).await;
    for path in ["/v1/grant", "/v1/models"] {
        let res = app.get(path).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert!(
            res.headers().contains_key("dpop-nonce"),
            "{path} answers with the next nonce: {:?}",
            res.headers()
        );
    }
}

#[tokio::test]
async fn a_provider_without_a_credential_says_so_and_sends_nothing() {
    let fake = pairgate_tests::fake::FakeProvider::start().await;
    let extra = format!(
        "[providers.nokey]\nplugin = \"openai\"\norigin_override = \"{}\"\n",
        fake.url()
    );
    let gw = pairgate_tests::Gateway::builder(Backend::Sqlite)
        .config(providers::fake_config(&fake, &extra))
        .start()
        .await;
    providers::add_credentials(&gw).await;
    let app = pairgate_tests::app::pair(&gw, KeyKind::Ed25519, &[]).await;
    let res = app
        .post("/v1/chat/completions")
        .json(&serde_json::json!({ "model": "nokey/gpt-4o-mini",
            "messages": [{ "role": "user", "content": "hi" }] }))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("provider_not_configured")),
        "{body}"
    );
    assert!(fake.received().is_empty(), "nothing was sent");
}
