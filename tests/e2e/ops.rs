//! Operations through the real binary: `pairgate doctor` on a healthy and on broken set-ups, and
//! `pairgate backup` / `pairgate restore` round trips on SQLite (VACUUM INTO, taken while the
//! gateway serves) and PostgreSQL (pg_dump / pg_restore).

use pairgate_protocol::keys::KeyKind;
use pairgate_sdk::Client;
use pairgate_tests::gateway::{command, run, run_cli};
use pairgate_tests::providers::{start, test_key};
use pairgate_tests::{Backend, Gateway, app};
use serde_json::Value;

async fn chat(client: &Client) -> u16 {
    pairgate_tests::providers::chat_status(client, "openai/gpt-4o-mini").await
}

async fn doctor(gw: &Gateway, extra: &[&str]) -> (i32, Vec<Value>, String) {
    let mut args = vec!["doctor", "--json"];
    args.extend_from_slice(extra);
    let (code, out, err) = run_cli(gw, &args, None).await;
    let checks: Vec<Value> =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (code, checks, err)
}

fn status_of<'a>(checks: &'a [Value], check: &str) -> &'a str {
    checks
        .iter()
        .find(|c| c["check"] == check)
        .and_then(|c| c["status"].as_str())
        .unwrap_or_else(|| panic!("no check {check}: {checks:?}"))
}

#[tokio::test]
async fn doctor_passes_a_healthy_gateway_and_names_what_is_broken() {
    let (gw, _fake) = start(Backend::Postgres, "").await;
    let (code, checks, err) = doctor(&gw, &[]).await;
    assert_eq!(code, 0, "{checks:?} {err}");
    for check in [
        "config",
        "database",
        "gateway secret",
        "credential openai/default",
        "plugins",
        "clock",
    ] {
        assert_eq!(status_of(&checks, check), "ok", "{check}: {checks:?}");
    }
    assert_eq!(status_of(&checks, "owner"), "warn", "no owner yet");
    let text = serde_json::to_string(&checks).unwrap();
    assert!(
        !text.contains(&test_key("openai")),
        "no credential value is printed"
    );
    let master = std::fs::read_to_string(gw.data_dir().join("master.key")).unwrap();
    assert!(!text.contains(master.trim()), "no master key is printed");

    // A reference whose variable is gone (it existed when added) fails that credential only,
    // and the human report says what to do.
    let (code, _, e) = cli_env(
        &gw,
        &["credential", "add", "groq", "--from-env", "DOCTOR_TEST_KEY"],
        &[("DOCTOR_TEST_KEY", "gsk-doctor-test-value")],
    )
    .await;
    assert_eq!(code, 0, "{e}");
    let (code, out, _) = run_cli(&gw, &["doctor", "--skip-plugins"], None).await;
    assert_eq!(code, 1, "{out}");
    let failing: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(failing.len(), 1, "{out}");
    assert!(failing[0].contains("credential groq/default"), "{out}");
    assert!(out.contains("DOCTOR_TEST_KEY"), "names the variable: {out}");
    assert!(!out.contains("gsk-doctor-test-value"));
    assert!(out.lines().any(|l| l.starts_with("skip  plugins")), "{out}");
    assert!(
        out.contains("fix: run `pairgate owner create USERNAME`"),
        "{out}"
    );

    // A wrong master key: that check fails with a fix, exit 1, credentials are skipped.
    let env = [
        ("PAIRGATE_MASTER_KEY__SOURCE", "env"),
        ("PAIRGATE_MASTER_KEY__VAR", "DOCTOR_WRONG_KEY"),
        (
            "DOCTOR_WRONG_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ),
    ];
    let (code, out, err) = cli_env(&gw, &["doctor", "--json", "--skip-plugins"], &env).await;
    assert_eq!(code, 1, "{out} {err}");
    let checks: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(status_of(&checks, "master key"), "fail", "{checks:?}");
    assert_eq!(status_of(&checks, "credentials"), "skip", "{checks:?}");
    assert!(!out.contains("AAAAAAAAAAAAAAAAAAAA"), "{out}");

    // An unreachable database fails that check; nothing after it is attempted.
    let (code, out, _) = cli_env(
        &gw,
        &[
            "doctor",
            "--json",
            "--database-url",
            "postgres://127.0.0.1:1/nothing",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 1);
    let checks: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(status_of(&checks, "database"), "fail", "{checks:?}");
    assert!(checks.iter().all(|c| c["check"] != "credentials"));
}

/// A CLI command against the gateway's state, with extra environment variables. Later
/// `--database-url` flags win over the gateway's own.
async fn cli_env(gw: &Gateway, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = command(gw.dir.path());
    cmd.args(args).args(gw.state_args());
    if args.contains(&"--database-url") {
        let own = gw.state_args();
        cmd = command(gw.dir.path());
        cmd.args(args).args(&own[..2]);
    }
    cmd.args(gw.config_args(args));
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(cmd, None).await
}

#[tokio::test]
async fn a_backup_taken_while_serving_restores_grants_credentials_and_ledger() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (mut gw, _fake) = start(backend, "").await;
        let client = app::pair(&gw, KeyKind::Ed25519, &[]).await;
        assert_eq!(chat(&client).await, 200);
        // A backup holds the rows committed when it runs; those still in the ledger journal
        // (the last batch window's) are not in it yet (docs/deployment.md, "Backups and restore").
        gw.ledger_settled().await;
        let backup = gw.dir.path().join("backup.bin");
        let b = backup.display().to_string();
        // Taken while the gateway serves (and while a request runs).
        let args = ["backup", b.as_str()];
        let (during, taken) = tokio::join!(chat(&client), run_cli(&gw, &args, None));
        assert_eq!(during, 200);
        let (code, out, err) = taken;
        assert_eq!(code, 0, "{backend:?}: {out} {err}");
        assert!(out.contains("not the master key"), "{out}");
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&backup).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let bytes = std::fs::read(&backup).unwrap();
        assert!(
            !bytes
                .windows(test_key("openai").len())
                .any(|w| w == test_key("openai").as_bytes()),
            "no provider key in clear in a backup"
        );
        let (code, _, err) = run_cli(&gw, &["backup", &b], None).await;
        assert_eq!(code, 1, "an existing file is never overwritten: {err}");

        // After the backup: the app is revoked and the credential removed.
        let (code, _, err) = run_cli(&gw, &["grant", "revoke", &client.grant_id()], None).await;
        assert_eq!(code, 0, "{err}");
        let (code, _, err) = run_cli(&gw, &["credential", "remove", "openai"], None).await;
        assert_eq!(code, 0, "{err}");
        assert_eq!(chat(&client).await, 401);
        let ledger_before = usage_rows(&gw).await;

        gw.stop().await;
        let (code, out, err) = run_cli(&gw, &["restore", &b], None).await;
        assert_eq!(code, 0, "{backend:?}: {out} {err}");
        gw.restart().await;
        assert_eq!(
            chat(&client).await,
            200,
            "{backend:?}: grant and credential are back"
        );
        let restored = usage_rows(&gw).await;
        assert!(
            restored >= 2 && restored <= ledger_before + 1,
            "{restored} vs {ledger_before}"
        );
        if backend == Backend::Sqlite {
            let kept = std::fs::read_dir(gw.data_dir())
                .unwrap()
                .filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().contains(".before-restore-"));
            assert!(kept, "the replaced database is kept");

            // A backup the configured master key cannot open is refused; nothing changes.
            gw.stop().await;
            let (code, _, err) = cli_env(
                &gw,
                &["restore", &b],
                &[
                    ("PAIRGATE_MASTER_KEY__SOURCE", "env"),
                    ("PAIRGATE_MASTER_KEY__VAR", "OPS_OTHER_KEY"),
                    (
                        "OPS_OTHER_KEY",
                        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                    ),
                ],
            )
            .await;
            assert_eq!(code, 1, "{err}");
            assert!(err.contains("does not open this backup"), "{err}");
            assert!(err.contains("KEY.retired-"), "{err}");
            let garbage = gw.dir.path().join("garbage.db");
            std::fs::write(&garbage, b"not a database").unwrap();
            let (code, _, err) =
                run_cli(&gw, &["restore", &garbage.display().to_string()], None).await;
            assert_eq!(code, 1, "{err}");
            gw.restart().await;
            assert_eq!(
                chat(&client).await,
                200,
                "the refused restores changed nothing"
            );
        }
    }
}

