//! `pairgate connect` through the real binary: pairing (the key in the Secret Service when one
//! is reachable, a 0600 file when no durable keychain is usable), the loopback connector refusing callers without its token and
//! non-loopback addresses, signed forwarding of plain and streamed chats (curl-like calls, the
//! official `openai` Python package), `env`, `run`, `status` and `forget`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use pairgate_tests::Backend;
use pairgate_tests::app::pairing_string;
use pairgate_tests::fake::REPLY;
use pairgate_tests::gateway::{command, run, run_cli};
use pairgate_tests::probe::books_with;
use pairgate_tests::providers::{self, sse_data, streamed_text, test_key};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

use pairgate_tests::fake::Behaviour;
use tokio::io::{AsyncBufReadExt, BufReader};

/// What the fake streams by default, and with four chunks.
const STREAMED: &str = "tok0 tok1 tok2 ";
const STREAMED4: &str = "tok0 tok1 tok2 tok3 ";

const PY_CHAT: &str = r#"
import openai
client = openai.OpenAI()  # OPENAI_BASE_URL and OPENAI_API_KEY from the environment
msgs = [{"role": "user", "content": "hi"}]
r = client.chat.completions.create(model="openai/gpt-4o-mini", messages=msgs)
print(r.choices[0].message.content)
s = client.chat.completions.create(model="openai/gpt-4o-mini", messages=msgs, stream=True)
print("".join(c.choices[0].delta.content or "" for c in s if c.choices))
"#;

pub(crate) fn python() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = std::env::var_os("PAIRGATE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/sdk-venv/bin/python"));
    assert!(
        python.exists(),
        "the test venv is missing ({}): run `cargo xtask test`",
        python.display()
    );
    python
}

/// Pairs the connector `connect` runs with a fresh pairing string; returns its grant id.
pub(crate) async fn pair_connector(
    gw: &pairgate_tests::Gateway,
    connect: impl Fn(&[&str]) -> tokio::process::Command,
) -> String {
    let pairing = pairing_string(gw, &[]).await;
    let (code, out, err) = run(connect(&["pair", &pairing, "--name", "agents"]), None).await;
    assert_eq!(code, 0, "{err}");
    out.split_whitespace()
        .find(|w| w.starts_with("gr_"))
        .unwrap_or_else(|| panic!("no grant id in {out}"))
        .to_string()
}

/// Runs a Python script in the test venv with only `env` (and PATH) set; returns its stdout,
/// failing with its output unless it succeeded.
pub(crate) async fn run_python(script: &Path, env: &[(String, String)]) -> String {
    let out = tokio::process::Command::new(python())
        .arg(script)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().cloned())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `export NAME=VALUE` lines as pairs.
