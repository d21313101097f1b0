//! The owner's side: setup link, login, sessions, CSRF, lockout, and the route-enumeration test
//! proving no admin or approval route answers without the owner.

use pairgate::http::routes::{Access, OPEN_ROUTES, route_table};
use pairgate_protocol::keys::KeyKind;
use pairgate_sdk::{Client, MemoryStorage, PairOptions};
use pairgate_tests::app::{self, call, proof};
use pairgate_tests::owner::{PASSWORD, cookie_of, create_owner, login};
use pairgate_tests::{Backend, Gateway};
use serde_json::{Value, json};

async fn post_json(
    gw: &Gateway,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = reqwest::Client::new().post(gw.url(path)).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let h = res.headers().clone();
    (status, res.json().await.unwrap_or(Value::Null), h)
}

#[tokio::test]
async fn the_setup_link_creates_the_owner_exactly_once() {
    let gw = Gateway::start(Backend::Sqlite).await;
    let logs = gw.logs();
    let token = logs
        .split("/admin/setup#")
        .nth(1)
        .map(|t| {
            t.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect::<String>()
        })
        .expect("setup link logged");
    let body = |t: &str, p: &str| json!({ "token": t, "username": "owner", "password": p });
    let (s, b, _) = post_json(
        &gw,
        "/admin/api/setup",
        &body("pgsetup_wrong", PASSWORD),
        &[],
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (403, Some("invalid_setup_token"))
    );
    let (s, b, _) = post_json(&gw, "/admin/api/setup", &body(&token, "short"), &[]).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("weak_password"))
    );
    let (s, b, h) = post_json(&gw, "/admin/api/setup", &body(&token, PASSWORD), &[]).await;
    assert_eq!(s, 200, "{b}");
    let set_cookie = h["set-cookie"].to_str().unwrap();
    assert!(
        set_cookie.contains("HttpOnly")
            && set_cookie.contains("SameSite=Strict")
            && set_cookie.contains("Path=/"),
        "{set_cookie}"
    );
    assert!(
        !set_cookie.contains("Secure"),
        "no Secure flag on plain http"
    );
    let (s, b, _) = post_json(&gw, "/admin/api/setup", &body(&token, PASSWORD), &[]).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (403, Some("invalid_setup_token")),
        "the link works once"
    );
}

#[tokio::test]
async fn no_admin_or_approval_route_answers_without_the_owner() {
    let gw = Gateway::start(Backend::Sqlite).await;
    create_owner(&gw).await;
    let owner = login(&gw).await;
    let table = route_table();
    let open: Vec<&str> = table
        .iter()
        .filter(|r| r.access == Access::Open)
        .map(|r| r.path)
        .collect();
    let mut expected_open = OPEN_ROUTES.to_vec();
    expected_open.sort();
    let mut got_open = open.clone();
    got_open.sort();
    got_open.dedup();
    assert_eq!(
        got_open, expected_open,
        "open routes are exactly the allow-list"
    );
    assert!(table.iter().all(|r| r.access != Access::Open
        || !r.path.starts_with("/admin/api/")
        || r.path.ends_with("/setup")
        || r.path.ends_with("/login")
        || r.path.starts_with("/admin/api/login/passkey/")));
    let client = reqwest::Client::new();
    let mut checked = 0;
    for r in &table {
        let path = r
            .path
            .replace("{id}", "gr_x")
            .replace("{action}", "revoke")
            .replace("{user_code}", "BCDF-GHJK");
        let m = reqwest::Method::from_bytes(r.method.as_bytes()).unwrap();
        let res = client
            .request(m.clone(), gw.url(&path))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        match r.access {
            Access::Owner => {
                assert_eq!(
                    (status, body["error"]["code"].as_str()),
                    (401, Some("owner_required")),
                    "{} {path} without a session",
                    r.method
                );
                if r.method != "GET" {
                    let res = client
                        .request(m, gw.url(&path))
                        .header("cookie", &owner.cookie)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(
                        res.status(),
                        403,
                        "{} {path} with a session but no CSRF token",
                        r.method
                    );
                }
                checked += 1;
            }
            Access::App => {
                assert_eq!(status, 401, "{} {path} without a token", r.method);
                checked += 1;
            }
            Access::Metrics => {
                // The harness configures a metrics token: without it, 401.
                assert_eq!(status, 401, "{} {path} without the metrics token", r.method);
                checked += 1;
            }
            Access::Open => {}
        }
    }
    assert!(checked >= 15, "{checked}");
}

