//! The host's view of the plugin contract, independent of the WIT version a plugin was built
//! against: each contract version converts its generated types to and from these.

use serde_json::json;
use std::fmt;

/// A loaded plugin's id (its descriptor's `id`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PluginId(pub(crate) String);

impl PluginId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PluginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a loaded plugin came from; installed plugins run under tighter limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Builtin,
    Installed,
}

/// The contract versions this host can load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContractVersion {
    V0_1_0,
}

impl ContractVersion {
    /// Every supported version, newest first.
    pub const ALL: &'static [ContractVersion] = &[ContractVersion::V0_1_0];

    /// The version as written in WIT (`0.1.0`).
    pub fn as_str(self) -> &'static str {
        match self {
            ContractVersion::V0_1_0 => "0.1.0",
        }
    }
}

/// How the host applies the owner's credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// `authorization: Bearer <credential>`.
    Bearer,
    /// The credential as the whole value of this header.
    Header(String),
    /// No credential.
    None,
}

/// One model of a plugin's catalogue; prices in micro-USD per million tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub id: String,
    pub context_window: u32,
    pub max_output_tokens: u32,
    pub input_price: u64,
    pub output_price: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Minute,
    Hour,
    Day,
    Month,
}

/// A quota the host counts for a plugin; `grant_field` is a JSON pointer into the grant policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    pub name: String,
    pub grant_field: String,
    pub period: Period,
}

/// What a plugin is and needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub id: String,
    pub display_name: String,
    pub version: String,
    pub actions: Vec<String>,
    pub models: Vec<Model>,
    /// Hosts (`name` or `name:port`) upstream calls may go to.
    pub hosts: Vec<String>,
    pub credential: Credential,
    /// Native paths under `/r/{plugin}/...`: exact, or prefixes ending in `/*`.
    pub passthrough: Vec<String>,
    pub quotas: Vec<Quota>,
}

/// Input of `prepare`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrepareRequest {
    pub action: String,
    /// Grant policy, JSON text.
    pub grant: String,
    /// Instance configuration, JSON text (`{}` for none).
    pub config: String,
    pub model: Option<String>,
    pub body: Vec<u8>,
    pub method: String,
    /// Forwarded request headers (never the app's authorization or proof).
    pub headers: Vec<(String, String)>,
    /// Pass-through path (and query) after `/r/{plugin}`.
    pub path: Option<String>,
    /// Unix seconds.
    pub timestamp: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    Json,
    Sse,
    Ndjson,
    Raw,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub quota: String,
    pub amount: u64,
}

/// The call a plugin wants made. Its URL is not yet checked: pass it through
/// [`check_upstream`](crate::check_upstream) with the owner-approved hosts before sending.
/// Authorization-like headers have already been removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamCall {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub response_mode: ResponseMode,
    /// Hand back in [`UpstreamResponse::state`] or to the first `translate_events`.
    pub state: Vec<u8>,
    pub charges: Vec<Charge>,
}

/// The plugin refused the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// JSON text.
    pub details: Option<String>,
}

impl Rejection {
    /// The body the app gets: OpenAI's error shape.
    pub fn openai_error_body(&self) -> Vec<u8> {
        let details = self
            .details
            .as_deref()
            .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok());
        let mut err = json!({
            "message": self.message, "type": "invalid_request_error", "code": self.code, "param": null,
        });
        if let (Some(d), Some(obj)) = (details, err.as_object_mut()) {
            obj.insert("details".to_owned(), d);
        }
        json!({ "error": err }).to_string().into_bytes()
    }
}

/// Input of `finish`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpstreamResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub state: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Part of `input_tokens` served from the provider's cache.
    pub cached_tokens: u64,
}

/// A whole response mapped back for the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub status: u16,
    pub body: Vec<u8>,
    pub usage: Option<Usage>,
}

/// Whose fault an upstream error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    InvalidRequest,
    Authentication,
    Permission,
    NotFound,
    RateLimited,
    Overloaded,
    Upstream,
    BadResponse,
}

impl FailureKind {
    /// OpenAI's error `type` for this kind.
    pub fn openai_type(self) -> &'static str {
        match self {
            FailureKind::InvalidRequest => "invalid_request_error",
            FailureKind::Authentication => "upstream_authentication_error",
            FailureKind::Permission => "permission_error",
            FailureKind::NotFound => "not_found_error",
            FailureKind::RateLimited => "rate_limit_error",
            FailureKind::Overloaded | FailureKind::Upstream | FailureKind::BadResponse => {
                "server_error"
            }
        }
    }

    /// Whether retrying the same request later may succeed.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            FailureKind::RateLimited | FailureKind::Overloaded | FailureKind::Upstream
        )
    }
}

/// An upstream error mapped by the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: u16,
    pub kind: FailureKind,
    pub code: Option<String>,
    pub message: String,
    pub retry_after_seconds: Option<u32>,
}

impl Failure {
    /// The body the app gets: OpenAI's error shape.
    pub fn openai_error_body(&self) -> Vec<u8> {
        json!({"error": {
            "message": self.message, "type": self.kind.openai_type(), "code": self.code, "param": null,
        }})
        .to_string()
        .into_bytes()
    }
}

/// One framed stream event: an SSE `event`/`data` pair or an NDJSON line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamEvent {
    pub event: Option<String>,
    pub data: String,
}

/// A translated batch of stream events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translated {
    /// State for the next batch.
    pub state: Vec<u8>,
    /// `chat.completion.chunk` JSON payloads, each sent as `data: ...`.
    pub chunks: Vec<String>,
    pub usage: Option<Usage>,
    /// Send `data: [DONE]` and stop reading upstream.
    pub done: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &[u8]) -> serde_json::Value {
        serde_json::from_slice(body).expect("JSON")
    }

    #[test]
    fn a_rejection_becomes_an_openai_error_with_its_details() {
        let r = Rejection {
            status: 403,
            code: "too_many_recipients".into(),
            message: "at most 3".into(),
            details: Some(r#"{"max_recipients":3}"#.into()),
        };
        let body = parse(&r.openai_error_body());
        assert_eq!(body["error"]["code"], "too_many_recipients");
        assert_eq!(body["error"]["message"], "at most 3");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["details"]["max_recipients"], 3);
    }

    #[test]
    fn a_failure_becomes_an_openai_error_typed_by_its_kind() {
        let f = Failure {
            status: 429,
            kind: FailureKind::RateLimited,
            code: Some("rate_limit_exceeded".into()),
            message: "slow down".into(),
            retry_after_seconds: Some(2),
        };
        let body = parse(&f.openai_error_body());
        assert_eq!(body["error"]["type"], "rate_limit_error");
        assert_eq!(body["error"]["code"], "rate_limit_exceeded");
        assert!(f.kind.retryable());
        assert!(!FailureKind::InvalidRequest.retryable());
    }
}
