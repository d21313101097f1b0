//! The `anthropic` plugin: OpenAI chat completions mapped onto Anthropic's Messages API (system
//! prompts, tools and tool calls, images, stop reasons, usage) and its stream events back onto
//! OpenAI chunks; and Anthropic's own Messages API (`messages`, `count-tokens`) passed through as
//! it is, for the gateway's native `/v1/messages`.

use pairgate_plugin_sdk::content::{self, Part, ToolChoice};
use pairgate_plugin_sdk::grant::Grant;
use pairgate_plugin_sdk::json::{
    decode_state, encode_state, flag, parse_object, parse_response, pointer,
};
use pairgate_plugin_sdk::oa::{self, ChatIds};
use pairgate_plugin_sdk::reply::{
    bad_request, failure, finished, is_success, unsupported, unsupported_action, upstream_failure,
};
use pairgate_plugin_sdk::{
    Credential, Descriptor, Event, Failure, FailureKind, Finished, Model, Plugin, PrepareRequest,
    Rejection, ResponseMode, Translated, UpstreamCall, UpstreamResponse, Usage,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

const API: &str = "https://api.anthropic.com/v1";
const VERSION: &str = "2023-06-01";
const DEFAULT_MAX_TOKENS: u64 = 4096;

/// (id, context window, max output, input and output micro-USD per million tokens)
const MODELS: &[(&str, u32, u32, u64, u64)] = &[
    ("claude-opus-4-1", 200_000, 32_000, 15_000_000, 75_000_000),
    ("claude-sonnet-4-5", 200_000, 64_000, 3_000_000, 15_000_000),
    ("claude-sonnet-4-0", 200_000, 64_000, 3_000_000, 15_000_000),
    ("claude-haiku-4-5", 200_000, 64_000, 1_000_000, 5_000_000),
    (
        "claude-3-5-haiku-latest",
        200_000,
        8_192,
        800_000,
        4_000_000,
    ),
];

struct Anthropic;

/// Carried from `prepare` to `finish` or through the stream.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    action: String,
    ids: ChatIds,
    include_usage: bool,
    input: u64,
    cached: u64,
    output: u64,
    /// (content block index, tool call index) of the tool_use blocks seen so far.
    tools: Vec<(u64, u64)>,
}

impl Plugin for Anthropic {
    fn describe(_config: &str) -> Result<Descriptor, Rejection> {
        Ok(Descriptor {
            id: "anthropic".into(),
            display_name: "Anthropic".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            actions: ["chat", "messages", "count-tokens", "models", "passthrough"]
                .map(Into::into)
                .into(),
            models: MODELS
                .iter()
                .map(
                    |&(id, context_window, max_output_tokens, input_price, output_price)| Model {
                        id: id.into(),
                        context_window,
                        max_output_tokens,
                        input_price,
                        output_price,
                    },
                )
                .collect(),
            hosts: vec!["api.anthropic.com".into()],
            credential: Credential::Header("x-api-key".into()),
            passthrough: vec!["/v1/messages/count_tokens".into()],
            quotas: Vec::new(),
        })
    }

