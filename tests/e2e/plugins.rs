//! Third-party plugins through the real binary: install pinned by SHA-256, refused until the
//! owner approves the hosts it declares, then used like a built-in (credential injected by the
//! host; the plugin never sees it).

use pairgate_protocol::keys::KeyKind;
use pairgate_tests::app::pair;
use pairgate_tests::gateway::{command, run, run_cli};
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

    // Without the owner approving its hosts, a provider using it does not start.
    let unapproved = format!(
        "[plugins]\n{installed}\n[providers.example]\nplugin = \"example\"\norigin_override = \"{}\"\n",
        fake.url()
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.toml"), fake_config(&fake, &unapproved)).unwrap();
    let mut cmd = command(dir.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(dir.path().join("c.toml"))
        .arg("--data-dir")
        .arg(dir.path().join("data"));
    let (code, _, err) = run(cmd, None).await;
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("approve them with providers.example.approved_hosts"),
        "{err}"
    );

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
