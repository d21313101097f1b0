//! [`GrantPolicy::validate`]: every structural problem of a policy, listed at once.

use super::{Budget, GrantPolicy, PolicyError, PolicyErrors, endpoint};
use crate::glob;
use crate::net::IpNet;

/// Most entries accepted in any list of a policy (and keys in `resources`).
pub const MAX_ENTRIES: usize = 256;

const MAX_ID_LEN: usize = 64;

fn is_provider_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

fn is_plugin_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
}

fn all_stars(s: &str) -> bool {
    s.chars().all(|c| c == '*')
}

/// Why an endpoint entry is rejected, if it is.
fn endpoint_problem(field: String, value: &str) -> Option<PolicyError> {
    if all_stars(value) || [endpoint::CHAT, endpoint::EMBEDDINGS, endpoint::MODELS].contains(&value)
    {
        return None;
    }
    let Some(rest) = value.strip_prefix(endpoint::RESOURCE_PREFIX) else {
        return Some(PolicyError::UnknownEndpoint {
            field,
            value: value.to_owned(),
        });
    };
    if let Err(reason) = glob::check_pattern(value) {
        return Some(PolicyError::BadPattern {
            field,
            value: value.to_owned(),
            reason,
        });
    }
    let shaped = all_stars(rest)
        || rest
            .split_once('/')
            .is_some_and(|(plugin, action)| !plugin.is_empty() && !action.is_empty());
    (!shaped).then(|| PolicyError::UnknownEndpoint {
        field,
        value: value.to_owned(),
    })
}

struct Collector(Vec<PolicyError>);

impl Collector {
    fn list_len(&mut self, field: &str, list: &[String]) {
        if list.len() > MAX_ENTRIES {
            self.0.push(PolicyError::TooManyEntries {
                field: field.to_owned(),
                len: list.len(),
                max: MAX_ENTRIES,
            });
        }
    }

    fn positive<T: Into<u64> + Copy>(&mut self, field: &str, value: Option<T>) {
        if value.is_some_and(|v| v.into() == 0) {
            self.0.push(PolicyError::ZeroLimit {
                field: field.to_owned(),
            });
        }
    }

    fn budget(&mut self, field: &str, b: &Budget) {
        self.positive(&format!("{field}.daily"), b.daily);
        self.positive(&format!("{field}.monthly"), b.monthly);
        self.positive(&format!("{field}.lifetime"), b.lifetime);
    }
}

