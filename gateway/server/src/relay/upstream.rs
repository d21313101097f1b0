//! Sending a plugin's prepared call: the shared pooled client, the host re-check of the URL, the
//! origin override, stripping any auth header the plugin set, and injecting the credential at
//! the last moment (as a sensitive header value, never logged).

use std::time::Duration;

use pairgate_custody::ExposeSecret;
use pairgate_plugin_host::{Credential, UpstreamCall, check_upstream, strip_auth_headers};

use super::Provider;
use crate::config::Config;
use crate::error::ApiError;
use crate::state::AppState;

/// The one HTTP client for every provider: pooled, HTTP/2 where offered, bounded timeouts.
pub fn client(config: &Config) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(config.upstream_connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("pairgate/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Why the upstream could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the provider did not answer in time")]
    Timeout,
    #[error("the provider could not be reached")]
    Connect,
    #[error("the provider connection failed")]
    Other,
}

impl From<reqwest::Error> for SendError {
    fn from(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            SendError::Timeout
        } else if e.is_connect() {
            SendError::Connect
        } else {
            SendError::Other
        }
    }
}

/// Checks, authorizes and builds the outbound request for a prepared call.
pub async fn build(
    state: &AppState,
    provider: &Provider,
    call: UpstreamCall,
    stream: bool,
) -> Result<reqwest::RequestBuilder, ApiError> {
    let plugin_fail = |message: String| ApiError::Plugin {
        plugin: provider.plugin.clone(),
        message,
    };
    let checked = check_upstream(
        &call.url,
        &provider.descriptor.hosts,
        &provider.approved_hosts,
        provider.allow_private,
    )
    .map_err(|e| plugin_fail(format!("refused upstream URL: {e}")))?;
    let mut url = checked.url().clone();
    if let Some(origin) = &provider.origin_override {
        // The plugin's URL passed the declared-host check; the owner redirects it.
        let _ = url.set_scheme(origin.scheme());
        let _ = url.set_host(origin.host_str());
        let _ = url.set_port(origin.port_or_known_default());
    }
    let method = reqwest::Method::from_bytes(call.method.as_bytes())
        .map_err(|_| plugin_fail("invalid method".into()))?;
    let headers = strip_auth_headers(call.headers, &provider.descriptor.credential);
    let mut req = state.relay.http.request(method, url).body(call.body);
    if !stream {
        req = req.timeout(state.config.upstream_timeout);
    }
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let header = match &provider.descriptor.credential {
        Credential::None => None,
        Credential::Bearer => Some(("authorization".to_string(), "Bearer ")),
        Credential::Header(name) => Some((name.clone(), "")),
    };
    if let Some((name, prefix)) = header {
        let secret = crate::credentials::resolve(state, &provider.id, &provider.credential).await.map_err(|e| {
            // The detail (reference names, paths, ids) is for the owner's log, not the app.
            tracing::error!(provider = %provider.id, error = %e, "the provider credential could not be used");
            ApiError::ProviderAuth {
                message: format!(
                    "the gateway has no usable credential for provider {}; the owner must fix it",
                    provider.id
                ),
            }
        })?;
        let mut value = http::HeaderValue::from_str(&format!("{prefix}{}", secret.expose_secret()))
            .map_err(|_| ApiError::ProviderAuth {
                message: format!(
                    "the owner's credential for {} is not a valid header value",
                    provider.id
                ),
            })?;
        value.set_sensitive(true);
        req = req.header(name, value);
    }
    Ok(req)
}
