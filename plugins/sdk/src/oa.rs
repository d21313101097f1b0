//! The OpenAI shape: chunks, completions, usage and errors, plus the whole mapping for providers
//! that already speak it (the `openai` and `openai-compatible` plugins).

use crate::json::{decode_state, encode_state, parse_object};
use crate::reply::{bad_request, failure, is_success, json_headers, unsupported_action};
use crate::{
    Event, Failure, FailureKind, Finished, PrepareRequest, Rejection, ResponseMode, Translated,
    UpstreamCall, UpstreamResponse, Usage,
};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::borrow::Cow;

/// What identifies the completion a stream's chunks belong to.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChatIds {
    pub id: String,
    pub model: String,
    pub created: u64,
}

/// A `chat.completion.chunk` with one choice.
pub fn chunk(ids: &ChatIds, delta: Value, finish_reason: Option<&str>) -> String {
    json!({
        "id": ids.id, "object": "chat.completion.chunk", "created": ids.created, "model": ids.model,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
    })
    .to_string()
}

/// The final usage-only chunk (`stream_options.include_usage`).
pub fn usage_chunk(ids: &ChatIds, usage: &Usage) -> String {
    json!({
        "id": ids.id, "object": "chat.completion.chunk", "created": ids.created, "model": ids.model,
        "choices": [], "usage": usage_json(usage),
    })
    .to_string()
}

/// A `chat.completion` with one choice.
pub fn completion(ids: &ChatIds, message: Value, finish_reason: &str, usage: &Usage) -> Value {
    json!({
        "id": ids.id, "object": "chat.completion", "created": ids.created, "model": ids.model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason}],
        "usage": usage_json(usage),
    })
}

/// OpenAI's usage object.
pub fn usage_json(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
    })
}

/// Reads OpenAI's usage object (chat or embeddings).
pub fn usage_from(v: &Value) -> Option<Usage> {
    let input_tokens = v.get("prompt_tokens")?.as_u64()?;
    Some(Usage {
        input_tokens,
        output_tokens: v
            .get("completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        cached_tokens: v
            .pointer("/prompt_tokens_details/cached_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    })
}

/// OpenAI's model list.
pub fn model_list(ids: impl IntoIterator<Item = (String, u64)>, owned_by: &str) -> Value {
    let data: Vec<Value> = ids
        .into_iter()
        .map(|(id, created)| json!({"id": id, "object": "model", "created": created, "owned_by": owned_by}))
        .collect();
    json!({"object": "list", "data": data})
}

/// An error response in OpenAI's shape (`{"error": {"message", "type", "code"}}`), or any other
/// body, mapped onto a failure.
pub fn error_failure(resp: &UpstreamResponse) -> Failure {
    let parsed: Option<Value> = serde_json::from_slice(&resp.body).ok();
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    let message = err
        .and_then(|e| e.get("message").or(Some(e)))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| fallback_message(resp));
    let code = err
        .and_then(|e| e.get("code").or_else(|| e.get("type")))
        .and_then(Value::as_str)
        .map(str::to_owned);
    crate::reply::upstream_failure(resp.status, code, message, &resp.headers)
}

/// The start of a non-JSON error body, for the message.
pub fn fallback_message(resp: &UpstreamResponse) -> String {
    let text = String::from_utf8_lossy(&resp.body);
    let text: String = text.chars().take(200).collect();
    if text.trim().is_empty() {
        format!("the provider answered {}", resp.status)
    } else {
        format!("the provider answered {}: {}", resp.status, text.trim())
    }
}

/// Sets `model` from the host's resolved model; a request without a model is refused.
pub fn set_model(body: &mut Map<String, Value>, model: Option<&str>) -> Result<String, Rejection> {
    if let Some(m) = model {
        body.insert("model".to_owned(), Value::String(m.to_owned()));
    }
    body.get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| bad_request("model is required"))
}

/// State kept between `prepare` and `finish`/`translate-events` for OpenAI-shaped providers.
#[derive(Debug, Serialize, Deserialize)]
struct CompatState {
    action: String,
    /// The app asked for the usage chunk itself; otherwise it is metered but not forwarded.
    #[serde(default)]
    include_usage: bool,
}

/// Where an OpenAI-shaped provider lives.
#[derive(Debug, Clone)]
pub struct Endpoint<'a> {
    /// Base URL ending before `/chat/completions`, e.g. `https://api.openai.com/v1`.
    pub base_url: &'a str,
    /// Whether the provider accepts `stream_options.include_usage` (to meter streams).
    pub stream_usage: bool,
}

/// Builds the call for "chat", "embeddings" or "models", leaving unknown fields untouched.
pub fn prepare(req: &PrepareRequest, ep: &Endpoint<'_>) -> Result<UpstreamCall, Rejection> {
    let base = ep.base_url.trim_end_matches('/');
    let (method, path, body, mode, include_usage) = match req.action.as_str() {
        "chat" => {
            let (body, stream, include_usage) = chat_body(req, ep)?;
            let mode = if stream {
                ResponseMode::Sse
            } else {
                ResponseMode::Json
            };
            ("POST", "/chat/completions", body, mode, include_usage)
        }
        "embeddings" => {
            let mut body = parse_object(&req.body)?;
            set_model(&mut body, req.model.as_deref())?;
            if !body.contains_key("input") {
                return Err(bad_request("input is required"));
            }
            (
                "POST",
                "/embeddings",
                Value::Object(body).to_string().into_bytes(),
                ResponseMode::Json,
                false,
            )
        }
        "models" => ("GET", "/models", Vec::new(), ResponseMode::Json, false),
        other => return Err(unsupported_action(other)),
    };
    let headers = if body.is_empty() {
        Vec::new()
    } else {
        json_headers()
    };
    Ok(UpstreamCall {
        method: method.to_owned(),
        url: format!("{base}{path}"),
        headers,
        body,
        response_mode: mode,
        state: encode_state(&CompatState {
            action: req.action.clone(),
            include_usage,
        }),
        charges: Vec::new(),
    })
}

/// What `prepare` reads of a chat request, without building a JSON tree.
#[derive(Deserialize)]
struct ChatPeek<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    messages: Option<Vec<RolePeek>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptionsPeek>,
}

