//! The per-request decision: may this request go upstream under this grant's policy, and with what max tokens.
//!
//! [`check`] looks only at the request's shape (facts the gateway extracted); rate limits,
//! budgets and concurrency are enforced by the gateway with the arithmetic in
//! [`crate::limits`]. Checks run in this order and the first failure is reported:
//! validity window, source address ([`check_access`], which every other use of a grant's
//! credentials applies too), endpoint, provider, model, streaming, tools, images,
//! max tokens. Provider and model are not checked for `resource:` endpoints.

use std::net::IpAddr;

use crate::grant::{GrantPolicy, OutputMode, endpoint};
use crate::{glob, net};

/// What the gateway knows about a request before sending it upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestFacts<'a> {
    /// Provider id the request is routed to (`"openai"`); ignored for resource endpoints.
    pub provider: &'a str,
    /// Model name as the provider knows it (`"gpt-4o"`, without the provider prefix);
    /// `None` when the endpoint takes no model (model listing).
    pub model: Option<&'a str>,
    /// Endpoint name: `chat`, `embeddings`, `models` or `resource:<plugin>/<action>`.
    pub endpoint: &'a str,
    /// The client asked for a streamed response.
    pub stream: bool,
    /// The request carries tool or function definitions.
    pub has_tools: bool,
    /// The request carries image inputs.
    pub has_images: bool,
    /// The max output tokens the client asked for (`max_tokens` / `max_completion_tokens`).
    pub requested_max_tokens: Option<u32>,
    /// The client's address, if known.
    pub source_ip: Option<IpAddr>,
    /// Now, unix milliseconds.
    pub now_ms: i64,
}

/// A request allowed by the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    /// The max output tokens to send upstream (after clamping or filling in the policy's
    /// maximum); `None`: leave the request as it is. Only `chat` is ever changed.
    pub max_tokens: Option<u32>,
    /// `true` when the client's explicit value was lowered to the policy's maximum.
    pub clamped: bool,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenialCode {
    /// `now < not_before`.
    NotYetValid,
    /// `now >= expires_at`.
    Expired,
    /// The client's address is not in `source_ips` (or is unknown while the list is set).
    SourceIpNotAllowed,
    /// The provider is not in `providers`.
    ProviderNotAllowed,
    /// `provider/model` matches no entry of `models`.
    ModelNotAllowed,
    /// The endpoint matches no entry of `endpoints`.
    EndpointNotAllowed,
    /// Streaming requested but not allowed.
    StreamingNotAllowed,
    /// Tools present but not allowed.
    ToolsNotAllowed,
    /// Images present but not allowed.
    ImagesNotAllowed,
    /// Requested max tokens above the maximum, in `reject` mode.
    MaxTokensExceeded,
}

impl DenialCode {
    /// Every code, in check order.
    pub const ALL: [DenialCode; 10] = [
        DenialCode::NotYetValid,
        DenialCode::Expired,
        DenialCode::SourceIpNotAllowed,
        DenialCode::ProviderNotAllowed,
        DenialCode::ModelNotAllowed,
        DenialCode::EndpointNotAllowed,
        DenialCode::StreamingNotAllowed,
        DenialCode::ToolsNotAllowed,
        DenialCode::ImagesNotAllowed,
        DenialCode::MaxTokensExceeded,
    ];

    /// The stable snake_case code for error bodies and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            DenialCode::NotYetValid => "not_yet_valid",
            DenialCode::Expired => "expired",
            DenialCode::SourceIpNotAllowed => "source_ip_not_allowed",
            DenialCode::ProviderNotAllowed => "provider_not_allowed",
            DenialCode::ModelNotAllowed => "model_not_allowed",
            DenialCode::EndpointNotAllowed => "endpoint_not_allowed",
            DenialCode::StreamingNotAllowed => "streaming_not_allowed",
            DenialCode::ToolsNotAllowed => "tools_not_allowed",
            DenialCode::ImagesNotAllowed => "images_not_allowed",
            DenialCode::MaxTokensExceeded => "max_tokens_exceeded",
        }
    }

    /// HTTP status: 400 for [`DenialCode::MaxTokensExceeded`] (the client can fix the
    /// request), 403 for everything else.
    pub fn http_status(&self) -> u16 {
        match self {
            DenialCode::MaxTokensExceeded => 400,
            _ => 403,
        }
    }
}

