//! The Python SDK (sdk/python) end to end: its pytest suite runs against the real gateway (DPoP
//! nonces required) and the fake OpenAI provider, driving the official `openai` package paired
//! through the SDK. The suite also checks the shared test vectors and session storage.
//! The virtual environment comes from `cargo xtask test` (PAIRGATE_TEST_PYTHON).

use std::path::{Path, PathBuf};

use pairgate_tests::Backend;
use pairgate_tests::app::pairing_string;
use pairgate_tests::owner::{create_owner, login};
use pairgate_tests::providers;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The test virtual environment's interpreter; missing is a failure, never a skip.
fn python(root: &Path) -> PathBuf {
    let python = std::env::var_os("PAIRGATE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/sdk-venv/bin/python"));
    assert!(
        python.exists(),
        "the Python SDK's test environment is missing ({}); run `cargo xtask test`, which creates \
         it from sdk/python/requirements-test.txt",
        python.display()
    );
    python
}

#[tokio::test]
async fn python_sdk_drives_the_official_openai_package_through_the_gateway() {
    let root = repo_root();
    let python = python(&root);
    let (gw, fake) = providers::start_with(
        Backend::Sqlite,
        "",
        &[("PAIRGATE_DPOP__REQUIRE_NONCE", "true")],
    )
    .await;
    create_owner(&gw).await;
    let owner = login(&gw).await;
    let pairing = pairing_string(&gw, &["--require-body-hash"]).await;
    // A second gateway whose access tokens live 3 s: the SDK must refresh on `invalid_token`.
    let (short, _short_fake) = providers::start_with(
        Backend::Sqlite,
        "",
        &[("PAIRGATE_TOKENS__ACCESS_TTL", "3s")],
    )
    .await;
    let short_pairing = pairing_string(&short, &[]).await;

    let out = tokio::process::Command::new(python.as_path())
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs"])
        .arg(root.join("sdk/python/tests"))
        .current_dir(root.join("sdk/python"))
        .env("PAIRGATE_TEST_GATEWAY", gw.base_url.as_str())
        .env("PAIRGATE_TEST_OWNER_COOKIE", owner.cookie.as_str())
        .env("PAIRGATE_TEST_OWNER_CSRF", owner.csrf.as_str())
        .env("PAIRGATE_TEST_PAIRING", pairing.as_str())
        .env("PAIRGATE_TEST_SHORT_TTL_PAIRING", short_pairing.as_str())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the Python SDK's tests failed ({}):\n{stdout}\n{stderr}\n--- gateway log ---\n{}",
        out.status,
        gw.logs()
    );
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        summary.contains(" passed") && !summary.contains("skipped") && !summary.contains("xfail"),
        "every Python test runs: {summary}"
    );

    // What reached the provider: streamed and unstreamed chat and embeddings, with the owner's
    // key and never the app's credentials.
    let received = fake.received();
    let chats = |stream: bool| {
        received
            .iter()
            .filter(|r| r.path == "/v1/chat/completions" && (r.json()["stream"] == true) == stream)
            .count()
    };
    let paths: Vec<&str> = received.iter().map(|r| r.path.as_str()).collect();
    assert!(chats(true) >= 3 && chats(false) >= 4, "{paths:?}");
    assert!(received.iter().any(|r| r.path == "/v1/embeddings"));
    for r in &received {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {}", providers::test_key("openai")).as_str()),
            "{}",
            r.path
        );
        assert!(r.header("dpop").is_none(), "{}", r.path);
    }
}
