//! Connection limits beyond slow HTTP/1.1 clients (`slow_clients.rs`): HTTP/2 connections with
//! no request in progress are closed after `http2.idle_timeout` (GOAWAY, then close), so is one
//! whose client trickles a header block, and one whose peer leaves keep-alive pings unanswered;
//! beyond `max_connections` a new connection is closed without an answer while the open ones
//! still serve, and a new one is served again once a slot frees.
//!
//! HTTP/2 is spoken by hand here (prior knowledge, RFC 9113 frames, HPACK static-table
//! indexes) so the test controls exactly what the client sends and sees every frame it gets.

use std::time::Duration;

use pairgate_tests::{Backend, Gateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// `GET /healthz` as one HPACK block: `:method GET`, `:scheme http` (indexed), `:path` literal.
fn healthz_block() -> Vec<u8> {
    let mut b = vec![0x82, 0x86, 0x04, 8];
    b.extend_from_slice(b"/healthz");
    b
}

/// A hand-driven HTTP/2 connection.
struct H2 {
    conn: TcpStream,
    /// Frame kinds received so far, in order.
    seen: Vec<u8>,
}

impl H2 {
    async fn open(gw: &Gateway) -> H2 {
        let mut conn = TcpStream::connect(gw.addr).await.unwrap();
        conn.write_all(PREFACE).await.unwrap();
        conn.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
        H2 {
            conn,
            seen: Vec::new(),
        }
    }

    /// The next frame (kind, flags, stream); `None` once the gateway has closed. The server's
    /// SETTINGS are acknowledged; its PINGs are answered only when `pong`.
    async fn next(&mut self, pong: bool) -> Option<(u8, u8, u32)> {
        let mut head = [0u8; 9];
        self.conn.read_exact(&mut head).await.ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        self.conn.read_exact(&mut payload).await.ok()?;
        self.seen.push(kind);
        if kind == SETTINGS && flags & ACK == 0 {
            let _ = self.conn.write_all(&frame(SETTINGS, ACK, 0, &[])).await;
        }
        if kind == PING && flags & ACK == 0 && pong {
            let _ = self.conn.write_all(&frame(PING, ACK, 0, &payload)).await;
        }
        Some((kind, flags, stream))
    }

    /// Sends `GET /healthz` on `stream` and reads until its answer has ended.
    async fn healthz(&mut self, stream: u32) {
        let block = healthz_block();
        self.conn
            .write_all(&frame(HEADERS, END_STREAM | END_HEADERS, stream, &block))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let next = tokio::time::timeout_at(deadline, self.next(true)).await;
            match next.expect("the answer came in time") {
                Some((HEADERS | DATA, flags, s)) if s == stream && flags & END_STREAM != 0 => {
                    return;
                }
                Some(_) => {}
                None => panic!("closed before answering (frames: {:?})", self.seen),
            }
        }
    }

    /// How long until the gateway closes the connection (`None`: not within `wait`).
    async fn closed_within(&mut self, wait: Duration, pong: bool) -> Option<Duration> {
        let started = Instant::now();
        let deadline = started + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.next(pong)).await {
                Ok(None) => return Some(started.elapsed()),
                Ok(Some(_)) => {}
                Err(_) => return None,
            }
        }
    }
}

fn assert_about(after: Option<Duration>, low_ms: u64, high_ms: u64, what: &str) {
    let after = after.unwrap_or_else(|| panic!("{what}: the connection was left open"));
    assert!(
        after >= Duration::from_millis(low_ms) && after < Duration::from_millis(high_ms),
        "{what}: closed after {after:?}"
    );
}

