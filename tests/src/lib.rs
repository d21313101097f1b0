//! Test support for end-to-end tests: the real `pairgate` binary on 127.0.0.1:0, a fresh
//! database per test (SQLite file or PostgreSQL schema), and captured logs.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

pub mod app;
pub mod bench;
pub mod db;
pub mod fake;
pub mod gateway;
pub mod owner;
pub mod passkey;
pub mod pgproxy;
pub mod probe;
pub mod providers;

pub use db::{Backend, TestDb};
pub use gateway::{Gateway, GatewayBuilder};

/// Fails loudly (never skips) when a service the suite needs is down.
pub fn require_tcp(addr: &str, what: &str, how: &str) {
    let ok = addr
        .parse::<std::net::SocketAddr>()
        .ok()
        .and_then(|a| {
            std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(2)).ok()
        })
        .is_some();
    assert!(
        ok,
        "{what} is not reachable at {addr}; start it with: {how} (or run `cargo xtask test`, which does)"
    );
}
