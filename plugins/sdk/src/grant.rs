//! The parts of a grant policy plugins read. Generic limits (models, rates, budgets, streaming,
//! tools, images) are enforced by the host's policy crate on the OpenAI shape before `prepare`;
//! plugins read only what needs their knowledge of the provider:
//!
//! - `max_output_tokens`: the default output cap where a provider requires one (Anthropic);
//! - `resources.<plugin id>`: limits of a non-LLM resource (e.g. `resources.resend`).

use crate::Rejection;
use crate::reply::reject;
use serde_json::Value;

/// A parsed grant policy.
#[derive(Debug, Clone)]
pub struct Grant {
    value: Value,
}

impl Grant {
    /// Parses the grant's JSON text (empty means no restriction a plugin knows of).
    pub fn parse(text: &str) -> Result<Self, Rejection> {
        crate::json::parse_text(text)
            .map(|value| Self { value })
            .map_err(|e| {
                reject(
                    500,
                    "invalid_grant",
                    format!("the grant policy is not JSON: {e}"),
                )
            })
    }

    /// `resources.<id>`, when the grant has it.
    pub fn resource(&self, id: &str) -> Option<&Value> {
        self.value.get("resources").and_then(|r| r.get(id))
    }

    /// `max_output_tokens`, when set.
    pub fn max_output_tokens(&self) -> Option<u64> {
        self.value.get("max_output_tokens").and_then(Value::as_u64)
    }
}
