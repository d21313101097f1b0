//! Checks on what a plugin returns: a plugin is not trusted to produce well-formed output.

use crate::error::PluginError;
use crate::types::{
    Descriptor, Failure, Finished, Rejection, ResponseMode, Translated, UpstreamCall,
};
use crate::upstream::strip_auth_headers;

/// Largest state blob a plugin may hand back.
pub(crate) const MAX_STATE_BYTES: usize = 64 << 10;
const MAX_ID_LEN: usize = 32;
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];
/// Actions whose answer goes to the app as the provider sent it (`ResponseMode::Raw`): a
/// pass-through, and the providers' native APIs, which the host meters itself.
const RAW_ACTIONS: &[&str] = &["passthrough", "messages", "count-tokens", "responses"];

fn bad(plugin: &str, reason: impl Into<String>) -> PluginError {
    PluginError::BadOutput {
        plugin: plugin.to_owned(),
        reason: reason.into(),
    }
}

/// A descriptor the host can rely on: id, hosts, header name and paths well-formed.
pub(crate) fn descriptor(d: &Descriptor, label: &str) -> Result<(), PluginError> {
    let invalid = |reason: String| PluginError::Invalid {
        plugin: label.to_owned(),
        reason,
    };
    if !valid_id(&d.id) {
        return Err(invalid(format!(
            "id {:?} must be 1-{MAX_ID_LEN} lower-case letters, digits or '-'",
            d.id
        )));
    }
    if let Some(h) = d.hosts.iter().find(|h| !valid_host(h)) {
        return Err(invalid(format!(
            "host {h:?} is not a lower-case host name[:port]"
        )));
    }
    if let crate::types::Credential::Header(name) = &d.credential
        && !valid_header_name(name)
    {
        return Err(invalid(format!(
            "credential header {name:?} is not a header name"
        )));
    }
    if let Some(p) = d
        .passthrough
        .iter()
        .find(|p| !p.starts_with('/') || p.contains("..") || p.contains('?') || p.contains('#'))
    {
        return Err(invalid(format!(
            "pass-through path {p:?} is not a clean absolute path"
        )));
    }
    if let Some(q) = d.quotas.iter().find(|q| !q.grant_field.starts_with('/')) {
        return Err(invalid(format!("quota {:?} needs a JSON pointer", q.name)));
    }
    Ok(())
}

/// Validates a call and strips any credential header the plugin tried to set.
pub(crate) fn upstream_call(
    mut call: UpstreamCall,
    action: &str,
    descriptor: &Descriptor,
    plugin: &str,
) -> Result<UpstreamCall, PluginError> {
    if !METHODS.contains(&call.method.as_str()) {
        return Err(bad(
            plugin,
            format!("method {:?} is not allowed", call.method),
        ));
    }
    if let Some((name, _)) = call
        .headers
        .iter()
        .find(|(n, v)| !valid_header_name(n) || !valid_header_value(v))
    {
        return Err(bad(plugin, format!("header {name:?} is malformed")));
    }
    let before = call.headers.len();
    call.headers = strip_auth_headers(call.headers, &descriptor.credential);
    if call.headers.len() != before {
        tracing::warn!(plugin, "plugin set a credential header; it was removed");
    }
    if call.state.len() > MAX_STATE_BYTES {
        return Err(bad(plugin, "state is larger than 64 KiB"));
    }
    if call.response_mode == ResponseMode::Raw && !RAW_ACTIONS.contains(&action) {
        return Err(bad(
            plugin,
            "raw responses are only for pass-through and the providers' native APIs",
        ));
    }
    if let Some(c) = call
        .charges
        .iter()
        .find(|c| !descriptor.quotas.iter().any(|q| q.name == c.quota))
    {
        return Err(bad(
            plugin,
            format!("charges the undeclared quota {:?}", c.quota),
        ));
    }
    Ok(call)
}

pub(crate) fn rejection(r: &Rejection, plugin: &str) -> Result<(), PluginError> {
    if !(400..600).contains(&r.status) {
        return Err(bad(
            plugin,
            format!("rejection status {} is not 4xx or 5xx", r.status),
        ));
    }
    Ok(())
}

pub(crate) fn failure(f: &Failure, plugin: &str) -> Result<(), PluginError> {
    if !(400..600).contains(&f.status) {
        return Err(bad(
            plugin,
            format!("failure status {} is not 4xx or 5xx", f.status),
        ));
    }
    Ok(())
}

pub(crate) fn finished(f: &Finished, plugin: &str) -> Result<(), PluginError> {
    if !(200..300).contains(&f.status) {
        return Err(bad(
            plugin,
            format!("finished status {} is not 2xx", f.status),
        ));
    }
    Ok(())
}

pub(crate) fn translated(t: &Translated, plugin: &str) -> Result<(), PluginError> {
    if t.state.len() > MAX_STATE_BYTES {
        return Err(bad(plugin, "state is larger than 64 KiB"));
    }
    Ok(())
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && !id.starts_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `name` or `name:port`, lower case, as `url` would normalise it.
fn valid_host(entry: &str) -> bool {
    let (name, port) = match entry.rsplit_once(':') {
        Some((n, _)) if !n.ends_with(']') && n.contains(':') => (entry, None),
        Some((n, p)) => (n, Some(p)),
        None => (entry, None),
    };
    if port.is_some_and(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
        return false;
    }
    !name.is_empty() && url::Host::parse(name).is_ok_and(|h| h.to_string() == name)
}

pub(crate) fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn valid_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_lower_case_names() {
        for ok in ["openai", "openai-compatible", "x1"] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in ["", "OpenAI", "a/b", "-x", "a_b", &"x".repeat(33)] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn hosts_are_normalised_names_with_optional_port() {
        for ok in [
            "api.openai.com",
            "localhost:11434",
            "10.0.0.5:8000",
            "[::1]:8080",
        ] {
            assert!(valid_host(ok), "{ok}");
        }
        for bad in [
            "",
            "API.openai.com",
            "a b",
            "host:0",
            "host:99999",
            "https://x",
            "x/y",
        ] {
            assert!(!valid_host(bad), "{bad}");
        }
    }

    #[test]
    fn header_values_with_line_breaks_are_malformed() {
        assert!(valid_header_value("Bearer abc"));
        assert!(!valid_header_value("a\r\nx-api-key: b"));
        assert!(valid_header_name("x-api-key"));
        assert!(!valid_header_name("x api key"));
    }
}
