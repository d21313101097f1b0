//! Serving connections, plain or TLS: one accept loop with hyper's HTTP/1.1 and HTTP/2
//! connection builders, a header-read timeout, and graceful draining at shutdown.
//!
//! `axum::serve` has no header-read timeout, so a client trickling its request head (slow loris)
//! held a connection and a task for as long as it liked. Here hyper's HTTP/1.1
//! `header_read_timeout` closes a connection whose request head (or, on an idle keep-alive
//! connection, the next one) has not fully arrived within `header_read_timeout`. The version is
//! chosen before hyper sees the connection: by ALPN on TLS, by the HTTP/2 preface on plain TCP
//! (h2c with prior knowledge), which must also arrive within the timeout. Slow bodies are the
//! router's business (`routes::body_timeout`). Each request carries the peer address as
//! `ConnectInfo<SocketAddr>` (`routes::client_ip` reads it).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// The HTTP version a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
}

/// A connection whose HTTP version can be found out before it is served.
pub trait Negotiate: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// The version, or `None` when the client closed or said nothing usable within `wait`.
    fn protocol(&mut self, wait: Duration) -> impl Future<Output = Option<Protocol>> + Send;
}

/// What an HTTP/2 client with prior knowledge sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

impl Negotiate for TcpStream {
    /// Peeks (reads nothing) until the first bytes tell HTTP/1.x from the HTTP/2 preface.
    async fn protocol(&mut self, wait: Duration) -> Option<Protocol> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = [0u8; H2_PREFACE.len()];
        loop {
            let n = tokio::time::timeout_at(deadline, self.peek(&mut buf))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            if buf[..n] != H2_PREFACE[..n] {
                return Some(Protocol::Http1);
            }
            if n == H2_PREFACE.len() {
                return Some(Protocol::Http2);
            }
            // A prefix of the preface so far; peeking again at once would spin.
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Negotiate for tokio_rustls::server::TlsStream<TcpStream> {
    /// Whatever ALPN settled during the handshake; HTTP/1.1 without ALPN.
    async fn protocol(&mut self, _wait: Duration) -> Option<Protocol> {
        Some(match self.get_ref().1.alpn_protocol() {
            Some(b"h2") => Protocol::Http2,
            _ => Protocol::Http1,
        })
    }
}

/// Connection-level limits.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// How long a client may take to send a request head, and how long an idle HTTP/1.1
    /// keep-alive connection stays open.
    pub header_read: Duration,
}

/// Accepts connections from `listener` and serves `app` on each until `shutdown` completes;
/// then stops accepting, lets every connection finish its in-flight requests (idle ones are
/// closed at once), and returns when the last one has closed.
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()> + Send,
) where
    L: Listener<Addr = SocketAddr>,
    L::Io: Negotiate,
{
    // Connections watch `stop` for the shutdown; each holds a `done` receiver until it closes.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            conn = listener.accept() => conn,
            () = &mut shutdown => break,
        };
        tokio::spawn(connection(
            io,
            peer,
            app.clone(),
            timeouts,
            stop_rx.clone(),
            done_rx.clone(),
        ));
    }
    drop(listener);
    drop(done_rx);
    let _ = stop_tx.send(true);
    done_tx.closed().await;
}

async fn connection<I: Negotiate>(
    mut io: I,
    peer: SocketAddr,
    app: Router,
    timeouts: Timeouts,
    mut stop: watch::Receiver<bool>,
    _done: watch::Receiver<()>,
) {
    let protocol = tokio::select! {
        p = io.protocol(timeouts.header_read) => p,
        () = stopped(&mut stop) => None,
    };
    let Some(protocol) = protocol else {
        tracing::debug!(%peer, "connection closed before a request arrived");
        return;
    };
    let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        tower::ServiceExt::oneshot(app.clone(), req)
    });
    let io = TokioIo::new(io);
    let result = match protocol {
        Protocol::Http1 => {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(timeouts.header_read)
                .keep_alive(true);
            let conn = builder.serve_connection(io, service);
            drive(conn, stop, |c| c.graceful_shutdown()).await
        }
        Protocol::Http2 => {
            let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            builder.timer(TokioTimer::new());
            let conn = builder.serve_connection(io, service);
            drive(conn, stop, |c| c.graceful_shutdown()).await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Runs a connection to its end, asking it to shut down gracefully once `stop` turns true.
async fn drive<C>(
    conn: C,
    mut stop: watch::Receiver<bool>,
    graceful: impl FnOnce(Pin<&mut C>),
) -> hyper::Result<()>
where
    C: Future<Output = hyper::Result<()>>,
{
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => return r,
        () = stopped(&mut stop) => graceful(conn.as_mut()),
    }
    conn.await
}

/// Completes once the shutdown has begun (or the accept loop is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
