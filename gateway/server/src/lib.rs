//! The pairgate gateway: the only crate that knows HTTP. Configuration, CLI, state, routes,
//! middleware and the mapping of domain errors onto responses.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod auth;
pub mod boot;
pub mod cli;
pub mod commands;
pub mod config;
pub mod conn;
pub mod consent;
pub mod credentials;
pub mod error;
pub mod grant_policy;
pub mod hosts;
pub mod keys;
pub mod ledger;
pub mod limits;
pub mod master_key;
pub mod metrics;
pub mod owner;
pub mod pairing;
pub mod passkeys;
pub mod prices;
pub mod redact;
pub mod relay;
pub mod routes;
pub mod serve;
pub mod state;
pub mod telemetry;
pub mod tls;

pub use error::ApiError;
pub use state::AppState;
