//! End-to-end tests: the real `pairgate` binary, real SQLite and PostgreSQL, real HTTP.
//! One test binary for the whole suite, to keep link time down.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod admin;
mod admin_ui;
mod bench;
mod cli_safety;
mod connections;
mod console_api;
mod custody;
mod dbfaults;
mod egress;
mod faults;
mod foundation;
mod grant_edit;
mod hostile;
mod hostile_app;
mod hostile_strangers;
mod interop;
mod limits;
mod load;
mod metrics;
mod ops;
mod pairing;
mod passkeys;
mod plugins;
mod proof_negative;
mod protocol_fixes;
mod provider_check;
mod public_url;
mod redaction;
mod sdk_python;
mod sdk_typescript;
mod slow_clients;
mod tidy;
mod tls;
mod v1;
