//! The CLI cannot hurt the data, through the real binary: `restore` refuses while a gateway
//! serves (and the data stays whole), commands that only use a database create none, keys and
//! passwords typed at a terminal are not echoed (driven through a pseudo-terminal with
//! util-linux `script`), the data dir and its files are private, `doctor` finds the gateway
//! where it really listens, and the grant and consent commands say what they did.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use pairgate_protocol::keys::KeyKind;
use pairgate_sdk::{Client, MemoryStorage, PairOptions};
use pairgate_tests::gateway::{binary, command, run, run_cli, shared_plugin_cache};
use pairgate_tests::{Backend, Gateway, TestDb, app};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Everything under `dir`, as paths relative to it.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

async fn pairing_ids(gw: &Gateway) -> Vec<String> {
    let (code, out, err) = run_cli(gw, &["pair", "list", "--json"], None).await;
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    rows.iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn restore_is_refused_while_a_gateway_serves_and_the_data_stays_whole() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let mut gw = Gateway::start(backend).await;
        let (code, out, err) =
            run_cli(&gw, &["pair", "create", "--app", "before", "--json"], None).await;
        assert_eq!(code, 0, "{err}");
        let kept: Value = serde_json::from_str(&out).unwrap();
        let kept = kept["id"].as_str().unwrap().to_string();
        let backup = gw.dir.path().join("backup.bin").display().to_string();
        let (code, _, err) = run_cli(&gw, &["backup", &backup], None).await;
        assert_eq!(code, 0, "{err}");

        let (code, out, err) = run_cli(&gw, &["restore", &backup], None).await;
        assert_eq!(code, 75, "{backend:?}: refused while serving: {out} {err}");
        assert!(err.contains("stop the gateway first"), "{err}");
        assert!(err.contains("Nothing was changed"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        if backend == Backend::Sqlite {
            let left: Vec<String> = tree(&gw.data_dir())
                .into_iter()
                .filter(|f| f.contains("before-restore") || f.contains("restore-tmp"))
                .collect();
            assert!(left.is_empty(), "nothing was moved: {left:?}");
        }

        // The gateway and the CLI still share one database: the pairing is listed, and a new
        // pairing made by the CLI is redeemed through the gateway.
        assert!(pairing_ids(&gw).await.contains(&kept), "{backend:?}");
        let ready = reqwest::get(gw.url("/readyz")).await.unwrap().status();
        assert_eq!(ready, 200);
        let client = app::pair(&gw, KeyKind::Ed25519, &[]).await;
        let (code, out, _) = run_cli(&gw, &["grant", "list", "--json"], None).await;
        assert_eq!(code, 0);
        assert!(out.contains(&client.grant_id()), "{out}");

        // Stopped, the same restore goes through.
        gw.stop().await;
        let (code, out, err) = run_cli(&gw, &["restore", &backup], None).await;
        assert_eq!(code, 0, "{backend:?}: {out} {err}");
        gw.restart().await;
        assert!(pairing_ids(&gw).await.contains(&kept), "{backend:?}");
    }
}

/// Commands that only use a database, each refused on a data dir without one.
const USING: &[&[&str]] = &[
    &["pair", "list"],
    &["pair", "create", "--app", "x"],
    &["pair", "cancel", "pa_x"],
    &["grant", "list"],
    &["grant", "show", "gr_x"],
    &["grant", "revoke", "gr_x"],
    &["consent", "list"],
    &["consent", "deny", "BCDF-GHJK"],
    &["usage"],
    &["credential", "list"],
    &["credential", "check", "openai"],
    &["credential", "remove", "openai"],
    &["master-key", "rotate"],
    &["owner", "sign-out-everywhere", "bob"],
    &["plugin", "list"],
];

#[tokio::test]
async fn commands_that_only_read_create_no_data_dir_database_or_key() {
    let home = tempfile::tempdir().unwrap();
    let missing = home.path().join("data");
    let empty = home.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for dir in [&missing, &empty] {
        for args in USING {
            let mut cmd = command(home.path());
            cmd.args(*args).arg("--data-dir").arg(dir);
            let (code, out, err) = run(cmd, None).await;
            assert_eq!(code, 66, "{args:?}: {out} {err}");
            let db = dir.join("pairgate.db");
            assert!(
                err.contains(&format!("no pairgate database at {}", db.display()))
                    && err.contains("pass --data-dir or start `pairgate serve` first"),
                "{args:?}: {err}"
            );
        }
    }
    // Without --data-dir: the platform data dir (under HOME) is not created either.
    let mut cmd = command(home.path());
    cmd.args(["pair", "create", "--app", "x"]);
    let (code, _, err) = run(cmd, None).await;
    assert_eq!(code, 66, "{err}");
    assert!(err.contains(".local/share/pairgate/pairgate.db"), "{err}");
    // doctor reports, and creates nothing either.
    let mut cmd = command(home.path());
    cmd.args(["doctor", "--json", "--skip-plugins", "--data-dir"])
        .arg(&missing);
    let (_, out, err) = run(cmd, None).await;
    assert!(out.contains("does not exist yet"), "{out} {err}");
    assert_eq!(tree(home.path()), ["empty"], "nothing was created");

    // PostgreSQL: an empty schema stays empty.
    let db = TestDb::new(Backend::Postgres).await;
    let url = db.url.clone().unwrap();
    for args in [&["grant", "list"][..], &["pair", "create", "--app", "x"]] {
        let mut cmd = command(home.path());
        cmd.args(args)
            .args(["--database-url", &url, "--data-dir"])
            .arg(&missing);
        let (code, _, err) = run(cmd, None).await;
        assert_eq!(code, 66, "{err}");
        assert!(
            err.contains("no pairgate database at postgres://postgres@127.0.0.1:5432/test")
                && err.contains("pass --database-url"),
            "{err}"
        );
    }
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(tables, 0, "no table was created");
    assert_eq!(tree(home.path()), ["empty"], "nothing was created");
}

/// Runs `pairgate ARGS` on a pseudo-terminal (util-linux `script`): waits for `prompt`, types
/// `typed` and Enter, and returns the exit code and everything the terminal showed.
async fn on_terminal(gw: &Gateway, args: &[&str], prompt: &str, typed: &str) -> (i32, String) {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut line = vec![quote(&binary().display().to_string())];
    line.extend(args.iter().map(|a| quote(a)));
    line.extend(gw.state_args().iter().map(|a| quote(a)));
    let mut child = tokio::process::Command::new("script")
        .args(["-q", "-e", "-c", &line.join(" "), "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PAIRGATE_PLUGINS__CACHE_DIR", shared_plugin_cache())
        .env("HOME", gw.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("util-linux `script` runs the command on a pseudo-terminal");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut shown = Vec::new();
    let waited = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&shown).contains(prompt) {
            let n = stdout.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "ended before asking: {}",
                String::from_utf8_lossy(&shown)
            );
            shown.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "no prompt: {}",
        String::from_utf8_lossy(&shown)
    );
    // The prompt is written just before the terminal is switched; let that happen.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stdin
        .write_all(format!("{typed}\r").as_bytes())
        .await
        .unwrap();
    stdin.flush().await.unwrap();
    let rest = tokio::time::timeout(Duration::from_secs(30), stdout.read_to_end(&mut shown)).await;
    assert!(rest.is_ok(), "{}", String::from_utf8_lossy(&shown));
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    drop(stdin);
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&shown).into_owned(),
    )
}

