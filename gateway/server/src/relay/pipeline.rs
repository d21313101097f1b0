//! One app request through the gateway: parse, resolve the model, check the grant's policy,
//! admit against limits and budgets (reserve), let the plugin map it, send it, map the answer
//! back, settle what was really used, and write the usage ledger row. Every exit path settles or
//! releases the reservation and writes exactly one ledger row.

use std::time::Instant;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use pairgate_plugin_host::{
    Failure, FailureKind, PrepareRequest, ResponseMode, UpstreamCall, UpstreamResponse,
};
use pairgate_policy::GrantPolicy;
use pairgate_policy::decide::{Denial, RequestFacts, check};
use pairgate_policy::limits::{Prices, Usage, cost_micros, estimate_request};
use serde_json::Value;

use super::upstream::{self, SendError};
use crate::base::error::ApiError;
use crate::domain::grants::AppRequest;
use crate::engine::ledger::LedgerRow;
use crate::engine::limits::Admission;
use crate::engine::providers::Provider;
use crate::state::AppState;

/// Largest non-streamed upstream answer read into memory.
pub const MAX_UPSTREAM_BODY: usize = 32 << 20;
/// Output tokens assumed when neither the request nor the catalogue bounds them.
pub const DEFAULT_MAX_OUTPUT: u32 = 4096;

/// What is known about a request while it is in flight, for its ledger row.
#[derive(Debug, Clone)]
pub struct Meter {
    pub request_id: String,
    pub grant_id: String,
    pub app_name: String,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub endpoint: String,
    pub started: Instant,
    pub upstream_ms: Option<i64>,
    pub prices: Option<Prices>,
    /// Keeps the request counted in `pairgate_relay_in_flight` while any copy lives.
    pub in_flight: std::sync::Arc<crate::base::metrics::InFlight>,
}

impl Meter {
    pub fn new(req: &AppRequest, endpoint: &str) -> Meter {
        Meter {
            request_id: req.request_id.clone(),
            grant_id: req.grant.id.clone(),
            app_name: req.grant.app_name.clone(),
            provider: None,
            model: None,
            endpoint: endpoint.to_string(),
            started: Instant::now(),
            upstream_ms: None,
            prices: None,
            in_flight: std::sync::Arc::new(crate::base::metrics::InFlight::start()),
        }
    }

    /// The ledger row for an outcome.
    pub fn row(
        &self,
        status: u16,
        usage: Usage,
        estimated: bool,
        error_code: Option<String>,
    ) -> LedgerRow {
        let cost = self
            .prices
            .as_ref()
            .map(|p| cost_micros(p, &usage))
            .unwrap_or(0);
        LedgerRow {
            request_id: self.request_id.clone(),
            grant_id: Some(self.grant_id.clone()),
            app_name: Some(self.app_name.clone()),
            provider: self.provider.clone(),
            model: self.model.clone(),
            endpoint: self.endpoint.clone(),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cached_tokens: usage.cached_tokens,
            cost_micros: cost,
            estimated,
            status,
            error_code,
            upstream_ms: self.upstream_ms,
            total_ms: self.started.elapsed().as_millis() as i64,
            created_at: crate::base::clock::now_ms(),
        }
    }
}

/// The parts of a unified request the pipeline needs once admitted.
#[derive(Debug)]
pub struct Prepared {
    pub call: UpstreamCall,
    pub estimate: Usage,
    pub stream: bool,
}

pub fn denial(d: Denial) -> ApiError {
    let message = d.message.clone();
    match d.code.http_status() {
        400 => ApiError::BadRequest {
            code: d.code.as_str(),
            message,
        },
        _ => ApiError::Forbidden {
            code: d.code.as_str(),
            message,
        },
    }
}

/// Whether a chat-shaped (`messages`) or Responses-shaped (`input`) body carries image parts.
pub fn has_images(body: &Value) -> bool {
    let image = |p: &Value| {
        matches!(
            p["type"].as_str(),
            Some("image_url" | "input_image" | "image")
        )
    };
    ["messages", "input"].iter().any(|field| {
        body[*field].as_array().is_some_and(|items| {
            items.iter().any(|m| {
                image(m)
                    || m["content"]
                        .as_array()
                        .is_some_and(|parts| parts.iter().any(image))
            })
        })
    })
}

fn requested_max_tokens(body: &Value) -> Option<u32> {
    body.get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_u64)
        .map(|n| n.min(u64::from(u32::MAX)) as u32)
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

/// A refusal by the limiter (429), or 503 when the limits backend failed and the request is
/// refused rather than let through unmetered.
pub fn limited(r: crate::engine::limits::LimitRejection) -> ApiError {
    if r.status == 503 {
        return ApiError::Degraded {
            code: r.code,
            message: r.message,
        };
    }
    ApiError::Limited {
        code: r.code,
        message: r.message,
        retry_after_secs: r.retry_after_secs,
        headers: r.headers,
    }
}

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

