//! Hostile clients: slow-loris headers and bodies, bodies over the limit (declared or streamed),
//! 10,000 headers, invalid UTF-8, JSON bombs (deep nesting, huge numbers, huge objects), a
//! client-chosen request id, clients that hang up mid-stream or mid-call, and user-code guessing.
//! Each is refused cleanly (an OpenAI-shaped error where the gateway answers at all), costs the
//! books nothing they cannot account for, and never stops the gateway serving everyone else.

use std::time::{Duration, Instant};

use pairgate_protocol::keys::KeyKind;
use pairgate_tests::app::{RawApp, pair, proof, raw_pair};
use pairgate_tests::fake::{Behaviour, Fault};
use pairgate_tests::owner::{create_owner, login};
use pairgate_tests::probe::{self, books, books_with, grant_usage, proc_stats};
use pairgate_tests::providers::{self, sse_data};
use pairgate_tests::{Backend, Gateway};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) const MODEL: &str = "openai/gpt-4o-mini";

pub(crate) fn chat(stream: bool) -> Value {
    json!({ "model": MODEL, "stream": stream, "max_tokens": 20,
        "messages": [{ "role": "user", "content": "hello" }] })
}

/// A signed request by a hand-paired app, with any body bytes; returns status, body, headers.
pub(crate) async fn signed(
    gw: &Gateway,
    app: &RawApp,
    body: Vec<u8>,
    extra: &[(&str, &str)],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let url = gw.url("/v1/chat/completions");
    let p = proof(&app.key, "POST", &url, Some(&app.access_token), Some(&body));
    let mut req = reqwest::Client::new()
        .post(&url)
        .header("authorization", format!("DPoP {}", app.access_token))
        .header("dpop", p)
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, res.json().await.unwrap_or(Value::Null), headers)
}

pub(crate) fn assert_openai_error(body: &Value, code: &str, what: &str) {
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
    assert!(
        body["error"]["message"].is_string() && body["error"]["type"].is_string(),
        "{what}: OpenAI-shaped: {body}"
    );
}

/// A quick signed request that must still succeed (the gateway keeps serving).
pub(crate) async fn still_serves(gw: &Gateway, app: &RawApp, what: &str) -> Duration {
    let started = Instant::now();
    let (s, body, _) = signed(gw, app, chat(false).to_string().into_bytes(), &[]).await;
    assert_eq!(s, 200, "{what}: the gateway still serves: {body}");
    started.elapsed()
}

