//! The `gemini` plugin: OpenAI chat completions mapped onto Gemini's native `generateContent`
//! and `streamGenerateContent?alt=sse`, embeddings onto `batchEmbedContents`, and the model list.
//! The credential goes in the `x-goog-api-key` header, never in the URL.

use pairgate_plugin_sdk::content::{self, Part, ToolChoice};
use pairgate_plugin_sdk::json::{
    decode_state, encode_state, flag, parse_object, parse_response, pointer,
};
use pairgate_plugin_sdk::oa::{self, ChatIds};
use pairgate_plugin_sdk::reply::{
    bad_request, finished, is_success, json_headers, unsupported, unsupported_action,
};
use pairgate_plugin_sdk::{
    Credential, Descriptor, Event, Failure, Finished, Model, Plugin, PrepareRequest, Rejection,
    ResponseMode, Translated, UpstreamCall, UpstreamResponse, Usage,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

const API: &str = "https://generativelanguage.googleapis.com/v1beta";

/// (id, context window, max output, input and output micro-USD per million tokens)
const MODELS: &[(&str, u32, u32, u64, u64)] = &[
    ("gemini-2.5-pro", 1_048_576, 65_536, 1_250_000, 10_000_000),
    ("gemini-2.5-flash", 1_048_576, 65_536, 300_000, 2_500_000),
    ("gemini-2.5-flash-lite", 1_048_576, 65_536, 100_000, 400_000),
    ("gemini-2.0-flash", 1_048_576, 8_192, 100_000, 400_000),
    ("gemini-embedding-001", 2_048, 0, 150_000, 0),
];

struct Gemini;

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    action: String,
    ids: ChatIds,
    include_usage: bool,
    started: bool,
    tools: u64,
    usage: Option<(u64, u64, u64)>,
}

impl Plugin for Gemini {
    fn describe(_config: &str) -> Result<Descriptor, Rejection> {
        Ok(Descriptor {
            id: "gemini".into(),
            display_name: "Google Gemini".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            actions: ["chat", "embeddings", "models"].map(Into::into).into(),
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
            hosts: vec!["generativelanguage.googleapis.com".into()],
            credential: Credential::Header("x-goog-api-key".into()),
            passthrough: Vec::new(),
            quotas: Vec::new(),
        })
    }