/// Maps a plugin's view of an upstream failure onto our error table. Upstream error text about
/// credentials never reaches the app.
pub fn failure(provider: &Provider, f: Failure) -> ApiError {
    match f.kind {
        FailureKind::Authentication => ApiError::ProviderAuth {
            message: format!(
                "the provider {} rejected the owner's credential; the owner must update it",
                provider.id
            ),
        },
        FailureKind::RateLimited => ApiError::ProviderRateLimit {
            retry_after_secs: f.retry_after_seconds.map(u64::from),
        },
        FailureKind::Overloaded | FailureKind::Upstream => ApiError::ProviderUnavailable {
            message: format!(
                "the provider {} is unavailable (status {})",
                provider.id, f.status
            ),
            timed_out: false,
        },
        FailureKind::BadResponse => ApiError::ProviderUnavailable {
            message: format!(
                "the provider {} sent an answer that could not be read",
                provider.id
            ),
            timed_out: false,
        },
        FailureKind::InvalidRequest | FailureKind::NotFound | FailureKind::Permission => {
            ApiError::Upstream {
                status: if (400..500).contains(&f.status) {
                    f.status
                } else {
                    400
                },
                code: f.code.unwrap_or_else(|| "invalid_request".into()),
                message: f.message.chars().take(1000).collect(),
                kind: f.kind.openai_type(),
            }
        }
    }
}

fn send_error(provider: &Provider, e: SendError) -> ApiError {
    e.into_api_error(provider)
}

/// `POST /v1/chat/completions` and `POST /v1/embeddings`.
pub async fn unified(state: AppState, req: AppRequest, endpoint: &'static str) -> Response {
    detached(async move {
        let mut meter = Meter::new(&req, endpoint);
        let prepared = admit_and_prepare(&state, &req, endpoint, &mut meter).await;
        send_or_refuse(state, prepared, meter).await
    })
    .await
}

/// Runs a relayed request in its own task. The server drops a handler's future when its client
/// hangs up; the request must still settle its reservation and write its ledger row, so it
/// finishes on its own (a stream's pump notices the client is gone and cancels upstream).
pub async fn detached(
    request: impl std::future::Future<Output = Response> + Send + 'static,
) -> Response {
    match tokio::spawn(request).await {
        Ok(res) => res,
        Err(e) => ApiError::Internal(anyhow::anyhow!("relay task failed: {e}")).into_response(),
    }
}

/// Sends an admitted, prepared request; or, when admission or preparation refused it, records
/// the refusal in the ledger and answers with the error.
pub async fn send_or_refuse(
    state: AppState,
    prepared: Result<(Provider, Prepared, Admission), ApiError>,
    meter: Meter,
) -> Response {
    match prepared {
        Ok((provider, prepared, admission)) => {
            send(state, provider, prepared, admission, meter).await
        }
        Err(e) => refuse(&state, &meter, e).await,
    }
}

