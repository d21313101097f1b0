//! The providers' own APIs, served natively: Anthropic's Messages API (`POST /v1/messages`,
//! `POST /v1/messages/count_tokens`) and OpenAI's Responses API (`POST /v1/responses`), so the
//! official SDKs and coding agents work by changing a base URL.
//!
//! Each request takes the one admission path of `/v1/chat/completions`: the grant's policy
//! (providers, model globs, output cap, streaming, tools, images; the route counts as the `chat`
//! endpoint), the price, the estimate, the limits and the budget reservation. The body is read
//! once (`pairgate_policy::native`), only its model and output cap are rewritten, the provider's
//! plugin maps the call (URL, protocol headers), and the answer goes back as the provider sent it,
//! metered from the usage it reports (for a stream, the final event; estimated and flagged when
//! it never came). Every exit settles and writes one ledger row.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use pairgate_plugin_host::{PrepareRequest, UpstreamCall};
use pairgate_policy::decide::{RequestFacts, check};
use pairgate_policy::grant::endpoint;
use pairgate_policy::limits::{Usage, estimate_request};
use pairgate_policy::native::{Api, NativeRequest, answer_usage, error_code};

use super::errors::{denial, limited, send_error};
use super::exchange::{Exchange, Meter, detached, refuse};
use super::pipeline::{DEFAULT_MAX_OUTPUT, priced, read_limited};
use crate::base::error::ApiError;
use crate::domain::grants::AppRequest;
use crate::engine::limits::Admission;
use crate::engine::providers::Provider;
use crate::state::AppState;

/// Request headers an app may pass on to the provider's plugin (protocol versions and betas);
/// the plugin picks those its API uses.
const FORWARDED_HEADERS: [&str; 3] = ["anthropic-version", "anthropic-beta", "openai-beta"];

/// The provider a bare model name goes to on a native route: the one named after the API's
/// maker when it serves the API, otherwise the first (by id) that does.
fn natural_provider(state: &AppState, api: Api) -> Option<&Provider> {
    let preferred = match api {
        Api::Messages | Api::CountTokens => "anthropic",
        Api::Responses => "openai",
    };
    let serves = |p: &&Provider| p.descriptor.actions.iter().any(|a| a == api.action());
    state
        .relay
        .provider(preferred)
        .filter(serves)
        .or_else(|| state.relay.providers().find(serves))
}

fn api_name(api: Api) -> &'static str {
    match api {
        Api::Messages | Api::CountTokens => "Anthropic's Messages API",
        Api::Responses => "OpenAI's Responses API",
    }
}

/// An admitted native request, before its plugin maps it.
struct Admitted {
    provider: Arc<Provider>,
    prep: PrepareRequest,
    estimate: Usage,
    stream: bool,
    admission: Admission,
}

/// Handles one native request.
pub async fn handle(state: AppState, req: AppRequest, headers: HeaderMap, api: Api) -> Response {
    detached(async move {
        let mut meter = Meter::new(&req, api.ledger_endpoint());
        let a = match admit(&state, &req, &headers, api, &mut meter).await {
            Ok(a) => a,
            Err(e) => return refuse(&state, &meter, e).await,
        };
        let exchange = Exchange::new(state, a.provider, a.admission, meter);
        match exchange.prepare(a.prep).await {
            Ok(call) => relay(exchange, api, call, a.estimate, a.stream).await,
            Err(e) => exchange.fail(e).await,
        }
    })
    .await
}

