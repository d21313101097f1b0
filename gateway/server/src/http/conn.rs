//! Serving connections, plain or TLS: one accept loop with hyper's HTTP/1.1 and HTTP/2
//! connection builders, a cap on open connections, header-read and idle timeouts, HTTP/2
//! keep-alive pings, and graceful draining at shutdown.
//!
//! `axum::serve` has no header-read timeout, so a client trickling its request head (slow loris)
//! held a connection and a task for as long as it liked. Here hyper's HTTP/1.1
//! `header_read_timeout` closes a connection whose request head (or, on an idle keep-alive
//! connection, the next one) has not fully arrived within `header_read_timeout`. HTTP/2 has no
//! such timeout in hyper: an HTTP/2 connection is closed (GOAWAY, then close) once it has had no
//! request in progress for `http2.idle_timeout`; a request counts from its complete header
//! block to the end of its answer, so a client trickling a header block is cut off by the same
//! rule. Keep-alive pings (`http2.keep_alive_interval`, `http2.keep_alive_timeout`) close a
//! connection whose peer has silently gone.
//!
//! At most `max_connections` client connections are open at once (TLS handshakes in progress
//! included), so a flood cannot exhaust file descriptors: beyond, a new connection waits up to
//! [`SLOT_WAIT`] for a slot (idle connections are closed by the timeouts above, so health checks
//! get through as soon as one frees), then is closed without an answer.
//!
//! The version is chosen before hyper sees the connection: by ALPN on TLS, by the HTTP/2 preface
//! on plain TCP (h2c with prior knowledge), which must also arrive within the header timeout.
//! Slow bodies are the router's business (`routes::body_timeout`). Each request carries the peer
//! address as `ConnectInfo<SocketAddr>` (`routes::client_ip` reads it).
//!
//! An HTTP/1.1 connection closes lingering ([`Lingering`], as nginx's `lingering_close`): an
//! answer sent before the request's body was read (413) is not lost to a reset.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

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

    /// The connection as a plain socket, to be served on a connection thread
    /// ([`crate::http::spread`]); a connection that cannot move (TLS) is given back.
    fn into_std(self) -> Result<std::net::TcpStream, Self>
    where
        Self: Sized,
    {
        Err(self)
    }
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

    fn into_std(self) -> Result<std::net::TcpStream, Self> {
        // Leaves this runtime's reactor; `TcpStream::from_std` registers it on the other.
        TcpStream::into_std(self)
            .map_err(|e| unreachable!("a tokio TcpStream always converts into a std one: {e}"))
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
    /// How long an HTTP/2 connection with no request in progress stays open.
    pub http2_idle: Duration,
    /// HTTP/2 keep-alive pings: how often, and how long one may go unanswered.
    pub http2_keep_alive_interval: Duration,
    pub http2_keep_alive_timeout: Duration,
}

impl Timeouts {
    pub fn of(config: &crate::config::Config) -> Timeouts {
        Timeouts {
            header_read: config.header_read_timeout,
            http2_idle: config.http2_idle_timeout,
            http2_keep_alive_interval: config.http2_keep_alive_interval,
            http2_keep_alive_timeout: config.http2_keep_alive_timeout,
        }
    }
}

/// How long a new connection beyond `max_connections` waits for a slot before it is closed.
pub const SLOT_WAIT: Duration = Duration::from_millis(250);

/// The open-connection slots (`max_connections`), shared by a listener's connections.
#[derive(Debug, Clone)]
pub struct Slots(Arc<Semaphore>);

/// One open connection's slot; freed when dropped (the connection has closed).
pub type Slot = OwnedSemaphorePermit;

impl Slots {
    pub fn new(max: usize) -> Slots {
        Slots(Arc::new(Semaphore::new(
            max.clamp(1, Semaphore::MAX_PERMITS),
        )))
    }

    /// A slot for a new connection, at once or within [`SLOT_WAIT`]; `None` when all stay taken
    /// (the caller closes the connection). Logged at most once a minute.
    pub async fn acquire(&self, peer: SocketAddr) -> Option<Slot> {
        if let Ok(slot) = self.0.clone().try_acquire_owned() {
            return Some(slot);
        }
        if let Ok(Ok(slot)) = tokio::time::timeout(SLOT_WAIT, self.0.clone().acquire_owned()).await
        {
            return Some(slot);
        }
        static LAST_WARNED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let now = crate::base::clock::now_ms() as u64 / 1000;
        let last = LAST_WARNED.load(std::sync::atomic::Ordering::Relaxed);
        if now >= last + 60
            && LAST_WARNED
                .compare_exchange(
                    last,
                    now,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                )
                .is_ok()
        {
            tracing::warn!(%peer, "max_connections reached: closing new connections until some close");
        }
        None
    }
}

/// A source of client connections for [`serve`], each with its slot.
pub trait Accept: Send + 'static {
    type Io: Negotiate;
    /// The next connection that got a slot (the others are closed on the way).
    fn accept(&mut self) -> impl Future<Output = (Self::Io, SocketAddr, Slot)> + Send;
}

