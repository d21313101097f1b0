//! The admin console's server side: its pages' security headers, CSRF on its routes (missing,
//! wrong, another session's), credentials over the API without a value ever coming back, and
//! the overview, usage, CSV, catalogue and plugin routes fed by real relayed requests.

use pairgate_protocol::keys::KeyKind;
use pairgate_tests::app::{self, call};
use pairgate_tests::owner::{create_owner, login};
use pairgate_tests::{Backend, Gateway, providers};
use serde_json::{Value, json};

const SECRET: &str = "sk-console-api-secret-9876543210";

#[tokio::test]
async fn console_pages_are_served_with_a_strict_policy() {
    let gw = Gateway::start(Backend::Sqlite).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = client.get(gw.url("/admin")).send().await.unwrap();
    assert!(res.status().is_redirection());
    assert_eq!(res.headers()["location"], "/admin/");
    for (path, mime) in [
        ("/admin/", "text/html"),
        ("/admin/setup", "text/html"),
        ("/admin/assets/app/main.js", "text/javascript"),
        ("/admin/assets/style.css", "text/css"),
        ("/admin/assets/favicon.svg", "image/svg+xml"),
        ("/favicon.ico", "image/svg+xml"),
    ] {
        let res = client.get(gw.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let h = res.headers();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(mime),
            "{path}"
        );
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["x-content-type-options"], "nosniff");
    }
    for path in [
        "/admin/assets/app/nope.js",
        "/admin/assets/../Cargo.toml",
        "/admin/assets/api-types.d.ts",
    ] {
        let res = client.get(gw.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn a_missing_wrong_or_foreign_csrf_token_is_refused() {
    let gw = Gateway::start(Backend::Sqlite).await;
    create_owner(&gw).await;
    let a = login(&gw).await;
    let b = login(&gw).await;
    assert_ne!(a.csrf, b.csrf, "each session has its own token");
    let body = json!({ "text": "pgp1_example" });
    let bytes = body.to_string();
    for path in ["/admin/api/qr", "/admin/api/pairings", "/admin/api/logout"] {
        for token in [None, Some(""), Some("0000"), Some(b.csrf.as_str())] {
            let mut headers = vec![
                ("cookie", a.cookie.as_str()),
                ("content-type", "application/json"),
            ];
            if let Some(t) = token {
                headers.push(("x-csrf-token", t));
            }
            let (s, res, _) = call(&gw, "POST", path, &headers, Some(bytes.as_bytes())).await;
            assert_eq!(
                (s, res["error"]["code"].as_str()),
                (403, Some("csrf_failed")),
                "{path} with token {token:?}"
            );
        }
    }
    // The session survived every refused logout, and the right token works.
    let (s, qr) = a.post("/admin/api/qr", &body).await;
    assert_eq!(s, 200, "{qr}");
    assert!(qr["svg"].as_str().unwrap().contains("<svg"));
}

#[tokio::test]
async fn credentials_are_managed_over_the_api_and_never_shown() {
    let gw = Gateway::start(Backend::Sqlite).await;
    create_owner(&gw).await;
    let owner = login(&gw).await;
    let (s, added) = owner
        .post(
            "/admin/api/credentials",
            &json!({ "provider": "openai", "name": "console", "value": SECRET }),
        )
        .await;
    assert_eq!(s, 200, "{added}");
    assert_eq!(added["last4"], "3210");
    let id = added["id"].as_str().unwrap().to_string();
    let (s, dup) = owner
        .post(
            "/admin/api/credentials",
            &json!({ "provider": "openai", "name": "console", "value": "sk-other-value-1234" }),
        )
        .await;
    assert_eq!((s, dup["error"]["code"].as_str()), (400, Some("duplicate")));
    // A provider this gateway does not have (a typo) is refused, naming the ones it has.
    let (s, typo) = owner
        .post(
            "/admin/api/credentials",
            &json!({ "provider": "opneai", "name": "typo", "value": SECRET }),
        )
        .await;
    assert_eq!(s, 400, "{typo}");
    let message = typo["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("opneai") && message.contains("openai"),
        "{message}"
    );
    assert!(!typo.to_string().contains(SECRET), "{typo}");
    // A malformed body is refused without quoting it.
    let (s, bad) = owner
        .post(
            "/admin/api/credentials",
            &json!({ "provider": "openai", "value": SECRET, "extra": SECRET }),
        )
        .await;
    assert_eq!(s, 400);
    let (_, list) = owner.get("/admin/api/credentials").await;
    assert_eq!(list["data"][0]["id"], id.as_str());
    let (s, checked) = owner
        .post(&format!("/admin/api/credentials/{id}/check"), &json!({}))
        .await;
    assert_eq!(s, 200, "{checked}");
    assert_eq!(checked["resolved_fingerprint"], added["fingerprint"]);
    let (s, rotated) = owner
        .post(
            &format!("/admin/api/credentials/{id}/rotate"),
            &json!({ "value": "sk-console-rotated-value-1111", "grace_secs": 600 }),
        )
        .await;
    assert_eq!(s, 200, "{rotated}");
    assert_eq!(rotated["last4"], "1111");
    assert!(rotated["grace_until"].as_i64().unwrap() > 0);
    let (s, _) = owner
        .post(&format!("/admin/api/credentials/{id}/delete"), &json!({}))
        .await;
    assert_eq!(s, 200);
    let (s, _) = owner
        .post(&format!("/admin/api/credentials/{id}/check"), &json!({}))
        .await;
    assert_eq!(s, 404);
    let (_, audit) = owner.get("/admin/api/audit").await;
    for (what, v) in [
        ("added", &added),
        ("bad", &bad),
        ("list", &list),
        ("checked", &checked),
        ("audit", &audit),
    ] {
        assert!(!v.to_string().contains(SECRET), "{what} shows the key");
    }
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in [
        "credential.added",
        "credential.checked",
        "credential.rotated",
        "credential.removed",
    ] {
        assert!(actions.contains(&a), "audit misses {a}");
    }
    assert!(!gw.logs().contains(SECRET), "the key reached a log line");
}

#[tokio::test]
async fn overview_usage_and_catalogue_report_real_traffic() {
    let (gw, _fake) = providers::start(Backend::Sqlite, "").await;
    create_owner(&gw).await;
    let owner = login(&gw).await;
    let client = app::pair(&gw, KeyKind::Ed25519, &[]).await;
    for _ in 0..2 {
        let res = client
            .post("/v1/chat/completions")
            .json(&json!({ "model": "openai/gpt-4o-mini", "messages": [{ "role": "user", "content": "hi" }] }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let (s, o) = owner.get("/admin/api/overview").await;
    assert_eq!(s, 200, "{o}");
    assert_eq!(o["active_grants"], 1);
    assert_eq!(o["today"]["requests"], 2);
    assert_eq!(o["today"]["errors"], 0);
    assert!(o["today"]["input_tokens"].as_u64().unwrap() > 0);

    let (s, r) = owner.get("/admin/api/usage/rollup").await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["totals"]["requests"], 2);
    assert_eq!(r["rows"][0]["grant_id"], client.grant_id().as_str());
    assert_eq!(r["rows"][0]["day"].as_str().unwrap().len(), 10);
    let (s, _) = owner.get("/admin/api/usage/rollup?from=yesterday").await;
    assert_eq!(s, 400);

    let (s, page) = owner.get("/admin/api/usage/requests?limit=1").await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(
        (
            page["total"].as_u64(),
            page["data"].as_array().unwrap().len()
        ),
        (Some(2), 1)
    );
    let row = &page["data"][0];
    let model = row["model"].as_str().unwrap();
    let rid = row["request_id"].as_str().unwrap();
    for (query, n) in [
        (format!("model={model}"), 2),
        ("status=200".to_string(), 2),
        ("status=500".to_string(), 0),
        (format!("request_id={rid}"), 1),
        (format!("grant={}", client.grant_id()), 2),
        ("grant=gr_none".to_string(), 0),
    ] {
        let (_, p) = owner
            .get(&format!("/admin/api/usage/requests?{query}"))
            .await;
        assert_eq!(p["total"], n, "{query}: {p}");
    }
    let res = reqwest::Client::new()
        .get(gw.url("/admin/api/usage/export.csv"))
        .header("cookie", &owner.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = res.text().await.unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.contains(rid));

    let (_, models) = owner.get("/admin/api/models").await;
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(ids.contains(&"openai/gpt-4o-mini"), "{ids:?}");
    let (_, plugins) = owner.get("/admin/api/plugins").await;
    let openai: &Value = plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "openai")
        .unwrap();
    assert_eq!(openai["builtin"], true);
    assert_eq!(openai["sha256"].as_str().unwrap().len(), 64);
    let provider = plugins["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "openai")
        .unwrap();
    assert!(provider["origin_override"].is_string(), "{provider}");

    let (s, rem) = owner
        .get(&format!(
            "/admin/api/grants/{}/remaining",
            client.grant_id()
        ))
        .await;
    assert_eq!(s, 200, "{rem}");
    assert!(rem["remaining"].is_object());
}