    fn prepare(req: PrepareRequest) -> Result<UpstreamCall, Rejection> {
        let state = |action: &str, ids: ChatIds, include_usage| State {
            action: action.into(),
            ids,
            include_usage,
            ..State::default()
        };
        let (method, url, body, mode, st) = match req.action.as_str() {
            "chat" => {
                let body = parse_object(&req.body)?;
                let model = model_name(req.model.as_deref(), &body)?;
                let stream = flag(&body, "stream");
                let include_usage = pointer(&body, "/stream_options/include_usage")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let url = if stream {
                    format!("{API}/models/{model}:streamGenerateContent?alt=sse")
                } else {
                    format!("{API}/models/{model}:generateContent")
                };
                let ids = ChatIds {
                    id: format!("gemini-{}", req.timestamp),
                    model,
                    created: req.timestamp,
                };
                let mode = if stream {
                    ResponseMode::Sse
                } else {
                    ResponseMode::Json
                };
                (
                    "POST",
                    url,
                    map_request(&body)?,
                    mode,
                    state("chat", ids, include_usage),
                )
            }
            "embeddings" => {
                let body = parse_object(&req.body)?;
                let model = model_name(req.model.as_deref(), &body)?;
                let inputs: Vec<&str> = match body.get("input") {
                    Some(Value::String(s)) => vec![s.as_str()],
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|v| {
                            v.as_str()
                                .ok_or_else(|| unsupported("inputs must be strings"))
                        })
                        .collect::<Result<_, _>>()?,
                    _ => return Err(bad_request("input is required")),
                };
                let requests: Vec<Value> = inputs
                    .iter()
                    .map(|t| json!({"model": format!("models/{model}"), "content": {"parts": [{"text": t}]}}))
                    .collect();
                let url = format!("{API}/models/{model}:batchEmbedContents");
                let ids = ChatIds {
                    model,
                    ..ChatIds::default()
                };
                (
                    "POST",
                    url,
                    json!({"requests": requests}),
                    ResponseMode::Json,
                    state("embeddings", ids, false),
                )
            }
            "models" => {
                let url = format!("{API}/models?pageSize=1000");
                (
                    "GET",
                    url,
                    Value::Null,
                    ResponseMode::Json,
                    state("models", ChatIds::default(), false),
                )
            }
            other => return Err(unsupported_action(other)),
        };
        let (headers, body) = if body.is_null() {
            (Vec::new(), Vec::new())
        } else {
            (json_headers(), body.to_string().into_bytes())
        };
        Ok(UpstreamCall {
            method: method.into(),
            url,
            headers,
            body,
            response_mode: mode,
            state: encode_state(&st),
            charges: Vec::new(),
        })
    }

    fn finish(resp: UpstreamResponse) -> Result<Finished, Failure> {
        if !is_success(resp.status) {
            return Err(error_failure(&resp));
        }
        let st: State = decode_state(&resp.state)?;
        let body: Value = parse_response(&resp.body)?;
        match st.action.as_str() {
            "models" => {
                let ids = body
                    .get("models")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m.get("name").and_then(Value::as_str))
                    .map(|n| (n.trim_start_matches("models/").to_owned(), 0));
                Ok(finished(200, &oa::model_list(ids, "google"), None))
            }
            "embeddings" => {
                let data: Vec<Value> = body
                    .get("embeddings")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, e)| json!({"object": "embedding", "index": i, "embedding": e.get("values")}))
                    .collect();
                let out = json!({
                    "object": "list", "data": data, "model": st.ids.model,
                    "usage": {"prompt_tokens": 0, "total_tokens": 0},
                });
                Ok(finished(200, &out, None))
            }
            _ => Ok(map_response(&body, &st)),
        }
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
            let data: Value = parse_response(ev.data.as_bytes())?;
            if let Some(err) = data.get("error") {
                return Err(error_value(err, 502, &[]));
            }
            if let Some(u) = data.get("usageMetadata") {
                st.usage = Some(usage_of(u));
            }
            let mut finished = false;
            for cand in data
                .get("candidates")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let (text, calls) = parts_of(cand, &mut st.tools);
                let mut delta = Map::new();
                if !st.started {
                    delta.insert("role".into(), json!("assistant"));
                    st.started = true;
                }
                if !text.is_empty() {
                    delta.insert("content".into(), json!(text));
                }
                if !calls.is_empty() {
                    delta.insert("tool_calls".into(), Value::Array(calls));
                }
                if !delta.is_empty() {
                    out.chunks
                        .push(oa::chunk(&st.ids, Value::Object(delta), None));
                }
                if let Some(reason) = cand.get("finishReason").and_then(Value::as_str) {
                    let reason = finish_reason(reason, st.tools > 0);
                    out.chunks.push(oa::chunk(&st.ids, json!({}), Some(reason)));
                    finished = true;
                }
            }
            if let Some((input_tokens, output_tokens, cached_tokens)) = st.usage {
                out.usage = Some(Usage {
                    input_tokens,
                    output_tokens,
                    cached_tokens,
                });
            }
            if finished {
                if let (true, Some(u)) = (st.include_usage, out.usage) {
                    out.chunks.push(oa::usage_chunk(&st.ids, &u));
                }
                out.done = true;
                break;
            }
        }
        out.state = encode_state(&st);
        Ok(out)
    }
}

/// The model, which goes into the URL path: only plain model names are accepted.
fn model_name(model: Option<&str>, body: &Map<String, Value>) -> Result<String, Rejection> {
    let model = model
        .or_else(|| body.get("model").and_then(Value::as_str))
        .ok_or_else(|| bad_request("model is required"))?;
    let model = model.trim_start_matches("models/");
    let clean = !model.is_empty()
        && model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !clean {
        return Err(bad_request(format!("{model:?} is not a Gemini model name")));
    }
    Ok(model.to_owned())
}

