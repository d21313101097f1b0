//! HTTPS served directly: rustls (ring provider), a certificate chain and key from PEM files,
//! reloaded without a restart when the files change (polled) or on SIGHUP. With connection
//! threads (`http/spread.rs`) the handshake runs on the thread that then serves the connection;
//! without, [`Tls::listener`] runs handshakes in the background on the shared runtime.
//!
//! The certificate in use sits behind a [`CertResolver`]; a reload swaps it for new handshakes
//! while open connections keep theirs. A reload that fails (half-written file, key that does not
//! match) keeps the previous certificate and logs why. No error here ever carries key material:
//! PEM parse errors are reduced to fixed messages naming the file.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::TlsConfig;
use crate::http::conn::{Accept, Slot, Slots};

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the certificate or key could not be used. Names the file, never its contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS certificate file {path}: {reason}")]
    Cert { path: String, reason: String },
    #[error("TLS key file {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("TLS key file {key} does not belong to the certificate in {cert}")]
    Mismatch { cert: String, key: String },
    #[error("TLS setup failed: {0}")]
    Setup(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => "does not exist".to_string(),
        io::ErrorKind::PermissionDenied => "is not readable (permission denied)".to_string(),
        _ => format!("cannot be read: {e}"),
    })
}

/// Reads and checks the certificate chain and key named by `config`.
pub fn load(config: &TlsConfig) -> Result<CertifiedKey, TlsError> {
    let cert_path = config.cert_file.display().to_string();
    let key_path = config.key_file.display().to_string();
    let cert_err = |reason: &str| TlsError::Cert {
        path: cert_path.clone(),
        reason: reason.to_string(),
    };
    let key_err = |reason: &str| TlsError::Key {
        path: key_path.clone(),
        reason: reason.to_string(),
    };
    let cert_pem = read(&config.cert_file).map_err(|r| cert_err(&r))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| cert_err("is not valid PEM"))?;
    if chain.is_empty() {
        return Err(cert_err("contains no PEM certificate"));
    }
    // The key file's parse errors can quote its lines: only fixed messages leave this function.
    let key_pem = zeroize::Zeroizing::new(read(&config.key_file).map_err(|r| key_err(&r))?);
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| key_err("contains no PEM private key (PKCS#8, PKCS#1 or SEC1)"))?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::Mismatch {
            cert: cert_path.clone(),
            key: key_path.clone(),
        },
        _ => key_err(
            "holds a key of a kind that cannot be used (RSA, ECDSA P-256/P-384 or Ed25519 are)",
        ),
    })
}

/// Hands rustls the certificate currently in force.
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    fn set(&self, key: CertifiedKey) {
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(key);
        }
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| Arc::clone(&c))
    }
}

/// A loaded TLS setup: the acceptor for connections and the reloadable certificate behind it.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    resolver: Arc<CertResolver>,
    config: TlsConfig,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("config", &self.config).finish()
    }
}

impl Tls {
    /// Loads the files and builds the server configuration (HTTP/2 and HTTP/1.1 by ALPN).
    pub fn new(config: &TlsConfig) -> Result<Tls, TlsError> {
        let resolver = Arc::new(CertResolver {
            current: RwLock::new(Arc::new(load(config)?)),
        });
        let mut server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            resolver,
            config: config.clone(),
        })
    }

    /// The acceptor for handshakes (it follows the reloads: every handshake gets the certificate
    /// in force at that moment).
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// Reloads the files now; on failure the previous certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.resolver.set(load(&self.config)?);
        Ok(())
    }

    /// Watches the files (every `reload_interval`, and on SIGHUP) and reloads them when they
    /// change. Runs until the runtime stops.
    pub fn spawn_reloader(&self) -> tokio::task::JoinHandle<()> {
        let tls = self.clone();
        tokio::spawn(async move {
            let mut hangup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            let mut seen = stamp(&tls.config);
            loop {
                let forced = tokio::select! {
                    () = tokio::time::sleep(tls.config.reload_interval) => false,
                    Some(()) = async {
                        match hangup.as_mut() {
                            Some(h) => h.recv().await,
                            None => std::future::pending().await,
                        }
                    } => true,
                };
                let now = stamp(&tls.config);
                if !forced && now == seen {
                    continue;
                }
                seen = now;
                match tls.reload() {
                    Ok(()) => tracing::info!(
                        cert_file = %tls.config.cert_file.display(),
                        "TLS certificate reloaded"
                    ),
                    Err(e) => tracing::warn!(
                        error = %e,
                        "TLS certificate not reloaded; still serving the previous one"
                    ),
                }
            }
        })
    }

    /// Wraps a bound listener: connections are accepted (each taking one of `slots`, see
    /// `conn.rs`) and their handshakes run in the background, so a slow client never holds up
    /// the others.
    pub fn listener(&self, tcp: TcpListener, slots: Slots) -> TlsListener {
        let (tx, rx) = mpsc::channel(64);
        let acceptor = self.acceptor.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    r = tcp.accept() => r,
                    () = tx.closed() => return,
                };
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some(slot) = slots.acquire(peer).await else {
                    drop(stream);
                    continue;
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    if let Some(tls) = handshake(&acceptor, stream, peer).await {
                        let _ = tx.send((tls, peer, slot)).await;
                    }
                });
            }
        });
        TlsListener { rx }
    }
}

/// The server side of a TLS handshake on `stream`, within [`HANDSHAKE_TIMEOUT`]; `None` (logged
/// at debug level) when it failed or timed out.
pub async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

/// Modification time and length of both files: a change in either triggers a reload.
type Stamp = [Option<(SystemTime, u64)>; 2];

fn stamp(config: &TlsConfig) -> Stamp {
    let of = |p: &Path| {
        let meta = std::fs::metadata(p).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    };
    [of(&config.cert_file), of(&config.key_file)]
}

/// Connections whose TLS handshake has completed, for the accept loop in `conn.rs`.
#[derive(Debug)]
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr, Slot)>,
}

impl Accept for TlsListener {
    type Io = TlsStream<TcpStream>;

    async fn accept(&mut self) -> (Self::Io, SocketAddr, Slot) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept task only ends when this listener is gone; never reached in practice.
            None => std::future::pending().await,
        }
    }
}

impl From<TlsError> for crate::boot::StartError {
    fn from(e: TlsError) -> Self {
        crate::boot::StartError::Tls(e.to_string())
    }
}
