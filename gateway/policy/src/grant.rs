//! The grant policy: what a paired app may do with the owner's provider keys.
//!
//! A [`GrantPolicy`] is stored as JSON next to each grant. Unknown fields are rejected
//! (a typo must not silently drop a limit); missing fields take the defaults documented
//! on each field. [`GrantPolicy::validate`] lists every problem at once.
//!
//! # Only the owner widens
//!
//! Policies are partially ordered by [`GrantPolicy::is_within`] ("grants nothing the outer
//! policy does not"). An app can never widen its own grant: the app only ever *requests* a
//! policy (consent request), and the grant is what the owner approves, computed by
//! [`GrantPolicy::narrow`], which is within both the request and the owner's edits. Any
//! later change an app asks for goes through the same owner-side approval; the gateway
//! never stores a policy produced from app input alone. Only owner routes write policies.
//!
//! # Endpoints
//!
//! Endpoint names are `chat`, `embeddings`, `models` and `resource:<plugin>/<action>`
//! (a call into a resource plugin). Entries of [`GrantPolicy::endpoints`] may be globs
//! (`resource:resend/*`); a bare `*` allows every endpoint, resources included, except a
//! provider's native pass-through (`resource:<plugin>/passthrough`), which only an entry
//! naming it exactly allows: no glob quietly grants raw access to a provider's API.
//! Requests to resource endpoints are governed by `endpoints` and `resources`; a pass-through
//! request is a call to a provider, so `providers`, `models` and the request-shape flags
//! apply to it too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod relation;
mod validate;

pub use validate::MAX_ENTRIES;

/// Endpoint names and helpers.
pub mod endpoint {
    /// Chat completions (the only endpoint that generates output tokens).
    pub const CHAT: &str = "chat";
    /// Embeddings.
    pub const EMBEDDINGS: &str = "embeddings";
    /// Model listing.
    pub const MODELS: &str = "models";
    /// Prefix of resource-plugin endpoints: `resource:<plugin>/<action>`.
    pub const RESOURCE_PREFIX: &str = "resource:";

    /// The endpoint name of `action` on resource plugin `plugin`.
    pub fn resource(plugin: &str, action: &str) -> String {
        format!("{RESOURCE_PREFIX}{plugin}/{action}")
    }

    /// `true` for `resource:...` endpoint names.
    pub fn is_resource(endpoint: &str) -> bool {
        endpoint.starts_with(RESOURCE_PREFIX)
    }

    /// The action of a plugin's provider-native pass-through.
    pub const PASSTHROUGH: &str = "passthrough";

    /// `true` for `resource:<plugin>/passthrough`.
    pub fn is_passthrough(endpoint: &str) -> bool {
        endpoint
            .strip_prefix(RESOURCE_PREFIX)
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(_, action)| action == PASSTHROUGH)
    }

    /// Whether a grant's `endpoints` entry allows `endpoint`: a glob match, except that a
    /// pass-through endpoint is allowed only by an entry equal to it.
    pub fn entry_allows(entry: &str, endpoint: &str) -> bool {
        if is_passthrough(endpoint) {
            entry == endpoint
        } else {
            crate::glob::matches(entry, endpoint)
        }
    }

    /// The glob matching every endpoint of resource plugin `plugin`.
    pub(crate) fn plugin_glob(plugin: &str) -> String {
        resource(plugin, "*")
    }
}

/// What happens when a request asks for more output tokens than `max_output_tokens`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    Serialize,
    Deserialize,
    ts_rs::TS,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OutputMode {
    /// Lower the request's max tokens to the limit and let it through (default).
    #[default]
    Clamp,
    /// Refuse the request with `max_tokens_exceeded`.
    Reject,
}

/// A token or cost budget per calendar window (UTC); `None` means no limit in that window.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    Serialize,
    Deserialize,
    ts_rs::TS,
    schemars::JsonSchema,
)]
#[serde(default, deny_unknown_fields)]
pub struct Budget {
    /// Limit per UTC calendar day.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily: Option<u64>,
    /// Limit per UTC calendar month.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monthly: Option<u64>,
    /// Limit over the grant's whole life.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<u64>,
}

impl Budget {
    /// `true` when any window has a limit.
    pub fn is_set(&self) -> bool {
        self.daily.is_some() || self.monthly.is_some() || self.lifetime.is_some()
    }
}

