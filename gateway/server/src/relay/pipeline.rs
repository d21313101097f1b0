//! One app request on the OpenAI-compatible surface (`/v1/chat/completions`, `/v1/embeddings`):
//! parse, resolve the model, check the grant's policy, admit against limits and budgets
//! (reserve), let the plugin map it, send it, map the answer back, settle what was really used,
//! and write the usage ledger row. Every exit goes through the request's
//! [`Exchange`](super::exchange::Exchange) (or, before admission, [`refuse`]), so each settles or
//! releases its reservation and writes exactly one ledger row.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use pairgate_plugin_host::{
    Failure, FailureKind, PrepareRequest, ResponseMode, UpstreamCall, UpstreamResponse,
};
use pairgate_policy::GrantPolicy;
use pairgate_policy::body::{BodyFacts, CHAT_CAP_FIELDS};
use pairgate_policy::decide::{RequestFacts, check};
use pairgate_policy::limits::{Usage, estimate_request};
use serde_json::Value;

use super::errors::{denial, failure, limited, send_error};
use super::exchange::{Exchange, Meter, detached, refuse};
use super::plugin::{plugin_call, policy_usage};
use super::upstream::SendError;
use crate::base::error::ApiError;
use crate::domain::grants::AppRequest;
use crate::engine::providers::Provider;
use crate::state::AppState;

/// Largest non-streamed upstream answer read into memory.
pub const MAX_UPSTREAM_BODY: usize = 32 << 20;
/// Output tokens assumed when neither the request nor the catalogue bounds them.
pub const DEFAULT_MAX_OUTPUT: u32 = 4096;

/// A call the plugin prepared for an admitted request.
#[derive(Debug)]
pub struct Prepared {
    pub call: UpstreamCall,
    pub estimate: Usage,
    pub stream: bool,
}

/// The price of `model` on `provider`, or a refusal when nobody can price it and the grant has
/// a money budget (an unpriced model would spend it for free). Without a money budget an
/// unpriced model is allowed and recorded at cost 0.
pub async fn priced(
    state: &AppState,
    provider: &Provider,
    model: &str,
    policy: &GrantPolicy,
) -> Result<Option<pairgate_policy::limits::ModelPrice>, ApiError> {
    let console = state.owner_prices.current(&state.store).await?;
    let price = provider.price(model, console.get(&provider.id));
    if price.is_none() && policy.cost_budget_micros.is_set() {
        return Err(ApiError::Forbidden {
            code: "model_not_priced",
            message: format!(
                "model {}/{} has no known price and this grant has a money budget, so it cannot \
                 be used; the owner can set its price in the console (Plugins, Prices) or the \
                 configuration (providers.{}.prices), or a fallback price \
                 (providers.{}.fallback_price)",
                provider.id,
                model.chars().take(100).collect::<String>(),
                provider.id,
                provider.id
            ),
        });
    }
    Ok(price)
}

/// `POST /v1/chat/completions` and `POST /v1/embeddings`.
pub async fn unified(state: AppState, req: AppRequest, endpoint: &'static str) -> Response {
    detached(async move {
        let mut meter = Meter::new(&req, endpoint);
        let admitted = match admit(&state, &req, endpoint, &mut meter).await {
            Ok(a) => a,
            Err(e) => return refuse(&state, &meter, e).await,
        };
        let Admitted {
            provider,
            admission,
            prep,
            estimate,
            stream,
        } = admitted;
        let exchange = Exchange::new(state, provider, admission, meter);
        match exchange.prepare(prep).await {
            Ok(call) => {
                let prepared = Prepared {
                    call,
                    estimate,
                    stream,
                };
                send(exchange, prepared).await
            }
            Err(e) => exchange.fail(e).await,
        }
    })
    .await
}

/// An admitted chat or embeddings request, before its plugin maps it.
struct Admitted {
    provider: Arc<Provider>,
    admission: crate::engine::limits::Admission,
    prep: PrepareRequest,
    estimate: Usage,
    stream: bool,
}

