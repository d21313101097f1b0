//! Key custody end to end: provider keys through the CLI on both backends, what the database
//! really holds, AAD binding, rotation with a grace period, references (env, file, command) and
//! their failures, master-key rotation and restart, a wrong master key, and (in `canary`) the
//! test that planted secrets appear in no output, response, log line or row.

mod canary;
mod support;

use std::time::{Duration, Instant};

use pairgate_protocol::keys::KeyKind;
use pairgate_sdk::{Client, MemoryStorage, PairOptions};
use pairgate_tests::app;
use pairgate_tests::gateway::{command, run};
use pairgate_tests::{Backend, Gateway};
use serde_json::Value;
use support::{
    add, cli, contains, credential_row, dump, exec, files, ok, ok_cfg, ok_json, random_hex, table,
};

const BOTH: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// Parses the `ok ... fingerprint=F last4=L` line(s) of `credential check`.
fn fingerprints(check_out: &str) -> Vec<String> {
    check_out
        .lines()
        .filter_map(|l| l.split("fingerprint=").nth(1))
        .map(|rest| rest.split(' ').next().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn a_key_added_on_stdin_is_sealed_in_the_database_and_never_shown() {
    for backend in BOTH {
        let gw = Gateway::start(backend).await;
        let value = format!("sk-test-{}", random_hex(20));
        let added = add(&gw, "openai", &[], &value).await;
        let id = added["id"].as_str().unwrap().to_string();
        assert!(id.starts_with("cr_"), "{added}");
        assert_eq!(added["provider"], "openai");
        assert_eq!(added["name"], "default");
        assert_eq!(added["kind"], "stored");
        assert_eq!(added["last4"], &value[value.len() - 4..]);
        let fp = added["fingerprint"].as_str().unwrap().to_string();
        assert!(fp.len() == 12 && fp.chars().all(|c| c.is_ascii_hexdigit()));

        // Plain output, list and check show fingerprint and last4, never the value.
        let (code, out, err) = cli(&gw, &["credential", "add", "anthropic"], Some(&value)).await;
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(&fp), "same value, same fingerprint: {out}");
        let list = ok(&gw, &["credential", "list"], None).await;
        let list_json = ok_json(&gw, &["credential", "list"], None).await;
        let check = ok(&gw, &["credential", "check", "openai"], None).await;
        for text in [&out, &err, &list, &list_json.to_string(), &check] {
            assert!(!text.contains(&value), "{text}");
            assert!(!text.contains(&value[..20]), "{text}");
        }
        assert!(
            list.contains(&id) && list.contains(&fp) && list.contains("stored"),
            "{list}"
        );
        assert_eq!(list_json.as_array().unwrap().len(), 2, "{list_json}");
        assert!(
            check.starts_with("ok openai/default") && check.contains(&fp),
            "{check}"
        );

        // The database holds the documented envelope, not the value.
        let row = credential_row(&gw, &id).await;
        assert_eq!(row.get("wrapped_dek").len(), 81, "{backend:?}");
        assert_eq!(row.get("ciphertext").len(), 41 + value.len());
        assert_eq!(row.get("ciphertext")[0], 1);
        assert_eq!(row.get("reference"), b"NULL");
        let all = dump(&gw).await;
        for (place, bytes) in &all {
            assert!(
                !contains(bytes, value.as_bytes()),
                "{backend:?}: value in {place}"
            );
        }
        if backend == Backend::Sqlite {
            for (name, bytes) in files(&gw.data_dir()) {
                assert!(!contains(&bytes, value.as_bytes()), "value in file {name}");
            }
        }
        // Every owner action is audited, with fingerprints and no value.
        let audit: Vec<String> = table(&all, "audit_log")
            .iter()
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect();
        assert!(audit.iter().any(|v| v == "credential.added"), "{audit:?}");
        assert!(audit.iter().any(|v| v == "credential.checked"), "{audit:?}");
        assert!(audit.iter().any(|v| v.contains(&fp)), "{audit:?}");

        // Refusals: empty input, a duplicate, bad names, reserved variables.
        for (args, stdin, code, needle) in [
            (vec!["credential", "add", "groq"], None, 64, "empty"),
            (vec!["credential", "add", "groq"], Some("\n"), 64, "empty"),
            (
                vec!["credential", "add", "groq"],
                Some("  \r\n"),
                64,
                "empty",
            ),
            (
                vec!["credential", "add", "openai"],
                Some("sk-other-value-123"),
                1,
                "already exists",
            ),
            (
                vec!["credential", "add", "OpenAI"],
                Some("sk-x-123456789"),
                64,
                "provider id",
            ),
            (
                vec!["credential", "add", "groq", "--name", "a/b"],
                Some("sk-x-123456789"),
                64,
                "name",
            ),
            (
                vec!["credential", "add", "groq", "--from-env", "PAIRGATE_GROQ"],
                None,
                64,
                "reserved",
            ),
            (
                vec!["credential", "check", "groq"],
                None,
                1,
                "no credential groq/default",
            ),
        ] {
            let (c, out, err) = cli(&gw, &args, stdin).await;
            assert_eq!(c, code, "{args:?}: {err}");
            assert!(err.contains(needle), "{args:?}: {err}");
            assert_eq!(err.trim().lines().count(), 1, "{err}");
            assert!(out.is_empty(), "{out}");
        }
        assert_eq!(
            ok_json(&gw, &["credential", "list"], None)
                .await
                .as_array()
                .unwrap()
                .len(),
            2
        );

        // Removal, by provider and by id.
        ok(&gw, &["credential", "remove", "openai"], None).await;
        let other = list_json[0]["id"].as_str().unwrap().to_string();
        let other = if other == id {
            list_json[1]["id"].as_str().unwrap().to_string()
        } else {
            other
        };
        ok(&gw, &["credential", "remove", "--id", &other], None).await;
        assert_eq!(
            ok_json(&gw, &["credential", "list"], None).await,
            serde_json::json!([])
        );
        let (c, _, err) = cli(&gw, &["credential", "remove", "openai"], None).await;
        assert_eq!(c, 1, "{err}");
    }
}

#[tokio::test]
async fn a_ciphertext_copied_onto_another_row_fails_for_that_credential_only() {
    for backend in BOTH {
        let gw = Gateway::start(backend).await;
        let a = format!("sk-openai-{}", random_hex(16));
        let b = format!("sk-ant-{}", random_hex(16));
        add(&gw, "openai", &[], &a).await;
        let victim = add(&gw, "anthropic", &[], &b).await;
        let victim_id = victim["id"].as_str().unwrap();
        let changed = exec(
            &gw,
            "UPDATE credentials SET \
               wrapped_dek = (SELECT wrapped_dek FROM credentials WHERE provider = $1), \
               ciphertext = (SELECT ciphertext FROM credentials WHERE provider = $1) \
             WHERE provider = $2",
            &["openai", "anthropic"],
        )
        .await;
        assert_eq!(changed, 1);

        let (code, out, err) = cli(&gw, &["credential", "check", "anthropic"], None).await;
        assert_eq!(code, 1, "{backend:?}: {out}{err}");
        assert!(err.contains("anthropic/default"), "{err}");
        assert!(
            err.contains(victim_id) && err.contains("cannot be decrypted"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        for text in [&out, &err] {
            assert!(!text.contains(&a) && !text.contains(&b), "{text}");
        }
        // The other credential, and listing, still work.
        let check = ok(&gw, &["credential", "check", "openai"], None).await;
        assert!(check.starts_with("ok openai/default"), "{check}");
        assert_eq!(
            ok_json(&gw, &["credential", "list"], None)
                .await
                .as_array()
                .unwrap()
                .len(),
            2
        );
        // Only the ciphertext swapped (own data key): fails too.
        let other = format!("sk-ant-{}", random_hex(16));
        ok(&gw, &["credential", "rotate", "anthropic"], Some(&other)).await;
        ok(&gw, &["credential", "check", "anthropic"], None).await;
        exec(
            &gw,
            "UPDATE credentials SET ciphertext = (SELECT ciphertext FROM credentials WHERE provider = $1) \
             WHERE provider = $2",
            &["openai", "anthropic"],
        )
        .await;
        let (code, _, err) = cli(&gw, &["credential", "check", "anthropic"], None).await;
        assert_eq!(code, 1, "{err}");
        assert!(err.contains(victim_id), "{err}");
        ok(&gw, &["credential", "check", "openai"], None).await;
    }
}

#[tokio::test]
async fn rotation_keeps_the_old_value_usable_only_during_the_grace_period() {
    for backend in BOTH {
        let gw = Gateway::start(backend).await;
        let v1 = format!("sk-first-{}", random_hex(16));
        let v2 = format!("sk-second-{}", random_hex(16));
        let fp1 = add(&gw, "openai", &[], &v1).await["fingerprint"]
            .as_str()
            .unwrap()
            .to_string();
        let grace = Duration::from_secs(5);
        let started = Instant::now();
        let rotated = ok_json(
            &gw,
            &["credential", "rotate", "openai", "--grace", "5s"],
            Some(&format!("{v2}\n")),
        )
        .await;
        let fp2 = rotated["fingerprint"].as_str().unwrap().to_string();
        assert_ne!(fp1, fp2);
        assert_eq!(rotated["last4"], &v2[v2.len() - 4..]);
        assert!(rotated["grace_until"].is_i64(), "{rotated}");
        assert!(rotated["rotated_at"].is_i64(), "{rotated}");

        // During the grace period both values decrypt.
        let check = ok(&gw, &["credential", "check", "openai"], None).await;
        assert!(
            started.elapsed() < grace,
            "the machine is too slow for this test"
        );
        assert_eq!(fingerprints(&check), [fp2.clone(), fp1.clone()], "{check}");
        assert!(
            check.lines().nth(1).unwrap().contains("previous"),
            "{check}"
        );
        let list = ok_json(&gw, &["credential", "list"], None).await;
        assert_eq!(list[0]["grace_until"], rotated["grace_until"], "{list}");
        for text in [&check, &list.to_string(), &rotated.to_string()] {
            assert!(!text.contains(&v1) && !text.contains(&v2), "{text}");
        }

        // After it, only the new one; the running gateway deletes the old ciphertext by itself.
        tokio::time::sleep(grace.saturating_sub(started.elapsed()) + Duration::from_millis(300))
            .await;
        let id = rotated["id"].as_str().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while credential_row(&gw, id).await.get("previous_ciphertext") != b"NULL" {
            assert!(
                Instant::now() < deadline,
                "{backend:?}: old value still stored"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let check = ok(&gw, &["credential", "check", "openai"], None).await;
        assert_eq!(fingerprints(&check), [fp2], "{check}");
        let row = credential_row(&gw, rotated["id"].as_str().unwrap()).await;
        assert_eq!(row.get("previous_ciphertext"), b"NULL", "{backend:?}");
        assert_eq!(row.get("previous_wrapped_dek"), b"NULL");

        // Without a grace period the old value is dropped at once; the same value is refused.
        let v3 = format!("sk-third-{}", random_hex(16));
        ok(&gw, &["credential", "rotate", "openai"], Some(&v3)).await;
        let check = ok(&gw, &["credential", "check", "openai"], None).await;
        assert_eq!(fingerprints(&check).len(), 1, "{check}");
        let (code, _, err) = cli(&gw, &["credential", "rotate", "openai"], Some(&v3)).await;
        assert_eq!(code, 64, "{err}");
        assert!(err.contains("same as the current one"), "{err}");
        let (code, _, err) = cli(&gw, &["credential", "rotate", "nope"], Some(&v3)).await;
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("no credential nope/default"), "{err}");
    }
}

#[tokio::test]
async fn references_resolve_when_used_and_broken_ones_store_nothing() {
    for backend in BOTH {
        let env_value = format!("sk-from-env-{}", random_hex(12));
        let gw = Gateway::builder(backend)
            .env("CUSTODY_TEST_OPENAI", &env_value)
            .start()
            .await;

        // Environment variable: same fingerprint as the same value stored.
        let by_ref = add(
            &gw,
            "openai",
            &["--from-env", "CUSTODY_TEST_OPENAI"],
            "ignored",
        )
        .await;
        assert_eq!(by_ref["kind"], "reference");
        assert_eq!(by_ref["source"], "environment variable CUSTODY_TEST_OPENAI");
        assert_eq!(by_ref["last4"], &env_value[env_value.len() - 4..]);
        let stored = add(&gw, "openai", &["--name", "copy"], &env_value).await;
        assert_eq!(by_ref["fingerprint"], stored["fingerprint"]);
        let check = ok(&gw, &["credential", "check", "openai"], None).await;
        assert!(
            check.contains(by_ref["fingerprint"].as_str().unwrap()),
            "{check}"
        );
        let row = credential_row(&gw, by_ref["id"].as_str().unwrap()).await;
        assert_eq!(row.get("ciphertext"), b"NULL");
        assert!(!contains(row.get("reference"), env_value.as_bytes()));

        // File: read at use time, so a changed file shows a new fingerprint.
        let file = gw.dir.path().join("anthropic.key");
        std::fs::write(&file, "sk-ant-from-file-0001\n").unwrap();
        let path = file.display().to_string();
        let f = add(&gw, "anthropic", &["--from-file", &path], "ignored").await;
        assert_eq!(f["last4"], "0001");
        std::fs::write(&file, "sk-ant-from-file-0002\n").unwrap();
        let check = ok(&gw, &["credential", "check", "anthropic"], None).await;
        assert!(check.contains("last4=0002"), "{check}");
        assert!(
            !check.contains(f["fingerprint"].as_str().unwrap()),
            "{check}"
        );

        // Command output (no shell).
        let c = add(
            &gw,
            "mistral",
            &["--from-command", "echo", "--arg", "sk-from-command-wxyz"],
            "-",
        )
        .await;
        assert_eq!(c["last4"], "wxyz");
        assert_eq!(c["source"], "output of command `echo`");
        ok(&gw, &["credential", "check", "mistral"], None).await;
        let (code, _, err) = cli(
            &gw,
            &["credential", "rotate", "mistral"],
            Some("sk-new-value-1234"),
        )
        .await;
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("is a reference"), "{err}");

        // Broken references: a clear one-line error, and no row.
        let leak = format!("sk-leaked-by-helper-{}", random_hex(8));
        let script = format!("echo {leak}; echo {leak} >&2; exit 3");
        let started = Instant::now();
        for (args, needle) in [
            (vec!["--from-command", "false"], "command `false` failed"),
            (
                vec!["--from-command", "sh", "--arg", "-c", "--arg", &script],
                "command `sh` failed",
            ),
            (
                vec!["--from-command", "sleep", "--timeout", "1s", "--arg", "30"],
                "did not finish within 1s",
            ),
            (vec!["--from-command", "true"], "it is empty"),
            (
                vec!["--from-command", "/nonexistent/helper"],
                "/nonexistent/helper",
            ),
            (
                vec!["--from-env", "CUSTODY_TEST_UNSET"],
                "environment variable CUSTODY_TEST_UNSET not found",
            ),
            (
                vec!["--from-file", "/nonexistent/key"],
                "file /nonexistent/key not found",
            ),
        ] {
            let mut full = vec!["credential", "add", "groq"];
            full.extend_from_slice(&args);
            let (code, out, err) = cli(&gw, &full, None).await;
            assert_eq!(code, 1, "{args:?}: {err}");
            assert!(
                err.starts_with("pairgate: credential groq/default: "),
                "{err}"
            );
            assert!(err.contains(needle), "{args:?}: {err}");
            assert_eq!(err.trim().lines().count(), 1, "{err}");
            assert!(!out.contains(&leak) && !err.contains(&leak), "{out}{err}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the hanging command was killed"
        );
        let list = ok_json(&gw, &["credential", "list"], None).await;
        let providers: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["provider"].as_str().unwrap())
            .collect();
        assert_eq!(
            providers,
            ["anthropic", "mistral", "openai", "openai"],
            "{backend:?}"
        );
        let cells = dump(&gw).await;
        assert!(
            cells.iter().all(|(_, v)| !contains(v, b"groq")),
            "no partial row or audit entry"
        );
    }
}

/// A gateway whose config file the test can rewrite before restarting.
async fn gateway_with_config(backend: Backend) -> (Gateway, String) {
    let gw = Gateway::builder(backend)
        .config("")
        .env(
            "CUSTODY_TEST_PASSPHRASE",
            "correct horse battery staple, rotated",
        )
        .start()
        .await;
    let cfg = gw.dir.path().join("pairgate.toml").display().to_string();
    (gw, cfg)
}

async fn grant_status(client: &Client) -> u16 {
    client
        .get("/v1/grant")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn master_key_rotation_keeps_credentials_pairings_and_tokens() {
    for backend in BOTH {
        let (mut gw, cfg) = gateway_with_config(backend).await;
        let v1 = format!("sk-one-{}", random_hex(12));
        add(&gw, "openai", &[], &v1).await;
        add(&gw, "anthropic", &[], &format!("sk-two-{}", random_hex(12))).await;
        let v3 = format!("sk-three-{}", random_hex(12));
        ok(
            &gw,
            &["credential", "rotate", "openai", "--grace", "1h"],
            Some(&v3),
        )
        .await;
        let fps = |out: String| fingerprints(&out);
        let before_openai = fps(ok_cfg(&gw, &cfg, &["credential", "check", "openai"], None).await);
        let before_anthropic =
            fps(ok_cfg(&gw, &cfg, &["credential", "check", "anthropic"], None).await);
        assert_eq!(before_openai.len(), 2, "current and previous");
        let client = app::pair(&gw, KeyKind::Ed25519, &[]).await;
        let raw = app::raw_pair(&gw, KeyKind::P256, &[]).await;
        let pending = app::pairing_string(&gw, &[]).await;

        let new_key = gw.dir.path().join("keys").join("rotated.key");
        std::fs::create_dir_all(new_key.parent().unwrap()).unwrap();
        let new_key_s = new_key.display().to_string();
        let out = ok_cfg(
            &gw,
            &cfg,
            &["master-key", "rotate", "--to-file", &new_key_s],
            None,
        )
        .await;
        assert!(out.contains("2 stored credentials re-wrapped"), "{out}");
        assert!(out.contains(&format!("path = \"{new_key_s}\"")), "{out}");
        assert!(
            out.contains(&format!("PAIRGATE_MASTER_KEY__PATH={new_key_s}")),
            "{out}"
        );
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&new_key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let new_b64 = std::fs::read_to_string(&new_key).unwrap();
        assert!(
            !out.contains(new_b64.trim()),
            "the key itself is never printed"
        );

        // The running gateway still serves apps: tokens do not depend on the master key.
        assert_eq!(grant_status(&client).await, 200, "{backend:?}");
        // The old key no longer opens the database.
        let (code, _, err) = cli(&gw, &["credential", "list", "--config", &cfg], None).await;
        assert_eq!(code, 78, "{err}");
        assert!(err.contains("wrong master key"), "{err}");

        std::fs::write(&cfg, format!("[master_key]\npath = \"{new_key_s}\"\n")).unwrap();
        gw.restart().await;
        let after = fps(ok_cfg(&gw, &cfg, &["credential", "check", "openai"], None).await);
        assert_eq!(after, before_openai, "{backend:?}");
        let after = fps(ok_cfg(&gw, &cfg, &["credential", "check", "anthropic"], None).await);
        assert_eq!(after, before_anthropic);
        assert_eq!(grant_status(&client).await, 200, "an access token survives");
        client.refresh().await.unwrap();
        assert_eq!(grant_status(&client).await, 200);
        let p = app::proof(&raw.key, "POST", &gw.url("/oauth/token"), None, None);
        let (status, body, _) = app::oauth_post(
            &gw,
            "/oauth/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &raw.refresh_token),
            ],
            Some(&p),
        )
        .await;
        assert_eq!(status, 200, "a refresh token survives: {body}");
        let late = Client::pair(&pending, PairOptions::default(), MemoryStorage::new())
            .await
            .unwrap();
        assert_eq!(grant_status(&late).await, 200, "a pending pairing survives");

        // A second rotation, to a passphrase (fresh salt), then a restart with it.
        let out = ok_cfg(
            &gw,
            &cfg,
            &[
                "master-key",
                "rotate",
                "--to-passphrase-env",
                "CUSTODY_TEST_PASSPHRASE",
            ],
            None,
        )
        .await;
        assert!(out.contains("source = \"passphrase-env\""), "{out}");
        std::fs::write(
            &cfg,
            "[master_key]\nsource = \"passphrase-env\"\nvar = \"CUSTODY_TEST_PASSPHRASE\"\n",
        )
        .unwrap();
        gw.restart().await;
        let after = fps(ok_cfg(&gw, &cfg, &["credential", "check", "openai"], None).await);
        assert_eq!(after, before_openai);
        assert_eq!(grant_status(&client).await, 200);
        let cells = dump(&gw).await;
        let rotations = cells
            .iter()
            .filter(|(_, v)| v == b"master_key.rotated")
            .count();
        assert_eq!(rotations, 2, "{backend:?}");
    }
}

/// What must not change when a start fails: the SQLite file's bytes (and the data dir's file
/// names), and every row. The write-ahead log is merged first (by the test, which is what any
/// next open of the database does anyway), so the main file holds the whole state.
async fn snapshot(gw: &Gateway) -> (Vec<(String, Vec<u8>)>, Vec<(String, Vec<u8>)>) {
    if gw.db.backend == Backend::Sqlite {
        exec(gw, "PRAGMA wal_checkpoint(TRUNCATE)", &[]).await;
    }
    let bytes: Vec<(String, Vec<u8>)> = files(&gw.data_dir())
        .into_iter()
        .filter(|(n, _)| !n.ends_with("-wal") && !n.ends_with("-shm"))
        .map(|(n, b)| {
            if n == "pairgate.db" {
                (n, b)
            } else {
                (n, Vec::new())
            }
        })
        .collect();
    (bytes, dump(gw).await)
}

#[tokio::test]
async fn a_wrong_master_key_exits_78_with_one_line_and_changes_nothing() {
    for backend in BOTH {
        let mut gw = Gateway::start(backend).await;
        add(&gw, "openai", &[], &format!("sk-keep-{}", random_hex(12))).await;
        let client = app::pair(&gw, KeyKind::Ed25519, &[]).await;
        assert_eq!(grant_status(&client).await, 200);
        assert_eq!(gw.stop().await, Some(0));
        let before = snapshot(&gw).await;

        let key_file = gw.data_dir().join("master.key");
        let original = std::fs::read(&key_file).unwrap();
        let (wrong, _) = support::random_master_key();
        let serve = |extra_env: Vec<(&'static str, String)>| {
            let mut cmd = command(gw.dir.path());
            cmd.args(["serve", "--listen", "127.0.0.1:0"])
                .args(gw.state_args());
            for (k, v) in extra_env {
                cmd.env(k, v);
            }
            run(cmd, None)
        };
        let expect_78 = |(code, out, err): (i32, String, String), needle: &str| {
            assert_eq!(code, 78, "{backend:?}: {out}{err}");
            assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
            assert!(err.starts_with("pairgate: master key: "), "{err}");
            assert!(err.contains(needle), "{err}");
            assert!(!err.contains(&wrong) && !out.contains(&wrong), "{err}");
        };
        std::fs::write(&key_file, format!("{wrong}\n")).unwrap();
        expect_78(serve(vec![]).await, "wrong master key");
        expect_78(
            cli(&gw, &["credential", "list"], None).await,
            "wrong master key",
        );
        expect_78(cli(&gw, &["grant", "list"], None).await, "wrong master key");
        std::fs::write(&key_file, "not a key\n").unwrap();
        expect_78(serve(vec![]).await, "bad master key material");
        std::fs::write(&key_file, &original).unwrap();
        expect_78(
            serve(vec![
                ("PAIRGATE_MASTER_KEY__SOURCE", "env".into()),
                ("PAIRGATE_MASTER_KEY", wrong.clone()),
            ])
            .await,
            "wrong master key",
        );
        let after = snapshot(&gw).await;
        let describe = |files: &[(String, Vec<u8>)]| -> Vec<(String, usize)> {
            files.iter().map(|(n, b)| (n.clone(), b.len())).collect()
        };
        let first_diff = before.0.iter().zip(&after.0).find_map(|((n, a), (_, b))| {
            a.iter()
                .zip(b)
                .position(|(x, y)| x != y)
                .map(|i| (n.clone(), i))
        });
        assert!(
            before.0 == after.0,
            "{backend:?}: the data dir's files changed: {:?} -> {:?}, first difference {first_diff:?}",
            describe(&before.0),
            describe(&after.0)
        );
        assert!(before.1 == after.1, "{backend:?}: rows changed");

        // The right key still works.
        gw.restart().await;
        ok(&gw, &["credential", "check", "openai"], None).await;
        assert_eq!(grant_status(&client).await, 200);
    }
}

#[tokio::test]
async fn json_outputs_are_documents_without_sealed_fields() {
    let gw = Gateway::start(Backend::Sqlite).await;
    let v = format!("sk-json-{}", random_hex(12));
    add(&gw, "openai", &[], &v).await;
    let list = ok_json(&gw, &["credential", "list"], None).await;
    let first: &Value = &list[0];
    let mut keys: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "created_at",
            "fingerprint",
            "grace_until",
            "id",
            "kind",
            "last4",
            "name",
            "provider",
            "rotated_at",
            "source"
        ]
    );
    let check = ok_json(&gw, &["credential", "check", "openai"], None).await;
    assert_eq!(check["resolved_fingerprint"], first["fingerprint"]);
    assert!(check["previous"].is_null());
}

/// A chat through the gateway; returns the status and the key the fake provider received.
async fn chat_key(client: &Client, fake: &pairgate_tests::fake::FakeProvider) -> (u16, String) {
    let status = pairgate_tests::providers::chat_status(client, "openai/gpt-4o-mini").await;
    let seen = fake
        .last()
        .header("authorization")
        .unwrap_or_default()
        .to_string();
    (status, seen)
}

#[tokio::test]
async fn in_place_rotation_reaches_a_running_gateway_without_restart() {
    use pairgate_tests::providers::{start, test_key};
    for backend in BOTH {
        let (mut gw, fake) = start(backend, "").await;
        let client = app::pair(&gw, KeyKind::Ed25519, &[]).await;
        let want = format!("Bearer {}", test_key("openai"));
        assert_eq!(chat_key(&client, &fake).await, (200, want.clone()));
        let key_file = gw.data_dir().join("master.key");
        let old_b64 = std::fs::read_to_string(&key_file).unwrap();

        let out = ok(&gw, &["master-key", "rotate", "--json"], None).await;
        let rotation: Value = serde_json::from_str(&out).unwrap();
        let (old_id, new_id) = (&rotation["old_key_id"], &rotation["new_key_id"]);
        assert_eq!(rotation["credentials"], 4, "{out}");
        let retired = gw
            .data_dir()
            .join(format!("master.key.retired-{}", old_id.as_str().unwrap()));
        assert_eq!(rotation["old_key_file"], retired.display().to_string());
        assert_eq!(std::fs::read_to_string(&retired).unwrap(), old_b64);
        assert_ne!(std::fs::read_to_string(&key_file).unwrap(), old_b64);
        assert!(!out.contains(old_b64.trim()), "no key material is printed");
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        // The running gateway decrypts with the new key on first use: no restart, no config.
        assert_eq!(
            chat_key(&client, &fake).await,
            (200, want.clone()),
            "{backend:?}"
        );
        let logs = gw.logs();
        assert!(logs.contains("master key reloaded"), "{logs}");
        assert!(logs.contains(new_id.as_str().unwrap()), "{logs}");
        // Credential writes from the running gateway's side go under the new key too.
        let listed = ok(&gw, &["credential", "list"], None).await;
        assert!(listed.contains("openai"), "{listed}");

        // A rotation that committed but never renamed KEY.next (a crash in between) is what
        // `--to-file KEY.next` leaves: the running gateway uses KEY.next, a start finishes it.
        let next = gw.data_dir().join("master.key.next");
        let mid = ok(
            &gw,
            &[
                "master-key",
                "rotate",
                "--json",
                "--to-file",
                &next.display().to_string(),
            ],
            None,
        )
        .await;
        let mid: Value = serde_json::from_str(&mid).unwrap();
        assert_eq!(chat_key(&client, &fake).await, (200, want.clone()));
        assert!(next.exists(), "a running gateway never renames key files");
        gw.restart().await;
        assert!(!next.exists());
        let now_in_file = std::fs::read_to_string(&key_file).unwrap();
        let retired = gw.data_dir().join(format!(
            "master.key.retired-{}",
            mid["old_key_id"].as_str().unwrap()
        ));
        assert!(retired.exists());
        assert_ne!(std::fs::read_to_string(&retired).unwrap(), now_in_file);
        assert!(
            gw.logs()
                .contains("completed an interrupted master-key rotation")
        );
        assert_eq!(chat_key(&client, &fake).await, (200, want.clone()));

        // SIGHUP re-reads the source; an unchanged key is reported, not swapped.
        gw.signal("HUP");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !gw.logs().contains("still holds the key in use") {
            assert!(Instant::now() < deadline, "{}", gw.logs());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // In-place rotation is for key files; other sources say what to give instead.
        let (code, _, err) = cli(
            &gw,
            &["master-key", "rotate", "--discard-old", "--to-env", "X"],
            None,
        )
        .await;
        assert_eq!(code, 2, "{err}");
        let out = ok(&gw, &["master-key", "rotate", "--discard-old"], None).await;
        assert!(out.contains("The old key was deleted."), "{out}");
        let leftovers: Vec<_> = std::fs::read_dir(gw.data_dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("master.key"))
            .collect();
        assert_eq!(
            leftovers.len(),
            3,
            "key, and the two kept retired keys: {leftovers:?}"
        );
        assert_eq!(chat_key(&client, &fake).await, (200, want));
    }
}
