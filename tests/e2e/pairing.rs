//! Pairing and proof of possession end to end: owner CLI, token endpoint, Rust SDK, refresh, key
//! rotation, revocation, and the consent flow.

use pairgate_protocol::keys::KeyKind;
use pairgate_sdk::{Client, MemoryStorage, PairOptions};
use pairgate_tests::app::{self, pair, pairing_string};
use pairgate_tests::gateway::run_cli;
use pairgate_tests::{Backend, Gateway};
use serde_json::{Value, json};

async fn grant_of(client: &Client) -> (u16, Value) {
    let res = client.get("/v1/grant").send().await.unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn an_app_pairs_with_ed25519_or_p256_and_signs_every_request() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let gw = Gateway::start(backend).await;
        for kind in [KeyKind::Ed25519, KeyKind::P256] {
            let client = pair(&gw, kind, &["--model", "openai/gpt-4o-mini", "--rpm", "30"]).await;
            let (status, body) = grant_of(&client).await;
            assert_eq!(status, 200, "{backend:?} {kind:?}: {body}");
            assert_eq!(body["app_name"], "test app");
            assert_eq!(body["key_thumbprint"], client.key_thumbprint().as_str());
            assert_eq!(
                body["key_alg"],
                if kind == KeyKind::Ed25519 {
                    "EdDSA"
                } else {
                    "ES256"
                }
            );
            assert_eq!(body["policy"]["models"], json!(["openai/gpt-4o-mini"]));
            assert_eq!(body["policy"]["requests_per_minute"], 30);
            // every request carries a fresh proof: many in a row all pass
            for _ in 0..5 {
                assert_eq!(grant_of(&client).await.0, 200);
            }
        }
        let (code, out, _) = run_cli(&gw, &["grant", "list"], None).await;
        assert_eq!(code, 0);
        assert_eq!(out.lines().count(), 3, "header + two grants: {out}");
    }
}

#[tokio::test]
async fn the_metadata_document_advertises_dpop() {
    let gw = Gateway::start(Backend::Sqlite).await;
    let v: Value = reqwest::get(gw.url("/.well-known/oauth-authorization-server"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["issuer"], gw.base_url.as_str());
    assert_eq!(v["token_endpoint"], gw.url("/oauth/token").as_str());
    assert_eq!(
        v["dpop_signing_alg_values_supported"],
        json!(["EdDSA", "Ed25519", "ES256"])
    );
    assert!(
        v["grant_types_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == "urn:pairgate:params:oauth:grant-type:pairing")
    );
}

#[tokio::test]
async fn two_concurrent_redemptions_of_one_pairing_have_exactly_one_winner() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let gw = Gateway::start(backend).await;
        for _round in 0..3 {
            let s = pairing_string(&gw, &[]).await;
            let attempts =
                (0..4).map(|_| Client::pair(&s, PairOptions::default(), MemoryStorage::new()));
            let results = futures_util::future::join_all(attempts).await;
            let wins = results.iter().filter(|r| r.is_ok()).count();
            assert_eq!(wins, 1, "{backend:?}: {results:?}");
            for r in results.iter().filter_map(|r| r.as_ref().err()) {
                assert_eq!(r.code(), Some("pairing_already_used"), "{r}");
            }
        }
    }
}

#[tokio::test]
async fn refresh_issues_a_new_pair_and_the_old_refresh_token_dies() {
    let gw = Gateway::start(Backend::Sqlite).await;
    let a = app::raw_pair(&gw, KeyKind::Ed25519, &[]).await;
    let url = gw.url("/oauth/token");
    let refresh = |token: String| {
        let p = app::proof(&a.key, "POST", &url, None, None);
        let gw = &gw;
        async move {
            app::oauth_post(
                gw,
                "/oauth/token",
                &[("grant_type", "refresh_token"), ("refresh_token", &token)],
                Some(&p),
            )
            .await
        }
    };
    let (status, body, headers) = refresh(a.refresh_token.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["token_type"], "DPoP");
    assert_ne!(body["refresh_token"], a.refresh_token.as_str());
    let (status, body, _) = refresh(a.refresh_token.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "a used refresh token is dead"
    );
    // The SDK refreshes by itself too.
    let client = pair(&gw, KeyKind::P256, &[]).await;
    client.refresh().await.unwrap();
    assert_eq!(grant_of(&client).await.0, 200);
}

