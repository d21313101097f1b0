//! The owner's passkeys over the real API with a software authenticator (`pairgate_tests::passkey`,
//! real P-256 signatures): registration with the password re-entered, passkey-only sign-in,
//! passkey as the second factor, removal rules, and the ceremony state being single use,
//! short-lived and bound to the gateway's origin. The browser side is in `admin_ui.rs`.

use pairgate::http::routes::{Access, route_table};
use pairgate_tests::app::call;
use pairgate_tests::gateway::run_cli;
use pairgate_tests::owner::{OwnerSession, PASSWORD, cookie_of, create_owner, login};
use pairgate_tests::passkey::SoftPasskey;
use pairgate_tests::{Backend, Gateway};
use serde_json::{Value, json};

/// The gateway's `public_url` in these tests: passkeys need a domain name; the requests still go
/// to 127.0.0.1, and the software authenticator writes this origin into its client data.
const ORIGIN: &str = "http://localhost:8787";

async fn gateway(backend: Backend) -> Gateway {
    let gw = Gateway::builder(backend)
        .config(format!("public_url = \"{ORIGIN}/\"\n"))
        .start()
        .await;
    create_owner(&gw).await;
    gw
}

async fn open_post(
    gw: &Gateway,
    path: &str,
    body: &Value,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let body = body.to_string();
    call(
        gw,
        "POST",
        path,
        &[("content-type", "application/json")],
        Some(body.as_bytes()),
    )
    .await
}

/// Registers `key` under `name`: `(the options the gateway sent, the new passkey)`.
async fn register(owner: &OwnerSession, key: &mut SoftPasskey, name: &str) -> (Value, Value) {
    let (s, ch) = owner
        .post(
            "/admin/api/passkeys/register/start",
            &json!({ "name": name, "password": PASSWORD }),
        )
        .await;
    assert_eq!(s, 200, "{ch}");
    let cred = key.register(&ch["options"], ORIGIN);
    let (s, view) = owner
        .post(
            "/admin/api/passkeys/register/finish",
            &json!({ "challenge_id": ch["challenge_id"], "credential": cred }),
        )
        .await;
    assert_eq!(s, 200, "{view}");
    (ch["options"].clone(), view)
}

/// Starts a passkey-only sign-in: `(challenge_id, options)`.
async fn start(gw: &Gateway) -> (String, Value) {
    let (s, ch, _) = open_post(gw, "/admin/api/login/passkey/start", &json!({})).await;
    assert_eq!(s, 200, "{ch}");
    (
        ch["challenge_id"].as_str().unwrap().into(),
        ch["options"].clone(),
    )
}

async fn finish(gw: &Gateway, challenge_id: &str, cred: &Value) -> (u16, Value, Option<String>) {
    let (s, body, h) = open_post(
        gw,
        "/admin/api/login/passkey/finish",
        &json!({ "challenge_id": challenge_id, "credential": cred }),
    )
    .await;
    (s, body, cookie_of(&h))
}

fn session(gw: &Gateway, body: &Value, cookie: Option<String>) -> OwnerSession {
    OwnerSession {
        base: gw.base_url.clone(),
        cookie: cookie.expect("a session cookie"),
        csrf: body["csrf_token"].as_str().unwrap().into(),
    }
}

