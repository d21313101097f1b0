//! Strangers and thieves against the real binary, from several loopback source addresses
//! (127.0.0.0/8 is all loopback on Linux, so each client binds its own): failed logins, pairing
//! guesses, consent requests and replay-cache floods from strangers never lock out the owner or a
//! paired app, and a stolen key cannot use, refresh or rotate a grant from an address outside its
//! `source_ips` or after it expires. Each attack worked before the fix.

use std::net::IpAddr;

use pairgate_protocol::keys::{KeyKind, SigningKey};
use pairgate_protocol::oauth::{GRANT_TYPE_DEVICE_CODE, GRANT_TYPE_PAIRING, GRANT_TYPE_REFRESH};
use pairgate_tests::app::{self, RawApp, pairing_string, proof, raw_pair};
use pairgate_tests::gateway::run_cli;
use pairgate_tests::owner::{PASSWORD, cookie_of, create_owner, login};
use pairgate_tests::passkey::SoftPasskey;
use pairgate_tests::{Backend, Gateway};
use serde_json::{Value, json};

/// The address the real owner and the real app use (the default source for 127.0.0.1).
const HOME: &str = "127.0.0.1";

/// An HTTP client whose connections come from `ip`.
fn from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// The `n`th stranger's address: 127.0.0.(n + 2).
fn stranger(n: usize) -> String {
    format!("127.0.0.{}", n + 2)
}

