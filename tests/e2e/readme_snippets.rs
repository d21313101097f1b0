//! The README's SDK snippets run as written: the first ```python block under "### Python" and the
//! first ```ts block under "### TypeScript" are taken from README.md as they stand and run
//! against a real gateway and the fake provider (Python in the SDK's test venv, the TypeScript as
//! an ES module resolving `@pairgate/sdk` and `openai` from the built SDK), each with a fresh
//! pairing string in `PAIRGATE_PAIRING`.

use std::path::{Path, PathBuf};

use pairgate_tests::Backend;
use pairgate_tests::app::pairing_string;
use pairgate_tests::fake::REPLY;
use pairgate_tests::providers;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The first fenced block of `lang` after the heading `heading` in the README.
pub(crate) fn snippet(heading: &str, lang: &str) -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let after = readme
        .split_once(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README has no {heading} section"))
        .1;
    let start = after
        .split_once(&format!("```{lang}\n"))
        .unwrap_or_else(|| panic!("no ```{lang} block under {heading}"))
        .1;
    start.split_once("\n```").unwrap().0.to_string() + "\n"
}

async fn run(cmd: &mut tokio::process::Command, what: &str) -> String {
    let out = cmd.kill_on_drop(true).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the README's {what} snippet failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn the_readme_python_snippet_runs_as_written() {
    let root = repo_root();
    let python = std::env::var_os("PAIRGATE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/sdk-venv/bin/python"));
    assert!(
        python.exists(),
        "the Python SDK's venv is missing ({}): run `cargo xtask test`",
        python.display()
    );
    let (gw, _fake) = providers::start(Backend::Sqlite, "").await;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("main.py");
    std::fs::write(&script, snippet("### Python", "python")).unwrap();
    let pairing = pairing_string(&gw, &[]).await;
    let out = run(
        tokio::process::Command::new(&python)
            .arg(&script)
            .current_dir(dir.path())
            .env("PAIRGATE_PAIRING", &pairing)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        "Python",
    )
    .await;
    assert_eq!(out.trim(), REPLY);
    assert!(dir.path().join("session.json").exists());
}

#[tokio::test]
async fn the_readme_typescript_snippet_runs_as_written() {
    let sdk = repo_root().join("sdk/typescript");
    assert!(
        sdk.join("dist/src/node.js").exists() && sdk.join("node_modules/openai").is_dir(),
        "the TypeScript SDK is not built: run `cargo xtask test`"
    );
    let (gw, _fake) = providers::start(Backend::Sqlite, "").await;
    let dir = tempfile::tempdir().unwrap();
    // What `npm install ./sdk/typescript openai` gives a project: both resolvable by name.
    let modules = dir.path().join("node_modules");
    std::fs::create_dir_all(modules.join("@pairgate")).unwrap();
    std::os::unix::fs::symlink(&sdk, modules.join("@pairgate/sdk")).unwrap();
    std::os::unix::fs::symlink(sdk.join("node_modules/openai"), modules.join("openai")).unwrap();
    let script = dir.path().join("main.mjs");
    std::fs::write(&script, snippet("### TypeScript", "ts")).unwrap();
    let pairing = pairing_string(&gw, &[]).await;
    let out = run(
        tokio::process::Command::new("node")
            .arg(&script)
            .current_dir(dir.path())
            .env("PAIRGATE_PAIRING", &pairing),
        "TypeScript",
    )
    .await;
    assert_eq!(out.trim(), REPLY);
    assert!(dir.path().join("session.json").exists());
}