#[derive(Deserialize)]
struct RolePeek {
    #[serde(rename = "role")]
    _role: IgnoredAny,
}

#[derive(Deserialize)]
struct StreamOptionsPeek {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// The chat body to send, whether it streams, and whether the app asked for the usage chunk.
/// The app's bytes go upstream untouched unless the model or `stream_options` must change.
fn chat_body(req: &PrepareRequest, ep: &Endpoint<'_>) -> Result<(Vec<u8>, bool, bool), Rejection> {
    let peek: ChatPeek<'_> = serde_json::from_slice(&req.body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            bad_request(format!("the request body is not valid JSON: {e}"))
        } else {
            bad_request(format!("invalid chat request: {e}"))
        }
    })?;
    let body_model = peek.model.as_deref();
    let model = req
        .model
        .as_deref()
        .or(body_model)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| bad_request("model is required"))?;
    match &peek.messages {
        None => return Err(bad_request("messages must be an array")),
        Some(m) if m.is_empty() => return Err(bad_request("messages must not be empty")),
        Some(_) => {}
    }
    let stream = peek.stream == Some(true);
    let include_usage = stream && peek.stream_options.and_then(|o| o.include_usage) == Some(true);
    let inject_usage = stream && ep.stream_usage && !include_usage;
    if !inject_usage && body_model == Some(model) {
        return Ok((req.body.clone(), stream, include_usage));
    }
    let mut body = parse_object(&req.body)?;
    set_model(&mut body, Some(model))?;
    if inject_usage {
        let opts = body.entry("stream_options").or_insert_with(|| json!({}));
        match opts.as_object_mut() {
            Some(o) => {
                o.insert("include_usage".to_owned(), Value::Bool(true));
            }
            None => *opts = json!({"include_usage": true}),
        }
    }
    Ok((
        Value::Object(body).to_string().into_bytes(),
        stream,
        include_usage,
    ))
}

/// The body is already OpenAI-shaped: pass it through and read the usage.
pub fn finish(resp: UpstreamResponse) -> Result<Finished, Failure> {
    if !is_success(resp.status) {
        return Err(error_failure(&resp));
    }
    let state: CompatState = decode_state(&resp.state)?;
    let usage = match state.action.as_str() {
        "chat" | "embeddings" => {
            #[derive(Deserialize)]
            struct Body {
                usage: Option<Value>,
            }
            let body: Body = crate::json::parse_response(&resp.body)?;
            body.usage.as_ref().and_then(usage_from)
        }
        _ => None,
    };
    Ok(Finished {
        status: resp.status,
        body: resp.body,
        usage,
    })
}

/// Chunks are already OpenAI-shaped: forward them, meter the usage chunk, stop at `[DONE]`.
pub fn translate(state: Vec<u8>, events: Vec<Event>) -> Result<Translated, Failure> {
    #[derive(Deserialize)]
    struct Peek {
        #[serde(default)]
        choices: Option<Vec<IgnoredAny>>,
        #[serde(default)]
        usage: Option<Value>,
        #[serde(default)]
        error: Option<Value>,
    }
    let st: CompatState = decode_state(&state)?;
    let mut out = Translated {
        state: Vec::new(),
        chunks: Vec::with_capacity(events.len()),
        usage: None,
        done: false,
    };
    for ev in events {
        let data = ev.data.trim();
        if data == "[DONE]" {
            out.done = true;
            break;
        }
        let peek: Peek = crate::json::parse_response(data.as_bytes())?;
        if let Some(err) = peek.error {
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("stream error");
            return Err(failure(502, FailureKind::Upstream, message));
        }
        let usage_only = peek.choices.as_ref().is_none_or(Vec::is_empty);
        if let Some(u) = peek.usage.as_ref().and_then(usage_from) {
            out.usage = Some(u);
        }
        if usage_only && peek.usage.as_ref().is_some_and(Value::is_object) && !st.include_usage {
            continue;
        }
        out.chunks.push(data.to_owned());
    }
    out.state = state;
    Ok(out)
}
