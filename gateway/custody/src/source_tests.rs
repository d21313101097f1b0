//! Tests for master key sources (file, env, systemd, command, keyring, passphrase).

use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use secrecy::SecretString;

use super::*;
use crate::master::new_salt;

fn no_env(_: &str) -> Option<String> {
    None
}

#[cfg(unix)]
fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn file_source_creates_0600_file_and_reloads_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let src = MasterKeySource::File {
        path: path.clone(),
        create_if_missing: true,
    };
    let first = load(&src, &no_env).await.unwrap();
    assert!(first.created);
    assert_eq!(first.warnings.len(), 1);
    assert!(
        first.warnings[0].contains("beside the database"),
        "{:?}",
        first.warnings
    );
    #[cfg(unix)]
    assert_eq!(mode_of(&path), 0o600);
    // The file holds exactly the one raw-key format, and no temp file is left behind.
    let content = std::fs::read_to_string(&path).unwrap();
    assert_eq!(content.trim_end().len(), 44);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let again = load(&src, &no_env).await.unwrap();
    assert!(!again.created);
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    assert_eq!(again.key.key_id(), first.key.key_id());
}

#[tokio::test]
async fn file_source_rejects_garbage_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    std::fs::write(&path, "this is not a key\n").unwrap();
    let src = MasterKeySource::File {
        path: path.clone(),
        create_if_missing: true,
    };
    let err = load(&src, &no_env).await.unwrap_err();
    assert!(matches!(err, CustodyError::BadKeyMaterial { .. }), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(!err.to_string().contains("this is not"), "{err}");
    // Garbage is never silently replaced by a fresh key.
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "this is not a key\n"
    );

    let missing = MasterKeySource::File {
        path: dir.path().join("absent.key"),
        create_if_missing: false,
    };
    let err = load(&missing, &no_env).await.unwrap_err();
    assert!(matches!(err, CustodyError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("absent.key"), "{err}");

    let no_dir = MasterKeySource::File {
        path: dir.path().join("no-such-dir").join("master.key"),
        create_if_missing: true,
    };
    let err = load(&no_dir, &no_env).await.unwrap_err();
    assert!(matches!(err, CustodyError::Io { .. }), "{err}");
    assert!(err.to_string().contains("new master key file"), "{err}");
}

#[cfg(unix)]
#[tokio::test]
async fn file_source_warns_on_group_or_world_readable_file() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let key = MasterKey::generate();
    std::fs::write(&path, format!("{}\n", key.export_base64().expose_secret())).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let src = MasterKeySource::File {
        path: path.clone(),
        create_if_missing: false,
    };
    let loaded = load(&src, &no_env).await.unwrap();
    assert_eq!(loaded.key.key_id(), key.key_id());
    assert_eq!(loaded.warnings.len(), 1);
    assert!(
        loaded.warnings[0].contains("mode 644"),
        "{:?}",
        loaded.warnings
    );
    assert!(
        loaded.warnings[0].contains("chmod 600"),
        "{:?}",
        loaded.warnings
    );
}

#[tokio::test]
async fn env_source_uses_injected_lookup() {
    let key = MasterKey::generate();
    let b64 = key.export_base64().expose_secret().to_owned();
    let env = move |var: &str| (var == "PAIRGATE_MASTER_KEY").then(|| format!(" {b64}\n"));
    let src = MasterKeySource::Env {
        var: "PAIRGATE_MASTER_KEY".into(),
    };
    assert_eq!(load(&src, &env).await.unwrap().key.key_id(), key.key_id());

    let err = load(
        &MasterKeySource::Env {
            var: "OTHER".into(),
        },
        &env,
    )
    .await
    .unwrap_err();
    assert_eq!(err.to_string(), "environment variable OTHER not found");
    let bad = |_: &str| Some("short".to_owned());
    let err = load(&src, &bad).await.unwrap_err();
    assert!(matches!(err, CustodyError::BadKeyMaterial { .. }), "{err}");
    assert!(err.to_string().contains("PAIRGATE_MASTER_KEY") && !err.to_string().contains("short"));
}

