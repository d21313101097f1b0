//! Plugin hosts: which hosts a provider's calls may reach, from the configuration and from the
//! owner's approvals in the console.
//!
//! # The rule
//!
//! A call may go to a host only if the provider's plugin **declares** it and it is **approved**,
//! by the configuration or by the console:
//!
//! * configuration: `providers.<id>.approved_hosts`; when it is not set, a built-in plugin's
//!   declared hosts count as approved and a third-party plugin's count as not approved;
//! * console: rows of `host_approvals` (`POST /admin/api/providers/{id}/hosts/approve` and
//!   `.../revoke`, owner only), which only ever name a declared host.
//!
//! So the console can add approvals but never remove one the configuration makes (that needs a
//! configuration change), and nothing approves a host the plugin does not declare.
//!
//! # When a change is seen
//!
//! Each gateway keeps a snapshot of the console approvals (`engine::console_settings`): a change
//! made on this gateway applies from its next request, one made on another replica within 5 s.
//! If the snapshot cannot be re-read, the call is refused (503), never let through on stale
//! approvals.

use std::collections::BTreeMap;

use pairgate_store::{HostApproval, StoreError};
use serde::Serialize;
use serde_json::json;
use ts_rs::TS;

use crate::engine::providers::Provider;
use crate::state::AppState;

/// One declared host of a provider and who approved it.
#[derive(Debug, Clone, Serialize, TS)]
pub struct HostState {
    pub host: String,
    /// Approved by the configuration (`approved_hosts`, or a built-in plugin's default).
    pub by_config: bool,
    /// The console approval, if any.
    pub by_console: Option<ConsoleApproval>,
}

/// Who approved a host in the console, and when.
#[derive(Debug, Clone, Serialize, TS)]
pub struct ConsoleApproval {
    pub approved_by: String,
    pub approved_at: i64,
}

/// Why a host approval could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("no provider `{0}` is configured")]
    UnknownProvider(String),
    #[error(
        "provider {provider}'s plugin does not declare the host {host}; only declared hosts can be approved"
    )]
    NotDeclared { provider: String, host: String },
    #[error("the host {host} has no console approval for provider {provider}")]
    NotApproved { provider: String, host: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The declared hosts of every provider with their approval state, for the Plugins page.
pub async fn states(state: &AppState) -> Result<BTreeMap<String, Vec<HostState>>, HostError> {
    let rows = state.store.host_approvals().await?;
    Ok(state
        .relay
        .providers()
        .map(|p| {
            let hosts = p
                .descriptor
                .hosts
                .iter()
                .map(|h| HostState {
                    host: h.clone(),
                    by_config: p.approved_hosts.iter().any(|a| a.eq_ignore_ascii_case(h)),
                    by_console: rows
                        .iter()
                        .find(|r: &&HostApproval| r.provider == p.id && r.host == *h)
                        .map(|r| ConsoleApproval {
                            approved_by: r.approved_by.clone(),
                            approved_at: r.approved_at,
                        }),
                })
                .collect();
            (p.id.clone(), hosts)
        })
        .collect())
}

fn declared<'a>(
    state: &'a AppState,
    provider: &str,
    host: &str,
) -> Result<&'a Provider, HostError> {
    let p = state
        .relay
        .provider(provider)
        .ok_or_else(|| HostError::UnknownProvider(provider.to_string()))?;
    if !p.descriptor.hosts.iter().any(|h| h == host) {
        return Err(HostError::NotDeclared {
            provider: provider.to_string(),
            host: host.chars().filter(|c| !c.is_control()).take(100).collect(),
        });
    }
    Ok(p)
}

/// The owner approves a declared host of a provider. Audited as `plugin.host_approved`.
pub async fn approve(
    state: &AppState,
    provider: &str,
    host: &str,
    actor: &str,
    now: i64,
) -> Result<(), HostError> {
    let p = declared(state, provider, host)?;
    if state.store.approve_host(&p.id, host, actor, now).await? {
        changed(state, p, host, actor, "plugin.host_approved").await?;
    }
    Ok(())
}

/// The owner withdraws a console approval (one made by the configuration stays). Audited as
/// `plugin.host_revoked`.
pub async fn revoke(
    state: &AppState,
    provider: &str,
    host: &str,
    actor: &str,
) -> Result<(), HostError> {
    let p = declared(state, provider, host)?;
    if !state.store.revoke_host(&p.id, host).await? {
        return Err(HostError::NotApproved {
            provider: p.id.clone(),
            host: host.to_string(),
        });
    }
    changed(state, p, host, actor, "plugin.host_revoked").await
}

/// Audits an approval change and reloads this gateway's snapshot, so it applies at once here.
async fn changed(
    state: &AppState,
    p: &Provider,
    host: &str,
    actor: &str,
    action: &str,
) -> Result<(), HostError> {
    state
        .store
        .audit(
            actor,
            action,
            Some(&p.id),
            Some(&json!({ "plugin": p.plugin, "host": host })),
        )
        .await?;
    state.host_approvals.reload(&state.store).await?;
    Ok(())
}
