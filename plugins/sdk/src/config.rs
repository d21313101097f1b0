//! Instance configuration shared by plugins that point at an owner-chosen server
//! (`openai-compatible`, `ollama`): base URL, models, credential.

use crate::reply::bad_config;
use crate::{Credential, Model, Rejection};
use serde_json::Value;

/// A parsed base URL: `scheme://authority/path`, without query or fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// The URL without a trailing slash.
    pub url: String,
    /// `name` or `name:port` (port only when it is not the scheme's default), lower case.
    pub host: String,
}

/// Parses and checks `base_url`: http(s), a host, no credentials, query or fragment.
pub fn base_url(text: &str) -> Result<BaseUrl, Rejection> {
    let (scheme, rest) = text
        .split_once("://")
        .ok_or_else(|| bad_config("base_url must be an absolute http(s) URL"))?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => "443",
        "http" => "80",
        _ => return Err(bad_config("base_url must use http or https")),
    };
    if rest.contains(['?', '#', '@', '\\'])
        || rest.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad_config(
            "base_url must not carry credentials, a query or a fragment",
        ));
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let authority = authority.to_ascii_lowercase();
    if authority.is_empty() {
        return Err(bad_config("base_url has no host"));
    }
    let host = match authority.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') || name.ends_with(']') => {
            if port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(bad_config("base_url has an invalid port"));
            }
            if port == default_port {
                name.to_owned()
            } else {
                authority.clone()
            }
        }
        _ => authority.clone(),
    };
    let path = path.trim_end_matches('/');
    Ok(BaseUrl {
        url: format!("{scheme}://{authority}{path}"),
        host,
    })
}

/// `models`: a list of ids, or of objects with id, context_window, max_output_tokens,
/// input_price and output_price (micro-USD per million tokens).
pub fn models(config: &Value) -> Result<Vec<Model>, Rejection> {
    let Some(list) = config.get("models") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| bad_config("models must be an array"))?;
    list.iter()
        .map(|m| {
            let num = |k: &str| m.get(k).and_then(Value::as_u64).unwrap_or(0);
            let id = m
                .as_str()
                .or_else(|| m.get("id").and_then(Value::as_str))
                .filter(|id| !id.is_empty())
                .ok_or_else(|| bad_config("every model needs an id"))?;
            Ok(Model {
                id: id.to_owned(),
                context_window: u32::try_from(num("context_window")).unwrap_or(u32::MAX),
                max_output_tokens: u32::try_from(num("max_output_tokens")).unwrap_or(u32::MAX),
                input_price: num("input_price"),
                output_price: num("output_price"),
            })
        })
        .collect()
}

/// `credential`: "bearer" (default), "none", or {"header": "name"}.
pub fn credential(config: &Value) -> Result<Credential, Rejection> {
    match config.get("credential") {
        None => Ok(Credential::Bearer),
        Some(Value::String(s)) if s == "bearer" => Ok(Credential::Bearer),
        Some(Value::String(s)) if s == "none" => Ok(Credential::None),
        Some(v) => v
            .get("header")
            .and_then(Value::as_str)
            .filter(|h| !h.is_empty())
            .map(|h| Credential::Header(h.to_ascii_lowercase()))
            .ok_or_else(|| {
                bad_config("credential must be \"bearer\", \"none\" or {\"header\": name}")
            }),
    }
}