#[tokio::test]
async fn key_rotation_moves_the_grant_and_retires_the_old_key() {
    let gw = Gateway::start(Backend::Postgres).await;
    let client = pair(&gw, KeyKind::Ed25519, &[]).await;
    let old = client.key_thumbprint();
    client.rotate_key(KeyKind::P256).await.unwrap();
    assert_ne!(client.key_thumbprint(), old);
    let (status, body) = grant_of(&client).await;
    assert_eq!(status, 200);
    assert_eq!(body["key_thumbprint"], client.key_thumbprint().as_str());
    assert_eq!(body["key_alg"], "ES256");

    // A token of the old key no longer works even with a valid proof of the old key.
    let a = app::raw_pair(&gw, KeyKind::Ed25519, &[]).await;
    let url = gw.url("/v1/grant/rotate-key");
    let new_key = app::key(KeyKind::Ed25519);
    let old_p = app::proof(&a.key, "POST", &url, Some(&a.access_token), Some(b""));
    let new_p = app::proof(&new_key, "POST", &url, Some(&a.access_token), Some(b""));
    let auth = format!("DPoP {}", a.access_token);
    let (s, body, _) = app::call(
        &gw,
        "POST",
        "/v1/grant/rotate-key",
        &[
            ("authorization", &auth),
            ("dpop", &old_p),
            ("new-dpop", &new_p),
        ],
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let p = app::proof(
        &a.key,
        "GET",
        &gw.url("/v1/grant"),
        Some(&a.access_token),
        None,
    );
    let (s, body, _) = app::call(
        &gw,
        "GET",
        "/v1/grant",
        &[("authorization", &auth), ("dpop", &p)],
        None,
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (401, Some("invalid_token")),
        "{body}"
    );
    // Rotation needs a proof by the new key.
    let b = app::raw_pair(&gw, KeyKind::Ed25519, &[]).await;
    let auth = format!("DPoP {}", b.access_token);
    let p = app::proof(&b.key, "POST", &url, Some(&b.access_token), Some(b""));
    let (s, body, _) = app::call(
        &gw,
        "POST",
        "/v1/grant/rotate-key",
        &[("authorization", &auth), ("dpop", &p)],
        None,
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
}

#[tokio::test]
async fn revocation_and_suspension_apply_to_the_very_next_request() {
    let gw = Gateway::start(Backend::Sqlite).await;
    let client = pair(&gw, KeyKind::Ed25519, &[]).await;
    let id = client.grant_id();
    assert_eq!(grant_of(&client).await.0, 200);
    assert_eq!(run_cli(&gw, &["grant", "suspend", &id], None).await.0, 0);
    let (s, body) = grant_of(&client).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (403, Some("grant_suspended")),
        "{body}"
    );
    assert_eq!(run_cli(&gw, &["grant", "resume", &id], None).await.0, 0);
    assert_eq!(grant_of(&client).await.0, 200);
    assert_eq!(run_cli(&gw, &["grant", "revoke", &id], None).await.0, 0);
    let (s, body) = grant_of(&client).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (401, Some("grant_revoked")),
        "{body}"
    );
    assert_eq!(
        client.refresh().await.unwrap_err().code(),
        Some("grant_revoked"),
        "refresh tokens die with the grant, and the refusal says why"
    );
    let (code, _, err) = run_cli(&gw, &["grant", "resume", &id], None).await;
    assert_ne!(code, 0, "a revoked grant cannot be resumed: {err}");
}