#[tokio::test]
async fn an_app_can_never_approve_its_own_consent_request() {
    let gw = Gateway::start(Backend::Sqlite).await;
    create_owner(&gw).await;
    // The app has a grant already (so it holds valid DPoP credentials) and asks for more.
    let a = app::raw_pair(&gw, KeyKind::Ed25519, &[]).await;
    let mut pending = Client::request_consent(
        &gw.base_url,
        "greedy app",
        &json!({ "models": ["*"] }),
        PairOptions::default(),
        MemoryStorage::new(),
    )
    .await
    .unwrap();
    let path = format!("/admin/api/consents/{}/approve", pending.user_code);
    let p = proof(&a.key, "POST", &gw.url(&path), Some(&a.access_token), None);
    let auth = format!("DPoP {}", a.access_token);
    let attempts: Vec<Vec<(&str, String)>> = vec![
        vec![],
        vec![("authorization", auth.clone()), ("dpop", p.clone())],
        vec![
            ("cookie", "pairgate_session=pgs_forged".into()),
            ("x-csrf-token", "x".into()),
        ],
        vec![
            ("cookie", format!("pairgate_session={}", a.access_token)),
            ("x-csrf-token", "x".into()),
        ],
    ];
    for headers in attempts {
        let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (s, body, _) = call(&gw, "POST", &path, &hs, Some(b"{}")).await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (401, Some("owner_required")),
            "{headers:?}"
        );
    }
    assert!(
        pending.poll_once().await.unwrap().is_none(),
        "still pending"
    );
    // The owner can.
    let owner = login(&gw).await;
    let (s, body) = owner.get("/admin/api/consents").await;
    assert_eq!(s, 200);
    assert_eq!(
        body["data"][0]["key_fingerprint"],
        pending.key_fingerprint.as_str()
    );
    let (s, body) = owner
        .post(
            &path,
            &json!({ "policy": { "models": ["openai/gpt-4o-mini"] } }),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["policy"]["models"], json!(["openai/gpt-4o-mini"]));
}

#[tokio::test]
async fn the_owner_manages_pairings_consents_and_grants_over_the_api() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let gw = Gateway::start(backend).await;
        create_owner(&gw).await;
        let owner = login(&gw).await;
        let (s, created) = owner.post("/admin/api/pairings", &json!({ "app_name": "api app", "ttl_secs": 300, "policy": { "models": ["openai/*"] } })).await;
        assert_eq!(s, 200, "{created}");
        let string = created["pairing_string"].as_str().unwrap();
        let (_, list) = owner.get("/admin/api/pairings").await;
        assert_eq!(list["data"][0]["id"], created["id"]);
        assert!(
            !list.to_string().contains(string),
            "the secret is not listed"
        );
        let client = Client::pair(
            string,
            PairOptions {
                key_kind: KeyKind::P256,
                ..Default::default()
            },
            MemoryStorage::new(),
        )
        .await
        .unwrap();
        assert_eq!(client.get("/v1/grant").send().await.unwrap().status(), 200);
        let (_, grants) = owner.get("/admin/api/grants").await;
        assert_eq!(grants["data"][0]["app_name"], "api app");
        assert_eq!(
            grants["data"][0]["key_fingerprint"],
            client.key_fingerprint().as_str()
        );
        let (s, g) = owner
            .post(
                &format!("/admin/api/grants/{}/revoke", client.grant_id()),
                &json!({}),
            )
            .await;
        assert_eq!((s, g["status"].as_str()), (200, Some("revoked")));
        assert_eq!(
            client.get("/v1/grant").send().await.unwrap().status(),
            401,
            "{backend:?}"
        );
        let mut denied = Client::request_consent(
            &gw.base_url,
            "deny me",
            &json!({}),
            PairOptions::default(),
            MemoryStorage::new(),
        )
        .await
        .unwrap();
        let (s, _) = owner
            .post(
                &format!("/admin/api/consents/{}/deny", denied.user_code),
                &json!({}),
            )
            .await;
        assert_eq!(s, 200);
        assert!(matches!(
            denied.poll_once().await,
            Err(pairgate_sdk::SdkError::Denied)
        ));
        let (_, audit) = owner.get("/admin/api/audit").await;
        let actions: Vec<&str> = audit["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        for a in [
            "owner.created",
            "owner.login",
            "pairing.created",
            "pairing.redeemed",
            "grant.revoked",
            "consent.requested",
            "consent.denied",
        ] {
            assert!(
                actions.contains(&a),
                "{backend:?}: audit misses {a}: {actions:?}"
            );
        }
    }
}