fn map_request(body: &Map<String, Value>) -> Result<Value, Rejection> {
    let mut system = Vec::new();
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut call_names: Vec<(String, String)> = Vec::new();
    for m in content::messages(body)? {
        let (role, parts) = match content::role(m) {
            "system" | "developer" => {
                system.push(json!({"text": content::text(m.get("content"))?}));
                continue;
            }
            "user" => ("user", user_parts(m.get("content"))?),
            "assistant" => {
                let mut parts = Vec::new();
                let text = content::text(m.get("content"))?;
                if !text.is_empty() {
                    parts.push(json!({"text": text}));
                }
                for (id, name, arguments) in content::tool_calls(m) {
                    parts.push(json!({"functionCall": {"name": name, "args": content::arguments(&arguments)}}));
                    call_names.push((id, name));
                }
                ("model", parts)
            }
            "tool" => {
                let id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let name = call_names
                    .iter()
                    .find(|(i, _)| i == id)
                    .map(|(_, n)| n.clone())
                    .ok_or_else(|| {
                        bad_request(format!("no earlier tool call has the id {id:?}"))
                    })?;
                let result = content::arguments(&content::text(m.get("content"))?);
                let response = if result.is_object() {
                    result
                } else {
                    json!({"content": result})
                };
                (
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                )
            }
            other => return Err(bad_request(format!("unknown message role {other:?}"))),
        };
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(parts),
            _ => contents.push((role, parts)),
        }
    }
    let mut out = Map::new();
    let contents: Vec<Value> = contents
        .into_iter()
        .map(|(role, parts)| json!({"role": role, "parts": parts}))
        .collect();
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({"parts": system}));
    }
    out.insert(
        "generationConfig".into(),
        Value::Object(generation_config(body)?),
    );
    let tools = content::tools(body)?;
    if !tools.is_empty() {
        let decls: Vec<Value> = tools
            .into_iter()
            .map(|t| json!({"name": t.name, "description": t.description.unwrap_or_default(), "parameters": t.parameters}))
            .collect();
        out.insert("tools".into(), json!([{"functionDeclarations": decls}]));
        let config = match content::tool_choice(body)? {
            ToolChoice::Auto => json!({"mode": "AUTO"}),
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Required => json!({"mode": "ANY"}),
            ToolChoice::Function(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
        };
        out.insert(
            "toolConfig".into(),
            json!({"functionCallingConfig": config}),
        );
    }
    Ok(Value::Object(out))
}

fn generation_config(body: &Map<String, Value>) -> Result<Map<String, Value>, Rejection> {
    let mut config = Map::new();
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("n", "candidateCount"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        if let Some(v) = body.get(from).filter(|v| !v.is_null()) {
            config.insert(to.into(), v.clone());
        }
    }
    if let Some(max) = content::max_tokens(body) {
        config.insert("maxOutputTokens".into(), json!(max));
    }
    let stop = content::stop(body);
    if !stop.is_empty() {
        config.insert("stopSequences".into(), json!(stop));
    }
    match pointer(body, "/response_format/type").and_then(Value::as_str) {
        None | Some("text") => {}
        Some("json_object") => {
            config.insert("responseMimeType".into(), json!("application/json"));
        }
        Some("json_schema") => {
            let schema = pointer(body, "/response_format/json_schema/schema")
                .cloned()
                .ok_or_else(|| bad_request("response_format.json_schema.schema is required"))?;
            config.insert("responseMimeType".into(), json!("application/json"));
            config.insert("responseJsonSchema".into(), schema);
        }
        Some(other) => {
            return Err(unsupported(format!(
                "response_format {other} is not supported"
            )));
        }
    }
    Ok(config)
}

