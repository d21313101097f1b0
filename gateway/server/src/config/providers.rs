//! `[providers.<id>]` sections: which plugin serves a provider id, with which credential, instance
//! config, owner-approved hosts, whether private addresses are allowed, and the owner's prices.
//! Ids are the first part of `provider/model` names; built-in plugins are available under their
//! own ids without config.

use std::collections::BTreeMap;

use super::{Origin, RawValue};

/// One provider instance.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProviderConfig {
    /// The plugin serving it (default: the provider id).
    pub plugin: String,
    /// The credential name (of credentials stored for this provider id).
    pub credential: String,
    /// Instance configuration handed to the plugin (e.g. base_url and models).
    pub config: serde_json::Value,
    /// Hosts the owner approves for this provider; `None` approves the plugin's declared hosts.
    pub approved_hosts: Option<Vec<String>>,
    /// Whether upstream URLs may point at private or loopback addresses (local runtimes).
    pub allow_private: bool,
    /// Send to this origin (scheme://host:port) instead of the plugin's host, after the declared
    /// host check: an egress proxy or a local mirror. Implies `allow_private` for that origin.
    pub origin_override: Option<url::Url>,
    pub enabled: bool,
    /// The owner's prices (`[[providers.<id>.prices]]`), consulted before the plugin's catalogue;
    /// the first entry whose `model` glob matches wins.
    pub prices: Vec<PriceConfig>,
    /// The price of a model neither `prices` nor the catalogue knows
    /// (`providers.<id>.fallback_price`); without it such a model is unpriced, and refused for a
    /// grant with a money budget.
    pub fallback_price: Option<PriceConfig>,
}

/// One owner-set price, in USD per million tokens.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct PriceConfig {
    /// Glob over the model id without the provider prefix (`gpt-4o*`); `*` for the fallback.
    pub model: String,
    pub input: Option<f64>,
    pub output: Option<f64>,
    /// Cached input tokens; the input price when absent.
    pub cached_input: Option<f64>,
    /// Output tokens reserved for a request that bounds none.
    pub max_output_tokens: Option<u32>,
}

impl PriceConfig {
    /// The policy crate's entry: micro-USD per million tokens; both prices are required.
    pub fn entry(&self) -> Result<pairgate_policy::limits::PriceEntry, String> {
        let micros = |what: &str, v: Option<f64>| -> Result<u64, String> {
            let v = v.ok_or_else(|| format!("needs `{what}` (USD per million tokens)"))?;
            if !v.is_finite() || !(0.0..=1e9).contains(&v) {
                return Err(format!(
                    "`{what}` = {v} is not a price in USD per million tokens"
                ));
            }
            Ok((v * 1e6).round() as u64)
        };
        pairgate_policy::glob::check_pattern(&self.model)
            .map_err(|e| format!("model pattern `{}`: {e}", self.model))?;
        Ok(pairgate_policy::limits::PriceEntry {
            model: self.model.clone(),
            prices: pairgate_policy::Prices {
                input_per_million_micros: micros("input", self.input)?,
                output_per_million_micros: micros("output", self.output)?,
                cached_input_per_million_micros: match self.cached_input {
                    Some(v) => Some(micros("cached_input", Some(v))?),
                    None => None,
                },
            },
            max_output_tokens: self.max_output_tokens,
        })
    }

    /// Sets one field from a value (`input`, `output`, `cached_input`, `max_output_tokens`,
    /// `model`).
    fn set(&mut self, field: &str, value: &serde_json::Value) -> Result<(), String> {
        let number = || {
            value
                .as_f64()
                .ok_or_else(|| format!("`{field}` must be a number"))
        };
        match field {
            "model" => {
                self.model = value
                    .as_str()
                    .ok_or("`model` must be a string (a glob over model ids)")?
                    .to_string()
            }
            "input" => self.input = Some(number()?),
            "output" => self.output = Some(number()?),
            "cached_input" => self.cached_input = Some(number()?),
            "max_output_tokens" => {
                self.max_output_tokens = Some(
                    value
                        .as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .filter(|n| *n > 0)
                        .ok_or("`max_output_tokens` must be a positive whole number")?,
                )
            }
            other => {
                return Err(format!(
                    "`{other}` is not a price field (model, input, output, cached_input, max_output_tokens)"
                ));
            }
        }
        Ok(())
    }

    /// A whole price from a JSON object.
    fn from_json(value: &serde_json::Value, default_model: &str) -> Result<PriceConfig, String> {
        let object = value
            .as_object()
            .ok_or("must be a table like { model = \"gpt-4o*\", input = 2.5, output = 10.0 }")?;
        let mut price = PriceConfig {
            model: default_model.to_string(),
            ..PriceConfig::default()
        };
        for (k, v) in object {
            price.set(k, v)?;
        }
        price.entry()?;
        Ok(price)
    }
}