#[tokio::test]
async fn keys_and_passwords_typed_at_a_terminal_are_not_echoed() {
    let gw = Gateway::start(Backend::Sqlite).await;
    let key = "sk-typed-at-the-terminal-7f3a9c";
    let (code, shown) =
        on_terminal(&gw, &["credential", "add", "openai"], "paste the key", key).await;
    assert_eq!(code, 0, "{shown}");
    assert!(!shown.contains(key), "the key was echoed: {shown}");
    assert!(!shown.contains("7f3a9c"), "{shown}");
    assert!(shown.contains("added credential openai/default"), "{shown}");
    // What was typed is what was stored.
    let (code, out, err) = run_cli(&gw, &["credential", "check", "openai"], None).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("last4=3a9c"), "{out}");

    let password = "typed-password-never-shown";
    let (code, shown) = on_terminal(
        &gw,
        &["owner", "create", "alice"],
        "password (at least 12",
        password,
    )
    .await;
    assert_eq!(code, 0, "{shown}");
    assert!(
        !shown.contains(password),
        "the password was echoed: {shown}"
    );
    assert!(shown.contains("owner alice created"), "{shown}");

    // Piped input keeps working exactly as before.
    let (code, _, err) = run_cli(
        &gw,
        &["credential", "rotate", "openai"],
        Some("sk-piped-value-1234\n"),
    )
    .await;
    assert_eq!(code, 0, "{err}");
}