async fn password_login(gw: &Gateway) -> (u16, Value, Option<String>) {
    let (s, body, h) = open_post(
        gw,
        "/admin/api/login",
        &json!({ "username": "owner", "password": PASSWORD }),
    )
    .await;
    (s, body, cookie_of(&h))
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn the_owner_registers_passkeys_and_signs_in_with_one_alone_or_after_the_password() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let gw = gateway(backend).await;
        let owner = login(&gw).await;
        let (s, list) = owner.get("/admin/api/passkeys").await;
        assert_eq!(s, 200);
        assert_eq!(
            (&list["available"], &list["require_passkey"], &list["data"]),
            (&json!(true), &json!(false), &json!([]))
        );

        // Registration needs the password again, not just a session.
        let (s, body) = owner
            .post(
                "/admin/api/passkeys/register/start",
                &json!({ "name": "laptop", "password": "not the password" }),
            )
            .await;
        assert_eq!((s, code(&body)), (403, "wrong_password"));
        let mut laptop = SoftPasskey::new();
        let (options, view) = register(&owner, &mut laptop, "laptop").await;
        let pk = &options["publicKey"];
        assert_eq!(pk["rp"]["id"], "localhost");
        assert_eq!(pk["authenticatorSelection"]["residentKey"], "required");
        assert_eq!(pk["authenticatorSelection"]["userVerification"], "required");
        assert_eq!(view["name"], "laptop");
        let mut phone = SoftPasskey::new();
        register(&owner, &mut phone, "phone").await;
        let (_, list) = owner.get("/admin/api/passkeys").await;
        let names: Vec<&str> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["laptop", "phone"], "{backend:?}");

        // Passkey only: no username, no password.
        let (id, options) = start(&gw).await;
        assert!(
            options["publicKey"]
                .get("allowCredentials")
                .is_none_or(|a| a == &json!([]))
        );
        assert!(
            options.get("mediation").is_none(),
            "a modal request, not autofill"
        );
        let (s, body, cookie) = finish(&gw, &id, &laptop.assert(&options, ORIGIN)).await;
        assert_eq!(s, 200, "{body}");
        let by_passkey = session(&gw, &body, cookie);
        assert_eq!(by_passkey.get("/admin/api/session").await.0, 200);

        // Require a passkey: the password alone no longer signs in.
        let (s, body) = owner
            .post(
                "/admin/api/passkeys/require",
                &json!({ "require": true, "password": PASSWORD }),
            )
            .await;
        assert_eq!((s, &body["require_passkey"]), (200, &json!(true)), "{body}");
        let (s, body, cookie) = password_login(&gw).await;
        assert_eq!(s, 200, "{body}");
        assert!(cookie.is_none(), "no session before the passkey");
        assert!(body.get("csrf_token").is_none(), "{body}");
        let ch = &body["passkey_required"];
        let allowed = ch["options"]["publicKey"]["allowCredentials"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(allowed, 2, "only the owner's passkeys are offered");
        let (s, body, cookie) = finish(
            &gw,
            ch["challenge_id"].as_str().unwrap(),
            &phone.assert(&ch["options"], ORIGIN),
        )
        .await;
        assert_eq!(s, 200, "{body}");
        let two_factor = session(&gw, &body, cookie);
        assert_eq!(two_factor.get("/admin/api/session").await.0, 200);

        // The last passkey cannot go while one is required.
        let ids: Vec<String> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect();
        let remove = |id: &str| format!("/admin/api/passkeys/{id}/delete");
        assert_eq!(owner.post(&remove(&ids[0]), &json!({})).await.0, 200);
        let (s, body) = owner.post(&remove(&ids[1]), &json!({})).await;
        assert_eq!(
            (s, code(&body)),
            (403, "last_required_passkey"),
            "{backend:?}"
        );
        assert_eq!(owner.post(&remove("pk_unknown"), &json!({})).await.0, 404);
        // A removed passkey no longer signs in.
        let (id, options) = start(&gw).await;
        let (s, body, _) = finish(&gw, &id, &laptop.assert(&options, ORIGIN)).await;
        assert_eq!((s, code(&body)), (403, "passkey_rejected"));

        let (s, _) = owner
            .post(
                "/admin/api/passkeys/require",
                &json!({ "require": false, "password": PASSWORD }),
            )
            .await;
        assert_eq!(s, 200);
        assert_eq!(owner.post(&remove(&ids[1]), &json!({})).await.0, 200);
        let (s, body) = owner
            .post(
                "/admin/api/passkeys/require",
                &json!({ "require": true, "password": PASSWORD }),
            )
            .await;
        assert_eq!((s, code(&body)), (403, "no_passkey"), "nothing to require");
        let (s, body, cookie) = password_login(&gw).await;
        assert!(s == 200 && cookie.is_some(), "{body}");

        let (_, audit) = owner.get("/admin/api/audit").await;
        let entries = audit["data"].as_array().unwrap();
        let actions: Vec<&str> = entries
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        for a in [
            "passkey.registered",
            "passkey.removed",
            "passkey.required",
            "passkey.not_required",
        ] {
            assert!(actions.contains(&a), "{backend:?}: audit misses {a}");
        }
        let methods: Vec<String> = entries
            .iter()
            .filter(|e| e["action"] == "owner.login")
            .filter_map(|e| e["detail"].as_str())
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|d| d["method"].as_str().map(str::to_string))
            .collect();
        for m in ["password", "passkey", "password+passkey"] {
            assert!(
                methods.iter().any(|x| x == m),
                "{backend:?}: no {m} login in {methods:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_passkey_challenge_is_single_use_short_lived_and_bound_to_the_origin() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let gw = gateway(backend).await;
        let owner = login(&gw).await;
        let mut key = SoftPasskey::new();
        register(&owner, &mut key, "key").await;

        // Replayed: the same answer to the same challenge, or to a new one.
        let (id, options) = start(&gw).await;
        let answer = key.assert(&options, ORIGIN);
        assert_eq!(finish(&gw, &id, &answer).await.0, 200);
        let (s, body, _) = finish(&gw, &id, &answer).await;
        assert_eq!(
            (s, code(&body)),
            (403, "passkey_challenge_invalid"),
            "{backend:?}"
        );
        let (id2, _) = start(&gw).await;
        let (s, body, _) = finish(&gw, &id2, &answer).await;
        assert_eq!(
            (s, code(&body)),
            (403, "passkey_rejected"),
            "another challenge"
        );

        // Wrong origin (a look-alike site relaying the challenge): refused, and the challenge is
        // spent.
        let (id, options) = start(&gw).await;
        for origin in [
            "http://evil.localhost:8787",
            "http://localhost:8788",
            "https://localhost:8787",
        ] {
            let (s, body, _) = finish(&gw, &id, &key.assert(&options, origin)).await;
            assert_eq!(s, 403, "{origin}: {body}");
        }
        let (s, body, _) = finish(&gw, &id, &key.assert(&options, ORIGIN)).await;
        assert_eq!((s, code(&body)), (403, "passkey_challenge_invalid"));

        // Expired: the state outlived its few minutes.
        let (id, options) = start(&gw).await;
        gw.execute_sql("UPDATE webauthn_challenges SET expires_at = 1")
            .await;
        let (s, body, _) = finish(&gw, &id, &key.assert(&options, ORIGIN)).await;
        assert_eq!(
            (s, code(&body)),
            (403, "passkey_challenge_invalid"),
            "{backend:?}"
        );

        // A counter that did not move forward (the stored one is 1): a possible clone, refused.
        let (id, options) = start(&gw).await;
        key.counter = 0;
        let (s, body, _) = finish(&gw, &id, &key.assert(&options, ORIGIN)).await;
        assert_eq!((s, code(&body)), (403, "passkey_rejected"), "{backend:?}");
        key.counter = 100;
        let (id, options) = start(&gw).await;
        assert_eq!(finish(&gw, &id, &key.assert(&options, ORIGIN)).await.0, 200);

        // A registration challenge is not a sign-in challenge, and an unknown id is nothing.
        let (_, ch) = owner
            .post(
                "/admin/api/passkeys/register/start",
                &json!({ "name": "other", "password": PASSWORD }),
            )
            .await;
        let fake = SoftPasskey::new().assert(
            &json!({ "publicKey": { "challenge": ch["options"]["publicKey"]["challenge"], "rpId": "localhost" } }),
            ORIGIN,
        );
        for id in [ch["challenge_id"].as_str().unwrap(), "pgwc_unknown"] {
            let (s, body, _) = finish(&gw, id, &fake).await;
            assert_eq!((s, code(&body)), (403, "passkey_challenge_invalid"));
        }
        // Each refusal was for the reason under test (the client is told only "not accepted").
        let logs = gw.logs();
        for reason in [
            "failed passkey sign-in",
            "origin does not match",
            "may have be compromised",
        ] {
            assert!(
                logs.contains(reason),
                "{backend:?}: no {reason:?} in the log"
            );
        }
    }
}

