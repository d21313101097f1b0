//! Calls into a provider's plugin: on the async worker for a built-in plugin on small input, on
//! the blocking pool otherwise ([`plugin_call`]); `prepare` with the plugin's rejection mapped to
//! the app's error; plugin-reported usage in the policy crate's type.

use std::time::Instant;

use pairgate_plugin_host::{PrepareRequest, UpstreamCall};
use pairgate_policy::limits::Usage;

use crate::base::error::ApiError;
use crate::engine::providers::Provider;
use crate::state::AppState;

/// Input a built-in plugin may map on the async worker itself (see [`plugin_call`]).
pub const INLINE_PLUGIN_BYTES: usize = 64 << 10;

/// Runs a synchronous plugin call. A built-in plugin (our own code, tens of microseconds for
/// ordinary input) mapping at most [`INLINE_PLUGIN_BYTES`] runs on the async worker: a hop to the
/// blocking pool costs several times the call itself. A third-party plugin, or a large input,
/// runs off the async workers (`spawn_blocking`), so it can never hold one for its whole CPU
/// deadline. `input_bytes` is the size of what the plugin is handed.
pub async fn plugin_call<T: Send + 'static>(
    state: &AppState,
    provider: &Provider,
    input_bytes: usize,
    f: impl FnOnce(&pairgate_plugin_host::PluginHost) -> Result<T, pairgate_plugin_host::PluginError>
    + Send
    + 'static,
) -> Result<T, ApiError> {
    let plugin = provider.plugin.as_str();
    let host = state.relay.host.clone();
    let started = Instant::now();
    let out = if provider.builtin_plugin && input_bytes <= INLINE_PLUGIN_BYTES {
        f(&host)
    } else {
        tokio::task::spawn_blocking(move || f(&host))
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("plugin task: {e}")))?
    };
    crate::base::metrics::plugin_time(plugin, started.elapsed());
    out.map_err(|e| ApiError::Plugin {
        plugin: plugin.to_string(),
        message: e.to_string(),
    })
}

/// Runs the plugin's `prepare` (no I/O): the call to make, or the plugin's refusal.
pub async fn plugin_prepare(
    state: &AppState,
    provider: &Provider,
    prep: PrepareRequest,
) -> Result<UpstreamCall, ApiError> {
    let id = provider.plugin.clone();
    let size = prep.body.len();
    match plugin_call(state, provider, size, move |host| host.prepare(&id, prep)).await? {
        Ok(call) => Ok(call),
        Err(rejection) => Err(ApiError::Upstream {
            status: if (400..500).contains(&rejection.status) {
                rejection.status
            } else {
                400
            },
            code: rejection.code,
            message: rejection.message,
            kind: "invalid_request_error",
        }),
    }
}

/// Plugin-reported usage in the policy crate's type.
pub fn policy_usage(u: pairgate_plugin_host::Usage) -> Usage {
    Usage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        cached_tokens: u.cached_tokens,
    }
}
