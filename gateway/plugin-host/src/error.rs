//! Errors of the plugin host. Every call error names the plugin; none carries a secret.

use crate::types::Rejection;
use std::time::Duration;

/// A plugin call, load or install failed. The host stays usable after any of these.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("no plugin {0:?} is loaded")]
    NotFound(String),
    #[error("plugin {plugin} trapped: {detail}")]
    Trap { plugin: String, detail: String },
    #[error("plugin {plugin} ran past its deadline of {deadline:?}")]
    Timeout { plugin: String, deadline: Duration },
    #[error("plugin {plugin} ran out of memory (limit {limit} bytes)")]
    OutOfMemory { plugin: String, limit: usize },
    #[error("plugin {plugin} is invalid: {reason}")]
    Invalid { plugin: String, reason: String },
    #[error("plugin {plugin} imports {import:?}, which pairgate does not provide")]
    ForbiddenImport { plugin: String, import: String },
    #[error("plugin {plugin} was built for an unsupported contract: {detail}")]
    UnsupportedContract { plugin: String, detail: String },
    #[error("plugin component has SHA-256 {actual}, expected {expected}")]
    HashMismatch { expected: String, actual: String },
    #[error("plugin component is {size} bytes, more than the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("plugin {plugin} refused its configuration: {} ({})", rejection.message, rejection.code)]
    Rejected {
        plugin: String,
        rejection: Rejection,
    },
    #[error("plugin {plugin} returned a bad result: {reason}")]
    BadOutput { plugin: String, reason: String },
    #[error("plugin {plugin} could not run: every instance slot is busy")]
    Busy { plugin: String },
    #[error("the plugin host could not start: {0}")]
    Engine(String),
}

/// An upstream URL the gateway must not call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamDenied {
    #[error("the upstream URL is not a valid absolute URL")]
    InvalidUrl,
    #[error("the upstream URL uses {0}: only https is allowed")]
    Scheme(String),
    #[error("the upstream URL carries credentials")]
    Credentials,
    #[error("the upstream URL has no host")]
    NoHost,
    #[error("the plugin did not declare the host {0}")]
    NotDeclared(String),
    #[error("the owner has not approved the host {0}")]
    NotApproved(String),
    #[error("{0} is a private, loopback or link-local address")]
    PrivateAddress(String),
    #[error("{0} is a local host name")]
    Localhost(String),
}
