//! The console's Plugins page: loaded plugins, the providers using them with each declared host's
//! approval state, and the owner approving or withdrawing a host (`hosts.rs` has the rule).

use axum::Json;
use axum::extract::{Path, State};
use pairgate_plugin_host::Origin;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::base::clock::now_ms;
use crate::base::error::ApiError;
use crate::domain::hosts::{self, HostState};
use crate::http::owner_session::Owner;
use crate::state::AppState;

/// A loaded plugin.
#[derive(Debug, Serialize, TS)]
pub struct PluginView {
    pub id: String,
    pub builtin: bool,
    pub display_name: String,
    pub version: String,
    pub sha256: String,
    pub contract: String,
    /// Hosts the plugin declares it calls.
    pub hosts: Vec<String>,
    pub actions: Vec<String>,
    pub models: u64,
}

/// A provider instance (a plugin with its configuration).
#[derive(Debug, Serialize, TS)]
pub struct ProviderView {
    pub id: String,
    pub plugin: String,
    pub credential: String,
    /// Whether the plugin sends a credential at all (a local runtime such as Ollama does not),
    /// so whether requests fail while no key is stored for this provider.
    pub needs_credential: bool,
    /// Every host the plugin declares for this instance, with who approved it. A call may go
    /// to a host approved by the configuration or the console.
    pub hosts: Vec<HostState>,
    /// Set when calls go to another origin (an egress proxy).
    pub origin_override: Option<String>,
}

/// `GET /admin/api/plugins`.
#[derive(Debug, Serialize, TS)]
pub struct PluginsView {
    pub plugins: Vec<PluginView>,
    pub providers: Vec<ProviderView>,
}

/// `POST /admin/api/providers/{id}/hosts/{approve|revoke}`.
#[derive(Debug, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct HostBody {
    pub host: String,
}

/// `GET /admin/api/plugins`: built-in and installed plugins, and the providers using them.
pub async fn plugins(
    State(state): State<AppState>,
    _owner: Owner,
) -> Result<Json<PluginsView>, ApiError> {
    let mut infos = state.relay.host.plugins();
    infos.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    let plugins = infos
        .iter()
        .map(|i| PluginView {
            id: i.id.as_str().to_owned(),
            builtin: i.origin == Origin::Builtin,
            display_name: i.descriptor.display_name.clone(),
            version: i.descriptor.version.clone(),
            sha256: i.sha256.clone(),
            contract: i.contract.as_str().to_owned(),
            hosts: i.descriptor.hosts.clone(),
            actions: i.descriptor.actions.clone(),
            models: i.descriptor.models.len() as u64,
        })
        .collect();
    let mut states = hosts::states(&state).await?;
    let providers = state
        .relay
        .providers()
        .map(|p| ProviderView {
            id: p.id.clone(),
            plugin: p.plugin.clone(),
            credential: p.credential.clone(),
            needs_credential: p.descriptor.credential != pairgate_plugin_host::Credential::None,
            hosts: states.remove(&p.id).unwrap_or_default(),
            origin_override: p.origin_override.as_ref().map(|u| u.to_string()),
        })
        .collect();
    Ok(Json(PluginsView { plugins, providers }))
}

/// `POST /admin/api/providers/{id}/hosts/{action}`: approve a declared host, or withdraw the
/// console's approval of it. Answers with the provider's hosts as they are now.
pub async fn host_action(
    State(state): State<AppState>,
    owner: Owner,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Vec<HostState>>, ApiError> {
    let b: HostBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_request",
            format!("the JSON body is not valid: {e}"),
        )
    })?;
    match action.as_str() {
        "approve" => hosts::approve(&state, &id, &b.host, &owner.actor(), now_ms()).await?,
        "revoke" => hosts::revoke(&state, &id, &b.host, &owner.actor()).await?,
        _ => return Err(ApiError::NotFound),
    }
    let mut states = hosts::states(&state).await?;
    Ok(Json(states.remove(&id).unwrap_or_default()))
}

/// `GET /admin/api/prices`: every provider's prices, from the console, the configuration and
/// the plugin's catalogue.
pub async fn prices(
    State(state): State<AppState>,
    _owner: Owner,
) -> Result<Json<Vec<crate::domain::prices::ProviderPrices>>, ApiError> {
    Ok(Json(crate::domain::prices::list(&state).await?))
}

/// `PUT /admin/api/providers/{id}/prices`: replaces the provider's console prices (and its
/// fallback price). Answers with every provider's prices as they are now.
pub async fn set_prices(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Vec<crate::domain::prices::ProviderPrices>>, ApiError> {
    let b: crate::domain::prices::PricesBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_request",
            format!("the JSON body is not valid: {e}"),
        )
    })?;
    crate::domain::prices::replace(&state, &id, &b, &owner.actor(), now_ms()).await?;
    Ok(Json(crate::domain::prices::list(&state).await?))
}
