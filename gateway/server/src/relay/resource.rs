//! Resource calls under `/r/{resource}/...`: a plugin action that is not chat-shaped (sending an
//! email through Resend), or a provider-native path the plugin declares for pass-through (the
//! localhost-broker pattern of an allowed-path list). The grant must allow the endpoint
//! `resource:<plugin>/<action>`; per-resource quotas the plugin declares (e.g. messages per day)
//! are counted from the usage ledger.

use std::sync::Arc;

use axum::response::Response;
use pairgate_plugin_host::PrepareRequest;
use pairgate_policy::GrantPolicy;
use pairgate_policy::body::{ANY_CAP_FIELDS, BodyFacts};
use pairgate_policy::decide::{RequestFacts, check};
use pairgate_policy::grant::endpoint;
use pairgate_policy::limits::Usage;
use serde_json::Value;

use super::errors::{denial, limited};
use super::exchange::{Exchange, Meter, detached, refuse};
use super::pipeline::{Prepared, send};
use super::plugin::plugin_prepare;
use crate::base::error::ApiError;
use crate::domain::grants::AppRequest;
use crate::engine::limits::QuotaCharge;
use crate::engine::providers::Provider;
use crate::state::AppState;

/// Handles one resource call.
pub async fn handle(state: AppState, req: AppRequest, resource: &str, rest: &str) -> Response {
    let endpoint_guess = format!("resource:{resource}/{rest}");
    let (resource, rest) = (resource.to_string(), rest.to_string());
    detached(async move {
        let mut meter = Meter::new(&req, &endpoint_guess);
        match prepare(&state, &req, &resource, &rest, &mut meter).await {
            Ok((provider, prepared, admission)) => {
                send(Exchange::new(state, provider, admission, meter), prepared).await
            }
            Err(e) => refuse(&state, &meter, e).await,
        }
    })
    .await
}

async fn prepare(
    state: &AppState,
    req: &AppRequest,
    resource: &str,
    rest: &str,
    meter: &mut Meter,
) -> Result<(Arc<Provider>, Prepared, crate::engine::limits::Admission), ApiError> {
    let provider = state.relay.shared(resource).ok_or(ApiError::NotFound)?;
    let d = &provider.descriptor;
    let (action, path) = if !rest.contains('/')
        && rest != endpoint::PASSTHROUGH
        && d.actions.iter().any(|a| a == rest)
    {
        (rest.to_string(), None)
    } else if d.actions.iter().any(|a| a == endpoint::PASSTHROUGH) {
        let query = req
            .path_and_query
            .split_once('?')
            .map(|(_, q)| format!("?{q}"))
            .unwrap_or_default();
        (
            endpoint::PASSTHROUGH.to_string(),
            Some(format!("/{rest}{query}")),
        )
    } else {
        return Err(ApiError::NotFound);
    };
    let endpoint = endpoint::resource(resource, &action);
    meter.endpoint = endpoint.clone();
    meter.provider = Some(provider.id.clone());
    if MODEL_ACTIONS.contains(&action.as_str()) {
        // A model call has one door, with its model checks, estimate and price: /v1.
        return Err(ApiError::Forbidden {
            code: "endpoint_not_allowed",
            message: format!(
                "`{action}` on {resource} is a model call: use {} with model \"{resource}/<model>\"; \
                 /r/ carries resource actions and declared pass-through paths only",
                match action.as_str() {
                    "chat" => "POST /v1/chat/completions",
                    "embeddings" => "POST /v1/embeddings",
                    _ => "GET /v1/models",
                }
            ),
        });
    }
    if let Some(native) = path.as_deref().and_then(native_route) {
        // The providers' own model APIs are served natively, metered like every model call.
        return Err(ApiError::Forbidden {
            code: "endpoint_not_allowed",
            message: format!(
                "this is a model call: use POST {native}, which the gateway meters; /r/ carries \
                 resource actions and declared pass-through paths only"
            ),
        });
    }
    let policy = &req.grant.policy;
    let passthrough = action == endpoint::PASSTHROUGH;
    let probe = if passthrough {
        // A native body that is not JSON states nothing.
        serde_json::from_slice::<Value>(&req.body)
            .map(|body| BodyFacts::of(&body, ANY_CAP_FIELDS))
            .unwrap_or_default()
    } else {
        BodyFacts::default()
    };
    let facts = RequestFacts {
        provider: &provider.id,
        model: probe.model.as_deref(),
        endpoint: &endpoint,
        stream: probe.stream,
        has_tools: probe.has_tools,
        has_images: probe.has_images,
        requested_max_tokens: probe.max_tokens,
        source_ip: req.client_ip,
        now_ms: req.now_ms,
    };
    check(policy, &facts).map_err(denial)?;
    if passthrough {
        check_passthrough(policy, &provider, probe.model.as_deref())?;
        if let Some(model) = &probe.model {
            meter.model = Some(format!("{}/{model}", provider.id));
        }
    }
    let prep = PrepareRequest {
        action,
        grant: req.grant.row.policy.clone(),
        config: provider.config_json.clone(),
        model: None,
        body: req.body.to_vec(),
        method: req.method.as_str().to_string(),
        headers: Vec::new(),
        path,
        timestamp: (req.now_ms / 1000) as u64,
    };
    // The plugin maps the call first (no I/O): its charges are what the quotas reserve.
    let call = plugin_prepare(state, &provider, prep).await?;
    let quotas = quota_charges(&provider, req.grant.policy_json(), &call.charges);
    let admission = state
        .limiter
        .admit_claiming(
            &req.grant.row.id,
            policy,
            Usage::default(),
            0,
            &quotas,
            req.replay.as_ref(),
            req.now_ms,
        )
        .await
        .map_err(limited)?;
    let prepared = Prepared {
        call,
        estimate: Usage::default(),
        stream: false,
    };
    Ok((provider, prepared, admission))
}