impl ProviderConfig {
    pub fn new(id: &str) -> ProviderConfig {
        ProviderConfig {
            plugin: id.to_string(),
            credential: "default".into(),
            config: serde_json::json!({}),
            approved_hosts: None,
            allow_private: id == "ollama",
            origin_override: None,
            enabled: true,
            prices: Vec::new(),
            fallback_price: None,
        }
    }
}

/// Checks a provider id: lowercase letters, digits and `-`, 1 to 40 characters.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 40
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// Applies `providers.<id>.<field>[.<sub>...]` = value.
pub fn apply(
    providers: &mut BTreeMap<String, ProviderConfig>,
    path: &str,
    value: &RawValue,
    origin: &Origin,
    errors: &mut Vec<String>,
) {
    let mut parts = path.splitn(3, '.');
    let (_, id, rest) = (
        parts.next(),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let id = id.to_ascii_lowercase();
    if !valid_id(&id) {
        errors.push(format!(
            "{origin}: provider id `{id}` must be lowercase letters, digits or -"
        ));
        return;
    }
    let entry = providers
        .entry(id.clone())
        .or_insert_with(|| ProviderConfig::new(&id));
    let (field, sub) = rest.split_once('.').unwrap_or((rest, ""));
    let result: Result<(), String> = match (field, sub) {
        ("plugin", "") => value.string().map(|s| entry.plugin = s),
        ("credential", "") => value.string().map(|s| entry.credential = s),
        ("allow_private", "") => value.boolean().map(|b| entry.allow_private = b),
        ("enabled", "") => value.boolean().map(|b| entry.enabled = b),
        ("approved_hosts", "") => value.string_list().map(|l| entry.approved_hosts = Some(l)),
        ("origin_override", "") => value.url().map(|u| entry.origin_override = Some(u)),
        ("config", "") => match value {
            RawValue::Text(t) => serde_json::from_str(t)
                .map(|v| entry.config = v)
                .map_err(|_| "must be a JSON object".to_string()),
            RawValue::Toml(v) => {
                entry.config = toml_to_json(v);
                Ok(())
            }
        },
        ("prices", "") => {
            let v = match value {
                RawValue::Toml(v) => toml_to_json(v),
                RawValue::Text(t) => serde_json::from_str(t)
                    .unwrap_or(serde_json::Value::String(t.clone())),
            };
            match v.as_array() {
                Some(list) => list
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        PriceConfig::from_json(p, "").map_err(|e| format!("entry {}: {e}", i + 1))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .and_then(|l| match l.iter().position(|p| p.model.is_empty()) {
                        Some(i) => Err(format!("entry {}: needs `model` (a glob)", i + 1)),
                        None => {
                            entry.prices = l;
                            Ok(())
                        }
                    }),
                None => Err("must be a list of tables ([[providers.<id>.prices]] with model, input, output)".into()),
            }
        }
        ("fallback_price", "") => {
            let v = match value {
                RawValue::Toml(v) => toml_to_json(v),
                RawValue::Text(t) => serde_json::from_str(t)
                    .unwrap_or(serde_json::Value::String(t.clone())),
            };
            PriceConfig::from_json(&v, "*").map(|p| entry.fallback_price = Some(p))
        }
        ("fallback_price", field) => {
            let v = match value {
                RawValue::Toml(v) => toml_to_json(v),
                RawValue::Text(t) => serde_json::from_str(t)
                    .unwrap_or(serde_json::Value::String(t.clone())),
            };
            entry
                .fallback_price
                .get_or_insert_with(|| PriceConfig {
                    model: "*".into(),
                    ..PriceConfig::default()
                })
                .set(field, &v)
        }
        ("config", sub) => {
            let v = match value {
                RawValue::Toml(v) => toml_to_json(v),
                RawValue::Text(t) => serde_json::from_str(t).unwrap_or(serde_json::Value::String(t.clone())),
            };
            let mut target = &mut entry.config;
            for key in sub.split('.') {
                if !target.is_object() {
                    *target = serde_json::json!({});
                }
                target = target
                    .as_object_mut()
                    .map(|m| m.entry(key.to_string()).or_insert(serde_json::Value::Null))
                    .unwrap_or_else(|| unreachable!("made an object above"));
            }
            *target = v;
            Ok(())
        }
        _ => Err("is not a provider setting (plugin, credential, config, approved_hosts, allow_private, origin_override, enabled, prices, fallback_price)".into()),
    };
    if let Err(problem) = result {
        errors.push(format!("{origin}: `providers.{id}.{rest}` {problem}"));
    }
}