async fn answer(req: reqwest::RequestBuilder) -> (u16, Value) {
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Posts a form to an OAuth endpoint from `ip`, with a fresh proof by `key`.
async fn oauth_from(
    gw: &Gateway,
    ip: &str,
    path: &str,
    form: &[(&str, &str)],
    key: &SigningKey,
) -> (u16, Value) {
    let p = proof(key, "POST", &gw.url(path), None, None);
    answer(from(ip).post(gw.url(path)).header("dpop", p).form(form)).await
}

async fn login_from(gw: &Gateway, ip: &str, password: &str) -> (u16, Value, Option<String>) {
    let res = from(ip)
        .post(gw.url("/admin/api/login"))
        .json(&json!({ "username": "owner", "password": password }))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let cookie = cookie_of(res.headers());
    (status, res.json().await.unwrap_or(Value::Null), cookie)
}

/// An app request from `ip` with the app's token and a proof by `key` (GET, or POST with an
/// empty body); `new_key` adds the `New-DPoP` proof of a key rotation.
async fn app_call(
    gw: &Gateway,
    ip: &str,
    a: &RawApp,
    method: &str,
    path: &str,
    new_key: Option<&SigningKey>,
) -> (u16, Value) {
    let url = gw.url(path);
    let body: Option<&[u8]> = (method == "POST").then_some(b"");
    let mut req = from(ip)
        .request(method.parse().unwrap(), &url)
        .header("authorization", format!("DPoP {}", a.access_token))
        .header(
            "dpop",
            proof(&a.key, method, &url, Some(&a.access_token), body),
        );
    if let Some(k) = new_key {
        req = req.header(
            "new-dpop",
            proof(k, method, &url, Some(&a.access_token), body),
        );
    }
    answer(req).await
}

async fn refresh_from(gw: &Gateway, ip: &str, a: &RawApp) -> (u16, Value) {
    let form = [
        ("grant_type", GRANT_TYPE_REFRESH),
        ("refresh_token", a.refresh_token.as_str()),
    ];
    oauth_from(gw, ip, "/oauth/token", &form, &a.key).await
}

/// The app after a successful refresh (same key, the new tokens).
fn refreshed(a: &RawApp, body: &Value) -> RawApp {
    RawApp {
        key: a.key.clone(),
        access_token: body["access_token"].as_str().unwrap().into(),
        refresh_token: body["refresh_token"].as_str().unwrap().into(),
        grant_id: a.grant_id.clone(),
    }
}

fn openai_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

fn oauth_code(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

/// A refused request: path, form, expected error.
type Garbage<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);

fn guess(gw: &Gateway) -> String {
    pairgate_protocol::pairing::PairingString::generate(&gw.base_url, &mut rand_core::OsRng)
        .unwrap()
        .encode()
}

#[tokio::test]
async fn strangers_failing_to_sign_in_never_lock_the_owner_out() {
    const ORIGIN: &str = "http://localhost:8787";
    let gw = Gateway::builder(Backend::Sqlite)
        .config(format!("public_url = \"{ORIGIN}/\"\n"))
        .start()
        .await;
    create_owner(&gw).await;
    let owner = login(&gw).await;
    let mut passkey = SoftPasskey::new();
    let (s, ch) = owner
        .post(
            "/admin/api/passkeys/register/start",
            &json!({ "name": "laptop", "password": PASSWORD }),
        )
        .await;
    assert_eq!(s, 200, "{ch}");
    let cred = passkey.register(&ch["options"], ORIGIN);
    let (s, view) = owner
        .post(
            "/admin/api/passkeys/register/finish",
            &json!({ "challenge_id": ch["challenge_id"], "credential": cred }),
        )
        .await;
    assert_eq!(s, 200, "{view}");

    // Ten strangers, ten wrong passwords each: a hundred failures in all.
    let attacks = (0..10).map(|n| {
        let gw = &gw;
        async move {
            for _ in 0..10 {
                let (s, body, _) = login_from(gw, &stranger(n), "wrong password!").await;
                assert_eq!(s, 401, "{body}");
            }
        }
    });
    futures_util::future::join_all(attacks).await;
    // Each stranger's address is locked, even with the right password (guessing cannot go on
    // from there)...
    let (s, body, _) = login_from(&gw, &stranger(3), PASSWORD).await;
    assert_eq!(
        (s, openai_code(&body)),
        (429, "too_many_attempts"),
        "{body}"
    );
    // ...but the owner's own address is not: the password signs in...
    let (s, body, cookie) = login_from(&gw, HOME, PASSWORD).await;
    assert_eq!(s, 200, "the owner is locked out by strangers: {body}");
    assert!(cookie.is_some());
    // ...and so does the passkey, start to finish.
    let (s, ch) = answer(
        from(HOME)
            .post(gw.url("/admin/api/login/passkey/start"))
            .json(&json!({})),
    )
    .await;
    assert_eq!(s, 200, "passkey sign-in refused to the owner: {ch}");
    let cred = passkey.assert(&ch["options"], ORIGIN);
    let res = from(HOME)
        .post(gw.url("/admin/api/login/passkey/finish"))
        .json(&json!({ "challenge_id": ch["challenge_id"], "credential": cred }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(cookie_of(res.headers()).is_some());
}

#[tokio::test]
async fn a_flood_of_pairing_guesses_never_blocks_a_real_redemption() {
    let gw = Gateway::start(Backend::Sqlite).await;
    // 25 strangers, 20 garbage pairing strings each, with valid self-signed proofs.
    let attacks = (0..25).map(|n| {
        let gw = &gw;
        async move {
            let key = app::key(KeyKind::Ed25519);
            for _ in 0..20 {
                let code = guess(gw);
                let form = [("grant_type", GRANT_TYPE_PAIRING), ("pairing_code", &code)];
                let (s, body) = oauth_from(gw, &stranger(n), "/oauth/token", &form, &key).await;
                assert_eq!((s, oauth_code(&body)), (400, "invalid_pairing"), "{body}");
            }
        }
    });
    futures_util::future::join_all(attacks).await;
    let real = pairing_string(&gw, &[]).await;
    let form = [("grant_type", GRANT_TYPE_PAIRING), ("pairing_code", &real)];
    let key = app::key(KeyKind::Ed25519);
    // A guesser stays locked out, even with a real string...
    let (s, body) = oauth_from(&gw, &stranger(7), "/oauth/token", &form, &key).await;
    assert_eq!((s, oauth_code(&body)), (429, "too_many_attempts"), "{body}");
    // ...and an app at any other address redeems its pairing string.
    let (s, body) = oauth_from(&gw, &stranger(40), "/oauth/token", &form, &key).await;
    assert_eq!(
        s, 200,
        "strangers' guesses locked out a real redemption: {body}"
    );
    assert!(body["access_token"].is_string());
}

#[tokio::test]
async fn one_address_cannot_fill_the_consent_queue() {
    let gw = Gateway::start(Backend::Sqlite).await;
    let ask = |ip: String| {
        let gw = &gw;
        async move {
            let key = app::key(KeyKind::Ed25519);
            let form = [("client_name", "flood")];
            oauth_from(gw, &ip, "/oauth/device_authorization", &form, &key).await
        }
    };
    let mut accepted = 0;
    let mut refusal = None;
    for _ in 0..50 {
        match ask(stranger(0)).await {
            (200, _) => accepted += 1,
            (s, body) => refusal = Some((s, body)),
        }
    }
    assert_eq!(accepted, 5, "one address's share of the queue");
    let (s, body) = refusal.unwrap();
    assert_eq!((s, oauth_code(&body)), (429, "too_many_pending_requests"));
    let why = body["error_description"].as_str().unwrap();
    assert!(why.contains("this address"), "a clear reason: {why}");
    // Another address still reaches the owner.
    let (s, body) = ask(stranger(1)).await;
    assert_eq!(s, 200, "one address filled the consent queue: {body}");
    assert!(body["user_code"].is_string());
    let (_, pending, _) = run_cli(&gw, &["consent", "list"], None).await;
    assert_eq!(pending.matches("flood").count(), 6, "{pending}");
}

#[tokio::test]
async fn strangers_flooding_the_replay_cache_never_block_paired_apps() {
    let gw = Gateway::builder(Backend::Sqlite)
        .config("[dpop]\nstranger_replay_capacity = 3\n")
        .start()
        .await;
    let a = raw_pair(&gw, KeyKind::Ed25519, &[]).await;
    // Garbage with valid self-signed proofs is refused before the proof is checked, so it takes
    // no room in the strangers' partition.
    let pairing = guess(&gw);
    let refresh = format!("pgrt_{}", app::jti());
    let device = format!("pgdc_{}", app::jti());
    let garbage: [Garbage; 7] = [
        (
            "/oauth/token",
            vec![("grant_type", "password")],
            "unsupported_grant_type",
        ),
        (
            "/oauth/token",
            vec![("grant_type", GRANT_TYPE_PAIRING)],
            "invalid_request",
        ),
        ("/oauth/token", vec![], "invalid_request"),
        (
            "/oauth/token",
            vec![
                ("grant_type", GRANT_TYPE_PAIRING),
                ("pairing_code", &pairing),
            ],
            "invalid_pairing",
        ),
        (
            "/oauth/token",
            vec![
                ("grant_type", GRANT_TYPE_REFRESH),
                ("refresh_token", &refresh),
            ],
            "invalid_grant",
        ),
        (
            "/oauth/token",
            vec![
                ("grant_type", GRANT_TYPE_DEVICE_CODE),
                ("device_code", &device),
            ],
            "invalid_grant",
        ),
        ("/oauth/device_authorization", vec![], "invalid_request"),
    ];
    let key = app::key(KeyKind::Ed25519);
    for round in 0..3 {
        for (path, form, code) in &garbage {
            let (s, body) = oauth_from(&gw, &stranger(round), path, form, &key).await;
            assert_eq!(
                (s, oauth_code(&body)),
                (400, *code),
                "{path} {form:?}: {body}"
            );
        }
    }
    // Three consent requests from three strangers fill the partition; the fourth is refused.
    for n in 10..13 {
        let form = [("client_name", "stranger")];
        let k = app::key(KeyKind::Ed25519);
        let (s, body) =
            oauth_from(&gw, &stranger(n), "/oauth/device_authorization", &form, &k).await;
        assert_eq!(s, 200, "garbage took room in the partition: {body}");
    }
    let form = [("client_name", "stranger")];
    let (s, body) = oauth_from(
        &gw,
        &stranger(13),
        "/oauth/device_authorization",
        &form,
        &key,
    )
    .await;
    assert_eq!((s, oauth_code(&body)), (429, "replay_cache_full"), "{body}");
    // The paired app is untouched: its requests, its refresh, and a new pairing all work.
    let (s, body) = app_call(&gw, HOME, &a, "GET", "/v1/grant", None).await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = refresh_from(&gw, HOME, &a).await;
    assert_eq!(s, 200, "refresh blocked by strangers: {body}");
    let a = refreshed(&a, &body);
    let (s, body) = app_call(&gw, HOME, &a, "GET", "/v1/models", None).await;
    assert_eq!(s, 200, "{body}");
    raw_pair(&gw, KeyKind::P256, &[]).await;
}

#[tokio::test]
async fn a_stolen_key_cannot_use_refresh_or_rotate_a_grant_from_elsewhere_or_after_expiry() {
    let gw = Gateway::start(Backend::Sqlite).await;
    let file = gw.dir.path().join("home-only.json");
    std::fs::write(
        &file,
        json!({ "source_ips": [format!("{HOME}/32")] }).to_string(),
    )
    .unwrap();
    let a = raw_pair(&gw, KeyKind::Ed25519, &["--policy", file.to_str().unwrap()]).await;
    let (s, before) = app_call(&gw, HOME, &a, "GET", "/v1/grant", None).await;
    assert_eq!(s, 200, "{before}");

    // A thief with the key and both tokens, at another address.
    let thief = stranger(0);
    let thief_key = app::key(KeyKind::Ed25519);
    for (method, path, new_key) in [
        ("GET", "/v1/grant", None),
        ("GET", "/v1/models", None),
        ("POST", "/v1/grant/rotate-key", Some(&thief_key)),
    ] {
        let (s, body) = app_call(&gw, &thief, &a, method, path, new_key).await;
        assert_eq!(
            (s, openai_code(&body)),
            (403, "source_ip_not_allowed"),
            "{method} {path}: {body}"
        );
    }
    let (s, body) = refresh_from(&gw, &thief, &a).await;
    assert_eq!(
        (s, oauth_code(&body)),
        (403, "source_ip_not_allowed"),
        "{body}"
    );
    // The real app still holds the grant: same key, and its refresh token was not used up.
    let (s, after) = app_call(&gw, HOME, &a, "GET", "/v1/grant", None).await;
    assert_eq!(s, 200, "{after}");
    assert_eq!(after["key_thumbprint"], before["key_thumbprint"]);
    let (s, body) = refresh_from(&gw, HOME, &a).await;
    assert_eq!(s, 200, "{body}");

    // After the grant expires, nothing works, not even from the right address...
    let b = raw_pair(&gw, KeyKind::Ed25519, &["--valid-for", "2s"]).await;
    assert_eq!(
        app_call(&gw, HOME, &b, "GET", "/v1/grant", None).await.0,
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    for (method, path, new_key) in [
        ("GET", "/v1/grant", None),
        ("GET", "/v1/models", None),
        ("POST", "/v1/grant/rotate-key", Some(&thief_key)),
    ] {
        let (s, body) = app_call(&gw, HOME, &b, method, path, new_key).await;
        assert_eq!(
            (s, openai_code(&body)),
            (403, "expired"),
            "{method} {path}: {body}"
        );
    }
    let (s, body) = refresh_from(&gw, HOME, &b).await;
    assert_eq!((s, oauth_code(&body)), (403, "expired"), "{body}");
    // ...and once the owner extends it, the app carries on with its own key and refresh token.
    let (code, _, err) = run_cli(
        &gw,
        &["grant", "edit", &b.grant_id, "--valid-for", "1d"],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let (s, body) = refresh_from(&gw, HOME, &b).await;
    assert_eq!(s, 200, "{body}");
    let b = refreshed(&b, &body);
    let (s, body) = app_call(&gw, HOME, &b, "GET", "/v1/grant", None).await;
    assert_eq!(s, 200, "{body}");
}

#[tokio::test]
async fn refresh_while_suspended_is_refused_and_the_same_token_works_after_resume() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let gw = Gateway::start(backend).await;
        let a = raw_pair(&gw, KeyKind::Ed25519, &[]).await;
        assert_eq!(
            run_cli(&gw, &["grant", "suspend", &a.grant_id], None)
                .await
                .0,
            0
        );
        let (s, body) = refresh_from(&gw, HOME, &a).await;
        assert_eq!(
            (s, oauth_code(&body)),
            (403, "grant_suspended"),
            "{backend:?}: {body}"
        );
        assert_eq!(
            run_cli(&gw, &["grant", "resume", &a.grant_id], None)
                .await
                .0,
            0
        );
        let (s, body) = refresh_from(&gw, HOME, &a).await;
        assert_eq!(
            s, 200,
            "{backend:?}: the suspension used up the refresh token: {body}"
        );
        let a = refreshed(&a, &body);
        let (s, body) = app_call(&gw, HOME, &a, "GET", "/v1/grant", None).await;
        assert_eq!(s, 200, "{backend:?}: {body}");
    }
}