/// Reads whatever a raw connection gets back until it closes or `wait` passes.
async fn read_some(conn: &mut TcpStream, wait: Duration) -> String {
    let mut buf = vec![0u8; 64 << 10];
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn slow_loris_headers_and_bodies_do_not_stop_anyone_else() {
    const SLOW: usize = 200;
    let (gw, _fake) = providers::start(Backend::Sqlite, "").await;
    let app = raw_pair(&gw, KeyKind::Ed25519, &[]).await;
    still_serves(&gw, &app, "warm-up").await;
    let fds_before = proc_stats(&gw).fds;
    // Half send their headers a byte at a time, half send headers and then dribble a body.
    let mut conns = Vec::new();
    for i in 0..SLOW {
        let mut c = TcpStream::connect(gw.addr).await.unwrap();
        let head = if i % 2 == 0 {
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ".to_string()
        } else {
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: DPoP {}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"model\":",
                app.access_token
            )
        };
        c.write_all(head.as_bytes()).await.unwrap();
        conns.push(c);
    }
    let dribble = tokio::spawn(async move {
        for _ in 0..10 {
            for c in conns.iter_mut() {
                let _ = c.write_all(b"a").await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        conns
    });
    // Meanwhile, everyone else is served promptly.
    let mut slowest = Duration::ZERO;
    for i in 0..10 {
        slowest =
            slowest.max(still_serves(&gw, &app, &format!("request {i} beside slow clients")).await);
    }
    println!("{SLOW} slow-loris connections open: slowest of 10 normal requests took {slowest:?}");
    assert!(
        slowest < Duration::from_secs(5),
        "slow clients delayed others: {slowest:?}"
    );
    // When they give up, their connections and tasks go away.
    drop(dribble.await.unwrap());
    probe::assert_settled(&gw, fds_before, 8).await;
    still_serves(&gw, &app, "after the slow clients left").await;
}

#[tokio::test]
async fn oversize_bodies_many_headers_bad_utf8_and_json_bombs_are_refused_cleanly() {
    let (gw, fake) =
        providers::start_with(Backend::Sqlite, "", &[("PAIRGATE_MAX_BODY_BYTES", "1MiB")]).await;
    let app = raw_pair(&gw, KeyKind::Ed25519, &[]).await;
    still_serves(&gw, &app, "warm-up").await;
    let calls_before = fake.received().len();

    // A body over the limit, declared by Content-Length: refused unread.
    let big =
        json!({ "model": MODEL, "messages": [{ "role": "user", "content": "x".repeat(2 << 20) }] });
    let (s, body, _) = signed(&gw, &app, big.to_string().into_bytes(), &[]).await;
    assert_eq!(s, 413, "{body}");
    assert_openai_error(&body, "request_too_large", "declared oversize body");

    // The same, streamed in chunks without a length: cut off at the limit.
    let url = gw.url("/v1/chat/completions");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..64).map(|_| Ok(vec![b' '; 64 << 10])).collect();
    let p = proof(&app.key, "POST", &url, Some(&app.access_token), None);
    let res = reqwest::Client::new()
        .post(&url)
        .header("authorization", format!("DPoP {}", app.access_token))
        .header("dpop", p)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await;
    if let Ok(res) = res {
        // The gateway may answer before the client finished sending, or close the connection.
        assert_eq!(res.status(), 413);
        let body: Value = res.json().await.unwrap_or(Value::Null);
        assert_openai_error(&body, "request_too_large", "chunked oversize body");
    }

    // 10,000 headers: refused by the HTTP layer before any handler runs.
    let mut c = TcpStream::connect(gw.addr).await.unwrap();
    let mut req = String::from("GET /v1/grant HTTP/1.1\r\nHost: x\r\n");
    for i in 0..10_000 {
        req.push_str(&format!("X-H{i}: v\r\n"));
    }
    req.push_str("\r\n");
    let _ = c.write_all(req.as_bytes()).await;
    let answer = read_some(&mut c, Duration::from_secs(5)).await;
    assert!(
        answer.is_empty()
            || answer.starts_with("HTTP/1.1 431")
            || answer.starts_with("HTTP/1.1 400"),
        "10,000 headers: {answer}"
    );
    drop(c);

    // Invalid UTF-8 in a header and in the body.
    let mut c = TcpStream::connect(gw.addr).await.unwrap();
    let raw = b"GET /v1/grant HTTP/1.1\r\nHost: x\r\nAuthorization: DPoP \xff\xfe\xfd\r\nConnection: close\r\n\r\n";
    c.write_all(raw).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("\"code\":\"invalid_token\""), "{answer}");

    let mut bad =
        br#"{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":""#.to_vec();
    bad.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
    bad.extend_from_slice(br#""}]}"#);
    let (s, body, h) = signed(&gw, &app, bad, &[]).await;
    assert_eq!(s, 400, "{body}");
    assert_openai_error(&body, "invalid_request_error", "invalid UTF-8 body");
    let bad_utf8_id = h["x-request-id"].to_str().unwrap().to_string();

    // JSON bombs: each is a 400 or an ordinary answer, never a 5xx or a crash.
    let deep = format!(
        "{{\"model\":\"{MODEL}\",\"messages\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let wide: String = (0..50_000)
        .map(|i| format!("\"k{i}\":{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let bombs: Vec<(&str, String)> = vec![
        ("deep nesting", deep),
        (
            "deep nesting inside a message",
            format!(
                "{{\"model\":\"{MODEL}\",\"messages\":[{{\"role\":\"user\",\"content\":{}1{}}}]}}",
                "{\"a\":".repeat(50_000),
                "}".repeat(50_000)
            ),
        ),
        (
            "a number too big for f64",
            format!("{{\"model\":\"{MODEL}\",\"max_tokens\":1e999999,\"messages\":[]}}"),
        ),
        (
            "a 200,000-digit integer",
            format!(
                "{{\"model\":\"{MODEL}\",\"max_tokens\":{},\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}",
                "9".repeat(200_000)
            ),
        ),
        (
            "huge max_tokens and n",
            format!(
                "{{\"model\":\"{MODEL}\",\"max_tokens\":18446744073709551615,\"n\":18446744073709551615,\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}"
            ),
        ),
        (
            "negative and fractional numbers",
            format!(
                "{{\"model\":\"{MODEL}\",\"max_tokens\":-1.5e300,\"n\":-3,\"temperature\":1e308,\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}"
            ),
        ),
        (
            "50,000 keys",
            format!(
                "{{\"model\":\"{MODEL}\",\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}],{wide}}}"
            ),
        ),
    ];
    let mut bomb_ids = vec![bad_utf8_id];
    for (name, text) in bombs {
        let started = Instant::now();
        let (s, body, h) = signed(&gw, &app, text.into_bytes(), &[]).await;
        assert!(s == 200 || (400..500).contains(&s), "{name}: {s} {body}");
        if s != 200 {
            assert!(
                body["error"]["code"].is_string(),
                "{name}: OpenAI-shaped: {body}"
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name}: took {:?}",
            started.elapsed()
        );
        bomb_ids.push(h["x-request-id"].to_str().unwrap().to_string());
        still_serves(&gw, &app, name).await;
    }
    // Requests that reached the relay (a parsed body or not) each have their ledger row.
    let b = books(&gw, &app.grant_id).await;
    for id in &bomb_ids {
        assert!(b.has(id), "no ledger row for {id}: {:?}", b.ledger);
    }
    assert!(
        fake.received().len() > calls_before,
        "some bombs were ordinary requests"
    );
}

#[tokio::test]
async fn a_client_chosen_request_id_never_hides_a_ledger_row() {
    let (gw, _fake) = providers::start(Backend::Sqlite, "").await;
    let app = raw_pair(&gw, KeyKind::Ed25519, &[]).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (s, body, h) = signed(
            &gw,
            &app,
            chat(false).to_string().into_bytes(),
            &[("x-request-id", "same-id forged=log-line")],
        )
        .await;
        assert_eq!(s, 200, "{body}");
        ids.push(h["x-request-id"].to_str().unwrap().to_string());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        3,
        "the gateway names every request itself: {ids:?}"
    );
    let b = books_with(&gw, &app.grant_id, 3).await;
    assert_eq!(
        b.ledger.len(),
        3,
        "one row per answered request: {:?}",
        b.ledger
    );
    assert!(!gw.logs().contains("forged=log-line"));
}

#[tokio::test]
async fn a_client_that_hangs_up_cancels_the_upstream_call_and_its_usage_is_settled() {
    let (gw, fake) = providers::start(Backend::Postgres, "").await;
    let client = pair(
        &gw,
        KeyKind::Ed25519,
        &["--lifetime-tokens", "1000000", "--concurrent", "5"],
    )
    .await;
    let grant = client.grant_id();
    // Mid-stream: a ten-second stream, of which the app reads one chunk.
    fake.set(Behaviour {
        chunks: 500,
        chunk_interval: Duration::from_millis(20),
        ..Behaviour::default()
    });
    let mut res = client
        .post("/v1/chat/completions")
        .json(&chat(true))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    for _ in 0..3 {
        res.chunk().await.unwrap().expect("a chunk");
    }
    assert_eq!(fake.open_streams(), 1);
    let hung_up = Instant::now();
    drop(res);
    let deadline = hung_up + Duration::from_secs(5);
    while fake.open_streams() > 0 {
        assert!(
            Instant::now() < deadline,
            "the upstream stream was not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "upstream stream closed {:?} after the app hung up",
        hung_up.elapsed()
    );
    let b = books_with(&gw, &grant, 1).await;
    let row = b
        .ledger
        .iter()
        .find(|r| r.request_id == id)
        .expect("a ledger row");
    assert_eq!(
        (row.status, row.error_code.as_deref(), row.estimated),
        (499, Some("client_disconnected"), 1),
        "{row:?}"
    );
    assert!(
        row.output_tokens > 0,
        "what was streamed is charged: {row:?}"
    );
    let usage = grant_usage(&client).await;
    assert_eq!(usage.reserved, 0, "{usage:?}");
    assert_eq!(
        usage.spent as i64,
        b.ledger_tokens(),
        "{usage:?} {:?}",
        b.ledger
    );
    assert_eq!(usage.in_flight, 0, "{usage:?}");

    // Before the answer: the app gives up while the provider is still thinking.
    fake.set(Behaviour {
        fault: Fault::DelayHeaders(Duration::from_secs(2)),
        ..Behaviour::default()
    });
    let calls = fake.received().len();
    let gone = tokio::time::timeout(
        Duration::from_millis(500),
        client
            .post("/v1/chat/completions")
            .json(&chat(false))
            .send(),
    )
    .await;
    assert!(gone.is_err(), "the app gave up first");
    // Whether the gateway finishes the call or cancels it, the request leaves one row and no hold.
    let deadline = Instant::now() + Duration::from_secs(10);
    let b = loop {
        let b = books(&gw, &grant).await;
        if b.ledger.len() == 2 || Instant::now() > deadline {
            break b;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        fake.received().len(),
        calls + 1,
        "the call reached the provider"
    );
    assert_eq!(
        b.ledger.len(),
        2,
        "the abandoned call has its ledger row: {:?}",
        b.ledger
    );
    probe::assert_settled(&gw, usize::MAX / 2, 0).await;
    let usage = grant_usage(&client).await;
    assert_eq!((usage.reserved, usage.in_flight), (0, 0), "{usage:?}");
    assert_eq!(
        usage.spent as i64,
        b.ledger_tokens(),
        "{usage:?} {:?}",
        b.ledger
    );
    fake.set(Behaviour::default());
    let res = client
        .post("/v1/chat/completions")
        .json(&chat(true))
        .send()
        .await
        .unwrap();
    let data = sse_data(&res.text().await.unwrap());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test]
async fn user_code_guesses_are_locked_out_and_logged() {
    let gw = Gateway::start(Backend::Sqlite).await;
    create_owner(&gw).await;
    let owner = login(&gw).await;
    // A real pending request, whose code the guesser does not know.
    let key = pairgate_tests::app::key(KeyKind::Ed25519);
    let p = proof(
        &key,
        "POST",
        &gw.url("/oauth/device_authorization"),
        None,
        None,
    );
    let (s, started, _) = pairgate_tests::app::oauth_post(
        &gw,
        "/oauth/device_authorization",
        &[("client_name", "guessed app")],
        Some(&p),
    )
    .await;
    assert_eq!(s, 200, "{started}");
    let real = started["user_code"].as_str().unwrap().to_string();
    let mut refused = 0;
    let mut locked = None;
    for i in 0..30 {
        let guess = format!("BCDF-{}", ["GHJK", "LMNP", "QRST", "VWXZ", "BBBB"][i % 5]);
        let guess = if guess == real {
            "ZZZZ-ZZZZ".to_string()
        } else {
            guess
        };
        let (s, body) = owner
            .post(&format!("/admin/api/consents/{guess}/approve"), &json!({}))
            .await;
        match s {
            404 => refused += 1,
            429 => {
                assert_openai_error(&body, "too_many_attempts", "locked out");
                locked = Some(i);
                break;
            }
            _ => panic!("guess {i}: {s} {body}"),
        }
    }
    assert!(
        locked.is_some(),
        "guessing was never locked out ({refused} refusals)"
    );
    assert!(refused <= 10, "{refused} wrong guesses before the lockout");
    // Locked out: even the right code is refused now, so guessing cannot go on.
    let (s, body) = owner
        .post(&format!("/admin/api/consents/{real}/approve"), &json!({}))
        .await;
    assert_eq!(s, 429, "{body}");
    assert!(
        gw.logs().contains("user code lookups locked out"),
        "{}",
        gw.logs()
    );
    // The pending request was not approved by any of this.
    let (_, pending) = owner.get("/admin/api/consents").await;
    assert!(pending.to_string().contains(&real), "{pending}");
}