impl GrantPolicy {
    /// Check the policy's structure; on failure the error lists every problem found.
    ///
    /// Checks: provider entries are ids or `*`; model entries are well-formed globs of
    /// the form `provider/model` (or all `*`); endpoint entries name a known kind;
    /// `source_ips` entries parse as CIDR blocks without host bits; no limit or budget is
    /// zero; `not_before < expires_at`; `resources` keys are plugin ids with object
    /// values; no list exceeds [`MAX_ENTRIES`].
    pub fn validate(&self) -> Result<(), PolicyErrors> {
        let mut c = Collector(Vec::new());
        c.list_len("providers", &self.providers);
        for (i, p) in self.providers.iter().enumerate() {
            if p != "*" && !is_provider_id(p) {
                c.0.push(PolicyError::BadProvider {
                    field: format!("providers[{i}]"),
                    value: p.clone(),
                });
            }
        }
        c.list_len("models", &self.models);
        for (i, m) in self.models.iter().enumerate() {
            let reason = match glob::check_pattern(m) {
                Err(reason) => Some(reason),
                Ok(()) if !all_stars(m) && !m.contains('/') => Some("expected \"provider/model\""),
                Ok(()) => None,
            };
            if let Some(reason) = reason {
                c.0.push(PolicyError::BadPattern {
                    field: format!("models[{i}]"),
                    value: m.clone(),
                    reason,
                });
            }
        }
        c.list_len("endpoints", &self.endpoints);
        for (i, e) in self.endpoints.iter().enumerate() {
            c.0.extend(endpoint_problem(format!("endpoints[{i}]"), e));
        }
        c.positive("max_output_tokens", self.max_output_tokens);
        c.positive("requests_per_minute", self.requests_per_minute);
        c.positive("requests_per_day", self.requests_per_day);
        c.positive("tokens_per_minute", self.tokens_per_minute);
        c.positive("max_concurrent", self.max_concurrent);
        c.budget("token_budget", &self.token_budget);
        c.budget("cost_budget_micros", &self.cost_budget_micros);
        if let (Some(not_before), Some(expires_at)) = (self.not_before, self.expires_at)
            && not_before >= expires_at
        {
            c.0.push(PolicyError::EmptyWindow {
                not_before,
                expires_at,
            });
        }
        c.list_len("source_ips", &self.source_ips);
        for (i, s) in self.source_ips.iter().enumerate() {
            if let Err(reason) = s.parse::<IpNet>() {
                c.0.push(PolicyError::BadCidr {
                    field: format!("source_ips[{i}]"),
                    value: s.clone(),
                    reason,
                });
            }
        }
        if self.resources.len() > MAX_ENTRIES {
            c.0.push(PolicyError::TooManyEntries {
                field: "resources".into(),
                len: self.resources.len(),
                max: MAX_ENTRIES,
            });
        }
        for (k, v) in &self.resources {
            if !is_plugin_id(k) {
                c.0.push(PolicyError::BadResourceKey { value: k.clone() });
            }
            if !v.is_object() {
                c.0.push(PolicyError::ResourceNotObject {
                    field: format!("resources.{k}"),
                });
            }
        }
        if c.0.is_empty() {
            Ok(())
        } else {
            Err(PolicyErrors { errors: c.0 })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::CidrError;
    use serde_json::json;

    fn errors(json: serde_json::Value) -> Vec<PolicyError> {
        let p: GrantPolicy = serde_json::from_value(json).unwrap();
        p.validate().err().map(|e| e.errors).unwrap_or_default()
    }

    #[test]
    fn valid_policies() {
        for json in [
            json!({}),
            json!({"providers": ["*", "openai", "azure-openai", "x.ai"]}),
            json!({"models": ["*", "openai/*", "*/gpt-4o", "anthropic/claude-?-*"]}),
            json!({"endpoints": ["*", "chat", "resource:*", "resource:resend/*", "resource:resend/send", "resource:*/read"]}),
            json!({"endpoints": []}),
            json!({"source_ips": ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1", "::1"]}),
            json!({"not_before": -5, "expires_at": 0}),
            json!({"resources": {"resend": {}, "s3_files": {"max_bytes": 5}}}),
        ] {
            assert_eq!(errors(json.clone()), vec![], "{json}");
        }
    }

    #[test]
    fn one_error_per_problem() {
        let cases: Vec<(serde_json::Value, PolicyError)> = vec![
            (
                json!({"providers": ["OpenAI"]}),
                PolicyError::BadProvider {
                    field: "providers[0]".into(),
                    value: "OpenAI".into(),
                },
            ),
            (
                json!({"providers": ["open*"]}),
                PolicyError::BadProvider {
                    field: "providers[0]".into(),
                    value: "open*".into(),
                },
            ),
            (
                json!({"models": ["*", "gpt-4o"]}),
                PolicyError::BadPattern {
                    field: "models[1]".into(),
                    value: "gpt-4o".into(),
                    reason: "expected \"provider/model\"",
                },
            ),
            (
                json!({"models": ["openai/gpt-[4]"]}),
                PolicyError::BadPattern {
                    field: "models[0]".into(),
                    value: "openai/gpt-[4]".into(),
                    reason: "reserved character ([ ] { } \\); only * and ? are wildcards",
                },
            ),
            (
                json!({"endpoints": ["completions"]}),
                PolicyError::UnknownEndpoint {
                    field: "endpoints[0]".into(),
                    value: "completions".into(),
                },
            ),
            (
                json!({"endpoints": ["ch*"]}),
                PolicyError::UnknownEndpoint {
                    field: "endpoints[0]".into(),
                    value: "ch*".into(),
                },
            ),
            (
                json!({"endpoints": ["resource:resend"]}),
                PolicyError::UnknownEndpoint {
                    field: "endpoints[0]".into(),
                    value: "resource:resend".into(),
                },
            ),
            (
                json!({"endpoints": ["resource:/send"]}),
                PolicyError::UnknownEndpoint {
                    field: "endpoints[0]".into(),
                    value: "resource:/send".into(),
                },
            ),
            (
                json!({"endpoints": ["resource:a b/c"]}),
                PolicyError::BadPattern {
                    field: "endpoints[0]".into(),
                    value: "resource:a b/c".into(),
                    reason: "whitespace or control character",
                },
            ),
            (
                json!({"source_ips": ["10.0.0.1/8"]}),
                PolicyError::BadCidr {
                    field: "source_ips[0]".into(),
                    value: "10.0.0.1/8".into(),
                    reason: CidrError::HostBits,
                },
            ),
            (
                json!({"max_output_tokens": 0}),
                PolicyError::ZeroLimit {
                    field: "max_output_tokens".into(),
                },
            ),
            (
                json!({"requests_per_day": 0}),
                PolicyError::ZeroLimit {
                    field: "requests_per_day".into(),
                },
            ),
            (
                json!({"tokens_per_minute": 0}),
                PolicyError::ZeroLimit {
                    field: "tokens_per_minute".into(),
                },
            ),
            (
                json!({"max_concurrent": 0}),
                PolicyError::ZeroLimit {
                    field: "max_concurrent".into(),
                },
            ),
            (
                json!({"token_budget": {"monthly": 0}}),
                PolicyError::ZeroLimit {
                    field: "token_budget.monthly".into(),
                },
            ),
            (
                json!({"cost_budget_micros": {"lifetime": 0}}),
                PolicyError::ZeroLimit {
                    field: "cost_budget_micros.lifetime".into(),
                },
            ),
            (
                json!({"not_before": 10, "expires_at": 10}),
                PolicyError::EmptyWindow {
                    not_before: 10,
                    expires_at: 10,
                },
            ),
            (
                json!({"resources": {"Resend": {}}}),
                PolicyError::BadResourceKey {
                    value: "Resend".into(),
                },
            ),
            (
                json!({"resources": {"resend": 5}}),
                PolicyError::ResourceNotObject {
                    field: "resources.resend".into(),
                },
            ),
        ];
        for (json, want) in cases {
            assert_eq!(errors(json.clone()), vec![want], "{json}");
        }
    }

    #[test]
    fn lists_every_problem() {
        let errs = errors(json!({
            "providers": ["OpenAI"], "models": ["x"], "endpoints": ["nope"], "requests_per_minute": 0,
            "not_before": 5, "expires_at": 1, "source_ips": ["bad"], "resources": {"r": []}
        }));
        assert_eq!(errs.len(), 7, "{errs:?}");
    }

    #[test]
    fn too_many_entries() {
        let p = GrantPolicy {
            providers: vec!["openai".into(); MAX_ENTRIES + 1],
            ..GrantPolicy::default()
        };
        let errs = p.validate().unwrap_err().errors;
        assert_eq!(
            errs,
            vec![PolicyError::TooManyEntries {
                field: "providers".into(),
                len: MAX_ENTRIES + 1,
                max: MAX_ENTRIES
            }]
        );
    }
}