#[tokio::test]
async fn idle_and_silent_http2_connections_are_closed() {
    let gw = Gateway::builder(Backend::Sqlite)
        .env("PAIRGATE_HTTP2__IDLE_TIMEOUT", "1s")
        .env("PAIRGATE_HTTP2__KEEP_ALIVE_TIMEOUT", "500ms")
        .start()
        .await;

    // Served, then idle: GOAWAY and close about a second after the last answer.
    let mut idle = H2::open(&gw).await;
    idle.healthz(1).await;
    idle.healthz(3).await;
    let after = idle.closed_within(Duration::from_secs(6), true).await;
    assert_about(after, 700, 4000, "an idle HTTP/2 connection");
    assert!(
        idle.seen.contains(&GOAWAY),
        "a GOAWAY first: {:?}",
        idle.seen
    );

    // A header block that never ends is not a request in progress: cut off the same way, once
    // the ping sent with the GOAWAY has gone unanswered (`http2.keep_alive_timeout`): after a
    // header block has begun, the client may send nothing but its continuation, so the server's
    // SETTINGS are acknowledged first.
    let mut trickle = H2::open(&gw).await;
    while trickle
        .next(false)
        .await
        .is_some_and(|(kind, flags, _)| kind != SETTINGS || flags & ACK != 0)
    {}
    let block = healthz_block();
    trickle
        .conn
        .write_all(&frame(HEADERS, END_STREAM, 1, &block[..2]))
        .await
        .unwrap();
    let after = trickle.closed_within(Duration::from_secs(6), false).await;
    assert_about(after, 1200, 4000, "a trickled header block");
    assert!(trickle.seen.contains(&GOAWAY), "{:?}", trickle.seen);

    // Meanwhile a fresh connection is served.
    H2::open(&gw).await.healthz(1).await;
}

#[tokio::test]
async fn an_http2_peer_that_stops_answering_pings_is_dropped() {
    let gw = Gateway::builder(Backend::Sqlite)
        .env("PAIRGATE_HTTP2__IDLE_TIMEOUT", "60s")
        .env("PAIRGATE_HTTP2__KEEP_ALIVE_INTERVAL", "300ms")
        .env("PAIRGATE_HTTP2__KEEP_ALIVE_TIMEOUT", "300ms")
        .start()
        .await;
    // Answering pings keeps an idle connection open (well within the 60 s idle limit)...
    let mut alive = H2::open(&gw).await;
    alive.healthz(1).await;
    assert!(
        alive
            .closed_within(Duration::from_secs(2), true)
            .await
            .is_none()
    );
    assert!(alive.seen.contains(&PING), "pinged: {:?}", alive.seen);
    alive.healthz(3).await;

    // ...leaving them unanswered closes it, long before the idle limit.
    let mut silent = H2::open(&gw).await;
    silent.healthz(1).await;
    let after = silent.closed_within(Duration::from_secs(6), false).await;
    assert_about(after, 300, 4000, "a peer that does not answer pings");
    assert!(silent.seen.contains(&PING), "{:?}", silent.seen);
}

/// `GET /healthz` over HTTP/1.1 on `conn`; the status line, or what came back instead.
async fn http1_healthz(conn: &mut TcpStream) -> String {
    if conn
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .is_err()
    {
        return "write failed".into();
    }
    let mut buf = [0u8; 4096];
    match tokio::time::timeout(Duration::from_secs(3), conn.read(&mut buf)).await {
        Ok(Ok(0)) => "closed".into(),
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "no answer".into(),
    }
}

#[tokio::test]
async fn beyond_max_connections_new_ones_are_closed_and_open_ones_still_serve() {
    let gw = Gateway::builder(Backend::Sqlite)
        .env("PAIRGATE_MAX_CONNECTIONS", "2")
        .start()
        .await;
    let mut kept = TcpStream::connect(gw.addr).await.unwrap();
    assert_eq!(http1_healthz(&mut kept).await, "HTTP/1.1 200 OK");
    let mut h2 = H2::open(&gw).await;
    h2.healthz(1).await;

    // Both slots are taken: a third connection is closed without an answer.
    for i in 0..3 {
        let mut extra = TcpStream::connect(gw.addr).await.unwrap();
        let got = http1_healthz(&mut extra).await;
        assert!(
            got == "closed" || got.starts_with("error") || got == "write failed",
            "connection {i} beyond the cap: {got}"
        );
    }
    // The open ones still serve.
    assert_eq!(http1_healthz(&mut kept).await, "HTTP/1.1 200 OK");
    h2.healthz(3).await;

    // Once one closes, a new connection (a health check, say) is served again.
    drop(h2);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut fresh = TcpStream::connect(gw.addr).await.unwrap();
        let got = http1_healthz(&mut fresh).await;
        if got == "HTTP/1.1 200 OK" {
            break;
        }
        assert!(Instant::now() < deadline, "no slot freed: {got}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(http1_healthz(&mut kept).await, "HTTP/1.1 200 OK");
}