pub(crate) fn exports(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn chat(stream: bool) -> Value {
    json!({"model": "openai/gpt-4o-mini", "stream": stream,
           "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn connect_signs_for_tools_that_cannot_and_refuses_everyone_else() {
    // Nonces required and access tokens of 3 s: the connector refreshes before every request
    // and retries nonces, and `serve` and `run` share one session.
    let (gw, fake) = providers::start_with(
        Backend::Sqlite,
        "",
        &[
            ("PAIRGATE_DPOP__REQUIRE_NONCE", "true"),
            ("PAIRGATE_TOKENS__ACCESS_TTL", "3s"),
        ],
    )
    .await;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("connect");
    let connect = |args: &[&str]| {
        let mut cmd = command(home.path());
        cmd.arg("connect").arg("--state-dir").arg(&dir).args(args);
        cmd
    };

    // Only loopback addresses.
    let (code, _, err) = run(connect(&["serve", "--listen", "0.0.0.0:0"]), None).await;
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("not a loopback address"), "{err}");

    // Pairing: no durable keychain here, so a 0600 file, said plainly.
    let pairing = pairing_string(&gw, &[]).await;
    let (code, out, err) = run(connect(&["pair", &pairing, "--name", "agent"]), None).await;
    assert_eq!(code, 0, "{err}");
    let secret_file = dir.join("secret.json");
    assert!(
        err.contains(&secret_file.display().to_string()) && err.contains("mode 0600"),
        "{err}"
    );
    assert_eq!(mode(&secret_file), 0o600);
    assert_eq!(mode(&dir.join("session.json")), 0o600);
    assert_eq!(mode(&dir), 0o700);
    let grant = out
        .split_whitespace()
        .find(|w| w.starts_with("gr_"))
        .unwrap_or_else(|| panic!("no grant id in {out}"))
        .to_string();
    let session = std::fs::read_to_string(dir.join("session.json")).unwrap();
    assert!(
        !session.contains("\"d\""),
        "the private key stays out of session.json"
    );
    let (code, _, err) = run(connect(&["pair", &pairing]), None).await;
    assert_eq!(code, 64, "pairing twice is refused: {err}");
    assert!(err.contains("already paired"), "{err}");

    // The connector.
    let mut serve = connect(&["serve", "--listen", "127.0.0.1:0"]);
    serve.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut server = serve.spawn().unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let origin = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{first}"))
        .to_string();

    // `connect env openai`: the lines to paste, for where the running `serve` listens.
    let (code, out, err) = run(connect(&["env", "openai"]), None).await;
    assert_eq!(code, 0, "{err}");
    let env = exports(&out);
    assert_eq!(env[0], ("OPENAI_BASE_URL".into(), format!("{origin}/v1")));
    assert_eq!(env[1].0, "OPENAI_API_KEY");
    let token = env[1].1.clone();
    assert!(token.starts_with("pgc_") && token.len() > 40, "{token}");

    // Without the caller token, or with a wrong one: 401, and nothing reaches the provider.
    let http = reqwest::Client::new();
    let url = format!("{origin}/v1/chat/completions");
    let refused = [
        http.post(&url).json(&chat(false)),
        http.post(&url).bearer_auth("pgc_wrong").json(&chat(false)),
        http.post(&url)
            .header("x-api-key", "pgc_wrong")
            .json(&chat(false)),
        http.get(format!("{origin}/v1/models"))
            .bearer_auth(format!("{token}x")),
    ];
    for req in refused {
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 401);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_api_key", "{body}");
    }
    // Only the gateway's app API is reachable through the connector.
    let res = http
        .get(format!("{origin}/admin/api/overview"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert!(fake.received().is_empty(), "refused requests reach nobody");

    // With the token as a bearer and as x-api-key, plain and streamed.
    for (bearer, stream) in [(true, false), (true, true), (false, false), (false, true)] {
        let req = http.post(&url).json(&chat(stream));
        let req = if bearer {
            req.bearer_auth(&token)
        } else {
            req.header("x-api-key", &token)
        };
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200);
        let text = res.text().await.unwrap();
        if stream {
            assert_eq!(streamed_text(&sse_data(&text)), STREAMED, "{text}");
        } else {
            let body: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(body["choices"][0]["message"]["content"], REPLY, "{body}");
        }
    }
    // Streamed chunk by chunk: the first arrives long before the last is sent.
    fake.set(Behaviour {
        chunks: 4,
        chunk_interval: Duration::from_millis(400),
        ..Behaviour::default()
    });
    let start = Instant::now();
    let mut res = http
        .post(&url)
        .header("x-api-key", &token)
        .json(&chat(true))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (mut text, mut first) = (String::new(), None);
    while let Some(chunk) = res.chunk().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&chunk));
        if first.is_none() && text.contains("tok0") {
            first = Some(start.elapsed());
        }
    }
    assert!(
        first.unwrap() + Duration::from_millis(800) < start.elapsed(),
        "{first:?}"
    );
    assert_eq!(streamed_text(&sse_data(&text)), STREAMED4, "{text}");
    fake.set(Behaviour::default());
    let models = http
        .get(format!("{origin}/v1/models"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200);

    // The official `openai` package, configured by exactly the printed lines.
    let script = home.path().join("chat.py");
    std::fs::write(&script, PY_CHAT).unwrap();
    let stdout = run_python(&script, &env).await;
    assert_eq!(stdout, format!("{REPLY}\n{STREAMED}\n"));

    // `connect run`: the variables reach the child alone (only the tool's), its exit code comes
    // back, and the child's requests go through the connector it started.
    let (code, out, err) = run(
        connect(&[
            "run",
            "--tool",
            "openai",
            "--",
            "sh",
            "-c",
            "echo \"$OPENAI_BASE_URL ${ANTHROPIC_BASE_URL:-none} $OPENAI_API_KEY\"; exit 7",
        ]),
        None,
    )
    .await;
    assert_eq!(code, 7, "{err}");
    let seen: Vec<&str> = out.split_whitespace().collect();
    assert!(
        seen[0].starts_with("http://127.0.0.1:") && seen[0].ends_with("/v1") && seen[0] != env[0].1,
        "{out}"
    );
    assert_eq!(seen[1..], ["none", token.as_str()]);
    let py = python();
    let (code, out, err) = run(
        connect(&["run", "--", py.to_str().unwrap(), script.to_str().unwrap()]),
        None,
    )
    .await;
    assert_eq!((code, out), (0, format!("{REPLY}\n{STREAMED}\n")), "{err}");
    // `run` refreshed (spending the refresh token `serve` holds): `serve` adopts the new one.
    let res = http
        .post(&url)
        .bearer_auth(&token)
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());

    // Everything reached the provider with the owner's key, never the caller token; the
    // ledger has a row per chat (6 direct + 2 Python + 2 under `run`).
    let received = fake.received();
    let chats: Vec<_> = received
        .iter()
        .filter(|r| r.path == "/v1/chat/completions")
        .collect();
    assert_eq!(chats.len(), 10);
    for r in &received {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {}", test_key("openai")).as_str())
        );
        assert!(
            !format!("{r:?}").contains(&token),
            "the caller token leaked"
        );
    }
    let books = books_with(&gw, &grant, 10).await;
    let rows: Vec<i64> = books
        .ledger
        .iter()
        .filter(|r| r.tokens() > 0)
        .map(|r| r.status)
        .collect();
    assert!(
        rows.len() >= 10 && rows.iter().all(|s| *s == 200),
        "{:?}",
        books.ledger
    );

    // `connect status`: the grant, the key and what remains.
    let (code, out, err) = run(connect(&["status"]), None).await;
    assert_eq!(code, 0, "{err}");
    for want in [
        grant.as_str(),
        "key ",
        "secret.json (mode 0600)",
        "remaining",
        gw.base_url.as_str(),
    ] {
        assert!(out.contains(want), "{want} in {out}");
    }

    // A revoked grant: the tool gets a 401 (not a retryable 5xx), and nothing reaches the fake.
    let (code, _, err) = run_cli(&gw, &["grant", "revoke", &grant], None).await;
    assert_eq!(code, 0, "{err}");
    let seen = fake.received().len();
    let res = http
        .post(&url)
        .bearer_auth(&token)
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "{}", res.text().await.unwrap());
    assert_eq!(fake.received().len(), seen);

    // SIGTERM stops the connector cleanly; `connect forget`: key, token and session gone.
    assert!(dir.join("serve.addr").exists());
    let pid = server.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let stopped = tokio::time::timeout(Duration::from_secs(10), server.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(stopped.success(), "{stopped}");
    assert!(!dir.join("serve.addr").exists());
    let (code, out, err) = run(connect(&["forget"]), None).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&grant), "{out}");
    assert!(!secret_file.exists() && !dir.join("session.json").exists());
    let (code, _, err) = run(connect(&["status"]), None).await;
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("holds no pairing"), "{err}");

    // The device flow: the user code and the key's fingerprint are printed, the owner approves,
    // the connector is paired. The OS keychain when usable (kernel keyutils here), or it says
    // clearly why not.
    let (code, _, err) = run(
        connect(&["pair", "not-a-pairing", "--secret-store", "keychain"]),
        None,
    )
    .await;
    assert_eq!(code, 1, "{err}");
    let keychain = if err.contains("not a valid pairing string") {
        "keychain"
    } else {
        assert!(err.contains("OS keychain is not usable here ("), "{err}");
        "file"
    };
    println!("device flow with --secret-store {keychain}");
    let _ = run(connect(&["forget"]), None).await;
    let mut request = connect(&[
        "request",
        "--gateway",
        &gw.base_url,
        "--app",
        "agent",
        "--secret-store",
        keychain,
    ]);
    request.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut waiting = request.spawn().unwrap();
    let mut lines = BufReader::new(waiting.stdout.take().unwrap()).lines();
    let ask = lines.next_line().await.unwrap().unwrap();
    let user_code = ask
        .split_once("code ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{ask}"));
    assert!(ask.contains("key fingerprint"), "{ask}");
    let (code, _, err) = run_cli(&gw, &["consent", "approve", user_code], None).await;
    assert_eq!(code, 0, "{err}");
    let done = tokio::time::timeout(Duration::from_secs(30), waiting.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(done.success());
    let (code, out, err) = run(connect(&["status"]), None).await;
    assert_eq!(code, 0, "{err}");
    let secrets = if keychain == "keychain" {
        "OS keychain"
    } else {
        "secret.json"
    };
    assert!(out.contains(secrets) && out.contains("agent"), "{out}");
    assert_eq!(keychain == "keychain", !secret_file.exists());
    let (code, _, err) = run(connect(&["forget"]), None).await;
    assert_eq!(code, 0, "{err}");
    assert!(!dir.exists(), "forget leaves no state dir behind");
}