async fn admit(
    state: &AppState,
    req: &AppRequest,
    endpoint: &'static str,
    meter: &mut Meter,
) -> Result<Admitted, ApiError> {
    let policy = &req.grant.policy;
    let mut body: Value = serde_json::from_slice(&req.body).map_err(|e| {
        ApiError::bad_request(
            "invalid_request_error",
            format!("the request body is not valid JSON: {e}"),
        )
    })?;
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "invalid_request_error",
            "the request body must be a JSON object",
        ));
    }
    let model = body["model"]
        .as_str()
        .ok_or_else(|| ApiError::bad_request("invalid_request_error", "`model` is required"))?
        .to_string();
    let (provider, bare) = state
        .relay
        .resolve_model(&model, &state.config.default_provider)?;
    let provider = provider.clone();
    let full = format!("{}/{bare}", provider.id);
    meter.provider = Some(provider.id.clone());
    meter.model = Some(full.clone());
    let said = BodyFacts::of(&body, CHAT_CAP_FIELDS);
    let stream = endpoint == "chat" && said.stream;
    let facts = RequestFacts {
        provider: &provider.id,
        model: Some(&bare),
        endpoint,
        stream,
        has_tools: said.has_tools,
        has_images: said.has_images,
        requested_max_tokens: said.max_tokens,
        source_ip: req.client_ip,
        now_ms: req.now_ms,
    };
    let allowed = check(policy, &facts).map_err(denial)?;
    if body.get("web_search_options").is_some() && policy.cost_budget_micros.is_set() {
        // The search models bill each search beyond tokens, which the gateway cannot price.
        return Err(ApiError::Forbidden {
            code: "tool_not_priced",
            message: "`web_search_options` makes the provider search and bill per search, which \
                      the gateway cannot price, and this grant has a money budget; leave it out"
                .into(),
        });
    }
    if endpoint == "chat"
        && let Some(max) = allowed.max_tokens
    {
        let field = if body.get("max_completion_tokens").is_some() {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        body[field] = max.into();
    }
    body["model"] = Value::String(bare.clone());
    let price = priced(state, &provider, &bare, policy).await?;
    meter.prices = price.as_ref().map(|p| p.prices);
    let default_out = if endpoint == "chat" {
        price
            .as_ref()
            .and_then(|p| p.max_output_tokens)
            .unwrap_or(DEFAULT_MAX_OUTPUT)
    } else {
        0
    };
    let estimate = estimate_request(&body, allowed.max_tokens, default_out);
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
    let prep = PrepareRequest {
        action: endpoint.to_string(),
        grant: req.grant.row.policy.clone(),
        config: provider.config_json.clone(),
        model: Some(bare),
        body: serde_json::to_vec(&body).map_err(|e| ApiError::Internal(e.into()))?,
        method: "POST".into(),
        headers: Vec::new(),
        path: None,
        timestamp: (req.now_ms / 1000) as u64,
    };
    Ok(Admitted {
        provider,
        admission,
        prep,
        estimate,
        stream,
    })
}

/// Sends an admitted, prepared request and answers: streamed, mapped by the plugin's `finish`,
/// or (pass-through) as the provider sent it.
pub async fn send(mut exchange: Exchange, prepared: Prepared) -> Response {
    let Prepared {
        call,
        estimate,
        stream,
    } = prepared;
    let mode = call.response_mode;
    let call_state = call.state.clone();
    let (resp, redactor) = match exchange.send(call, stream).await {
        Ok(r) => r,
        Err(e) => return exchange.fail(e).await,
    };
    let status = resp.status().as_u16();
    let streaming =
        matches!(mode, ResponseMode::Sse | ResponseMode::Ndjson) && (200..300).contains(&status);
    if streaming {
        return super::stream::respond(exchange, resp, mode, call_state, estimate, redactor);
    }
    // The plugin (and, through its error text, the app) gets the answer without the credential.
    let headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_string(), redactor.text(v.to_string())))
        })
        .collect();
    let body = match read_limited(resp).await {
        Ok(b) => redactor.bytes(b),
        Err(e) => {
            let e = send_error(&exchange.provider, e);
            return exchange.fail(e).await;
        }
    };
    drop(redactor);
    if mode == ResponseMode::Raw {
        return raw(exchange, status, &headers, body).await;
    }
    let retry_after = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
        .and_then(|(_, v)| v.trim().parse::<u32>().ok());
    let upstream = UpstreamResponse {
        status,
        headers,
        body,
        state: call_state,
    };
    let id = exchange.provider.plugin.clone();
    let size = upstream.body.len();
    let finished = plugin_call(&exchange.state, &exchange.provider, size, move |host| {
        host.finish(&id, upstream)
    })
    .await;
    match finished {
        Ok(Ok(f)) => {
            let (usage, estimated) = match f.usage {
                Some(u) => (policy_usage(u), false),
                None => (estimate, true),
            };
            let rate_headers = exchange.rate_headers();
            exchange.finish(f.status, usage, estimated, None).await;
            let mut res = Response::new(Body::from(f.body));
            *res.status_mut() = StatusCode::from_u16(f.status).unwrap_or(StatusCode::OK);
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            for (k, v) in rate_headers {
                if let Ok(v) = HeaderValue::from_str(&v) {
                    res.headers_mut().insert(k, v);
                }
            }
            res
        }
        Ok(Err(mut f)) => {
            // The provider's own Retry-After, when the plugin did not carry it over.
            f.retry_after_seconds = f.retry_after_seconds.or(retry_after);
            let e = failure(&exchange.provider, f);
            exchange.fail(e).await
        }
        Err(e) => exchange.fail(e).await,
    }
}

/// A provider-native pass-through answer, returned as the provider sent it (content type kept),
/// except that a refusal of the owner's credential is mapped like everywhere else, so the
/// provider's text about the key never reaches the app.
async fn raw(
    exchange: Exchange,
    status: u16,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Response {
    if status == 401 || status == 403 {
        let e = failure(
            &exchange.provider,
            Failure {
                status,
                kind: FailureKind::Authentication,
                code: None,
                message: String::new(),
                retry_after_seconds: None,
            },
        );
        return exchange.fail(e).await;
    }
    exchange.finish(status, Usage::default(), false, None).await;
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.as_str());
    if let Some(v) = content_type.and_then(|v| HeaderValue::from_str(v).ok()) {
        res.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    res
}

pub async fn read_limited(resp: reqwest::Response) -> Result<Vec<u8>, SendError> {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if out.len() + chunk.len() > MAX_UPSTREAM_BODY {
            return Err(SendError::Other);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