/// A plain TCP listener under a connection cap.
#[derive(Debug)]
pub struct Plain {
    tcp: TcpListener,
    slots: Slots,
}

impl Plain {
    pub fn new(tcp: TcpListener, slots: Slots) -> Plain {
        Plain { tcp, slots }
    }
}

impl Accept for Plain {
    type Io = TcpStream;

    async fn accept(&mut self) -> (TcpStream, SocketAddr, Slot) {
        loop {
            let (stream, peer) = match self.tcp.accept().await {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(slot) = self.slots.acquire(peer).await else {
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            return (stream, peer, slot);
        }
    }
}

/// Connection threads to serve plain sockets on ([`crate::http::spread`]); with `tls`, each
/// connection's TLS handshake runs on its thread first.
pub struct OnThreads {
    pub spread: crate::http::spread::Spread,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for OnThreads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnThreads")
            .field("spread", &self.spread)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// Accepts connections from `listener` and serves `app` on each until `shutdown` completes;
/// then stops accepting, lets every connection finish its in-flight requests (idle ones are
/// closed at once), and returns when the last one has closed. With `threads`, each connection
/// is served on one of its threads (after the TLS handshake there, when it has `tls`);
/// otherwise on this runtime.
pub async fn serve<L: Accept>(
    mut listener: L,
    app: Router,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()> + Send,
    threads: Option<OnThreads>,
) {
    // Connections watch `stop` for the shutdown; each holds a `done` receiver until it closes.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (io, peer, slot) = tokio::select! {
            conn = listener.accept() => conn,
            () = &mut shutdown => break,
        };
        let (stop, done) = (stop_rx.clone(), done_rx.clone());
        let app = app.clone();
        let io = match &threads {
            Some(threads) => match io.into_std() {
                Ok(socket) => {
                    let tls = threads.tls.clone();
                    let job: crate::http::spread::Job = Box::new(move || {
                        Box::pin(async move {
                            on_thread(socket, tls, peer, app, timeouts, stop, done).await;
                            drop(slot);
                        })
                    });
                    if let Err(job) = threads.spread.run(job) {
                        tokio::spawn(job());
                    }
                    continue;
                }
                Err(io) => io,
            },
            None => io,
        };
        tokio::spawn(async move {
            connection(io, peer, app, timeouts, stop, done).await;
            drop(slot);
        });
    }
    drop(threads);
    drop(listener);
    drop(done_rx);
    let _ = stop_tx.send(true);
    done_tx.closed().await;
}

/// Serves a socket handed to a connection thread: registered with this thread's runtime, then
/// (with `tls`) the handshake, abandoned at shutdown, then the connection.
async fn on_thread(
    socket: std::net::TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    peer: SocketAddr,
    app: Router,
    timeouts: Timeouts,
    mut stop: watch::Receiver<bool>,
    done: watch::Receiver<()>,
) {
    let io = match TcpStream::from_std(socket) {
        Ok(io) => io,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "a connection could not join its thread");
            return;
        }
    };
    match tls {
        None => connection(io, peer, app, timeouts, stop, done).await,
        Some(acceptor) => {
            let handshake = tokio::select! {
                tls = crate::http::tls::handshake(&acceptor, io, peer) => tls,
                () = stopped(&mut stop) => None,
            };
            if let Some(io) = handshake {
                connection(io, peer, app, timeouts, stop, done).await;
            }
        }
    }
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
    let result = match protocol {
        Protocol::Http1 => {
            let io = TokioIo::new(Lingering::new(io));
            let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                tower::ServiceExt::oneshot(app.clone(), req)
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(timeouts.header_read)
                .keep_alive(true);
            let conn = builder.serve_connection(io, service);
            drive(conn, stopped(&mut stop), |c| c.graceful_shutdown()).await
        }
        Protocol::Http2 => {
            let io = TokioIo::new(io);
            let (activity, idle_rx) = watch::channel(0usize);
            let activity = Arc::new(activity);
            let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                let active = Active::start(&activity);
                let answer = tower::ServiceExt::oneshot(app.clone(), req);
                async move {
                    let res = answer.await?;
                    Ok::<_, Infallible>(res.map(|body| {
                        Body::new(Tracked {
                            body,
                            _active: active,
                        })
                    }))
                }
            });
            let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            builder
                .timer(TokioTimer::new())
                .keep_alive_interval(timeouts.http2_keep_alive_interval)
                .keep_alive_timeout(timeouts.http2_keep_alive_timeout);
            let conn = builder.serve_connection(io, service);
            let mut conn = std::pin::pin!(conn);
            let ended = tokio::select! {
                r = conn.as_mut() => H2Ended::Closed(r),
                () = stopped(&mut stop) => H2Ended::Stopping,
                () = idle(idle_rx.clone(), timeouts.http2_idle) => H2Ended::Idle,
            };
            match ended {
                H2Ended::Closed(r) => r,
                H2Ended::Stopping => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
                H2Ended::Idle => {
                    tracing::debug!(%peer, "closing an idle HTTP/2 connection");
                    conn.as_mut().graceful_shutdown();
                    // The GOAWAY is sent; a peer that does not acknowledge the ping that goes
                    // with it (one trickling a header block cannot) would hold the connection,
                    // so with still nothing in progress it is dropped after the ping timeout.
                    loop {
                        let wait = timeouts.http2_keep_alive_timeout;
                        match tokio::time::timeout(wait, conn.as_mut()).await {
                            Ok(r) => break r,
                            Err(_) if *idle_rx.borrow() == 0 => break Ok(()),
                            Err(_) => {}
                        }
                    }
                }
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Why an HTTP/2 connection's first phase ended.
enum H2Ended {
    /// It closed (or failed) on its own.
    Closed(hyper::Result<()>),
    /// The gateway is shutting down.
    Stopping,
    /// It had no request in progress for `http2.idle_timeout`.
    Idle,
}

/// Runs a connection to its end, asking it to shut down gracefully once `until` completes.
async fn drive<C>(
    conn: C,
    until: impl Future<Output = ()>,
    graceful: impl FnOnce(Pin<&mut C>),
) -> hyper::Result<()>
where
    C: Future<Output = hyper::Result<()>>,
{
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => return r,
        () = until => graceful(conn.as_mut()),
    }
    conn.await
}