/// Ledger rows, counted by `pairgate usage --json`.
async fn usage_rows(gw: &Gateway) -> usize {
    // the CLI reads the database: answered rows may still be in the ledger journal
    gw.ledger_settled().await;
    let (code, out, err) = run_cli(gw, &["usage", "--json"], None).await;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    v["totals"]["requests"].as_u64().unwrap_or(0) as usize
}

/// `KEY=VALUE` settings a deployment file gives the gateway (`ENV` lines of the Dockerfile,
/// `Environment=` lines of the unit), comments excluded.
fn deploy_env(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut in_env = false;
    for line in text.lines().map(str::trim) {
        let body = if let Some(rest) = line.strip_prefix("Environment=") {
            rest
        } else if let Some(rest) = line.strip_prefix("ENV ") {
            in_env = rest.ends_with('\\');
            rest
        } else if in_env {
            in_env = line.ends_with('\\');
            line
        } else {
            continue;
        };
        for pair in body.trim_end_matches('\\').split_whitespace() {
            if let Some((k, v)) = pair.split_once('=') {
                out.push((k.to_string(), v.to_string()));
            }
        }
    }
    out
}

#[tokio::test]
async fn the_container_image_and_the_systemd_unit_configure_a_working_gateway() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dockerfile = std::fs::read_to_string(root.join("docs/deploy/Dockerfile")).unwrap();
    let unit = std::fs::read_to_string(root.join("docs/deploy/pairgate.service")).unwrap();
    let froms = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .count();
    assert_eq!(
        froms, 2,
        "multi-stage: a build stage and a slim runtime stage"
    );
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime stage sets USER");
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "{user}"
    );
    assert!(dockerfile.contains("CMD [\"serve\"]"));
    for directive in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "DynamicUser=yes",
        "CapabilityBoundingSet=\n",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit.contains(directive), "unit lacks {directive}");
    }

    // Every setting they give is one the gateway knows (it refuses unknown PAIRGATE_ names).
    for (file, text) in [("Dockerfile", &dockerfile), ("pairgate.service", &unit)] {
        let env = deploy_env(text);
        assert!(
            env.iter().any(|(k, _)| k == "PAIRGATE_DATA_DIR"),
            "{file}: {env:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = command(dir.path());
        for (k, v) in &env {
            let v = if k == "PAIRGATE_DATA_DIR" {
                dir.path().join("data").display().to_string()
            } else {
                v.clone()
            };
            cmd.env(k, v);
        }
        cmd.args(["doctor", "--json", "--skip-plugins"]);
        let (_, out, err) = run(cmd, None).await;
        let checks: Vec<Value> =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{file}: {e}: {out} {err}"));
        assert_eq!(status_of(&checks, "config"), "ok", "{file}: {checks:?}");
    }

    // systemd itself accepts the unit (with ExecStart pointing at the binary under test).
    let unit_path = tempfile::tempdir().unwrap();
    let path = unit_path.path().join("pairgate.service");
    let bin = pairgate_tests::gateway::binary();
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/pairgate", &bin.display().to_string()),
    )
    .unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (package systemd) is needed to check the unit");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Redeems `code` at the token endpoint as if forwarded for `xff`; returns the status.
