//! End-to-end tests: the real `pairgate` binary, real SQLite and PostgreSQL, real HTTP.
//! One test binary for the whole suite, to keep link time down.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod admin;
mod custody;
mod foundation;
mod limits;
mod pairing;
mod plugins;
mod proof_negative;
mod public_url;
mod redaction;
mod tidy;
mod tls;
mod v1;