impl std::fmt::Display for DenialCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: a code and a message safe to show the client (it echoes only what the
/// client sent, shortened, and the limit it exceeded; never the policy's lists).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Denial {
    /// Machine-readable reason.
    pub code: DenialCode,
    /// Human-readable reason.
    pub message: String,
}

fn deny(code: DenialCode, message: impl Into<String>) -> Result<Allowed, Denial> {
    Err(Denial {
        code,
        message: message.into(),
    })
}

/// Client input for a message: at most 100 characters, debug-quoted.
fn shown(s: &str) -> String {
    const MAX: usize = 100;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}...", &s[..cut]),
        None => format!("{s:?}"),
    }
}

fn provider_allowed(policy: &GrantPolicy, provider: &str) -> bool {
    policy.providers.iter().any(|p| p == "*" || p == provider)
}

fn models_match(policy: &GrantPolicy, qualified: &str) -> bool {
    policy.models.iter().any(|m| glob::matches(m, qualified))
}

/// `true` when `qualified` (`"provider/model"`) may be used: its provider is allowed and
/// it matches a model entry. For filtering `/v1/models` lists.
pub fn model_allowed(policy: &GrantPolicy, qualified: &str) -> bool {
    qualified.split_once('/').is_some_and(|(provider, _)| {
        provider_allowed(policy, provider) && models_match(policy, qualified)
    })
}

/// Whether a credential of a grant under `policy` may be used at all at `now_ms` from
/// `source_ip`: the validity window (`not_before`, `expires_at`), then the source addresses
/// (an unknown address is refused while `source_ips` is set). Every use of a grant's
/// credentials applies it (each app route, refresh, key rotation); [`check`] starts with it.
pub fn check_access(
    policy: &GrantPolicy,
    source_ip: Option<IpAddr>,
    now_ms: i64,
) -> Result<(), Denial> {
    if policy.not_before.is_some_and(|nb| now_ms < nb) {
        return Err(Denial {
            code: DenialCode::NotYetValid,
            message: "this grant is not valid yet".into(),
        });
    }
    if policy.expires_at.is_some_and(|exp| now_ms >= exp) {
        return Err(Denial {
            code: DenialCode::Expired,
            message: "this grant has expired".into(),
        });
    }
    if !policy.source_ips.is_empty()
        && !source_ip.is_some_and(|ip| net::any_contains(&policy.source_ips, ip))
    {
        return Err(Denial {
            code: DenialCode::SourceIpNotAllowed,
            message: "requests from this address are not allowed by this grant".into(),
        });
    }
    Ok(())
}