/// Completes once the shutdown has begun (or the accept loop is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Completes once an HTTP/2 connection has had no request in progress for `limit`.
async fn idle(mut in_progress: watch::Receiver<usize>, limit: Duration) {
    loop {
        let quiet = in_progress.wait_for(|n| *n == 0).await.is_ok();
        if !quiet {
            // The connection's counter is gone: so is the connection.
            return std::future::pending().await;
        }
        tokio::select! {
            () = tokio::time::sleep(limit) => return,
            busy = in_progress.wait_for(|n| *n > 0) => {
                if busy.is_err() {
                    return;
                }
            }
        }
    }
}

/// One request in progress on an HTTP/2 connection, from its complete header block until its
/// answer has been sent (or abandoned).
struct Active(Arc<watch::Sender<usize>>);

impl Active {
    fn start(count: &Arc<watch::Sender<usize>>) -> Active {
        count.send_modify(|n| *n += 1);
        Active(count.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// An answer's body that keeps its request counted as in progress until it is done.
struct Tracked {
    body: Body,
    _active: Active,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Longest an HTTP/1.1 connection lingers after its last answer, reading what the client still
/// sends ([`Lingering`]).
pub const LINGER_TIME: Duration = Duration::from_secs(2);
/// Most bytes read and dropped while lingering.
pub const LINGER_BYTES: usize = 16 << 20;

/// A connection that closes the way nginx's `lingering_close` does. An answer sent before the
/// request's body was read (413 for a declared oversize body, an early refusal) is followed by
/// closing the connection; closing a socket with unread bytes makes the kernel reset it, and a
/// client still sending its body then sees "broken pipe" or "connection reset" instead of the
/// answer. So shutting down sends our FIN first, then reads and drops what the client still
/// sends until it closes too, for at most [`LINGER_TIME`] and [`LINGER_BYTES`].
struct Lingering<I> {
    io: I,
    /// Set once our side has been shut down.
    linger: Option<(Pin<Box<tokio::time::Sleep>>, usize)>,
}

impl<I> Lingering<I> {
    fn new(io: I) -> Lingering<I> {
        Lingering { io, linger: None }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Lingering<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Lingering<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.linger.is_none() {
            std::task::ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
            this.linger = Some((Box::pin(tokio::time::sleep(LINGER_TIME)), 0));
        }
        let Some((deadline, read)) = this.linger.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let mut scratch = [0u8; 8192];
        loop {
            if *read >= LINGER_BYTES || deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut buf = tokio::io::ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => *read += buf.filled().len(),
                // the client is gone: nothing left to wait for
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn answer_and_close(mut io: impl AsyncWrite + Unpin) {
        io.write_all(b"HTTP/1.1 413 Payload Too Large\r\n\r\n")
            .await
            .unwrap();
        let _ = io.shutdown().await;
    }

    /// A server that answers at once and closes without reading the request; the client sends
    /// 4 MiB first and only then reads. Returns what the client read, or its error.
    async fn answer_before_the_body(linger: bool) -> std::io::Result<Vec<u8>> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            if linger {
                answer_and_close(Lingering::new(stream)).await;
            } else {
                answer_and_close(stream).await;
            }
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        // let the answer and the close arrive before the body is sent
        tokio::time::sleep(Duration::from_millis(50)).await;
        let body = vec![b'x'; 4 << 20];
        let result = async {
            client.write_all(&body).await?;
            let mut answer = Vec::new();
            client.read_to_end(&mut answer).await?;
            Ok(answer)
        }
        .await;
        drop(client);
        server.await.unwrap();
        result
    }

    #[tokio::test]
    async fn an_answer_sent_before_the_body_was_read_reaches_a_client_still_sending() {
        let answer = answer_before_the_body(true).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 413"), "{answer:?}");
        // Without lingering the unread bytes reset the connection: the client loses the answer.
        assert!(answer_before_the_body(false).await.is_err());
    }
}