async fn doctor(gw: &Gateway) -> Vec<Value> {
    let mut cmd = command(gw.dir.path());
    cmd.args(["doctor", "--json", "--skip-plugins"])
        .args(gw.state_args());
    let (_, out, err) = run(cmd, None).await;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"))
}

fn check<'a>(checks: &'a [Value], name: &str) -> &'a Value {
    checks
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {checks:?}"))
}

#[tokio::test]
async fn a_fresh_install_is_private_and_doctor_finds_the_gateway_where_it_listens() {
    let mut gw = Gateway::start(Backend::Sqlite).await;
    let data = gw.data_dir();
    assert_eq!(mode(&data), 0o700, "data dir");
    for file in [
        "pairgate.db",
        "pairgate.db-wal",
        "pairgate.db-shm",
        "pairgate.db.lock",
        "master.key",
    ] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }

    let checks = doctor(&gw).await;
    assert_eq!(check(&checks, "data dir")["status"], "ok", "{checks:?}");
    let addr = gw.addr.to_string();
    let running = check(&checks, "gateway");
    assert_eq!(running["status"], "ok", "{checks:?}");
    assert!(
        running["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("http://{addr}/healthz")),
        "{running}"
    );
    let public = check(&checks, "public url");
    assert!(
        public["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("http://{addr}/")),
        "the URL the gateway serves on, not the default: {public}"
    );

    gw.stop().await;
    let checks = doctor(&gw).await;
    let stopped = check(&checks, "gateway");
    assert_eq!(stopped["status"], "warn", "{checks:?}");
    assert!(
        stopped["detail"].as_str().unwrap().contains("not running"),
        "{stopped}"
    );
}

#[tokio::test]
async fn grant_and_consent_commands_say_what_they_did_and_what_they_did_not() {
    let gw = Gateway::start(Backend::Sqlite).await;
    let client = app::pair(&gw, KeyKind::Ed25519, &[]).await;
    let id = client.grant_id();
    for (verb, word) in [
        ("suspend", "suspended"),
        ("resume", "resumed"),
        ("revoke", "revoked"),
    ] {
        let (code, _, err) = run_cli(&gw, &["grant", verb, &id], None).await;
        assert_eq!(code, 0, "{err}");
        assert!(err.contains(&format!("grant {id} {word}")), "{err}");
        assert!(!err.contains("Suspendd"), "{err}");
    }
    for verb in ["revoke", "suspend", "show", "bearer-revoke"] {
        let (code, _, err) = run_cli(&gw, &["grant", verb, "gr_doesnotexist"], None).await;
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains("grant gr_doesnotexist not found; `pairgate grant list` lists them"),
            "{verb}: {err}"
        );
    }

    // An approval never widens the request: flags wider than it are reported with the values
    // in effect; a flag that narrows is applied without a word.
    let requested = json!({
        "requests_per_minute": 100,
        "cost_budget_micros": { "daily": 1_000_000 },
        "models": ["openai/gpt-4o-mini"],
    });
    let mut pending = Client::request_consent(
        &gw.base_url,
        "wide flags",
        &requested,
        PairOptions::default(),
        MemoryStorage::new(),
    )
    .await
    .unwrap();
    let (code, out, err) = run_cli(
        &gw,
        &[
            "consent",
            "approve",
            &pending.user_code,
            "--rpm",
            "500",
            "--daily-usd",
            "5",
            "--rpd",
            "50",
        ],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let granted: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(granted["requests_per_minute"], 100);
    assert_eq!(granted["requests_per_day"], 50);
    assert!(err.contains("never widens"), "{err}");
    assert!(err.contains("--rpm 500 -> 100"), "{err}");
    assert!(err.contains("--daily-usd $5.00 -> $1.00"), "{err}");
    assert!(!err.contains("--rpd"), "{err}");
    assert!(pending.poll_once().await.unwrap().is_some());

    let (code, _, err) = run_cli(&gw, &["consent", "approve", "BCDF-GHJK"], None).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("consent request BCDF-GHJK not found; `pairgate consent list` lists them"),
        "{err}"
    );
}