#[tokio::test]
async fn a_login_waiting_for_its_passkey_opens_no_owner_route() {
    let gw = gateway(Backend::Sqlite).await;
    let owner = login(&gw).await;
    let mut key = SoftPasskey::new();
    register(&owner, &mut key, "key").await;
    let (s, _) = owner
        .post(
            "/admin/api/passkeys/require",
            &json!({ "require": true, "password": PASSWORD }),
        )
        .await;
    assert_eq!(s, 200);
    let (s, body, cookie) = password_login(&gw).await;
    assert_eq!((s, cookie), (200, None));
    let pending = body["passkey_required"]["challenge_id"].as_str().unwrap();
    // Neither the pending challenge id as a session cookie nor no cookie opens anything.
    let as_cookie = format!("pairgate_session={pending}");
    let mut checked = 0;
    for r in route_table().iter().filter(|r| r.access == Access::Owner) {
        let path = r
            .path
            .replace("{id}", "pk_x")
            .replace("{action}", "revoke")
            .replace("{user_code}", "BCDF-GHJK");
        for headers in [
            vec![("cookie", as_cookie.as_str()), ("x-csrf-token", pending)],
            vec![],
        ] {
            let (s, body, _) = call(&gw, r.method, &path, &headers, Some(b"{}")).await;
            assert_eq!(
                (s, code(&body)),
                (401, "owner_required"),
                "{} {path}",
                r.method
            );
        }
        checked += 1;
    }
    assert!(checked >= 20, "{checked}");
    // A passkey that is not the owner's does not complete it either; the owner's does.
    let (s, body, _) = finish(
        &gw,
        pending,
        &SoftPasskey::new().assert(&body["passkey_required"]["options"], ORIGIN),
    )
    .await;
    assert_eq!((s, code(&body)), (403, "passkey_rejected"));
    let (_, body, _) = password_login(&gw).await;
    let ch = &body["passkey_required"];
    let (s, body, cookie) = finish(
        &gw,
        ch["challenge_id"].as_str().unwrap(),
        &key.assert(&ch["options"], ORIGIN),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        session(&gw, &body, cookie).get("/admin/api/grants").await.0,
        200
    );
    // An owner who lost every passkey: the local CLI lets the password alone sign in again.
    let (code, _, err) = run_cli(&gw, &["owner", "password-only", "owner"], None).await;
    assert_eq!(code, 0, "{err}");
    let (s, body, cookie) = password_login(&gw).await;
    assert!(s == 200 && cookie.is_some(), "{body}");
}