    fn prepare(req: PrepareRequest) -> Result<UpstreamCall, Rejection> {
        let headers = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("anthropic-version".to_owned(), VERSION.to_owned()),
        ];
        match req.action.as_str() {
            "chat" => {
                let (body, state, stream) = map_request(&req)?;
                Ok(UpstreamCall {
                    method: "POST".into(),
                    url: format!("{API}/messages"),
                    headers,
                    body: body.to_string().into_bytes(),
                    response_mode: if stream {
                        ResponseMode::Sse
                    } else {
                        ResponseMode::Json
                    },
                    state: encode_state(&state),
                    charges: Vec::new(),
                })
            }
            "models" => Ok(UpstreamCall {
                method: "GET".into(),
                url: format!("{API}/models?limit=1000"),
                headers: vec![headers[1].clone()],
                body: Vec::new(),
                response_mode: ResponseMode::Json,
                state: encode_state(&State {
                    action: "models".into(),
                    ..State::default()
                }),
                charges: Vec::new(),
            }),
            // Anthropic's own API, served natively on `/v1/messages`: the body as the app sent
            // it (the host has applied the grant), the app's protocol version and betas kept.
            "messages" | "count-tokens" => Ok(pairgate_plugin_sdk::native::call(
                &req,
                format!(
                    "{API}/messages{}",
                    if req.action == "count-tokens" {
                        "/count_tokens"
                    } else {
                        ""
                    }
                ),
                &[("anthropic-version", VERSION)],
                &["anthropic-beta"],
            )),
            "passthrough" => {
                let mut call = pairgate_plugin_sdk::passthrough::call(
                    &req,
                    "https://api.anthropic.com",
                    &["/v1/messages/count_tokens"],
                )?;
                call.headers.push(headers[1].clone());
                Ok(call)
            }
            other => Err(unsupported_action(other)),
        }
    }

    fn finish(resp: UpstreamResponse) -> Result<Finished, Failure> {
        if !is_success(resp.status) {
            return Err(error_failure(&resp));
        }
        let state: State = decode_state(&resp.state)?;
        if state.action == "models" {
            let list: Value = parse_response(&resp.body)?;
            let ids = list
                .get("data")
                .and_then(Value::as_array)
                .map(|d| {
                    d.iter()
                        .filter_map(|m| m.get("id").and_then(Value::as_str))
                        .map(|id| (id.to_owned(), 0))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            return Ok(finished(200, &oa::model_list(ids, "anthropic"), None));
        }
        map_response(&resp.body, &state)
    }

    fn translate_events(state: Vec<u8>, events: Vec<Event>) -> Result<Translated, Failure> {
        let mut st: State = decode_state(&state)?;
        let mut out = Translated {
            state: Vec::new(),
            chunks: Vec::new(),
            usage: None,
            done: false,
        };
        for ev in events {
            if stream_event(&mut st, &ev, &mut out)? {
                out.done = true;
                break;
            }
        }
        out.state = encode_state(&st);
        Ok(out)
    }
}

/// Maps an OpenAI chat request onto a Messages request.
fn map_request(req: &PrepareRequest) -> Result<(Value, State, bool), Rejection> {
    let body = parse_object(&req.body)?;
    let grant = Grant::parse(&req.grant)?;
    let model = req
        .model
        .clone()
        .or_else(|| body.get("model").and_then(Value::as_str).map(str::to_owned))
        .ok_or_else(|| bad_request("model is required"))?;
    if body.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err(unsupported("Anthropic returns one choice: n must be 1"));
    }
    if let Some(kind) = pointer(&body, "/response_format/type").and_then(Value::as_str)
        && kind != "text"
    {
        return Err(unsupported(format!(
            "response_format {kind} is not supported by Anthropic"
        )));
    }
    if flag(&body, "logprobs") {
        return Err(unsupported("logprobs are not supported by Anthropic"));
    }
    let (system, messages) = map_messages(&body)?;
    let catalogue_max = MODELS.iter().find(|m| m.0 == model).map(|m| u64::from(m.2));
    let max_tokens = match (content::max_tokens(&body), grant.max_output_tokens()) {
        (Some(asked), Some(cap)) => asked.min(cap),
        (Some(asked), None) => asked,
        (None, Some(cap)) => cap.min(catalogue_max.unwrap_or(cap)),
        (None, None) => catalogue_max
            .unwrap_or(DEFAULT_MAX_TOKENS)
            .min(DEFAULT_MAX_TOKENS),
    };
    let stream = flag(&body, "stream");
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("max_tokens".into(), json!(max_tokens));
    out.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        out.insert("system".into(), json!(system.join("\n\n")));
    }
    if let Some(t) = body.get("temperature").and_then(Value::as_f64) {
        out.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    if let Some(p) = body.get("top_p") {
        out.insert("top_p".into(), p.clone());
    }
    let stop = content::stop(&body);
    if !stop.is_empty() {
        out.insert("stop_sequences".into(), json!(stop));
    }
    if stream {
        out.insert("stream".into(), json!(true));
    }
    if let Some(user) = body.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    let tools = content::tools(&body)?;
    if !tools.is_empty() {
        let list: Vec<Value> = tools
            .into_iter()
            .map(|t| {
                let mut tool = json!({"name": t.name, "input_schema": t.parameters});
                if let (Some(d), Some(o)) = (t.description, tool.as_object_mut()) {
                    o.insert("description".into(), json!(d));
                }
                tool
            })
            .collect();
        out.insert("tools".into(), Value::Array(list));
        let mut choice = match content::tool_choice(&body)? {
            ToolChoice::Auto => json!({"type": "auto"}),
            ToolChoice::None => json!({"type": "none"}),
            ToolChoice::Required => json!({"type": "any"}),
            ToolChoice::Function(name) => json!({"type": "tool", "name": name}),
        };
        if body.get("parallel_tool_calls") == Some(&Value::Bool(false))
            && let Some(o) = choice.as_object_mut()
        {
            o.insert("disable_parallel_tool_use".into(), json!(true));
        }
        out.insert("tool_choice".into(), choice);
    }
    let include_usage = pointer(&body, "/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let state = State {
        action: "chat".into(),
        ids: ChatIds {
            id: String::new(),
            model,
            created: req.timestamp,
        },
        include_usage,
        ..State::default()
    };
    Ok((Value::Object(out), state, stream))
}

