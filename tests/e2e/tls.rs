//! HTTPS served directly: pairing and a relayed call over TLS with a client that trusts only a
//! certificate made here (rcgen), the certificate replaced on disk and served without a restart,
//! secure owner cookies, and start-up refusing missing or bad certificate files (exit 78).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pairgate_protocol::keys::KeyKind;
use pairgate_sdk::{Client, MemoryStorage, PairOptions};
use pairgate_tests::app::pairing_string;
use pairgate_tests::gateway::{command, run};
use pairgate_tests::{Backend, providers};
use serde_json::json;

/// A self-signed certificate for 127.0.0.1 and localhost: (certificate PEM, key PEM, DER).
pub(crate) fn self_signed() -> (String, String, Vec<u8>) {
    let made =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    (
        made.cert.pem(),
        made.signing_key.serialize_pem(),
        made.cert.der().to_vec(),
    )
}

/// Writes a file the way a certificate renewal does: to a temporary name, then renamed over.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

/// A client trusting exactly `cert_pem`, reporting the peer certificate of each response.
fn client_trusting(cert_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .tls_info(true)
        .build()
        .unwrap()
}

async fn served_cert(client: &reqwest::Client, url: &str) -> Vec<u8> {
    let res = client.get(url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("the TLS peer certificate is reported")
        .to_vec()
}

/// Context switches so far of the gateway's threads whose name starts with `prefix`.
fn thread_switches(pid: u32, prefix: &str) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .filter(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Name:"))
                .is_some_and(|n| n.trim().starts_with(prefix))
        })
        .flat_map(|status| {
            status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

pub(crate) fn tls_env(cert: &Path, key: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("PAIRGATE_TLS__CERT_FILE", cert.display().to_string()),
        ("PAIRGATE_TLS__KEY_FILE", key.display().to_string()),
        ("PAIRGATE_TLS__RELOAD_INTERVAL", "200ms".to_string()),
    ]
}

pub(crate) fn files(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("cert.pem"), dir.join("key.pem"))
}

