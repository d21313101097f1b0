//! The admin console in a real headless browser: `admin-ui/tests/console.mjs` (playwright-core
//! driving Debian's chromium) against a real `pairgate serve` and the fake provider, with this
//! test playing the app through pairgate-sdk. Also type-checks the console's JavaScript against
//! the generated API types (`tsc --checkJs`). Prerequisites are installed by `cargo xtask test`;
//! when one is missing the test fails and says so, it never skips.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use pairgate_sdk::{Client, MemoryStorage, PairOptions, PendingConsent, SdkError};
use pairgate_tests::Backend;
use pairgate_tests::gateway::{binary, free_port};
use pairgate_tests::providers;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ui_dir() -> PathBuf {
    repo_root().join("admin-ui")
}

/// Screenshots of every page, kept as test artifacts.
fn screenshot_dir() -> PathBuf {
    binary()
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("admin-ui-screenshots")
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("PAIRGATE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "{} is missing: the admin UI test drives Debian's chromium; run `cargo xtask test` \
         (it installs it) or `apt-get install chromium`",
        path.display()
    );
    path
}

fn require_node_modules() {
    for m in ["playwright-core", "typescript"] {
        assert!(
            ui_dir().join("node_modules").join(m).exists(),
            "admin-ui/node_modules/{m} is missing: run `cargo xtask test` (it runs `npm ci` in \
             admin-ui/) or `npm ci --prefix admin-ui`"
        );
    }
}