#[tokio::test]
async fn consent_requests_are_approved_narrowed_or_denied_by_the_owner() {
    let gw = Gateway::start(Backend::Sqlite).await;
    let wanted = json!({ "models": ["openai/*", "anthropic/*"], "requests_per_minute": 100 });
    let mut pending = Client::request_consent(
        &gw.base_url,
        "consent app",
        &wanted,
        PairOptions::default(),
        MemoryStorage::new(),
    )
    .await
    .unwrap();
    assert!(
        pending.poll_once().await.unwrap().is_none(),
        "pending until the owner decides"
    );
    let (code, out, _) = run_cli(&gw, &["consent", "list"], None).await;
    assert_eq!(code, 0);
    assert!(
        out.contains(&pending.user_code) && out.contains(&pending.key_fingerprint),
        "the owner sees code and key: {out}"
    );
    let (code, out, err) = run_cli(
        &gw,
        &[
            "consent",
            "approve",
            &pending.user_code.to_lowercase(),
            "--model",
            "openai/gpt-4o-mini",
            "--rpm",
            "10",
        ],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let granted: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(granted["models"], json!(["openai/gpt-4o-mini"]));
    assert_eq!(granted["requests_per_minute"], 10);
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let client = pending.poll_once().await.unwrap().expect("approved");
    let (s, body) = grant_of(&client).await;
    assert_eq!(s, 200);
    assert_eq!(body["origin"], "consent");
    assert_eq!(body["policy"]["models"], json!(["openai/gpt-4o-mini"]));

    // The owner cannot grant more than was asked: widening edits are cut back to the request.
    let mut p2 = Client::request_consent(
        &gw.base_url,
        "narrow app",
        &json!({ "models": ["openai/gpt-4o-mini"], "requests_per_minute": 5 }),
        PairOptions::default(),
        MemoryStorage::new(),
    )
    .await
    .unwrap();
    let (code, out, err) = run_cli(
        &gw,
        &[
            "consent",
            "approve",
            &p2.user_code,
            "--model",
            "*",
            "--rpm",
            "1000",
        ],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let granted: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        granted["models"],
        json!(["openai/gpt-4o-mini"]),
        "{granted}"
    );
    assert_eq!(granted["requests_per_minute"], 5, "{granted}");
    assert!(p2.poll_once().await.unwrap().is_some());

    let mut denied = Client::request_consent(
        &gw.base_url,
        "denied app",
        &json!({}),
        PairOptions::default(),
        MemoryStorage::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        run_cli(&gw, &["consent", "deny", &denied.user_code], None)
            .await
            .0,
        0
    );
    assert!(matches!(
        denied.poll_once().await,
        Err(pairgate_sdk::SdkError::Denied)
    ));
    let (code, _, err) = run_cli(&gw, &["consent", "approve", "BCDF-GHJK"], None).await;
    assert_ne!(code, 0, "unknown codes are refused: {err}");
}

#[tokio::test]
async fn the_optional_bearer_key_is_owner_issued_scoped_and_revocable() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let gw = Gateway::start(backend).await;
        let client = pair(&gw, KeyKind::Ed25519, &["--model", "openai/gpt-4o-mini"]).await;
        let id = client.grant_id();
        let bearer_get = |key: String| {
            let url = gw.url("/v1/grant");
            async move {
                let res = reqwest::Client::new()
                    .get(url)
                    .bearer_auth(key)
                    .send()
                    .await
                    .unwrap();
                (
                    res.status().as_u16(),
                    res.json::<Value>().await.unwrap_or(Value::Null),
                )
            }
        };
        // Off by default: nothing works as a bearer until the owner issues a key.
        assert_eq!(bearer_get("pgbk_guess".into()).await.0, 401);
        let (code, out, err) = run_cli(
            &gw,
            &["grant", "bearer-issue", &id, "--valid-for", "1h"],
            None,
        )
        .await;
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("WEAKER"), "labelled weaker: {err}");
        let key = out.trim().to_string();
        assert!(key.starts_with("pgbk_"));
        let (s, body) = bearer_get(key.clone()).await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(body["id"], id.as_str());
        assert!(
            body["auth"].as_str().unwrap().starts_with("bearer"),
            "{body}"
        );
        assert_eq!(
            body["policy"]["models"],
            json!(["openai/gpt-4o-mini"]),
            "the grant's policy applies"
        );
        // Rotation needs proof of possession, never the bearer key.
        let res = reqwest::Client::new()
            .post(gw.url("/v1/grant/rotate-key"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403);
        // The database keeps only a digest.
        let (_, list, _) = run_cli(&gw, &["grant", "show", &id], None).await;
        assert!(!list.contains(&key));
        assert_eq!(
            run_cli(&gw, &["grant", "bearer-revoke", &id], None).await.0,
            0
        );
        assert_eq!(bearer_get(key.clone()).await.0, 401, "{backend:?}");
        // Suspending the grant stops the bearer key too.
        let (_, out, _) = run_cli(&gw, &["grant", "bearer-issue", &id], None).await;
        assert_eq!(run_cli(&gw, &["grant", "suspend", &id], None).await.0, 0);
        assert_eq!(bearer_get(out.trim().to_string()).await.0, 403);
    }
}
