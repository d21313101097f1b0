//! The real coding agents, pinned from npm in `tests/agents` (installed by `cargo xtask test`):
//! Claude Code in print mode (`claude -p`) and Codex CLI's `codex exec`, each started by
//! `pairgate connect run` with its nonessential traffic and telemetry off. They hold only the
//! connector's caller token; the fake provider sees the owner's key, and the ledger has the row.

use std::path::PathBuf;

use pairgate_tests::Backend;
use pairgate_tests::gateway::{command, run};
use pairgate_tests::probe::books_with;
use pairgate_tests::providers::{self, test_key};

/// What the fake streams by default.
const STREAMED: &str = "tok0 tok1 tok2";

fn agent(bin: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/agents/node_modules/.bin")
        .join(bin);
    assert!(
        path.exists(),
        "{} is missing: `cargo xtask test` installs tests/agents",
        path.display()
    );
    path
}

/// A loopback port free a moment ago (Codex reads its provider's URL from its config file).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn codex_config(port: u16) -> String {
    format!(
        "model = \"gpt-4o-mini\"\n\
         model_provider = \"pairgate\"\n\
         approval_policy = \"never\"\n\
         sandbox_mode = \"read-only\"\n\
         check_for_update_on_startup = false\n\
         [analytics]\nenabled = false\n\
         [feedback]\nenabled = false\n\
         [otel]\nexporter = \"none\"\ntrace_exporter = \"none\"\nmetrics_exporter = \"none\"\n\
         [features]\nplugins = false\n\
         [model_providers.pairgate]\n\
         name = \"pairgate\"\n\
         base_url = \"http://127.0.0.1:{port}/v1\"\n\
         env_key = \"PAIRGATE_API_KEY\"\n\
         wire_api = \"responses\"\n"
    )
}

#[tokio::test]
async fn claude_code_and_codex_run_through_connect_without_a_key() {
    let (claude, codex) = (agent("claude"), agent("codex"));
    let (gw, fake) = providers::start(Backend::Sqlite, "").await;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("connect");
    let connect = |args: &[&str]| {
        let mut cmd = command(home.path());
        cmd.arg("connect").arg("--state-dir").arg(&dir).args(args);
        cmd.env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("DISABLE_TELEMETRY", "1")
            .env("DISABLE_ERROR_REPORTING", "1")
            .env("DISABLE_AUTOUPDATER", "1")
            .current_dir(home.path());
        cmd
    };
    let grant = crate::connect::pair_connector(&gw, &connect).await;

    // Claude Code: Anthropic's Messages API, streamed, with its betas and tools.
    let (code, out, err) = run(
        connect(&[
            "run",
            "--tool",
            "claude",
            "--",
            claude.to_str().unwrap(),
            "-p",
            "say hi",
            "--model",
            "claude-sonnet-4-5",
        ]),
        None,
    )
    .await;
    assert_eq!(code, 0, "claude -p failed:\n{out}\n{err}");
    assert!(out.contains(STREAMED), "{out}\n{err}");
    let sent = fake
        .received()
        .into_iter()
        .find(|r| r.path == "/v1/messages")
        .unwrap_or_else(|| panic!("Claude Code's request never reached the provider: {err}"));
    assert_eq!(
        sent.header("x-api-key"),
        Some(test_key("anthropic").as_str())
    );
    assert_eq!(sent.json()["model"], "claude-sonnet-4-5");
    assert_eq!(sent.json()["stream"], true);
    assert!(
        sent.header("anthropic-beta").is_some(),
        "its betas are kept"
    );
    assert!(
        !String::from_utf8_lossy(&sent.body).contains("pgc_"),
        "the caller token stays on this machine"
    );

    // Codex CLI: OpenAI's Responses API, streamed, through a connector on the port its config names.
    let port = free_port();
    std::fs::create_dir_all(home.path().join(".codex")).unwrap();
    std::fs::write(home.path().join(".codex/config.toml"), codex_config(port)).unwrap();
    let listen = format!("127.0.0.1:{port}");
    let (code, out, err) = run(
        connect(&[
            "run",
            "--listen",
            &listen,
            "--tool",
            "codex",
            "--",
            codex.to_str().unwrap(),
            "exec",
            "--skip-git-repo-check",
            "say hi",
        ]),
        None,
    )
    .await;
    assert_eq!(code, 0, "codex exec failed:\n{out}\n{err}");
    assert!(out.contains(STREAMED), "{out}\n{err}");
    let sent = fake
        .received()
        .into_iter()
        .find(|r| r.path == "/v1/responses")
        .unwrap_or_else(|| panic!("Codex's request never reached the provider: {err}"));
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {}", test_key("openai")).as_str())
    );
    assert_eq!(sent.json()["model"], "gpt-4o-mini");

    let b = books_with(&gw, &grant, 2).await;
    for endpoint in ["messages", "responses"] {
        let row = b
            .ledger
            .iter()
            .find(|r| r.endpoint == endpoint && r.status == 200)
            .unwrap_or_else(|| panic!("no {endpoint} row: {:?}", b.ledger));
        assert!(row.tokens() > 0 && row.estimated == 0, "{row:?}");
    }
}