/// A freedesktop Secret Service of its own for one test: a private D-Bus session bus and an
/// unlocked GNOME Keyring on it (both killed on drop).
struct SecretService {
    address: String,
    _bus: tokio::process::Child,
    _keyring: tokio::process::Child,
    runtime: tempfile::TempDir,
}

impl SecretService {
    async fn start() -> SecretService {
        let runtime = tempfile::tempdir().unwrap();
        let socket = runtime.path().join("bus");
        let mut bus = tokio::process::Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .arg(format!("--address=unix:path={}", socket.display()))
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("dbus-daemon (Debian's dbus-daemon) is needed: `cargo xtask test` installs it");
        let mut out = BufReader::new(bus.stdout.take().unwrap()).lines();
        let address = out.next_line().await.unwrap().expect("the bus address");
        let mut keyring = tokio::process::Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env_clear()
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .env("HOME", runtime.path())
            .env("XDG_RUNTIME_DIR", runtime.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("gnome-keyring-daemon (Debian's gnome-keyring) is needed: `cargo xtask test` installs it");
        {
            use tokio::io::AsyncWriteExt;
            let mut stdin = keyring.stdin.take().unwrap();
            stdin.write_all(b"test keyring password").await.unwrap();
        }
        // It prints its control variables once it serves.
        let mut ready = BufReader::new(keyring.stdout.take().unwrap()).lines();
        tokio::time::timeout(Duration::from_secs(20), ready.next_line())
            .await
            .expect("gnome-keyring-daemon started")
            .unwrap();
        SecretService {
            address,
            _bus: bus,
            _keyring: keyring,
            runtime,
        }
    }
}

/// Where a Secret Service is reachable (GNOME Keyring here), the connector keeps its key and
/// caller token there by default, not in a file; it reads them back to sign, and `forget`
/// deletes them.
#[tokio::test]
async fn with_a_secret_service_the_key_is_kept_there_and_no_file_is_written() {
    let (gw, fake) = providers::start(Backend::Sqlite, "").await;
    let service = SecretService::start().await;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("connect");
    let connect = |args: &[&str]| {
        let mut cmd = command(home.path());
        cmd.arg("connect")
            .arg("--state-dir")
            .arg(&dir)
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &service.address)
            .env("XDG_RUNTIME_DIR", service.runtime.path());
        cmd
    };
    let pairing = pairing_string(&gw, &[]).await;
    let (code, _, err) = run(connect(&["pair", &pairing, "--name", "desktop"]), None).await;
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("mode 0600"), "no file fallback: {err}");
    assert!(!dir.join("secret.json").exists());
    let session = std::fs::read_to_string(dir.join("session.json")).unwrap();
    assert!(session.contains("\"secret-service\""), "{session}");

    // The key is read back from the Secret Service to sign: `status` asks the gateway.
    let (code, out, err) = run(connect(&["status"]), None).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Secret Service (service pairgate-connect)"),
        "{out}"
    );
    let (code, out, err) = run(
        connect(&[
            "run",
            "--tool",
            "openai",
            "--",
            "sh",
            "-c",
            "curl -s -H \"Authorization: Bearer $OPENAI_API_KEY\" -H 'content-type: application/json' \
             -d '{\"model\":\"openai/gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}' \
             \"$OPENAI_BASE_URL/chat/completions\"",
        ]),
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(REPLY), "{out}\n{err}");
    assert_eq!(fake.received().len(), 1);

    // Without the Secret Service the stored key cannot be read: it was nowhere else.
    let mut cut_off = command(home.path());
    cut_off
        .arg("connect")
        .arg("--state-dir")
        .arg(&dir)
        .arg("status");
    let (code, _, err) = run(cut_off, None).await;
    assert_ne!(code, 0);
    assert!(
        err.contains("cannot read the connector's key from the OS keychain"),
        "{err}"
    );

    let (code, _, err) = run(connect(&["forget"]), None).await;
    assert_eq!(code, 0, "{err}");
    assert!(!dir.exists());
    let (code, _, err) = run(connect(&["status"]), None).await;
    assert_eq!(code, 64, "{err}");
}
