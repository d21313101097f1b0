//! Slow and idle clients against the connection limits (`header_read_timeout`,
//! `body_read_timeout`, both 1 s here): a request head trickled past its limit is cut off, as are
//! a silent connection and an idle keep-alive one, while other clients are served; a body
//! trickled past its limit gets `408 request_timeout`, the connection is closed, and the grant's
//! limits hold nothing for it. Over plain HTTP and over TLS.

use std::sync::Arc;
use std::time::Duration;

use pairgate_protocol::keys::KeyKind;
use pairgate_tests::app::{proof, raw_pair};
use pairgate_tests::probe::books_with;
use pairgate_tests::{Backend, providers};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::hostile::{assert_openai_error, chat, signed, still_serves};

const TIMEOUTS: [(&str, &str); 2] = [
    ("PAIRGATE_HEADER_READ_TIMEOUT", "1s"),
    ("PAIRGATE_BODY_READ_TIMEOUT", "1s"),
];

/// How a trickling client fared: when the gateway closed its connection (`None`: not within
/// 6 s) and everything it answered.
#[derive(Debug)]
struct Trickled {
    closed_after: Option<Duration>,
    answer: String,
}

impl Trickled {
    /// Asserts the gateway closed the connection about one second (the limit) after it opened.
    fn assert_cut_at_the_limit(&self, what: &str) {
        let after = self
            .closed_after
            .unwrap_or_else(|| panic!("{what}: the connection was left open: {self:?}"));
        assert!(
            after >= Duration::from_millis(900) && after < Duration::from_secs(4),
            "{what}: closed after {after:?}"
        );
    }

    /// The JSON body of the answer.
    fn body(&self) -> Value {
        let (_, body) = self.answer.split_once("\r\n\r\n").unwrap_or_default();
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {}", self.answer))
    }
}

/// Sends `first` at once, then `rest` a byte every 200 ms, reading whatever comes back until the
/// gateway closes the connection.
async fn trickle<S>(conn: S, first: Vec<u8>, rest: Vec<u8>) -> Trickled
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut r, mut w) = tokio::io::split(conn);
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        if w.write_all(&first).await.is_err() || w.flush().await.is_err() {
            return;
        }
        for b in rest {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if w.write_all(&[b]).await.is_err() || w.flush().await.is_err() {
                return;
            }
        }
        // Keep the connection open (the write half alive) until the test is done with it.
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(w);
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let closed_after = loop {
        match tokio::time::timeout_at(started + Duration::from_secs(6), r.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break Some(started.elapsed()),
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => break None,
        }
    };
    writer.abort();
    Trickled {
        closed_after,
        answer: String::from_utf8_lossy(&answer).into_owned(),
    }
}

/// A request head that never ends, and the bytes to trickle after it.
fn endless_head() -> (Vec<u8>, Vec<u8>) {
    (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ".to_vec(),
        vec![b'a'; 40],
    )
}

#[tokio::test]
async fn trickled_heads_and_silent_or_idle_connections_are_cut_off_while_others_are_served() {
    let (gw, _fake) = providers::start_with(Backend::Sqlite, "", &TIMEOUTS).await;
    let app = raw_pair(&gw, KeyKind::Ed25519, &[]).await;
    still_serves(&gw, &app, "warm-up").await;

    let (head, rest) = endless_head();
    let slow = tokio::spawn(trickle(
        TcpStream::connect(gw.addr).await.unwrap(),
        head,
        rest,
    ));
    let silent = tokio::spawn(trickle(
        TcpStream::connect(gw.addr).await.unwrap(),
        Vec::new(),
        Vec::new(),
    ));
    // While they hang on, others are served on their own connections.
    for i in 0..3 {
        let took = still_serves(&gw, &app, &format!("request {i} beside a slow head")).await;
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
    let slow = slow.await.unwrap();
    slow.assert_cut_at_the_limit("a trickled request head");
    assert!(!slow.answer.contains(" 200 "), "{slow:?}");
    silent
        .await
        .unwrap()
        .assert_cut_at_the_limit("a connection that says nothing");

    // An idle keep-alive connection is closed once the next request head is overdue.
    let mut conn = TcpStream::connect(gw.addr).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = conn.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "keep-alive answered");
    let idle = trickle(conn, Vec::new(), Vec::new()).await;
    idle.assert_cut_at_the_limit("an idle keep-alive connection");
    still_serves(&gw, &app, "afterwards").await;
}

