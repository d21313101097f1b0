//! The pairgate gateway: the only crate that knows HTTP. Its modules are layers, each importing
//! only from the layers below it (a tidy test checks it):
//!
//! `base` < `config` < `engine` < `state`, `boot` < `domain` < `relay` < `http` < `cli`
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod base;
pub mod boot;
pub mod cli;
pub mod config;
pub mod domain;
pub mod engine;
pub mod http;
pub mod relay;
pub mod state;

pub use base::error::ApiError;
pub use state::AppState;