#[tokio::test]
async fn the_console_javascript_type_checks_against_the_api_types() {
    require_node_modules();
    let out = Command::new("node")
        .arg(ui_dir().join("node_modules/typescript/bin/tsc"))
        .args(["-p", "jsconfig.json"])
        .current_dir(ui_dir())
        .output()
        .await
        .expect("node is needed for the admin UI tests");
    assert!(
        out.status.success(),
        "tsc --checkJs found errors:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn chat() -> Value {
    json!({ "model": "openai/gpt-4o-mini", "messages": [{ "role": "user", "content": "hello" }] })
}

async fn consent(gw_url: &str, name: &str) -> PendingConsent {
    Client::request_consent(
        gw_url,
        name,
        &json!({ "models": ["openai/*"] }),
        PairOptions::default(),
        MemoryStorage::new(),
    )
    .await
    .unwrap()
}

/// The app side of the browser test: answers each `@@{json}` request of the script.
#[derive(Default)]
struct AppSide {
    paired: Option<Client>,
    approve: Option<PendingConsent>,
    deny: Option<PendingConsent>,
    device: Option<PendingConsent>,
}

impl AppSide {
    async fn answer(&mut self, gw_url: &str, req: &Value) -> Value {
        match req["step"].as_str().unwrap_or("") {
            "pair" => {
                let s = req["pairing_string"].as_str().unwrap();
                let client = Client::pair(s, PairOptions::default(), MemoryStorage::new())
                    .await
                    .unwrap();
                let mut ok = 0;
                for _ in 0..3 {
                    let res = client
                        .post("/v1/chat/completions")
                        .json(&chat())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status(), 200);
                    ok += 1;
                }
                let fp = client.key_fingerprint();
                self.paired = Some(client);
                json!({ "fingerprint": fp, "requests_ok": ok })
            }
            "consents" => {
                let a = consent(gw_url, "consent app").await;
                let d = consent(gw_url, "denied app").await;
                let out = json!({
                    "approve": { "user_code": a.user_code, "fingerprint": a.key_fingerprint },
                    "deny": { "user_code": d.user_code, "fingerprint": d.key_fingerprint },
                });
                self.approve = Some(a);
                self.deny = Some(d);
                out
            }
            "consents_decided" => {
                let client = self
                    .approve
                    .as_mut()
                    .unwrap()
                    .poll_once()
                    .await
                    .unwrap()
                    .expect("approved");
                let grant: Value = client
                    .get("/v1/grant")
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let denied = matches!(
                    self.deny.as_mut().unwrap().poll_once().await,
                    Err(SdkError::Denied)
                );
                json!({ "approved_models": grant["policy"]["models"], "denied": denied })
            }
            "device" => {
                let d = consent(gw_url, "device app").await;
                let out = json!({
                    "verification_uri_complete": d.verification_uri_complete,
                    "user_code": d.user_code,
                    "fingerprint": d.key_fingerprint,
                });
                self.device = Some(d);
                out
            }
            "device_decided" => {
                let client = self
                    .device
                    .as_mut()
                    .unwrap()
                    .poll_once()
                    .await
                    .unwrap()
                    .expect("approved from the verification URI");
                let res = client.get("/v1/grant").send().await.unwrap();
                let status = res.status().as_u16();
                let grant: Value = res.json().await.unwrap();
                json!({
                    "grant_status": status,
                    "rpm": grant["policy"]["requests_per_minute"],
                    "models": grant["policy"]["models"],
                })
            }
            "one_more" => {
                let client = self.paired.as_ref().unwrap();
                let res = client
                    .post("/v1/chat/completions")
                    .json(&chat())
                    .send()
                    .await
                    .unwrap();
                json!({ "status": res.status().as_u16() })
            }
            "revoked" => {
                let client = self.paired.as_ref().unwrap();
                let res = client
                    .post("/v1/chat/completions")
                    .json(&chat())
                    .send()
                    .await
                    .unwrap();
                json!({ "status": res.status().as_u16() })
            }
            other => panic!("unknown step {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_owner_runs_everything_from_the_console_in_a_browser() {
    require_node_modules();
    let chromium = chromium();
    // Passkeys need a domain name: the console is served as http://localhost:PORT (a secure
    // context in Chromium), on a port picked beforehand so public_url can name it.
    let port = free_port();
    let ui_url = format!("http://localhost:{port}");
    let (gw, _fake) = providers::start_custom(Backend::Sqlite, "", |b| {
        b.listen(format!("127.0.0.1:{port}"))
            .env("PAIRGATE_PUBLIC_URL", format!("{ui_url}/"))
    })
    .await;
    let token = gw
        .logs()
        .split("/admin/setup#")
        .nth(1)
        .map(|t| {
            t.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect::<String>()
        })
        .expect("setup link logged");
    let shots = screenshot_dir();
    let _ = std::fs::remove_dir_all(&shots);
    let mut child = Command::new("node")
        .arg("tests/console.mjs")
        .current_dir(ui_dir())
        .env("PAIRGATE_URL", &ui_url)
        .env("PAIRGATE_SETUP_TOKEN", &token)
        .env("CHROMIUM", &chromium)
        .env("SCREENSHOTS", &shots)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node is needed for the admin UI test");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = child.stderr.take().unwrap();
    let err_task = tokio::spawn(async move {
        let mut s = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut s).await;
        s
    });
    let mut transcript = String::new();
    let mut app = AppSide::default();
    let run = async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            match line.strip_prefix("@@") {
                Some(req) => {
                    transcript.push_str(&format!("-> {req}\n"));
                    let req: Value = serde_json::from_str(req).unwrap();
                    let answer = app.answer(&ui_url, &req).await;
                    transcript.push_str(&format!("<- {answer}\n"));
                    stdin
                        .write_all(format!("{answer}\n").as_bytes())
                        .await
                        .unwrap();
                    stdin.flush().await.unwrap();
                }
                None => transcript.push_str(&format!("{line}\n")),
            }
        }
        child.wait().await.unwrap()
    };
    let status = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .unwrap_or_else(|_| panic!("the browser test timed out:\n{transcript}"));
    let err = err_task.await.unwrap_or_default();
    assert!(
        status.success(),
        // The cause first: a long log is cut in the middle by CI's report.
        "the browser test failed ({status}):\n{err}\ntranscript:\n{transcript}\ngateway log:\n{}",
        gw.logs()
    );
    println!("{transcript}");
    let pngs = std::fs::read_dir(&shots)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "png"))
        })
        .count();
    assert!(pngs >= 14, "{pngs} screenshots in {}", shots.display());
}