/// The policy attached to a grant. See the module documentation for the JSON form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GrantPolicy {
    /// Allowed providers: exact provider ids (`"openai"`) or `"*"`. Default `["*"]`.
    pub providers: Vec<String>,
    /// Allowed models as `provider/model` globs (`"openai/gpt-4o*"`, `"anthropic/*"`) or
    /// `"*"`. Default `["*"]`.
    pub models: Vec<String>,
    /// Allowed endpoints (see the module documentation), globs allowed. Default
    /// `["chat", "embeddings", "models"]`: resource plugins must be granted explicitly.
    /// An empty list allows nothing at all.
    pub endpoints: Vec<String>,
    /// Upper bound on output tokens per chat request. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// What to do with a request above `max_output_tokens`. Default `clamp`.
    pub output_tokens_mode: OutputMode,
    /// Whether streamed responses are allowed. Default `true`.
    pub allow_streaming: bool,
    /// Whether requests may carry tool (function) definitions. Default `true`.
    pub allow_tools: bool,
    /// Whether requests may carry image inputs. Default `true`.
    pub allow_images: bool,
    /// Request rate limit per minute (GCRA, burst = the limit). Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    /// Request rate limit per day (GCRA, burst = the limit). Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_per_day: Option<u32>,
    /// Token rate limit per minute (input + output, GCRA). Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    /// Requests in flight at once. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    /// Token budgets (input + output tokens). Default: none.
    pub token_budget: Budget,
    /// Cost budgets in micro-USD (1 USD = 1 000 000). Default: none.
    pub cost_budget_micros: Budget,
    /// The grant is not usable before this instant (unix ms, inclusive). Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<i64>,
    /// The grant is not usable from this instant on (unix ms, exclusive). Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Allowed client addresses: CIDR blocks or single addresses, IPv4 or IPv6. Empty
    /// (the default) allows any address.
    pub source_ips: Vec<String>,
    /// Whether DPoP proofs must carry the request body digest. Default `false`.
    pub require_body_hash: bool,
    /// Per-resource-plugin limits, keyed by plugin id, each a JSON object handed to that
    /// plugin, e.g. `{"resend": {"sender_domains": ["example.com"], "max_recipients": 5}}`.
    /// The policy treats the objects as opaque: a plugin absent here gets no limits from
    /// the grant. Default: empty.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub resources: BTreeMap<String, serde_json::Value>,
}

impl Default for GrantPolicy {
    fn default() -> Self {
        GrantPolicy {
            providers: vec!["*".to_owned()],
            models: vec!["*".to_owned()],
            endpoints: [endpoint::CHAT, endpoint::EMBEDDINGS, endpoint::MODELS]
                .map(str::to_owned)
                .to_vec(),
            max_output_tokens: None,
            output_tokens_mode: OutputMode::Clamp,
            allow_streaming: true,
            allow_tools: true,
            allow_images: true,
            requests_per_minute: None,
            requests_per_day: None,
            tokens_per_minute: None,
            max_concurrent: None,
            token_budget: Budget::default(),
            cost_budget_micros: Budget::default(),
            not_before: None,
            expires_at: None,
            source_ips: Vec::new(),
            require_body_hash: false,
            resources: BTreeMap::new(),
        }
    }
}

impl GrantPolicy {
    /// `true` when no request can ever be allowed (no endpoint is granted). Such a policy
    /// is within every policy; [`GrantPolicy::narrow`] returns one when the request and
    /// the owner's edits have nothing in common.
    pub fn grants_nothing(&self) -> bool {
        self.endpoints.is_empty()
    }
}