fn user_parts(content: Option<&Value>) -> Result<Vec<Value>, Rejection> {
    content::parts(content)?
        .into_iter()
        .map(|p| match p {
            Part::Text(text) => Ok(json!({"text": text})),
            Part::InlineImage { media_type, data } => {
                Ok(json!({"inlineData": {"mimeType": media_type, "data": data}}))
            }
            Part::ImageUrl(_) => Err(unsupported("Gemini needs images as data: URLs")),
        })
        .collect()
}

/// Text and tool calls of a candidate (thought parts are left out).
fn parts_of(cand: &Value, tools: &mut u64) -> (String, Vec<Value>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    for part in cand
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if part.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(t) = part.get("text").and_then(Value::as_str) {
            text.push_str(t);
        }
        if let Some(call) = part.get("functionCall") {
            let args = call
                .get("args")
                .map(Value::to_string)
                .unwrap_or_else(|| "{}".into());
            calls.push(json!({
                "index": *tools, "id": format!("call_{}", *tools), "type": "function",
                "function": {"name": call.get("name"), "arguments": args},
            }));
            *tools += 1;
        }
    }
    (text, calls)
}

fn finish_reason(reason: &str, tool_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ if tool_calls => "tool_calls",
        _ => "stop",
    }
}

/// (input, output, cached): output includes thinking tokens, which are billed as output.
fn usage_of(u: &Value) -> (u64, u64, u64) {
    let get = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    (
        get("promptTokenCount"),
        get("candidatesTokenCount") + get("thoughtsTokenCount"),
        get("cachedContentTokenCount"),
    )
}

fn map_response(body: &Value, st: &State) -> Finished {
    let (input_tokens, output_tokens, cached_tokens) =
        body.get("usageMetadata").map(usage_of).unwrap_or_default();
    let usage = Usage {
        input_tokens,
        output_tokens,
        cached_tokens,
    };
    let mut choices = Vec::new();
    for (i, cand) in body
        .get("candidates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let mut tools = 0;
        let (text, mut calls) = parts_of(cand, &mut tools);
        for c in &mut calls {
            if let Some(o) = c.as_object_mut() {
                o.remove("index");
            }
        }
        let mut message = json!({"role": "assistant", "content": text, "refusal": null});
        if !calls.is_empty() {
            message["tool_calls"] = Value::Array(calls);
        }
        let reason = finish_reason(
            cand.get("finishReason")
                .and_then(Value::as_str)
                .unwrap_or("STOP"),
            tools > 0,
        );
        choices.push(
            json!({"index": i, "message": message, "logprobs": null, "finish_reason": reason}),
        );
    }
    if choices.is_empty() {
        // The prompt itself was blocked (promptFeedback.blockReason).
        choices.push(json!({
            "index": 0, "message": {"role": "assistant", "content": "", "refusal": null},
            "logprobs": null, "finish_reason": "content_filter",
        }));
    }
    let mut out = oa::completion(&st.ids, Value::Null, "stop", &usage);
    out["choices"] = Value::Array(choices);
    if let Some(id) = body.get("responseId").and_then(Value::as_str) {
        out["id"] = json!(id);
    }
    finished(200, &out, Some(usage))
}

fn error_value(err: &Value, status: u16, headers: &[(String, String)]) -> Failure {
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("the provider reported an error")
        .to_owned();
    let code = err.get("status").and_then(Value::as_str).map(str::to_owned);
    pairgate_plugin_sdk::reply::upstream_failure(status, code, message, headers)
}

fn error_failure(resp: &UpstreamResponse) -> Failure {
    let parsed: Option<Value> = serde_json::from_slice(&resp.body).ok();
    match parsed.as_ref().and_then(|v| v.get("error")) {
        Some(err) => error_value(err, resp.status, &resp.headers),
        None => pairgate_plugin_sdk::reply::upstream_failure(
            resp.status,
            None,
            oa::fallback_message(resp),
            &resp.headers,
        ),
    }
}

pairgate_plugin_sdk::plugin!(Gemini);