#[tokio::test]
async fn a_trickled_body_gets_408_closes_the_connection_and_holds_nothing_of_the_grant() {
    let (gw, _fake) = providers::start_with(Backend::Sqlite, "", &TIMEOUTS).await;
    // One request at a time: a permit held for the slow body would refuse the others.
    let app = raw_pair(
        &gw,
        KeyKind::Ed25519,
        &["--lifetime-tokens", "1000000", "--concurrent", "1"],
    )
    .await;
    still_serves(&gw, &app, "warm-up").await;

    let body = chat(false).to_string().into_bytes();
    let url = gw.url("/v1/chat/completions");
    let p = proof(&app.key, "POST", &url, Some(&app.access_token), Some(&body));
    let mut first = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {}\r\nAuthorization: DPoP {}\r\nDPoP: {p}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        gw.addr,
        app.access_token,
        body.len()
    )
    .into_bytes();
    first.extend_from_slice(&body[..10]);
    let slow = tokio::spawn(trickle(
        TcpStream::connect(gw.addr).await.unwrap(),
        first,
        body[10..].to_vec(),
    ));
    still_serves(&gw, &app, "beside a slow body").await;

    let slow = slow.await.unwrap();
    slow.assert_cut_at_the_limit("a trickled body");
    assert!(slow.answer.starts_with("HTTP/1.1 408"), "{slow:?}");
    assert!(
        slow.answer
            .to_ascii_lowercase()
            .contains("connection: close"),
        "{slow:?}"
    );
    assert_openai_error(&slow.body(), "request_timeout", "a trickled body");

    // The grant is whole: nothing reserved, no permit held, no ledger row for the cut request.
    let (s, answer, _) = signed(&gw, &app, chat(false).to_string().into_bytes(), &[]).await;
    assert_eq!(s, 200, "{answer}");
    let books = books_with(&gw, &app.grant_id, 3).await;
    assert_eq!(books.reservations, 0, "{books:?}");
    assert_eq!(books.lifetime_tokens().map(|t| t.1), Some(0), "{books:?}");
    assert_eq!(
        books.ledger.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![200; 3],
        "only the answered requests are in the ledger"
    );
    assert!(gw.logs().contains("request_timeout"), "{}", gw.logs());
}

/// A TLS connection (HTTP/1.1 by ALPN) trusting exactly the certificate `der`.
async fn tls_connect(
    addr: std::net::SocketAddr,
    der: &[u8],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(der.to_vec()))
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, TcpStream::connect(addr).await.unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn over_tls_a_trickled_head_is_cut_off_and_a_trickled_body_gets_408() {
    let certs = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = crate::tls::files(certs.path());
    let (cert_pem, key_pem, der) = crate::tls::self_signed();
    std::fs::write(&cert_file, &cert_pem).unwrap();
    std::fs::write(&key_file, key_pem).unwrap();
    let env = crate::tls::tls_env(&cert_file, &key_file);
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend(TIMEOUTS);
    let (gw, _fake) = providers::start_with(Backend::Sqlite, "", &env).await;

    let (head, rest) = endless_head();
    let slow_head = tokio::spawn(trickle(tls_connect(gw.addr, &der).await, head, rest));
    // A body trickled to the token endpoint: the 408 comes in the OAuth error shape there.
    let form = b"grant_type=urn%3Apairgate%3Aparams%3Aoauth%3Agrant-type%3Apairing&pairing_code=x";
    let mut first = format!(
        "POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        form.len()
    )
    .into_bytes();
    first.extend_from_slice(&form[..5]);
    let slow_body = tokio::spawn(trickle(
        tls_connect(gw.addr, &der).await,
        first,
        form[5..].to_vec(),
    ));

    // Others are served meanwhile.
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let res = client.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);

    slow_head
        .await
        .unwrap()
        .assert_cut_at_the_limit("a trickled head over TLS");
    let slow_body = slow_body.await.unwrap();
    slow_body.assert_cut_at_the_limit("a trickled body over TLS");
    assert!(
        slow_body.answer.starts_with("HTTP/1.1 408"),
        "{slow_body:?}"
    );
    assert_eq!(
        slow_body.body()["error"],
        "request_timeout",
        "{slow_body:?}"
    );
}
