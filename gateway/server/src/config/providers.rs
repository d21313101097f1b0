//! `[providers.<id>]` sections: which plugin serves a provider id, with which credential, instance
//! config, owner-approved hosts, and whether private addresses are allowed. Ids are the first part
//! of `provider/model` names; built-in plugins are available under their own ids without config.

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
        _ => Err("is not a provider setting (plugin, credential, config, approved_hosts, allow_private, origin_override, enabled)".into()),
    };
    if let Err(problem) = result {
        errors.push(format!("{origin}: `providers.{id}.{rest}` {problem}"));
    }
}