/// Ends a request refused before admission held anything: its ledger row, then the error.
pub async fn refuse(state: &AppState, meter: &Meter, e: ApiError) -> Response {
    let row = meter.row(
        e.status().as_u16(),
        Usage::default(),
        false,
        Some(e.code().to_string()),
    );
    state.ledger.record_committed(row).await;
    e.into_response()
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

/// Runs the plugin's `prepare` for an admitted request. A refusal (the plugin's rejection or its
/// failure) releases the reservation before it is returned.
pub async fn prepare_upstream(
    state: &AppState,
    provider: &Provider,
    prep: PrepareRequest,
    admission: Admission,
) -> Result<(UpstreamCall, Admission), ApiError> {
    let refused = match plugin_prepare(state, provider, prep).await {
        Ok(call) => return Ok((call, admission)),
        Err(e) => e,
    };
    if let Err(e) = admission.release().await {
        tracing::error!(error = %e, "releasing a reservation failed");
    }
    Err(refused)
}

async fn admit_and_prepare(
    state: &AppState,
    req: &AppRequest,
    endpoint: &'static str,
    meter: &mut Meter,
) -> Result<(Provider, Prepared, Admission), ApiError> {
    let policy = &req.grant_policy;
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
    let stream = endpoint == "chat" && body["stream"].as_bool() == Some(true);
    let has_tools =
        body["tools"].as_array().is_some_and(|t| !t.is_empty()) || body.get("functions").is_some();
    let facts = RequestFacts {
        provider: &provider.id,
        model: Some(&bare),
        endpoint,
        stream,
        has_tools,
        has_images: has_images(&body),
        requested_max_tokens: requested_max_tokens(&body),
        source_ip: req.client_ip,
        now_ms: req.now_ms,
    };
    let allowed = check(policy, &facts).map_err(denial)?;
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
    let estimated_cost = meter
        .prices
        .as_ref()
        .map(|p| cost_micros(p, &estimate))
        .unwrap_or(0);
    let admission = state
        .limiter
        .admit(&req.grant.id, policy, estimate, estimated_cost, req.now_ms)
        .await
        .map_err(limited)?;
    let prep = PrepareRequest {
        action: endpoint.to_string(),
        grant: req.grant.policy.clone(),
        config: provider.config_json.clone(),
        model: Some(bare),
        body: serde_json::to_vec(&body).map_err(|e| ApiError::Internal(e.into()))?,
        method: "POST".into(),
        headers: Vec::new(),
        path: None,
        timestamp: (req.now_ms / 1000) as u64,
    };
    let (call, admission) = prepare_upstream(state, &provider, prep, admission).await?;
    Ok((
        provider,
        Prepared {
            call,
            estimate,
            stream,
        },
        admission,
    ))
}

pub async fn send(
    state: AppState,
    provider: Provider,
    prepared: Prepared,
    admission: Admission,
    mut meter: Meter,
) -> Response {
    let Prepared {
        call,
        estimate,
        stream,
    } = prepared;
    let mode = call.response_mode;
    let call_state = call.state.clone();
    let (builder, redactor) = match upstream::build(&state, &provider, call, stream).await {
        Ok(b) => b,
        Err(e) => return fail(&state, admission, &meter, e).await,
    };
    let started = Instant::now();
    // Headers must come within the upstream timeout, streamed or not (a stream's own timeout
    // only bounds the gaps between its chunks, once it has started).
    let resp = match tokio::time::timeout(state.config.upstream_timeout, builder.send()).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return fail(&state, admission, &meter, send_error(&provider, e.into())).await;
        }
        Err(_) => {
            return fail(
                &state,
                admission,
                &meter,
                send_error(&provider, SendError::Timeout),
            )
            .await;
        }
    };
    meter.upstream_ms = Some(started.elapsed().as_millis() as i64);
    crate::base::metrics::upstream(&provider.id, started.elapsed());
    let status = resp.status().as_u16();
    let streaming =
        matches!(mode, ResponseMode::Sse | ResponseMode::Ndjson) && (200..300).contains(&status);
    if streaming {
        let headers = admission.headers();
        return super::stream::respond(
            state, provider, resp, mode, call_state, admission, meter, estimate, headers, redactor,
        );
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
        Err(e) => return fail(&state, admission, &meter, send_error(&provider, e)).await,
    };
    drop(redactor);
    if mode == ResponseMode::Raw {
        return raw(&state, admission, &meter, &provider, status, &headers, body).await;
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
    let id = provider.plugin.clone();
    let size = upstream.body.len();
    let finished = plugin_call(&state, &provider, size, move |host| {
        host.finish(&id, upstream)
    })
    .await;
    match finished {
        Ok(Ok(f)) => {
            let (usage, estimated) = match f.usage {
                Some(u) => (policy_usage(u), false),
                None => (estimate, true),
            };
            let cost = meter
                .prices
                .as_ref()
                .map(|p| cost_micros(p, &usage))
                .unwrap_or(0);
            let rate_headers = admission.headers();
            let row = meter.row(f.status, usage, estimated, None);
            settle_and_record(&state, admission, usage, cost, row).await;
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
            fail(&state, admission, &meter, failure(&provider, f)).await
        }
        Err(e) => fail(&state, admission, &meter, e).await,
    }
}

/// A provider-native pass-through answer, returned as the provider sent it (content type kept),
/// except that a refusal of the owner's credential is mapped like everywhere else, so the
/// provider's text about the key never reaches the app.
async fn raw(
    state: &AppState,
    admission: Admission,
    meter: &Meter,
    provider: &Provider,
    status: u16,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Response {
    if status == 401 || status == 403 {
        let e = failure(
            provider,
            Failure {
                status,
                kind: FailureKind::Authentication,
                code: None,
                message: String::new(),
                retry_after_seconds: None,
            },
        );
        return fail(state, admission, meter, e).await;
    }
    let row = meter.row(status, Usage::default(), false, None);
    settle_and_record(state, admission, Usage::default(), 0, row).await;
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

/// Ends a request that used nothing upstream: release the reservation, write the row, answer.
pub async fn fail(state: &AppState, admission: Admission, meter: &Meter, e: ApiError) -> Response {
    let row = meter.row(
        e.status().as_u16(),
        Usage::default(),
        false,
        Some(e.code().to_string()),
    );
    match admission.release_deferred().await {
        Ok(closing) => state.ledger.record_closing(row, closing).await,
        Err(err) => {
            tracing::error!(error = %err, "releasing a reservation failed");
            state.ledger.record_committed(row).await;
        }
    }
    e.into_response()
}

/// Settles an answered request's admission with what it really used and records its ledger
/// row; the budget settlement commits in the same transaction as the row (the ledger's group
/// commit), and the answer completes only after both have.
pub async fn settle_and_record(
    state: &AppState,
    admission: Admission,
    usage: Usage,
    cost_micros: u64,
    row: LedgerRow,
) {
    match admission.settle_deferred(usage, cost_micros).await {
        Ok(closing) => state.ledger.record_closing(row, closing).await,
        Err(e) => {
            tracing::error!(error = %e, "settling a reservation failed");
            state.ledger.record_committed(row).await;
        }
    }
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

/// Plugin-reported usage in the policy crate's type.
pub fn policy_usage(u: pairgate_plugin_host::Usage) -> Usage {
    Usage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        cached_tokens: u.cached_tokens,
    }
}