#[tokio::test]
async fn systemd_credential_source_reads_credentials_directory() {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::generate();
    std::fs::write(
        dir.path().join("pairgate-master"),
        key.export_base64().expose_secret(),
    )
    .unwrap();
    let creds = dir.path().display().to_string();
    let env = move |var: &str| (var == "CREDENTIALS_DIRECTORY").then(|| creds.clone());
    let src = MasterKeySource::SystemdCredential {
        name: "pairgate-master".into(),
    };
    assert_eq!(load(&src, &env).await.unwrap().key.key_id(), key.key_id());

    let err = load(&src, &no_env).await.unwrap_err();
    assert!(matches!(err, CustodyError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("CREDENTIALS_DIRECTORY"), "{err}");
    let sneaky = MasterKeySource::SystemdCredential {
        name: "../etc/passwd".into(),
    };
    assert!(matches!(
        load(&sneaky, &env).await,
        Err(CustodyError::InvalidConfig { .. })
    ));
}

#[tokio::test]
async fn command_source_success_failure_and_timeout() {
    let key = MasterKey::generate();
    let ok = MasterKeySource::Command {
        program: "/bin/echo".into(),
        args: vec![key.export_base64().expose_secret().to_owned()],
        timeout: Duration::from_secs(5),
    };
    assert_eq!(load(&ok, &no_env).await.unwrap().key.key_id(), key.key_id());

    let fail = MasterKeySource::Command {
        program: "/bin/false".into(),
        args: vec![],
        timeout: Duration::from_secs(5),
    };
    let err = load(&fail, &no_env).await.unwrap_err();
    assert!(matches!(err, CustodyError::CommandFailed { .. }), "{err}");
    assert!(
        err.to_string().starts_with("command `/bin/false` failed"),
        "{err}"
    );

    let slow = MasterKeySource::Command {
        program: "/bin/sleep".into(),
        args: vec!["5".into()],
        timeout: Duration::from_millis(200),
    };
    let start = Instant::now();
    let err = load(&slow, &no_env).await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
    match err {
        CustodyError::CommandTimeout { program, timeout } => {
            assert_eq!(program, "/bin/sleep");
            assert_eq!(timeout, Duration::from_millis(200));
        }
        e => panic!("unexpected {e}"),
    }
}

#[tokio::test]
async fn passphrase_source_derives_same_key_from_every_origin() {
    let salt = new_salt().to_vec();
    let params = KdfParams::testing();
    let env = |var: &str| (var == "PG_PASS").then(|| "open sesame\n".to_owned());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pass");
    std::fs::write(&file, "open sesame\n").unwrap();
    let origins = [
        PassphraseFrom::Env("PG_PASS".into()),
        PassphraseFrom::File(file),
        PassphraseFrom::Command {
            program: "/bin/echo".into(),
            args: vec!["open sesame".into()],
            timeout: Duration::from_secs(5),
        },
    ];
    let expected = MasterKey::from_passphrase(&"open sesame".into(), &salt, &params).unwrap();
    for from in origins {
        let src = MasterKeySource::Passphrase {
            from,
            salt: salt.clone(),
            params,
        };
        let loaded = load(&src, &env).await.unwrap();
        assert_eq!(loaded.key.key_id(), expected.key_id());
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.contains("Argon2id parameters"))
        );
    }
    let missing = MasterKeySource::Passphrase {
        from: PassphraseFrom::Env("NOPE".into()),
        salt,
        params,
    };
    assert!(matches!(
        load(&missing, &env).await,
        Err(CustodyError::NotFound { .. })
    ));
}

/// Either the OS keychain works (store, load, delete round trip) or every call fails with
/// a clear "keychain unavailable"/"entry not found" error naming the entry.
#[tokio::test]
async fn keyring_source_works_or_says_clearly_why_not() {
    let service = "pairgate-custody-test";
    // A fixed name: where keyutils half-stores an entry it cannot delete again, reruns
    // overwrite it instead of accumulating keys against the user's kernel quota.
    let user = "custody-unit-test".to_owned();
    let src = MasterKeySource::Keyring {
        service: service.into(),
        user: user.clone(),
    };
    let key = MasterKey::generate();
    match crate::keyring_store(service, &user, key.export_base64()).await {
        Ok(()) => {
            let loaded = load(&src, &no_env).await;
            crate::keyring_delete(service, &user).await.unwrap();
            assert_eq!(loaded.unwrap().key.key_id(), key.key_id());
            let err = load(&src, &no_env).await.unwrap_err();
            assert!(matches!(err, CustodyError::NotFound { .. }), "{err}");
            assert!(err.to_string().contains(&user), "{err}");
        }
        Err(store_err) => {
            let _ = crate::keyring_delete(service, &user).await;
            let msg = store_err.to_string();
            assert!(
                matches!(store_err, CustodyError::KeyringUnavailable { .. }),
                "unexpected store error: {msg}"
            );
            assert!(msg.starts_with("OS keychain unavailable: "), "{msg}");
            let err = load(&src, &no_env).await.unwrap_err();
            let msg = err.to_string();
            match err {
                CustodyError::KeyringUnavailable { .. } => {
                    assert!(msg.starts_with("OS keychain unavailable: "), "{msg}")
                }
                CustodyError::NotFound { .. } => {
                    assert!(
                        msg.starts_with("keychain entry (service `pairgate-custody-test`"),
                        "{msg}"
                    )
                }
                e => panic!("unexpected load error: {e}"),
            }
            assert!(!msg.contains(&key.export_base64().expose_secret()[..12]));
        }
    }
}

#[test]
fn debug_of_sources_and_loaded_shows_no_key() {
    let bytes = [0x5au8; 32];
    let loaded = Loaded {
        key: MasterKey::from_bytes(bytes),
        created: false,
        warnings: vec![],
    };
    let dbg = format!("{loaded:?}");
    assert!(dbg.contains("MasterKey(<redacted>, id="), "{dbg}");
    assert!(!dbg.contains(&STANDARD.encode(bytes)[..12]), "{dbg}");
    let p = SecretString::from("open sesame");
    assert!(!format!("{p:?}").contains("sesame"));
}

#[test]
fn load_and_resolve_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let src = MasterKeySource::Env { var: "X".into() };
    let fut = load(&src, &process_env);
    assert_send(&fut);
    let r = CredentialRef::Env { var: "X".into() };
    let fut2 = crate::resolve(&r, &process_env);
    assert_send(&fut2);
    // Dropped unpolled: no environment access happens.
    drop((fut, fut2));
    assert_eq!(process_env("PAIRGATE_CUSTODY_SURELY_UNSET_VAR"), None);
}