#[tokio::test]
async fn passkey_failures_count_towards_the_login_lockout() {
    let gw = gateway(Backend::Sqlite).await;
    let options = start(&gw).await.1;
    let stranger = SoftPasskey::new().assert(&options, ORIGIN);
    for _ in 0..10 {
        let (id, _) = start(&gw).await;
        let (s, body, _) = finish(&gw, &id, &stranger).await;
        assert_eq!((s, code(&body)), (403, "passkey_rejected"));
    }
    let (s, body, h) = open_post(&gw, "/admin/api/login/passkey/start", &json!({})).await;
    assert_eq!((s, code(&body)), (429, "too_many_attempts"));
    assert!(h.contains_key("retry-after"));
    let (s, body, _) = password_login(&gw).await;
    assert_eq!(
        (s, code(&body)),
        (429, "too_many_attempts"),
        "one lockout for both ways in"
    );
}

#[tokio::test]
async fn passkeys_are_unavailable_with_a_clear_message_when_public_url_is_an_ip_address() {
    // The default public_url is http://127.0.0.1:PORT/.
    let gw = Gateway::start(Backend::Sqlite).await;
    create_owner(&gw).await;
    let owner = login(&gw).await;
    let (s, list) = owner.get("/admin/api/passkeys").await;
    assert_eq!((s, &list["available"]), (200, &json!(false)));
    assert!(
        list["unavailable_reason"]
            .as_str()
            .unwrap()
            .contains("IP address"),
        "{list}"
    );
    let (s, body, _) = open_post(&gw, "/admin/api/login/passkey/start", &json!({})).await;
    assert_eq!((s, code(&body)), (400, "passkeys_unavailable"));
    // The login page asks before offering "Sign in with a passkey".
    let options: serde_json::Value = reqwest::get(gw.url("/admin/api/login/passkey/options"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(options, json!({ "passkeys": false }));
    let (s, body) = owner
        .post(
            "/admin/api/passkeys/register/start",
            &json!({ "name": "key", "password": PASSWORD }),
        )
        .await;
    assert_eq!((s, code(&body)), (400, "passkeys_unavailable"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("public_url")
    );
}