#[tokio::test]
async fn sessions_end_on_logout_and_everywhere_and_are_never_fixed_by_the_client() {
    let gw = Gateway::start(Backend::Sqlite).await;
    create_owner(&gw).await;
    // A session id planted by an attacker before login is ignored: login issues a new one.
    let planted = "pairgate_session=pgs_planted_by_attacker";
    let (s, _, h) = post_json(
        &gw,
        "/admin/api/login",
        &json!({ "username": "owner", "password": PASSWORD }),
        &[("cookie", planted)],
    )
    .await;
    assert_eq!(s, 200);
    let issued = cookie_of(&h).unwrap();
    assert_ne!(issued, planted);
    let (s, _, _) = call(
        &gw,
        "GET",
        "/admin/api/session",
        &[("cookie", planted)],
        None,
    )
    .await;
    assert_eq!(s, 401);

    let a = login(&gw).await;
    let b = login(&gw).await;
    assert_eq!(a.get("/admin/api/session").await.0, 200);
    let (_, sessions) = a.get("/admin/api/sessions").await;
    assert_eq!(sessions["data"].as_array().unwrap().len(), 3);
    assert_eq!(a.post("/admin/api/logout", &json!({})).await.0, 200);
    assert_eq!(a.get("/admin/api/session").await.0, 401, "logged out");
    assert_eq!(
        b.get("/admin/api/session").await.0,
        200,
        "other sessions live on"
    );
    assert_eq!(
        b.post("/admin/api/sessions/revoke-all", &json!({})).await.0,
        200
    );
    assert_eq!(
        b.get("/admin/api/session").await.0,
        401,
        "signed out everywhere"
    );
}

#[tokio::test]
async fn repeated_failed_logins_are_locked_out() {
    let gw = Gateway::start(Backend::Sqlite).await;
    create_owner(&gw).await;
    for _ in 0..10 {
        let (s, _, _) = post_json(
            &gw,
            "/admin/api/login",
            &json!({ "username": "owner", "password": "wrong password!" }),
            &[],
        )
        .await;
        assert_eq!(s, 401);
    }
    let (s, body, h) = post_json(
        &gw,
        "/admin/api/login",
        &json!({ "username": "owner", "password": PASSWORD }),
        &[],
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (429, Some("too_many_attempts"))
    );
    assert!(h.contains_key("retry-after"));
    assert!(
        gw.logs().contains("failed owner login"),
        "failures are logged"
    );
}

#[tokio::test]
async fn the_device_flows_verification_uri_is_the_console() {
    let gw = Gateway::start(Backend::Sqlite).await;
    let pending = Client::request_consent(
        &gw.base_url,
        "device app",
        &json!({ "models": ["openai/*"] }),
        PairOptions::default(),
        MemoryStorage::new(),
    )
    .await
    .unwrap();
    assert_eq!(pending.verification_uri, gw.url("/admin/consent"));
    assert_eq!(
        pending.verification_uri_complete,
        gw.url(&format!("/admin/consent?user_code={}", pending.user_code))
    );
    for uri in [
        &pending.verification_uri,
        &pending.verification_uri_complete,
    ] {
        let res = reqwest::get(uri.as_str()).await.unwrap();
        assert_eq!(res.status(), 200, "{uri}");
        let h = res.headers();
        assert_eq!(h["content-type"], "text/html; charset=utf-8");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("script-src 'self'")
        );
        assert_eq!(h["x-frame-options"], "DENY");
        let html = res.text().await.unwrap();
        assert!(
            html.contains("/admin/assets/app/main.js"),
            "the console: {html}"
        );
    }
}