async fn admit(
    state: &AppState,
    req: &AppRequest,
    headers: &HeaderMap,
    api: Api,
    meter: &mut Meter,
) -> Result<Admitted, ApiError> {
    let mut native = NativeRequest::parse(api, &req.body)
        .map_err(|e| ApiError::bad_request("invalid_request_error", e.to_string()))?;
    let natural = natural_provider(state, api).ok_or_else(|| ApiError::Upstream {
        status: 404,
        code: "not_found".into(),
        message: format!("no provider on this gateway serves {}", api_name(api)),
        kind: "invalid_request_error",
    })?;
    let (provider, bare) = state.relay.resolve_model(&native.model, &natural.id)?;
    let provider = provider.clone();
    meter.provider = Some(provider.id.clone());
    meter.model = Some(format!("{}/{bare}", provider.id));
    if !provider
        .descriptor
        .actions
        .iter()
        .any(|a| a == api.action())
    {
        return Err(ApiError::bad_request(
            "model_not_found",
            format!(
                "the provider {} does not serve {}; name a model of a provider that does (a \
                 bare model name goes to {}), or use POST /v1/chat/completions",
                provider.id,
                api_name(api),
                natural.id
            ),
        ));
    }
    let policy = &req.grant.policy;
    let facts = RequestFacts {
        provider: &provider.id,
        model: Some(&bare),
        endpoint: endpoint::CHAT,
        stream: native.stream,
        has_tools: native.has_tools,
        has_images: native.has_images,
        requested_max_tokens: native.max_tokens,
        source_ip: req.client_ip,
        now_ms: req.now_ms,
    };
    let allowed = check(policy, &facts).map_err(denial)?;
    if let Some(tool) = native.billed_tools.first()
        && policy.cost_budget_micros.is_set()
    {
        // Billed per use beyond tokens: under a money budget it would spend it unmetered.
        return Err(ApiError::Forbidden {
            code: "tool_not_priced",
            message: format!(
                "the tool `{tool}` runs at the provider and is billed per use, which the gateway \
                 cannot price, and this grant has a money budget; leave it out, or ask the owner \
                 for a grant without a money budget"
            ),
        });
    }
    let price = priced(state, &provider, &bare, policy).await?;
    meter.prices = price.as_ref().map(|p| p.prices);
    let cap = if api.generates() {
        allowed.max_tokens
    } else {
        None
    };
    native.rewrite(&bare, cap);
    let estimate = if api.generates() {
        let default_out = price
            .as_ref()
            .and_then(|p| p.max_output_tokens)
            .unwrap_or(DEFAULT_MAX_OUTPUT);
        estimate_request(native.body(), cap, default_out)
    } else {
        Usage::default()
    };
    let estimated_cost = meter.cost(&estimate);
    let admission = state
        .limiter
        .admit_claiming(
            &req.grant.row.id,
            policy,
            estimate,
            estimated_cost,
            &[],
            req.replay.as_ref(),
            req.now_ms,
        )
        .await
        .map_err(limited)?;
    let forwarded = headers
        .iter()
        .filter(|(name, _)| FORWARDED_HEADERS.contains(&name.as_str()))
        .filter_map(|(name, v)| Some((name.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let prep = PrepareRequest {
        action: api.action().to_string(),
        grant: req.grant.row.policy.clone(),
        config: provider.config_json.clone(),
        model: Some(bare),
        body: native.to_bytes(),
        method: "POST".into(),
        headers: forwarded,
        path: None,
        timestamp: (req.now_ms / 1000) as u64,
    };
    Ok(Admitted {
        provider,
        prep,
        estimate,
        stream: native.stream,
        admission,
    })
}

/// Sends an admitted, prepared request and answers with what the provider sent.
async fn relay(
    mut exchange: Exchange,
    api: Api,
    call: UpstreamCall,
    estimate: Usage,
    stream: bool,
) -> Response {
    let (resp, redactor) = match exchange.send(call, stream).await {
        Ok(r) => r,
        Err(e) => return exchange.fail(e).await,
    };
    let status = resp.status().as_u16();
    if status == 401 || status == 403 {
        // The provider refused the owner's credential: its text about the key never reaches
        // the app (the same answer as every other route gives).
        let e = ApiError::ProviderAuth {
            message: format!(
                "the provider {} rejected the owner's credential; the owner must update it",
                exchange.provider.id
            ),
        };
        return exchange.fail(e).await;
    }
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| redactor.text(v.to_string()))
        .unwrap_or_else(|| "application/json".into());
    let retry_after = resp.headers().get(header::RETRY_AFTER).cloned();
    let ok = (200..300).contains(&status);
    if stream && ok && content_type.starts_with("text/event-stream") {
        return super::native_stream::respond(exchange, resp, api, estimate, redactor);
    }
    let body = match read_limited(resp).await {
        Ok(b) => redactor.bytes(b),
        Err(e) => {
            let e = send_error(&exchange.provider, e);
            return exchange.fail(e).await;
        }
    };
    let (usage, estimated, code) = if ok {
        match answer_usage(api, &body) {
            Some(u) => (u, false, None),
            None => (estimate, true, None),
        }
    } else {
        let code = error_code(&body).unwrap_or_else(|| "upstream_error".into());
        (Usage::default(), false, Some(code))
    };
    let rate_headers = exchange.rate_headers();
    exchange.finish(status, usage, estimated, code).await;
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Some(v) = retry_after.filter(|_| !ok) {
        h.insert(header::RETRY_AFTER, v);
    }
    for (k, v) in rate_headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    res
}
