//! Proof of possession on the gateway side: the replay cache, server nonces, access and refresh
//! tokens, and the extractor every app route uses. The proof checks themselves live in
//! `pairgate-protocol`; this module feeds them the request and keeps the state they need.

pub mod attempts;
pub mod client_rate;
pub mod extract;
pub mod owner;
pub mod proof;
pub mod replay;
pub mod tokens;

/// Current time in unix milliseconds.
pub fn now_ms() -> i64 {
    pairgate_store::now_ms()
}
