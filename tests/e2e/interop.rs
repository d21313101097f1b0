//! Interoperability: a client that uses no pairgate code (Node's `oauth4webapi` and `dpop`, and
//! the official `openai` package, pinned in tests/interop/package-lock.json) discovers the
//! gateway, redeems a pairing string as a generic grant, calls the API streamed and not,
//! refreshes, and runs the device flow with `dpop_jkt` while the owner approves from the CLI.
//! `cargo xtask test` installs the packages.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use pairgate_tests::Backend;
use pairgate_tests::app::pairing_string;
use pairgate_tests::gateway::run_cli;
use pairgate_tests::providers::{self, test_key};
use tokio::io::{AsyncBufReadExt, BufReader};

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/interop")
        .canonicalize()
        .unwrap()
}

#[tokio::test]
async fn generic_oauth_and_dpop_libraries_pair_refresh_and_run_the_device_flow() {
    let dir = interop_dir();
    assert!(
        dir.join("node_modules/oauth4webapi").is_dir(),
        "tests/interop/node_modules is missing: run `cargo xtask test` (it runs `npm ci` there)"
    );
    let (gw, fake) = providers::start(Backend::Sqlite, "").await;
    let pairing = pairing_string(&gw, &[]).await;
    let mut child = tokio::process::Command::new("node")
        .arg("interop.mjs")
        .current_dir(&dir)
        .env("PAIRGATE_URL", &gw.base_url)
        .env("PAIRGATE_PAIRING", &pairing)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(code) = line.strip_prefix("USER_CODE ") {
                let (status, out, err) = run_cli(&gw, &["consent", "approve", code], None).await;
                assert_eq!(status, 0, "consent approve: {out} {err}");
            }
            seen.push(line);
        }
    };
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the interop client finished within 2 minutes");
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && seen.iter().any(|l| l == "INTEROP OK"),
        "the generic client failed: {seen:?}\n{stderr}"
    );
    // Two apps, four chats each (plain and streamed, before and after refresh for the first).
    let chats: Vec<_> = fake
        .received()
        .into_iter()
        .filter(|r| r.path == "/v1/chat/completions")
        .collect();
    assert_eq!(chats.len(), 6, "{}", chats.len());
    let key = format!("Bearer {}", test_key("openai"));
    assert!(
        chats
            .iter()
            .all(|r| r.header("authorization") == Some(key.as_str())),
        "the owner's key was injected"
    );
}
