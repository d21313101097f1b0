//! The TypeScript SDK (`sdk/typescript`, `@pairgate/sdk`) end to end: its `node --test` suite runs
//! against two real gateways wired to the fake provider, the official `openai` npm package signing
//! through the SDK's fetch. `cargo xtask test` installs the pinned npm packages and builds it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use pairgate_tests::owner::{OwnerSession, create_owner, login};
use pairgate_tests::providers::{self, test_key};
use pairgate_tests::{Backend, Gateway};

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../sdk/typescript")
        .canonicalize()
        .unwrap()
}

const HOW: &str = "run `cargo xtask test` (it runs `npm ci` and `npm run build` in sdk/typescript)";

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

/// Every `.ts` file under `dir`, recursively.
fn ts_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            ts_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "ts") {
            out.push(path);
        }
    }
}

/// Fails (never skips) when the SDK was not installed and built, or was edited since its build.
fn check_built(dir: &Path) {
    assert!(
        dir.join("node_modules/openai").is_dir(),
        "sdk/typescript/node_modules is missing: {HOW}"
    );
    let mut sources = Vec::new();
    for sub in ["src", "test", "examples"] {
        ts_files(&dir.join(sub), &mut sources);
    }
    for ts in sources {
        let js = dir
            .join("dist")
            .join(ts.strip_prefix(dir).unwrap())
            .with_extension("js");
        assert!(
            js.exists() && modified(&js) >= modified(&ts),
            "{} is missing or older than its source: {HOW}",
            js.display()
        );
    }
}

/// The compiled test files, unit tests and end-to-end tests alike.
fn test_files(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for sub in ["dist/test", "dist/test/e2e"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.to_string_lossy().ends_with(".test.js") {
                files.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    files.sort();
    files
}

fn env_of(prefix: &str, gw: &Gateway, owner: &OwnerSession) -> Vec<(String, String)> {
    vec![
        (format!("{prefix}_URL"), gw.base_url.clone()),
        (format!("{prefix}_COOKIE"), owner.cookie.clone()),
        (format!("{prefix}_CSRF"), owner.csrf.clone()),
    ]
}

#[tokio::test]
async fn typescript_sdk_and_the_openai_package_work_against_the_gateway() {
    let dir = sdk_dir();
    check_built(&dir);
    let files = test_files(&dir);
    assert!(
        files.iter().any(|f| f.contains("e2e/openai"))
            && files.iter().any(|f| f.contains("vectors")),
        "test files: {files:?}"
    );

    // The main gateway asks for server nonces, so every flow exercises the nonce retry.
    let (main, fake) = providers::start(Backend::Sqlite, "[dpop]\nrequire_nonce = true\n").await;
    // Access tokens of one second, for refreshing after an expired-token answer.
    let short = Gateway::builder(Backend::Sqlite)
        .config("[tokens]\naccess_ttl = \"1s\"\n")
        .start()
        .await;
    create_owner(&main).await;
    create_owner(&short).await;
    let mut env = env_of("PAIRGATE_TS_MAIN", &main, &login(&main).await);
    env.extend(env_of("PAIRGATE_TS_SHORT", &short, &login(&short).await));

    let mut cmd = tokio::process::Command::new("node");
    cmd.arg("--test")
        .args(&files)
        .current_dir(&dir)
        .envs(env)
        .kill_on_drop(true);
    let out = match tokio::time::timeout(Duration::from_secs(300), cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => panic!("cannot run node (Node.js 20+ is required: {HOW}): {e}"),
        Err(_) => panic!("node --test did not finish within 300 s"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node --test failed ({}):\n{stdout}\n{}\n--- main gateway logs ---\n{}\n--- short gateway logs ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        main.logs(),
        short.logs()
    );
    assert!(stdout.contains("# fail 0"), "{stdout}");

    // Seen from the provider: the openai package's calls arrived with the owner's key injected and
    // no app credential, streamed and not.
    let seen = fake.received();
    let chats: Vec<_> = seen
        .iter()
        .filter(|r| r.path == "/v1/chat/completions")
        .collect();
    assert!(
        chats.iter().any(|r| r.json()["stream"] == true),
        "a streamed chat"
    );
    assert!(
        chats.iter().any(|r| r.json()["stream"] != true),
        "a plain chat"
    );
    assert!(
        seen.iter().any(|r| r.path == "/v1/embeddings"),
        "embeddings"
    );
    let bearer = format!("Bearer {}", test_key("openai"));
    for r in &seen {
        assert_eq!(
            r.header("authorization"),
            Some(bearer.as_str()),
            "{}",
            r.path
        );
        assert!(
            r.header("dpop").is_none(),
            "{}: no proof goes upstream",
            r.path
        );
    }
}
