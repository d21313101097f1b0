//! Command-line flags that build a grant policy (on top of an optional `--policy FILE`).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use super::CommandError;

/// Policy flags shared by `pair create`, `consent approve` and `grant edit`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PolicyArgs {
    /// A JSON policy file ("-" for stdin); the flags below override its fields.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Allowed provider (repeatable), e.g. openai.
    #[arg(long = "provider", value_name = "ID")]
    pub providers: Vec<String>,
    /// Allowed model glob (repeatable), e.g. "openai/gpt-4o-mini".
    #[arg(long = "model", value_name = "GLOB")]
    pub models: Vec<String>,
    /// Allowed endpoint (repeatable): chat, embeddings, models, resource:<plugin>/<action>.
    #[arg(long = "endpoint", value_name = "NAME")]
    pub endpoints: Vec<String>,
    /// Largest output token count per request.
    #[arg(long, value_name = "N")]
    pub max_output_tokens: Option<u32>,
    /// Requests per minute.
    #[arg(long, value_name = "N")]
    pub rpm: Option<u32>,
    /// Requests per day.
    #[arg(long, value_name = "N")]
    pub rpd: Option<u32>,
    /// Tokens per minute.
    #[arg(long, value_name = "N")]
    pub tpm: Option<u64>,
    /// Concurrent requests.
    #[arg(long, value_name = "N")]
    pub concurrent: Option<u32>,
    /// Token budget per day / month / lifetime.
    #[arg(long, value_name = "N")]
    pub daily_tokens: Option<u64>,
    #[arg(long, value_name = "N")]
    pub monthly_tokens: Option<u64>,
    #[arg(long, value_name = "N")]
    pub lifetime_tokens: Option<u64>,
    /// Money budget in USD per day / month / lifetime.
    #[arg(long, value_name = "USD")]
    pub daily_usd: Option<f64>,
    #[arg(long, value_name = "USD")]
    pub monthly_usd: Option<f64>,
    #[arg(long, value_name = "USD")]
    pub lifetime_usd: Option<f64>,
    /// How long the grant stays valid after it is created, e.g. 30d.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub valid_for: Option<Duration>,
    /// Require every proof to carry the request body's digest.
    #[arg(long)]
    pub require_body_hash: bool,
}

fn usd_micros(usd: f64) -> Result<u64, CommandError> {
    if !(usd.is_finite() && usd >= 0.0) {
        return Err(CommandError::Usage(format!(
            "{usd} is not an amount in USD"
        )));
    }
    Ok((usd * 1_000_000.0).round() as u64)
}

impl PolicyArgs {
    /// The policy document these flags describe.
    pub fn to_policy(&self, now_ms: i64) -> Result<Value, CommandError> {
        self.to_policy_over(json!({}), now_ms)
    }

    /// The flags applied over `current` (`grant edit`), or over `--policy FILE` when given.
    pub fn to_policy_over(&self, current: Value, now_ms: i64) -> Result<Value, CommandError> {
        let mut policy = match &self.policy {
            None => current,
            Some(path) => {
                let text = if path.as_os_str() == "-" {
                    std::io::read_to_string(std::io::stdin())
                } else {
                    std::fs::read_to_string(path)
                }
                .map_err(|e| CommandError::Usage(format!("cannot read {}: {e}", path.display())))?;
                serde_json::from_str(&text).map_err(|e| {
                    CommandError::Usage(format!("{} is not JSON: {e}", path.display()))
                })?
            }
        };
        let Some(map) = policy.as_object_mut() else {
            return Err(CommandError::Usage(
                "the policy must be a JSON object".into(),
            ));
        };
        let mut set = |k: &str, v: Value| {
            map.insert(k.to_string(), v);
        };
        if !self.providers.is_empty() {
            set("providers", json!(self.providers));
        }
        if !self.models.is_empty() {
            set("models", json!(self.models));
        }
        if !self.endpoints.is_empty() {
            set("endpoints", json!(self.endpoints));
        }
        for (k, v) in [
            ("max_output_tokens", self.max_output_tokens.map(u64::from)),
            ("requests_per_minute", self.rpm.map(u64::from)),
            ("requests_per_day", self.rpd.map(u64::from)),
            ("tokens_per_minute", self.tpm),
            ("max_concurrent", self.concurrent.map(u64::from)),
        ] {
            if let Some(v) = v {
                set(k, json!(v));
            }
        }
        if self.daily_tokens.is_some()
            || self.monthly_tokens.is_some()
            || self.lifetime_tokens.is_some()
        {
            set(
                "token_budget",
                json!({ "daily": self.daily_tokens, "monthly": self.monthly_tokens, "lifetime": self.lifetime_tokens }),
            );
        }
        if self.daily_usd.is_some() || self.monthly_usd.is_some() || self.lifetime_usd.is_some() {
            let conv = |v: Option<f64>| v.map(usd_micros).transpose();
            set(
                "cost_budget_micros",
                json!({ "daily": conv(self.daily_usd)?, "monthly": conv(self.monthly_usd)?, "lifetime": conv(self.lifetime_usd)? }),
            );
        }
        if let Some(d) = self.valid_for {
            set("expires_at", json!(now_ms + crate::base::clock::millis(d)));
        }
        if self.require_body_hash {
            set("require_body_hash", json!(true));
        }
        Ok(policy)
    }
}