/// The native `/v1` route of a provider's own model API, for a pass-through path that is one.
fn native_route(path: &str) -> Option<&'static str> {
    match path.split('?').next().unwrap_or_default() {
        "/v1/messages" => Some("/v1/messages"),
        "/v1/responses" => Some("/v1/responses"),
        _ => None,
    }
}

/// Plugin actions that are model calls, served only through `/v1`.
const MODEL_ACTIONS: [&str; 3] = [endpoint::CHAT, endpoint::EMBEDDINGS, endpoint::MODELS];

/// A pass-through answer is the provider's own: the gateway cannot meter it. So it is refused
/// for a grant with token or money limits, and for a grant that allows only some of the
/// provider's models when the request names no model the gateway can read.
fn check_passthrough(
    policy: &GrantPolicy,
    provider: &Provider,
    model: Option<&str>,
) -> Result<(), ApiError> {
    if policy.token_budget.is_set()
        || policy.cost_budget_micros.is_set()
        || policy.tokens_per_minute.is_some()
    {
        return Err(ApiError::Forbidden {
            code: "passthrough_not_metered",
            message: format!(
                "pass-through answers of {} are not metered, and this grant has a token or money \
                 limit; use the /v1 endpoints, which are",
                provider.id
            ),
        });
    }
    let every_model = policy
        .models
        .iter()
        .any(|m| m == "*" || *m == format!("{}/*", provider.id));
    if model.is_none() && !every_model {
        return Err(ApiError::Forbidden {
            code: "model_not_allowed",
            message: "this grant allows only some models, and this pass-through request names \
                      none the gateway can read: send a JSON body with `model`"
                .into(),
        });
    }
    Ok(())
}

/// The quotas a call charges that the grant limits: for each quota the plugin declares and the
/// grant sets (at the plugin's JSON pointer), the call's charge against that limit. A value
/// that is not a whole number is a limit of 0 (the policy is refused rather than unlimited).
fn quota_charges(
    provider: &Provider,
    policy: &Value,
    charges: &[pairgate_plugin_host::Charge],
) -> Vec<QuotaCharge> {
    provider
        .quotas
        .iter()
        .filter_map(|(kind, window)| {
            let limit = policy.pointer(kind.field)?;
            let amount = charges
                .iter()
                .filter(|c| c.quota == kind.name)
                .map(|c| c.amount)
                .fold(0u64, u64::saturating_add);
            Some(QuotaCharge {
                kind: *kind,
                window: *window,
                limit: limit.as_u64().unwrap_or(0),
                amount,
            })
        })
        .collect()
}
