//! "Test against provider": one cheap authenticated call with a credential, through the normal
//! outbound path, to learn whether the provider accepts it.
//!
//! The provider's plugin builds the call for its `models` action (a model listing: no tokens,
//! no cost), so the request shape is the plugin's, exactly as for an app's request; the host
//! checks the URL against the declared and approved hosts, strips auth headers and injects the
//! credential as usual. The answer is reduced to an outcome, a status and a latency: the
//! provider's body is read and dropped, never shown (a provider may quote the key it rejected).
//!
//! A test is the owner's, not an app's: it writes no usage-ledger row and charges no budget; it
//! is audited as `credential.tested` with its outcome.

use std::time::{Duration, Instant};

use pairgate_plugin_host::{Credential, PrepareRequest};
use pairgate_policy::GrantPolicy;
use serde::Serialize;
use serde_json::json;
use ts_rs::TS;

use super::upstream::{self, SendError};
use crate::base::error::ApiError;
use crate::domain::credentials::{CheckReport, CredentialInfo};
use crate::state::AppState;

/// The longest a test waits for the provider's answer (or `upstream.timeout` if shorter).
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// How a test against the provider came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    /// The provider accepted the credential (2xx).
    Ok,
    /// The provider refused it (401 or 403): invalid, revoked or without permission.
    Rejected,
    /// No connection to the provider.
    Unreachable,
    /// The provider did not answer within the test's timeout.
    Timeout,
    /// Any other answer (429, 5xx, unexpected 4xx): the credential's validity is unknown.
    ProviderError,
    /// The gateway could not make the call: no such provider here, a plugin without a cheap
    /// check, a host not approved or resolving only to private addresses the provider may not
    /// reach, or a credential that cannot be decrypted or fetched.
    NotTestable,
}

/// The result of a test against the provider. Never holds the credential or the provider's body.
#[derive(Debug, Clone, Serialize, TS)]
pub struct ProviderCheck {
    pub provider: String,
    pub outcome: CheckOutcome,
    /// The provider's HTTP status, when it answered.
    pub status: Option<u16>,
    /// Time from sending to the provider's answer (headers), when it answered.
    pub latency_ms: Option<u64>,
    pub message: String,
}

/// `POST /admin/api/credentials/{id}/check`: the value decrypted (or fetched) here, then tried
/// against the provider.
#[derive(Debug, Clone, Serialize, TS)]
pub struct CredentialTest {
    #[serde(flatten)]
    pub check: CheckReport,
    pub provider_check: ProviderCheck,
}

fn report(c: &CredentialInfo, outcome: CheckOutcome, message: String) -> ProviderCheck {
    ProviderCheck {
        provider: c.provider.clone(),
        outcome,
        status: None,
        latency_ms: None,
        message,
    }
}

/// Tests credential `c` against its provider (see the module documentation) and audits it.
pub async fn test_credential(
    state: &AppState,
    c: &CredentialInfo,
    actor: &str,
) -> Result<ProviderCheck, ApiError> {
    let check = run(state, c).await?;
    state
        .store
        .audit(
            actor,
            "credential.tested",
            Some(&c.id),
            Some(&json!({
                "provider": c.provider,
                "name": c.name,
                "outcome": check.outcome,
                "status": check.status,
                "latency_ms": check.latency_ms,
            })),
        )
        .await?;
    Ok(check)
}

async fn run(state: &AppState, c: &CredentialInfo) -> Result<ProviderCheck, ApiError> {
    let label = c.label();
    let Some(provider) = state.relay.provider(&c.provider) else {
        return Ok(report(
            c,
            CheckOutcome::NotTestable,
            format!("no provider `{}` is enabled on this gateway", c.provider),
        ));
    };
    if provider.descriptor.credential == Credential::None {
        return Ok(report(
            c,
            CheckOutcome::NotTestable,
            format!("provider {} sends no credential", provider.id),
        ));
    }
    if !provider.descriptor.actions.iter().any(|a| a == "models") {
        return Ok(report(
            c,
            CheckOutcome::NotTestable,
            format!(
                "the {} plugin offers no model listing to test a key with; send a request instead",
                provider.plugin
            ),
        ));
    }
    // The call carries this credential, whichever one the provider normally uses.
    let mut provider = provider.clone();
    provider.credential = c.name.clone();
    let grant =
        serde_json::to_string(&GrantPolicy::default()).map_err(|e| ApiError::Internal(e.into()))?;
    let prep = PrepareRequest {
        action: "models".into(),
        grant,
        config: provider.config_json.clone(),
        model: None,
        body: Vec::new(),
        method: "GET".into(),
        headers: Vec::new(),
        path: None,
        timestamp: (crate::base::clock::now_ms() / 1000) as u64,
    };
    let plugin = provider.plugin.clone();
    let call = match super::plugin::plugin_call(state, &provider, 0, move |host| {
        host.prepare(&plugin, prep)
    })
    .await
    {
        Ok(Ok(call)) => call,
        Ok(Err(rejection)) => {
            let message = format!("the plugin built no call: {}", rejection.message);
            return Ok(report(c, CheckOutcome::NotTestable, message));
        }
        Err(e) => return Ok(report(c, CheckOutcome::NotTestable, e.to_string())),
    };
    let (builder, redactor) = match upstream::build(state, &provider, call, false).await {
        Ok(b) => b,
        Err(e @ (ApiError::Unavailable(_) | ApiError::Internal(_))) => return Err(e),
        Err(ApiError::ProviderAuth { .. }) => {
            let message = format!("{label} could not be decrypted or fetched (see the log)");
            return Ok(report(c, CheckOutcome::NotTestable, message));
        }
        Err(e) => return Ok(report(c, CheckOutcome::NotTestable, e.to_string())),
    };
    drop(redactor);
    let timeout = TIMEOUT.min(state.config.upstream_timeout);
    let started = Instant::now();
    let sent = tokio::time::timeout(timeout, builder.timeout(timeout).send()).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    let resp = match sent {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            let (outcome, message) = match SendError::from(e) {
                SendError::Timeout => (
                    CheckOutcome::Timeout,
                    format!("provider {} did not answer in time", provider.id),
                ),
                SendError::Connect | SendError::Other => (
                    CheckOutcome::Unreachable,
                    format!("provider {} could not be reached", provider.id),
                ),
                // Refused before connecting: nothing, the credential least, was sent.
                SendError::Refused(refused) => (
                    CheckOutcome::NotTestable,
                    format!(
                        "provider {}: {refused}; set providers.{}.allow_private if it is meant to be local",
                        provider.id, provider.id
                    ),
                ),
            };
            return Ok(report(c, outcome, message));
        }
        Err(_) => {
            let message = format!("provider {} did not answer within {timeout:?}", provider.id);
            return Ok(report(c, CheckOutcome::Timeout, message));
        }
    };
    let status = resp.status().as_u16();
    // The body is not read: nothing of it is shown, and dropping the response ends the call.
    drop(resp);
    let (outcome, message) = match status {
        200..=299 => (
            CheckOutcome::Ok,
            format!("provider {} accepted {label}", provider.id),
        ),
        401 | 403 => (
            CheckOutcome::Rejected,
            format!(
                "provider {} rejected {label} (status {status}): the key is invalid, revoked or lacks permission",
                provider.id
            ),
        ),
        _ => (
            CheckOutcome::ProviderError,
            format!(
                "provider {} answered status {status}; the key's validity is unknown",
                provider.id
            ),
        ),
    };
    Ok(ProviderCheck {
        provider: provider.id.clone(),
        outcome,
        status: Some(status),
        latency_ms: Some(latency_ms),
        message,
    })
}
