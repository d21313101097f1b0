//! Third-party plugins through the real binary: install pinned by SHA-256, refused until the
//! owner approves the hosts it declares (in the console, or the configuration), then used like a
//! built-in (credential injected by the host; the plugin never sees it).

use pairgate_protocol::keys::KeyKind;
use pairgate_tests::app::pair;
use pairgate_tests::fake::FakeProvider;
use pairgate_tests::gateway::run_cli;
use pairgate_tests::owner::{create_owner, login};
use pairgate_tests::providers::{self, fake_config};
use pairgate_tests::{Backend, Gateway};
use serde_json::{Value, json};
use sha2::Digest;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_third_party_plugin_is_pinned_approved_and_then_served() {
    let (gw, fake) = providers::start(Backend::Sqlite, "").await;
    let component = pairgate_plugin_host::example_component();
    let file = gw.dir.path().join("example.wasm");
    std::fs::write(&file, component).unwrap();
    let sha = hex(&sha2::Sha256::digest(component));

    let wrong = "0".repeat(64);
    let (code, _, err) = run_cli(
        &gw,
        &[
            "plugin",
            "install",
            file.to_str().unwrap(),
            "--sha256",
            &wrong,
        ],
        None,
    )
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("SHA-256"), "{err}");
    let (code, out, err) = run_cli(
        &gw,
        &[
            "plugin",
            "install",
            file.to_str().unwrap(),
            "--sha256",
            &sha,
        ],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("api.example.com"),
        "the owner is told which hosts it declares: {err}"
    );
    let installed = out
        .lines()
        .find(|l| l.starts_with("install = "))
        .unwrap()
        .to_string();

    // Without the owner approving its hosts, a provider using it starts but reaches nothing.
    let unapproved = format!(
        "[plugins]\n{installed}\n[providers.example]\nplugin = \"example\"\norigin_override = \"{}\"\n",
        fake.url()
    );
    let gw1 = Gateway::builder(Backend::Sqlite)
        .config(fake_config(&fake, &unapproved))
        .start()
        .await;
    console_approval_opens_and_closes_the_host(&gw1, &fake).await;

    // Approved: apps use it like any provider.
    let approved = format!("{unapproved}approved_hosts = [\"api.example.com\"]\n");
    let gw2 = Gateway::builder(Backend::Sqlite)
        .config(fake_config(&fake, &approved))
        .start()
        .await;
    let (code, _, err) = run_cli(
        &gw2,
        &["credential", "add", "example"],
        Some("sk-example-secret\n"),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let (_, listing, _) = run_cli(&gw2, &["plugin", "list"], None).await;
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("example") && l.contains("installed")),
        "{listing}"
    );
    let client = pair(&gw2, KeyKind::Ed25519, &["--model", "example/*"]).await;
    let res = client
        .post("/v1/chat/completions")
        .json(&json!({ "model": "example/example-1", "messages": [{ "role": "user", "content": "hi" }] }))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let seen = fake.last();
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(
        seen.header("x-example-key"),
        Some("sk-example-secret"),
        "the host injected the credential"
    );
    drop(gw);
}

fn example_chat() -> Value {
    json!({ "model": "example/example-1", "messages": [{ "role": "user", "content": "hi" }] })
}

async fn example_status(client: &pairgate_sdk::Client) -> (u16, Value) {
    let res = client
        .post("/v1/chat/completions")
        .json(&example_chat())
        .send()
        .await
        .unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

/// The owner approves the plugin's declared host from the console: calls go through at once;
/// after the approval is withdrawn they are refused again. Undeclared hosts cannot be approved.
async fn console_approval_opens_and_closes_the_host(gw: &Gateway, fake: &FakeProvider) {
    let (code, _, err) = run_cli(
        gw,
        &["credential", "add", "example"],
        Some("sk-example-secret\n"),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    create_owner(gw).await;
    let owner = login(gw).await;
    let client = pair(gw, KeyKind::Ed25519, &["--model", "example/*"]).await;
    let calls = || fake.received().len();
    let before = calls();
    let (s, body) = example_status(&client).await;
    assert_eq!(s, 502, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("has not approved the host api.example.com"),
        "{body}"
    );
    assert_eq!(calls(), before, "nothing reached the provider");
    let host_state = |v: &Value| -> Value {
        v["providers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == "example")
            .unwrap()["hosts"][0]
            .clone()
    };
    let (_, view) = owner.get("/admin/api/plugins").await;
    let h = host_state(&view);
    assert_eq!(
        (&h["host"], &h["by_config"], &h["by_console"]),
        (&json!("api.example.com"), &json!(false), &Value::Null)
    );

    let approve = "/admin/api/providers/example/hosts/approve";
    let revoke = "/admin/api/providers/example/hosts/revoke";
    let (s, body) = owner
        .post(approve, &json!({ "host": "evil.example.net" }))
        .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (400, Some("host_not_declared")),
        "{body}"
    );
    // Only the owner: the app's own credentials are not an owner session.
    let res = reqwest::Client::new()
        .post(gw.url(approve))
        .json(&json!({ "host": "api.example.com" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    let (s, body) = owner
        .post(approve, &json!({ "host": "api.example.com" }))
        .await;
    assert_eq!(s, 200, "{body}");
    assert!(
        body[0]["by_console"]["approved_by"]
            .as_str()
            .unwrap()
            .starts_with("owner:"),
        "{body}"
    );
    let (s, body) = example_status(&client).await;
    assert_eq!(s, 200, "approved: the next call goes through: {body}");
    assert_eq!(
        fake.last().header("x-example-key"),
        Some("sk-example-secret")
    );

    let (s, body) = owner
        .post(revoke, &json!({ "host": "api.example.com" }))
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body[0]["by_console"], Value::Null, "{body}");
    let (s, body) = example_status(&client).await;
    assert_eq!(s, 502, "revoked: refused again: {body}");
    let (s, _) = owner
        .post(revoke, &json!({ "host": "api.example.com" }))
        .await;
    assert_eq!(s, 404, "nothing left to revoke");

    let (_, audit) = owner.get("/admin/api/audit").await;
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["subject"] == "example")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["plugin.host_revoked", "plugin.host_approved"]);
}
