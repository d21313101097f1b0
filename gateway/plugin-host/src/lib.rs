//! Runs pairgate provider plugins (WebAssembly components).
//!
//! A plugin decides what a request to its provider may be and maps it (`prepare`), maps the
//! response back (`finish`, `translate_events`), and describes itself (`describe`). It never
//! sees a provider key and does no I/O: the gateway sends the call it prepared, after
//! [`check_upstream`] and with the credential applied as the descriptor says.
//!
//! - One [`wasmtime::Engine`] (Cranelift), epoch interruption for the per-call deadline driven by
//!   a ticker thread (asleep while no call runs), the pooling allocator, a memory cap per
//!   instance.
//! - Components are scanned before compiling (contract version from their exports, imports
//!   against an allow-list), compiled once and cached on disk, linked once (`InstancePre`), and
//!   instantiated afresh for every call: a plugin that traps, loops or exhausts its memory fails
//!   that call only.
//! - The contract is the WIT package `pairgate:provider` (`plugins/wit/provider-<version>/`);
//!   each supported version has its own module (`v0_1_0`) converting to the types in [`types`].

mod builtin;
mod check;
mod config;
mod contract;
mod error;
pub mod framing;
mod host;
mod sandbox;
mod ticker;
pub mod types;
mod upstream;
mod v0_1_0;

#[cfg(test)]
mod sandbox_tests;

pub use builtin::{builtin_component, builtin_ids, example_component};
pub use config::{HostConfig, KEEP_CALLS, KEEP_MEMORY_BYTES, PluginLimits};
pub use error::{PluginError, UpstreamDenied};
pub use host::{PluginHost, PluginInfo};
pub use types::{
    Charge, ContractVersion, Credential, Descriptor, Failure, FailureKind, Finished, Model, Origin,
    Period, PluginId, PrepareRequest, Quota, Rejection, ResponseMode, StreamEvent, Translated,
    UpstreamCall, UpstreamResponse, Usage,
};
pub use upstream::{AUTH_HEADERS, CheckedUrl, check_upstream, is_private, strip_auth_headers};