async fn redeem_as(gw: &Gateway, code: &str, xff: &str) -> u16 {
    let key = app::key(KeyKind::Ed25519);
    let p = app::proof(&key, "POST", &gw.url("/oauth/token"), None, None);
    let form = format!(
        "grant_type={}&pairing_code={code}",
        pairgate_protocol::oauth::GRANT_TYPE_PAIRING.replace(':', "%3A")
    );
    reqwest::Client::new()
        .post(gw.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-for", xff)
        .header("dpop", p)
        .body(form)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn lockouts_follow_the_client_behind_a_trusted_proxy_and_ignore_spoofed_headers() {
    let guess = |gw: &Gateway| {
        pairgate_protocol::pairing::PairingString::generate(&gw.base_url, &mut rand_core::OsRng)
            .unwrap()
            .encode()
    };
    // Behind a trusted proxy (the tests' loopback peer): one client's guesses lock out that
    // client only.
    let gw = Gateway::builder(Backend::Sqlite)
        .config("trusted_proxies = [\"127.0.0.1\"]\n")
        .start()
        .await;
    for _ in 0..20 {
        assert_eq!(redeem_as(&gw, &guess(&gw), "198.51.100.7").await, 400);
    }
    let real = app::pairing_string(&gw, &[]).await;
    assert_eq!(
        redeem_as(&gw, &real, "198.51.100.7").await,
        429,
        "the guesser is locked out"
    );
    assert_eq!(
        redeem_as(&gw, &real, "198.51.100.8").await,
        200,
        "another client is not"
    );

    // Without trusted proxies the header means nothing: changing it does not escape a lockout.
    let gw = Gateway::start(Backend::Sqlite).await;
    for i in 0..20 {
        assert_eq!(
            redeem_as(&gw, &guess(&gw), &format!("198.51.100.{i}")).await,
            400
        );
    }
    let real = app::pairing_string(&gw, &[]).await;
    assert_eq!(redeem_as(&gw, &real, "198.51.100.99").await, 429);
}

#[tokio::test]
async fn beyond_max_in_flight_requests_the_gateway_sheds_load_at_once() {
    let (gw, fake) = pairgate_tests::providers::start_with(
        Backend::Sqlite,
        "",
        &[("PAIRGATE_MAX_IN_FLIGHT_REQUESTS", "2")],
    )
    .await;
    let client = app::pair(&gw, KeyKind::Ed25519, &[]).await;
    fake.set(pairgate_tests::fake::Behaviour {
        delay: std::time::Duration::from_millis(1500),
        ..Default::default()
    });
    let slow =
        [client.clone(), client.clone()].map(|c| tokio::spawn(async move { chat(&c).await }));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let res = client
        .post("/v1/chat/completions")
        .json(&serde_json::json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    assert!(
        started.elapsed() < std::time::Duration::from_millis(500),
        "refused at once"
    );
    let health = reqwest::get(gw.url("/healthz")).await.unwrap().status();
    assert_eq!(health, 200, "health is never shed");
    for h in slow {
        assert_eq!(h.await.unwrap(), 200);
    }
    fake.set(pairgate_tests::fake::Behaviour::default());
    assert_eq!(chat(&client).await, 200, "capacity is back");
}