/// One problem found by [`GrantPolicy::validate`]; `field` is a path such as `models[2]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A glob pattern is malformed.
    #[error("{field}: invalid pattern {value:?}: {reason}")]
    BadPattern {
        /// Where.
        field: String,
        /// The entry.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// A provider entry is neither `*` nor a provider id (lowercase `[a-z0-9._-]`).
    #[error("{field}: {value:?} is not a provider id or \"*\"")]
    BadProvider {
        /// Where.
        field: String,
        /// The entry.
        value: String,
    },
    /// An endpoint entry names no known endpoint kind.
    #[error("{field}: unknown endpoint kind {value:?}")]
    UnknownEndpoint {
        /// Where.
        field: String,
        /// The entry.
        value: String,
    },
    /// A `source_ips` entry is not a CIDR block or address.
    #[error("{field}: invalid CIDR or address {value:?}: {reason}")]
    BadCidr {
        /// Where.
        field: String,
        /// The entry.
        value: String,
        /// Why.
        reason: crate::net::CidrError,
    },
    /// A limit is zero (write no limit, or revoke the grant, instead).
    #[error("{field}: must be greater than zero")]
    ZeroLimit {
        /// Where.
        field: String,
    },
    /// The validity window is empty.
    #[error("not_before ({not_before}) must be earlier than expires_at ({expires_at})")]
    EmptyWindow {
        /// Start (unix ms).
        not_before: i64,
        /// End (unix ms).
        expires_at: i64,
    },
    /// A list has more entries than allowed.
    #[error("{field}: {len} entries, at most {max} allowed")]
    TooManyEntries {
        /// Where.
        field: String,
        /// How many there are.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// A `resources` key is not a plugin id (lowercase `[a-z0-9_-]`, 1 to 64 bytes).
    #[error("resources: {value:?} is not a plugin id")]
    BadResourceKey {
        /// The key.
        value: String,
    },
    /// A `resources` value is not a JSON object.
    #[error("{field}: must be a JSON object")]
    ResourceNotObject {
        /// Where.
        field: String,
    },
}

/// Every problem found in a policy, in field order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid grant policy: {}", join(.errors))]
pub struct PolicyErrors {
    /// The problems (never empty when returned as an error).
    pub errors: Vec<PolicyError>,
}

fn join(errors: &[PolicyError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_json_is_the_default() {
        let p: GrantPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(p, GrantPolicy::default());
        assert_eq!(p.endpoints, ["chat", "embeddings", "models"]);
        assert!(p.allow_streaming && p.allow_tools && p.allow_images && !p.require_body_hash);
        assert!(p.validate().is_ok());
    }

    #[test]
    fn full_json_parses() {
        let json = serde_json::json!({
            "providers": ["openai"],
            "models": ["openai/gpt-4o*"],
            "endpoints": ["chat", "resource:resend/*"],
            "max_output_tokens": 1000,
            "output_tokens_mode": "reject",
            "allow_streaming": false,
            "requests_per_minute": 60,
            "token_budget": {"daily": 100000},
            "cost_budget_micros": {"monthly": 5000000},
            "not_before": 1, "expires_at": 2,
            "source_ips": ["10.0.0.0/8"],
            "require_body_hash": true,
            "resources": {"resend": {"max_recipients": 5}}
        });
        let p: GrantPolicy = serde_json::from_value(json).unwrap();
        assert_eq!(p.output_tokens_mode, OutputMode::Reject);
        assert_eq!(p.token_budget.daily, Some(100_000));
        assert_eq!(p.cost_budget_micros.monthly, Some(5_000_000));
        assert!(p.allow_tools && !p.allow_streaming);
        assert!(p.validate().is_ok());
    }

    #[test]
    fn unknown_fields_are_rejected() {
        for json in [
            r#"{"max_tokens": 5}"#,
            r#"{"token_budget": {"weekly": 5}}"#,
            r#"{"output_tokens_mode": "drop"}"#,
        ] {
            assert!(serde_json::from_str::<GrantPolicy>(json).is_err(), "{json}");
        }
    }

    #[test]
    fn empty_lists_survive_a_roundtrip() {
        let p = GrantPolicy {
            providers: vec![],
            endpoints: vec![],
            ..GrantPolicy::default()
        };
        let back: GrantPolicy = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        assert!(back.grants_nothing());
    }

    #[test]
    fn endpoint_helpers() {
        assert_eq!(endpoint::resource("resend", "send"), "resource:resend/send");
        assert!(endpoint::is_resource("resource:resend/send"));
        assert!(!endpoint::is_resource("chat"));
        assert_eq!(endpoint::plugin_glob("s3"), "resource:s3/*");
    }

    #[test]
    fn errors_display_every_problem() {
        let e = PolicyErrors {
            errors: vec![
                PolicyError::ZeroLimit {
                    field: "requests_per_minute".into(),
                },
                PolicyError::EmptyWindow {
                    not_before: 5,
                    expires_at: 5,
                },
            ],
        };
        assert_eq!(
            e.to_string(),
            "invalid grant policy: requests_per_minute: must be greater than zero; not_before (5) must be earlier than expires_at (5)"
        );
    }
}