#[tokio::test]
async fn pairs_and_relays_over_https_and_reloads_a_replaced_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = files(certs.path());
    let (cert_pem, key_pem, der) = self_signed();
    std::fs::write(&cert_file, &cert_pem).unwrap();
    std::fs::write(&key_file, key_pem).unwrap();
    let env = tls_env(&cert_file, &key_file);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (gw, fake) = providers::start_with(Backend::Sqlite, "", &env).await;
    assert!(gw.base_url.starts_with("https://"), "{}", gw.base_url);

    // Plain HTTP on the TLS port gets no answer.
    let plain = format!("http://{}/healthz", gw.addr);
    assert!(reqwest::get(plain).await.is_err());

    // Pairing (the CLI embeds the https URL) and a relayed call, over TLS only.
    let http = client_trusting(&cert_pem);
    let code = pairing_string(&gw, &[]).await;
    let app = Client::pair(
        &code,
        PairOptions {
            key_kind: KeyKind::Ed25519,
            http: Some(http.clone()),
            ..Default::default()
        },
        MemoryStorage::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("pairing over https failed: {e}"));
    assert!(app.gateway_url().starts_with("https://127.0.0.1:"));
    let res = app
        .post("/v1/chat/completions")
        .json(&json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(fake.last().path, "/v1/chat/completions");
    assert_eq!(served_cert(&http, &gw.url("/healthz")).await, der);

    // Each TLS connection, its handshake included, is served on a connection thread.
    let pid = gw.pid().expect("the gateway runs");
    let before = thread_switches(pid, "pairgate-http");
    for _ in 0..20 {
        let fresh = client_trusting(&cert_pem);
        assert_eq!(served_cert(&fresh, &gw.url("/healthz")).await, der);
    }
    let after = thread_switches(pid, "pairgate-http");
    assert!(
        after >= before + 20,
        "20 new TLS connections woke the connection threads {} times",
        after - before
    );

    // A renewed certificate is picked up without a restart; new connections get it.
    let (new_pem, new_key, new_der) = self_signed();
    replace(&key_file, &new_key);
    replace(&cert_file, &new_pem);
    let renewed = client_trusting(&new_pem);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(res) = renewed.get(gw.url("/healthz")).send().await {
            let got = res
                .extensions()
                .get::<reqwest::tls::TlsInfo>()
                .and_then(|i| i.peer_certificate())
                .map(<[u8]>::to_vec);
            assert_eq!(got.as_deref(), Some(new_der.as_slice()));
            break;
        }
        assert!(Instant::now() < deadline, "not reloaded: {}", gw.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        gw.logs().contains("TLS certificate reloaded"),
        "{}",
        gw.logs()
    );

    // A broken replacement is refused; the gateway keeps serving the last good certificate.
    replace(&cert_file, "not a certificate\n");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !gw.logs().contains("TLS certificate not reloaded") {
        assert!(Instant::now() < deadline, "{}", gw.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fresh = client_trusting(&new_pem);
    assert_eq!(served_cert(&fresh, &gw.url("/healthz")).await, new_der);
    assert!(!gw.logs().contains("PRIVATE KEY"), "{}", gw.logs());
}

#[tokio::test]
async fn owner_cookies_are_secure_over_https() {
    let certs = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = files(certs.path());
    let (cert_pem, key_pem, _) = self_signed();
    std::fs::write(&cert_file, &cert_pem).unwrap();
    std::fs::write(&key_file, key_pem).unwrap();
    let mut b = pairgate_tests::Gateway::builder(Backend::Sqlite);
    for (k, v) in tls_env(&cert_file, &key_file) {
        b = b.env(k, v);
    }
    let gw = b.start().await;
    pairgate_tests::owner::create_owner(&gw).await;
    let res = client_trusting(&cert_pem)
        .post(gw.url("/admin/api/login"))
        .json(&json!({"username": "owner", "password": pairgate_tests::owner::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn missing_or_bad_certificate_files_stop_start_up_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = files(dir.path());
    let (cert_pem, key_pem, _) = self_signed();
    let (_, other_key, _) = self_signed();
    let serve = |cert: &Path, key: &Path| {
        let mut cmd = command(dir.path());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .env("PAIRGATE_TLS__CERT_FILE", cert)
            .env("PAIRGATE_TLS__KEY_FILE", key);
        cmd
    };
    let key_secret_line = key_pem.lines().nth(1).unwrap().to_string();

    // Missing certificate file.
    std::fs::write(&key_file, key_pem).unwrap();
    let (code, _, err) = run(serve(&cert_file, &key_file), None).await;
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains(&cert_file.display().to_string()) && err.contains("does not exist"),
        "{err}"
    );

    // Not PEM at all.
    std::fs::write(&cert_file, "hello").unwrap();
    let (code, _, err) = run(serve(&cert_file, &key_file), None).await;
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("contains no PEM certificate"), "{err}");

    // A key file holding a certificate, not a key: no key material in the message.
    std::fs::write(&cert_file, cert_pem).unwrap();
    let (code, _, err) = run(serve(&cert_file, &cert_file), None).await;
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("contains no PEM private key"), "{err}");

    // A key of another certificate.
    std::fs::write(&key_file, other_key).unwrap();
    let (code, _, err) = run(serve(&cert_file, &key_file), None).await;
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("does not belong to the certificate"), "{err}");
    assert!(
        !err.contains(&key_secret_line) && !err.contains("PRIVATE KEY"),
        "{err}"
    );

    // Only one of the two configured.
    let mut cmd = command(dir.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("PAIRGATE_TLS__CERT_FILE", cert_file);
    let (code, _, err) = run(cmd, None).await;
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("must be set together"), "{err}");
    assert!(!dir.path().join("data").exists(), "nothing was created");
}