/// System prompts apart; tool results become user turns; consecutive same-role turns merge.
fn map_messages(body: &Map<String, Value>) -> Result<(Vec<String>, Vec<Value>), Rejection> {
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for m in content::messages(body)? {
        let (role, blocks) = match content::role(m) {
            "system" | "developer" => {
                system.push(content::text(m.get("content"))?);
                continue;
            }
            "user" => ("user", user_blocks(m.get("content"))?),
            "assistant" => ("assistant", assistant_blocks(m)?),
            "tool" => {
                let id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad_request("a tool message needs tool_call_id"))?;
                let text = content::text(m.get("content"))?;
                (
                    "user",
                    vec![json!({"type": "tool_result", "tool_use_id": id, "content": text})],
                )
            }
            other => return Err(bad_request(format!("unknown message role {other:?}"))),
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let messages = turns
        .into_iter()
        .map(|(role, blocks)| json!({"role": role, "content": blocks}))
        .collect();
    Ok((system, messages))
}

fn user_blocks(content: Option<&Value>) -> Result<Vec<Value>, Rejection> {
    Ok(content::parts(content)?
        .into_iter()
        .map(|p| match p {
            Part::Text(text) => json!({"type": "text", "text": text}),
            Part::InlineImage { media_type, data } => json!({
                "type": "image", "source": {"type": "base64", "media_type": media_type, "data": data},
            }),
            Part::ImageUrl(url) => json!({"type": "image", "source": {"type": "url", "url": url}}),
        })
        .collect())
}

fn assistant_blocks(m: &Map<String, Value>) -> Result<Vec<Value>, Rejection> {
    let mut blocks = Vec::new();
    let text = content::text(m.get("content"))?;
    if !text.is_empty() {
        blocks.push(json!({"type": "text", "text": text}));
    }
    for (id, name, arguments) in content::tool_calls(m) {
        let input = match content::arguments(&arguments) {
            Value::Object(o) => Value::Object(o),
            _ => json!({}),
        };
        blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
    }
    Ok(blocks)
}

fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

fn usage_of(u: Option<&Value>) -> (u64, u64, u64) {
    let get = |k: &str| {
        u.and_then(|u| u.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let cached = get("cache_read_input_tokens");
    (
        get("input_tokens") + cached + get("cache_creation_input_tokens"),
        cached,
        get("output_tokens"),
    )
}

fn map_response(body: &[u8], state: &State) -> Result<Finished, Failure> {
    let msg: Value = parse_response(body)?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in msg
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => tool_calls.push(json!({
                "id": block.get("id"), "type": "function",
                "function": {
                    "name": block.get("name"),
                    "arguments": block.get("input").map(Value::to_string).unwrap_or_else(|| "{}".into()),
                },
            })),
            _ => {}
        }
    }
    let mut message = json!({"role": "assistant", "content": text, "refusal": null});
    if !tool_calls.is_empty() {
        if text.is_empty() {
            message["content"] = Value::Null;
        }
        message["tool_calls"] = Value::Array(tool_calls);
    }
    let (input_tokens, cached_tokens, output_tokens) = usage_of(msg.get("usage"));
    let usage = Usage {
        input_tokens,
        output_tokens,
        cached_tokens,
    };
    let ids = ChatIds {
        id: msg
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        model: msg
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or(&state.ids.model)
            .to_owned(),
        created: state.ids.created,
    };
    let reason = finish_reason(msg.get("stop_reason").and_then(Value::as_str));
    Ok(finished(
        200,
        &oa::completion(&ids, message, reason, &usage),
        Some(usage),
    ))
}

fn error_failure(resp: &UpstreamResponse) -> Failure {
    let parsed: Option<Value> = serde_json::from_slice(&resp.body).ok();
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    let message = err
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| oa::fallback_message(resp));
    let code = err
        .and_then(|e| e.get("type"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    upstream_failure(resp.status, code, message, &resp.headers)
}

/// Handles one stream event; returns whether the stream is complete.
fn stream_event(st: &mut State, ev: &Event, out: &mut Translated) -> Result<bool, Failure> {
    let data: Value = parse_response(ev.data.as_bytes())?;
    let kind = data
        .get("type")
        .and_then(Value::as_str)
        .or(ev.event.as_deref())
        .unwrap_or_default();
    match kind {
        "message_start" => {
            let msg = data.get("message");
            if let Some(id) = msg.and_then(|m| m.get("id")).and_then(Value::as_str) {
                st.ids.id = id.to_owned();
            }
            if let Some(model) = msg.and_then(|m| m.get("model")).and_then(Value::as_str) {
                st.ids.model = model.to_owned();
            }
            let (input, cached, output) = usage_of(msg.and_then(|m| m.get("usage")));
            (st.input, st.cached, st.output) = (input, cached, output);
            out.chunks.push(oa::chunk(
                &st.ids,
                json!({"role": "assistant", "content": ""}),
                None,
            ));
        }
        "content_block_start" => {
            let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
            let block = data.get("content_block");
            match block.and_then(|b| b.get("type")).and_then(Value::as_str) {
                Some("tool_use") => {
                    let tool = st.tools.len() as u64;
                    st.tools.push((index, tool));
                    let delta = json!({"tool_calls": [{
                        "index": tool, "id": block.and_then(|b| b.get("id")), "type": "function",
                        "function": {"name": block.and_then(|b| b.get("name")), "arguments": ""},
                    }]});
                    out.chunks.push(oa::chunk(&st.ids, delta, None));
                }
                Some("text") => {
                    let text = block.and_then(|b| b.get("text")).and_then(Value::as_str);
                    if let Some(text) = text.filter(|t| !t.is_empty()) {
                        out.chunks
                            .push(oa::chunk(&st.ids, json!({"content": text}), None));
                    }
                }
                _ => {}
            }
        }
        "content_block_delta" => {
            let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
            let delta = data.get("delta");
            match delta.and_then(|d| d.get("type")).and_then(Value::as_str) {
                Some("text_delta") => {
                    let text = delta
                        .and_then(|d| d.get("text"))
                        .cloned()
                        .unwrap_or(json!(""));
                    out.chunks
                        .push(oa::chunk(&st.ids, json!({"content": text}), None));
                }
                Some("input_json_delta") => {
                    let partial = delta.and_then(|d| d.get("partial_json")).cloned();
                    if let Some(&(_, tool)) = st.tools.iter().find(|(b, _)| *b == index) {
                        let delta = json!({"tool_calls": [{"index": tool, "function": {"arguments": partial}}]});
                        out.chunks.push(oa::chunk(&st.ids, delta, None));
                    }
                }
                _ => {}
            }
        }
        "message_delta" => {
            let (input, cached, output) = usage_of(data.get("usage"));
            st.output = st.output.max(output);
            if input > 0 {
                st.input = st.input.max(input);
                st.cached = st.cached.max(cached);
            }
            out.usage = Some(usage(st));
            let reason = finish_reason(data.pointer("/delta/stop_reason").and_then(Value::as_str));
            out.chunks.push(oa::chunk(&st.ids, json!({}), Some(reason)));
        }
        "message_stop" => {
            let usage = usage(st);
            if st.include_usage {
                out.chunks.push(oa::usage_chunk(&st.ids, &usage));
            }
            out.usage = Some(usage);
            return Ok(true);
        }
        "error" => {
            let err = data.get("error");
            let code = err.and_then(|e| e.get("type")).and_then(Value::as_str);
            let message = err
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("stream error");
            let (status, kind) = match code {
                Some("overloaded_error") => (503, FailureKind::Overloaded),
                Some("rate_limit_error") => (429, FailureKind::RateLimited),
                _ => (502, FailureKind::Upstream),
            };
            let mut f = failure(status, kind, message);
            f.code = code.map(str::to_owned);
            return Err(f);
        }
        _ => {}
    }
    Ok(false)
}

fn usage(st: &State) -> Usage {
    Usage {
        input_tokens: st.input,
        output_tokens: st.output,
        cached_tokens: st.cached,
    }
}

pairgate_plugin_sdk::plugin!(Anthropic);