/// Decide whether the request described by `facts` may proceed under `policy`.
///
/// On success, [`Allowed::max_tokens`] is what to send upstream for `chat`:
/// * no maximum in the policy: the client's value (possibly `None`);
/// * client value `<=` maximum: the client's value;
/// * client value above it: the maximum with `clamped = true` in `clamp` mode, a
///   [`DenialCode::MaxTokensExceeded`] denial in `reject` mode;
/// * no client value: the maximum (both modes), `clamped = false`.
///
/// Other endpoints get the client's value back unchanged.
pub fn check(policy: &GrantPolicy, facts: &RequestFacts) -> Result<Allowed, Denial> {
    check_access(policy, facts.source_ip, facts.now_ms)?;
    if !policy
        .endpoints
        .iter()
        .any(|e| endpoint::entry_allows(e, facts.endpoint))
    {
        return deny(
            DenialCode::EndpointNotAllowed,
            format!(
                "endpoint {} is not allowed by this grant",
                shown(facts.endpoint)
            ),
        );
    }
    if !endpoint::is_resource(facts.endpoint) || endpoint::is_passthrough(facts.endpoint) {
        if !provider_allowed(policy, facts.provider) {
            return deny(
                DenialCode::ProviderNotAllowed,
                format!(
                    "provider {} is not allowed by this grant",
                    shown(facts.provider)
                ),
            );
        }
        if let Some(model) = facts.model {
            let qualified = format!("{}/{model}", facts.provider);
            if !models_match(policy, &qualified) {
                return deny(
                    DenialCode::ModelNotAllowed,
                    format!("model {} is not allowed by this grant", shown(&qualified)),
                );
            }
        }
    }
    if facts.stream && !policy.allow_streaming {
        return deny(
            DenialCode::StreamingNotAllowed,
            "streaming is not allowed by this grant",
        );
    }
    if facts.has_tools && !policy.allow_tools {
        return deny(
            DenialCode::ToolsNotAllowed,
            "tools are not allowed by this grant",
        );
    }
    if facts.has_images && !policy.allow_images {
        return deny(
            DenialCode::ImagesNotAllowed,
            "image inputs are not allowed by this grant",
        );
    }
    let unchanged = Allowed {
        max_tokens: facts.requested_max_tokens,
        clamped: false,
    };
    // A pass-through body is the provider's own: it cannot be clamped, so a grant's output cap
    // needs the request to state a maximum within it.
    if endpoint::is_passthrough(facts.endpoint)
        && let Some(max) = policy.max_output_tokens
        && facts.requested_max_tokens.is_none_or(|req| req > max)
    {
        return deny(
            DenialCode::MaxTokensExceeded,
            format!(
                "this grant caps output at {max} tokens: state max_output_tokens (or max_tokens) of at most {max}"
            ),
        );
    }
    if facts.endpoint != endpoint::CHAT {
        return Ok(unchanged);
    }
    match (policy.max_output_tokens, facts.requested_max_tokens) {
        (None, _) => Ok(unchanged),
        (Some(max), None) => Ok(Allowed {
            max_tokens: Some(max),
            clamped: false,
        }),
        (Some(max), Some(req)) if req <= max => Ok(unchanged),
        (Some(max), Some(req)) => match policy.output_tokens_mode {
            OutputMode::Clamp => Ok(Allowed {
                max_tokens: Some(max),
                clamped: true,
            }),
            OutputMode::Reject => deny(
                DenialCode::MaxTokensExceeded,
                format!("max_tokens {req} exceeds this grant's limit of {max}"),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts() -> RequestFacts<'static> {
        RequestFacts {
            provider: "openai",
            model: Some("gpt-4o"),
            endpoint: "chat",
            stream: false,
            has_tools: false,
            has_images: false,
            requested_max_tokens: None,
            source_ip: None,
            now_ms: 1_000,
        }
    }

    fn policy(v: serde_json::Value) -> GrantPolicy {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn denials_table() {
        type Edit = fn(&mut RequestFacts<'static>);
        let cases: Vec<(serde_json::Value, Edit, DenialCode)> = vec![
            (json!({"not_before": 1001}), |_| {}, DenialCode::NotYetValid),
            (json!({"expires_at": 1000}), |_| {}, DenialCode::Expired),
            (
                json!({"source_ips": ["10.0.0.0/8"]}),
                |_| {},
                DenialCode::SourceIpNotAllowed,
            ),
            (
                json!({"source_ips": ["10.0.0.0/8"]}),
                |f| f.source_ip = Some("11.0.0.1".parse().unwrap()),
                DenialCode::SourceIpNotAllowed,
            ),
            (
                json!({"providers": ["anthropic"]}),
                |_| {},
                DenialCode::ProviderNotAllowed,
            ),
            (
                json!({"models": ["openai/gpt-4o-*"]}),
                |_| {},
                DenialCode::ModelNotAllowed,
            ),
            (
                json!({"models": ["anthropic/*"]}),
                |_| {},
                DenialCode::ModelNotAllowed,
            ),
            (
                json!({}),
                |f| f.endpoint = "completions",
                DenialCode::EndpointNotAllowed,
            ),
            (
                json!({}),
                |f| f.endpoint = "resource:resend/send",
                DenialCode::EndpointNotAllowed,
            ),
            // no glob grants a provider's raw pass-through
            (
                json!({"endpoints": ["*", "resource:*", "resource:openai/*", "resource:*/passthrough"]}),
                |f| f.endpoint = "resource:openai/passthrough",
                DenialCode::EndpointNotAllowed,
            ),
            // pass-through is a call to the provider: its lists apply
            (
                json!({"endpoints": ["resource:openai/passthrough"], "providers": ["anthropic"]}),
                |f| f.endpoint = "resource:openai/passthrough",
                DenialCode::ProviderNotAllowed,
            ),
            (
                json!({"endpoints": ["resource:openai/passthrough"], "models": ["openai/gpt-4o-mini"]}),
                |f| {
                    f.endpoint = "resource:openai/passthrough";
                    f.model = Some("o3");
                },
                DenialCode::ModelNotAllowed,
            ),
            (
                json!({"endpoints": []}),
                |_| {},
                DenialCode::EndpointNotAllowed,
            ),
            (
                json!({"allow_streaming": false}),
                |f| f.stream = true,
                DenialCode::StreamingNotAllowed,
            ),
            (
                json!({"allow_tools": false}),
                |f| f.has_tools = true,
                DenialCode::ToolsNotAllowed,
            ),
            (
                json!({"allow_images": false}),
                |f| f.has_images = true,
                DenialCode::ImagesNotAllowed,
            ),
            (
                json!({"max_output_tokens": 100, "output_tokens_mode": "reject"}),
                |f| f.requested_max_tokens = Some(101),
                DenialCode::MaxTokensExceeded,
            ),
            // a pass-through body must state an output cap within the grant's
            (
                json!({"endpoints": ["resource:openai/passthrough"], "max_output_tokens": 100}),
                |f| f.endpoint = "resource:openai/passthrough",
                DenialCode::MaxTokensExceeded,
            ),
            (
                json!({"endpoints": ["resource:openai/passthrough"], "max_output_tokens": 100}),
                |f| {
                    f.endpoint = "resource:openai/passthrough";
                    f.requested_max_tokens = Some(101);
                },
                DenialCode::MaxTokensExceeded,
            ),
            // order: the window is checked before anything else
            (
                json!({"expires_at": 5, "providers": []}),
                |_| {},
                DenialCode::Expired,
            ),
        ];
        for (p, edit, code) in cases {
            let mut f = facts();
            edit(&mut f);
            let denial = check(&policy(p.clone()), &f).unwrap_err();
            assert_eq!(denial.code, code, "{p} {f:?}");
            assert!(!denial.message.is_empty());
        }
    }

    #[test]
    fn allowed_table() {
        type Edit = fn(&mut RequestFacts<'static>);
        let cases: Vec<(serde_json::Value, Edit, Allowed)> = vec![
            (
                json!({}),
                |_| {},
                Allowed {
                    max_tokens: None,
                    clamped: false,
                },
            ),
            (
                json!({}),
                |f| f.requested_max_tokens = Some(7),
                Allowed {
                    max_tokens: Some(7),
                    clamped: false,
                },
            ),
            (
                json!({"max_output_tokens": 100}),
                |_| {},
                Allowed {
                    max_tokens: Some(100),
                    clamped: false,
                },
            ),
            (
                json!({"max_output_tokens": 100}),
                |f| f.requested_max_tokens = Some(50),
                Allowed {
                    max_tokens: Some(50),
                    clamped: false,
                },
            ),
            (
                json!({"max_output_tokens": 100}),
                |f| f.requested_max_tokens = Some(100),
                Allowed {
                    max_tokens: Some(100),
                    clamped: false,
                },
            ),
            (
                json!({"max_output_tokens": 100}),
                |f| f.requested_max_tokens = Some(500),
                Allowed {
                    max_tokens: Some(100),
                    clamped: true,
                },
            ),
            (
                json!({"max_output_tokens": 100, "output_tokens_mode": "reject"}),
                |_| {},
                Allowed {
                    max_tokens: Some(100),
                    clamped: false,
                },
            ),
            (
                json!({"max_output_tokens": 100, "output_tokens_mode": "reject"}),
                |f| f.requested_max_tokens = Some(100),
                Allowed {
                    max_tokens: Some(100),
                    clamped: false,
                },
            ),
            // non-chat endpoints are not given a max
            (
                json!({"max_output_tokens": 100}),
                |f| f.endpoint = "embeddings",
                Allowed {
                    max_tokens: None,
                    clamped: false,
                },
            ),
            // models listing carries no model
            (
                json!({"models": ["anthropic/*"]}),
                |f| {
                    f.endpoint = "models";
                    f.model = None
                },
                Allowed {
                    max_tokens: None,
                    clamped: false,
                },
            ),
            // resource endpoints skip provider/model
            (
                json!({"providers": [], "models": [], "endpoints": ["resource:resend/*"]}),
                |f| f.endpoint = "resource:resend/send",
                Allowed {
                    max_tokens: None,
                    clamped: false,
                },
            ),
            (
                json!({"source_ips": ["10.0.0.0/8", "2001:db8::/32"]}),
                |f| f.source_ip = Some("::ffff:10.2.3.4".parse().unwrap()),
                Allowed {
                    max_tokens: None,
                    clamped: false,
                },
            ),
            (
                json!({"not_before": 1000, "expires_at": 1001}),
                |_| {},
                Allowed {
                    max_tokens: None,
                    clamped: false,
                },
            ),
        ];
        for (p, edit, want) in cases {
            let mut f = facts();
            edit(&mut f);
            assert_eq!(check(&policy(p.clone()), &f), Ok(want), "{p} {f:?}");
        }
    }

    #[test]
    fn codes_and_statuses() {
        let strs: Vec<&str> = DenialCode::ALL.iter().map(DenialCode::as_str).collect();
        assert_eq!(
            strs,
            [
                "not_yet_valid",
                "expired",
                "source_ip_not_allowed",
                "provider_not_allowed",
                "model_not_allowed",
                "endpoint_not_allowed",
                "streaming_not_allowed",
                "tools_not_allowed",
                "images_not_allowed",
                "max_tokens_exceeded"
            ]
        );
        for code in DenialCode::ALL {
            let want = if code == DenialCode::MaxTokensExceeded {
                400
            } else {
                403
            };
            assert_eq!(code.http_status(), want, "{code}");
        }
    }

    #[test]
    fn messages_are_short_and_quote_client_input() {
        let long = "x".repeat(500);
        let f = RequestFacts {
            model: Some(&long),
            ..facts()
        };
        let d = check(&policy(json!({"models": ["openai/gpt*"]})), &f).unwrap_err();
        assert!(d.message.len() < 200, "{}", d.message);
        assert!(d.message.starts_with("model \"openai/xxx"));
        let d = check(&policy(json!({"source_ips": ["10.0.0.0/8"]})), &facts()).unwrap_err();
        assert!(!d.message.contains("10.0.0.0"));
        assert_eq!(d.to_string(), d.message);
    }

    #[test]
    fn check_access_is_the_window_then_the_source_address() {
        let p =
            policy(json!({"not_before": 1000, "expires_at": 2000, "source_ips": ["10.0.0.0/8"]}));
        let inside = Some("10.1.2.3".parse().unwrap());
        let outside = Some("192.0.2.1".parse().unwrap());
        let code = |ip, now| check_access(&p, ip, now).map_err(|d| d.code);
        assert_eq!(code(inside, 1000), Ok(()));
        assert_eq!(code(inside, 1999), Ok(()));
        assert_eq!(code(inside, 999), Err(DenialCode::NotYetValid));
        assert_eq!(code(inside, 2000), Err(DenialCode::Expired));
        assert_eq!(code(outside, 1500), Err(DenialCode::SourceIpNotAllowed));
        assert_eq!(
            code(None, 1500),
            Err(DenialCode::SourceIpNotAllowed),
            "an unknown address is refused while source_ips is set"
        );
        assert_eq!(
            code(outside, 2500),
            Err(DenialCode::Expired),
            "window first"
        );
        assert_eq!(check_access(&policy(json!({})), None, 0), Ok(()));
        // `check` agrees: it starts with the same checks.
        let f = RequestFacts {
            source_ip: outside,
            now_ms: 1500,
            ..facts()
        };
        assert_eq!(
            check(&p, &f).unwrap_err().code,
            DenialCode::SourceIpNotAllowed
        );
    }

    #[test]
    fn model_allowed_filters_lists() {
        let p = policy(
            json!({"providers": ["openai", "anthropic"], "models": ["openai/gpt-4o*", "anthropic/*", "mistral/*"]}),
        );
        let cases = [
            ("openai/gpt-4o", true),
            ("openai/gpt-4o-mini", true),
            ("openai/o1", false),
            ("anthropic/claude-3-5-sonnet", true),
            ("mistral/large", false),
            ("gpt-4o", false),
        ];
        for (m, want) in cases {
            assert_eq!(model_allowed(&p, m), want, "{m}");
        }
    }
}
