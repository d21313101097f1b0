//! Resource calls under `/r/{resource}/...`: a plugin action that is not chat-shaped (sending an
//! email through Resend), or a provider-native path the plugin declares for pass-through (the
//! localhost-broker pattern of an allowed-path list). The grant must allow the endpoint
//! `resource:<plugin>/<action>`; per-resource quotas the plugin declares (e.g. messages per day)
//! are counted from the usage ledger.

use std::net::IpAddr;

use axum::response::Response;
use pairgate_plugin_host::PrepareRequest;
use pairgate_policy::GrantPolicy;
use pairgate_policy::decide::{RequestFacts, check};
use pairgate_policy::limits::{Usage, Window, window_ends_at, window_key};

use super::pipeline::{Meter, Prepared, denial, detached, prepare_upstream, send_or_refuse};
use crate::auth::extract::AppRequest;
use crate::error::ApiError;
use crate::state::AppState;

/// Handles one resource call.
pub async fn handle(
    state: AppState,
    req: AppRequest,
    resource: &str,
    rest: &str,
    client_ip: IpAddr,
) -> Response {
    let endpoint_guess = format!("resource:{resource}/{rest}");
    let (resource, rest) = (resource.to_string(), rest.to_string());
    detached(async move {
        let mut meter = Meter::new(&req, &endpoint_guess);
        let prepared = prepare(&state, &req, &resource, &rest, client_ip, &mut meter).await;
        send_or_refuse(state, prepared, meter).await
    })
    .await
}

async fn prepare(
    state: &AppState,
    req: &AppRequest,
    resource: &str,
    rest: &str,
    client_ip: IpAddr,
    meter: &mut Meter,
) -> Result<(super::Provider, Prepared, crate::limits::Admission), ApiError> {
    let provider = state
        .relay
        .provider(resource)
        .cloned()
        .ok_or(ApiError::NotFound)?;
    let d = &provider.descriptor;
    let (action, path) =
        if !rest.contains('/') && rest != "passthrough" && d.actions.iter().any(|a| a == rest) {
            (rest.to_string(), None)
        } else if d.actions.iter().any(|a| a == "passthrough") {
            let query = req
                .path_and_query
                .split_once('?')
                .map(|(_, q)| format!("?{q}"))
                .unwrap_or_default();
            ("passthrough".to_string(), Some(format!("/{rest}{query}")))
        } else {
            return Err(ApiError::NotFound);
        };
    let endpoint = format!("resource:{resource}/{action}");
    meter.endpoint = endpoint.clone();
    meter.provider = Some(provider.id.clone());
    let policy: GrantPolicy = serde_json::from_value(req.policy.clone())
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored policy is invalid: {e}")))?;
    let facts = RequestFacts {
        provider: &provider.id,
        model: None,
        endpoint: &endpoint,
        stream: false,
        has_tools: false,
        has_images: false,
        requested_max_tokens: None,
        source_ip: Some(client_ip),
        now_ms: req.now_ms,
    };
    check(&policy, &facts).map_err(denial)?;
    // Quotas the plugin declares and the grant sets (resources.<plugin>.<field>).
    for q in &d.quotas {
        let Some(limit) = policy
            .resources
            .get(&provider.plugin)
            .and_then(|r| r.get(&q.grant_field))
            .and_then(|v| v.as_u64())
        else {
            continue;
        };
        let window = match q.period {
            pairgate_plugin_host::Period::Month => Window::Month,
            _ => Window::Day,
        };
        let key = window_key(window, req.now_ms);
        let used = state
            .store
            .count_successful_calls(&req.grant.id, &endpoint, &key)
            .await?;
        if used >= limit {
            let retry = window_ends_at(window, req.now_ms)
                .map(|end| ((end - req.now_ms) / 1000).max(1) as u64);
            return Err(ApiError::Limited {
                code: "quota_exceeded",
                message: format!("this grant's {} quota ({limit}) is used up", q.name),
                retry_after_secs: retry,
                headers: Vec::new(),
            });
        }
    }
    let admission = state
        .limiter
        .admit(&req.grant.id, &policy, Usage::default(), 0, req.now_ms)
        .await
        .map_err(super::pipeline::limited)?;
    let prep = PrepareRequest {
        action,
        grant: req.grant.policy.clone(),
        config: provider.config_json.clone(),
        model: None,
        body: req.body.to_vec(),
        method: req.method.as_str().to_string(),
        headers: Vec::new(),
        path,
        timestamp: (req.now_ms / 1000) as u64,
    };
    let (call, admission) = prepare_upstream(state, &provider, prep, admission).await?;
    let prepared = Prepared {
        call,
        estimate: Usage::default(),
        stream: false,
    };
    Ok((provider, prepared, admission))
}
