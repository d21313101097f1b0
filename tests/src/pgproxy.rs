//! A TCP proxy between a gateway and PostgreSQL that can take the database away on command:
//! `down()` cuts every open connection and stops listening (new connections are refused, as when
//! the server is down), `up()` listens again on the same port. A database outage for one test,
//! without restarting the PostgreSQL server the rest of the suite shares.

use std::net::SocketAddr;
use std::sync::Mutex;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running proxy in front of one upstream address.
#[derive(Debug)]
pub struct DbProxy {
    pub addr: SocketAddr,
    upstream: SocketAddr,
    /// Bumped by `down()`: every connection task ends when it changes.
    epoch: watch::Sender<u64>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

impl DbProxy {
    /// Starts a proxy on 127.0.0.1:0 forwarding to `upstream` (e.g. `127.0.0.1:5432`).
    pub async fn start(upstream: &str) -> DbProxy {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let (epoch, _) = watch::channel(0);
        let proxy = DbProxy {
            addr,
            upstream: upstream.parse().unwrap(),
            epoch,
            accept: Mutex::new(None),
        };
        proxy.serve(listener);
        proxy
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn url_for(&self, url: &str) -> String {
        let at = url.find('@').map_or(url.find("//").unwrap() + 2, |i| i + 1);
        let slash = at + url[at..].find('/').unwrap_or(url.len() - at);
        format!("{}{}{}", &url[..at], self.addr, &url[slash..])
    }

    fn serve(&self, listener: TcpListener) {
        let upstream = self.upstream;
        let epoch = self.epoch.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let mut cut = epoch.subscribe();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    pipe(client, server, &mut cut).await;
                });
            }
        });
        *self.accept.lock().unwrap() = Some(task);
    }

    /// The database goes away: open connections are cut, new ones refused.
    pub fn down(&self) {
        if let Some(task) = self.accept.lock().unwrap().take() {
            task.abort();
        }
        self.epoch.send_modify(|e| *e += 1);
    }

    /// The database is back, on the same address.
    pub async fn up(&self) {
        // The aborted accept task drops its listener asynchronously: retry the bind briefly.
        for _ in 0..50 {
            if let Ok(listener) = bind(self.addr) {
                self.serve(listener);
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("cannot listen on {} again", self.addr);
    }
}

impl Drop for DbProxy {
    fn drop(&mut self) {
        self.down();
    }
}

async fn pipe(mut client: TcpStream, mut server: TcpStream, cut: &mut watch::Receiver<u64>) {
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        // An abrupt end, as when the server process dies: both sockets are closed.
        _ = cut.changed() => {}
    }
}
