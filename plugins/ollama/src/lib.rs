//! The `ollama` plugin: a local Ollama runtime (no credential) through `/api/chat` (NDJSON
//! streaming), `/api/embed` and `/api/tags`. The instance configuration may move it:
//! `{"base_url": "http://gpu-box:11434", "models": ["llama3.2"]}`.

use pairgate_plugin_sdk::config::{base_url, models};
use pairgate_plugin_sdk::content::{self, Part};
use pairgate_plugin_sdk::json::{
    decode_state, encode_state, flag, parse_object, parse_response, parse_text, pointer,
};
use pairgate_plugin_sdk::oa::{self, ChatIds};
use pairgate_plugin_sdk::reply::{
    bad_config, bad_request, finished, is_success, json_headers, unsupported, unsupported_action,
    upstream_failure,
};
use pairgate_plugin_sdk::{
    Credential, Descriptor, Event, Failure, Finished, Plugin, PrepareRequest, Rejection,
    ResponseMode, Translated, UpstreamCall, UpstreamResponse, Usage,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

const DEFAULT_BASE: &str = "http://localhost:11434";

struct Ollama;

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    action: String,
    ids: ChatIds,
    include_usage: bool,
    started: bool,
    tools: u64,
}

fn instance(config_text: &str) -> Result<(Value, pairgate_plugin_sdk::config::BaseUrl), Rejection> {
    let config = parse_text(config_text)
        .map_err(|e| bad_config(format!("the configuration is not JSON: {e}")))?;
    let url = match config.get("base_url") {
        None => DEFAULT_BASE,
        Some(v) => v
            .as_str()
            .ok_or_else(|| bad_config("base_url must be a string"))?,
    };
    let url = base_url(url)?;
    Ok((config, url))
}

impl Plugin for Ollama {
    fn describe(config_text: &str) -> Result<Descriptor, Rejection> {
        let (config, url) = instance(config_text)?;
        Ok(Descriptor {
            id: "ollama".into(),
            display_name: "Ollama".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            actions: ["chat", "embeddings", "models"].map(Into::into).into(),
            models: models(&config)?,
            hosts: vec![url.host],
            credential: Credential::None,
            passthrough: Vec::new(),
            quotas: Vec::new(),
        })
    }

    fn prepare(req: PrepareRequest) -> Result<UpstreamCall, Rejection> {
        let (_, url) = instance(&req.config)?;
        let base = url.url;
        let mut st = State {
            action: req.action.clone(),
            ..State::default()
        };
        let (method, path, body, mode) = match req.action.as_str() {
            "chat" => {
                let body = parse_object(&req.body)?;
                let stream = flag(&body, "stream");
                st.include_usage = pointer(&body, "/stream_options/include_usage")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let mapped = map_request(&body, req.model.as_deref())?;
                st.ids = ChatIds {
                    id: format!("ollama-{}", req.timestamp),
                    model: mapped
                        .get("model")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    created: req.timestamp,
                };
                let mode = if stream {
                    ResponseMode::Ndjson
                } else {
                    ResponseMode::Json
                };
                ("POST", "/api/chat", mapped, mode)
            }
            "embeddings" => {
                let mut body = parse_object(&req.body)?;
                let model = oa::set_model(&mut body, req.model.as_deref())?;
                let input = body
                    .get("input")
                    .cloned()
                    .ok_or_else(|| bad_request("input is required"))?;
                st.ids.model = model.clone();
                (
                    "POST",
                    "/api/embed",
                    json!({"model": model, "input": input}),
                    ResponseMode::Json,
                )
            }
            "models" => ("GET", "/api/tags", Value::Null, ResponseMode::Json),
            other => return Err(unsupported_action(other)),
        };
        let (headers, body) = if body.is_null() {
            (Vec::new(), Vec::new())
        } else {
            (json_headers(), body.to_string().into_bytes())
        };
        Ok(UpstreamCall {
            method: method.into(),
            url: format!("{base}{path}"),
            headers,
            body,
            response_mode: mode,
            state: encode_state(&st),
            charges: Vec::new(),
        })
    }

    fn finish(resp: UpstreamResponse) -> Result<Finished, Failure> {
        if !is_success(resp.status) {
            let parsed: Option<Value> = serde_json::from_slice(&resp.body).ok();
            let message = parsed
                .as_ref()
                .and_then(|v| v.get("error"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| oa::fallback_message(&resp));
            return Err(upstream_failure(resp.status, None, message, &resp.headers));
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
                    .map(|n| (n.to_owned(), 0));
                Ok(finished(200, &oa::model_list(ids, "ollama"), None))
            }
            "embeddings" => {
                let data: Vec<Value> = body
                    .get("embeddings")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, e)| json!({"object": "embedding", "index": i, "embedding": e}))
                    .collect();
                let input = body
                    .get("prompt_eval_count")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                let usage = Usage {
                    input_tokens: input,
                    output_tokens: 0,
                    cached_tokens: 0,
                };
                let out = json!({
                    "object": "list", "data": data, "model": st.ids.model,
                    "usage": {"prompt_tokens": input, "total_tokens": input},
                });
                Ok(finished(200, &out, Some(usage)))
            }
            _ => {
                let mut tools = 0;
                let (text, calls) = message_of(&body, &mut tools, false);
                let mut message = json!({"role": "assistant", "content": text, "refusal": null});
                if !calls.is_empty() {
                    message["tool_calls"] = Value::Array(calls);
                }
                let usage = usage_of(&body);
                let reason = finish_reason(&body, tools > 0);
                Ok(finished(
                    200,
                    &oa::completion(&st.ids, message, reason, &usage),
                    Some(usage),
                ))
            }
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
            let line: Value = parse_response(ev.data.as_bytes())?;
            if let Some(err) = line.get("error").and_then(Value::as_str) {
                return Err(upstream_failure(502, None, err.to_owned(), &[]));
            }
            let (text, calls) = message_of(&line, &mut st.tools, true);
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
            if flag_done(&line) {
                let usage = usage_of(&line);
                let reason = finish_reason(&line, st.tools > 0);
                out.chunks.push(oa::chunk(&st.ids, json!({}), Some(reason)));
                if st.include_usage {
                    out.chunks.push(oa::usage_chunk(&st.ids, &usage));
                }
                out.usage = Some(usage);
                out.done = true;
                break;
            }
        }
        out.state = encode_state(&st);
        Ok(out)
    }
}

fn flag_done(line: &Value) -> bool {
    line.get("done").and_then(Value::as_bool).unwrap_or(false)
}

fn map_request(body: &Map<String, Value>, model: Option<&str>) -> Result<Value, Rejection> {
    let mut body = body.clone();
    let model = oa::set_model(&mut body, model)?;
    let mut names: Vec<(String, String)> = Vec::new();
    let mut messages = Vec::new();
    for m in content::messages(&body)? {
        let role = content::role(m);
        let mut out = Map::new();
        match role {
            "system" | "developer" => {
                out.insert("role".into(), json!("system"));
                out.insert("content".into(), json!(content::text(m.get("content"))?));
            }
            "user" => {
                let mut text = Vec::new();
                let mut images = Vec::new();
                for p in content::parts(m.get("content"))? {
                    match p {
                        Part::Text(t) => text.push(t),
                        Part::InlineImage { data, .. } => images.push(json!(data)),
                        Part::ImageUrl(_) => {
                            return Err(unsupported("Ollama needs images as data: URLs"));
                        }
                    }
                }
                out.insert("role".into(), json!("user"));
                out.insert("content".into(), json!(text.join("\n")));
                if !images.is_empty() {
                    out.insert("images".into(), Value::Array(images));
                }
            }
            "assistant" => {
                out.insert("role".into(), json!("assistant"));
                out.insert("content".into(), json!(content::text(m.get("content"))?));
                let calls: Vec<Value> = content::tool_calls(m)
                    .into_iter()
                    .map(|(id, name, args)| {
                        names.push((id, name.clone()));
                        json!({"function": {"name": name, "arguments": content::arguments(&args)}})
                    })
                    .collect();
                if !calls.is_empty() {
                    out.insert("tool_calls".into(), Value::Array(calls));
                }
            }
            "tool" => {
                let id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                out.insert("role".into(), json!("tool"));
                out.insert("content".into(), json!(content::text(m.get("content"))?));
                if let Some((_, name)) = names.iter().find(|(i, _)| i == id) {
                    out.insert("tool_name".into(), json!(name));
                }
            }
            other => return Err(bad_request(format!("unknown message role {other:?}"))),
        }
        messages.push(Value::Object(out));
    }
    let mut options = Map::new();
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("seed", "seed"),
        ("presence_penalty", "presence_penalty"),
        ("frequency_penalty", "frequency_penalty"),
    ] {
        if let Some(v) = body.get(from).filter(|v| !v.is_null()) {
            options.insert(to.into(), v.clone());
        }
    }
    if let Some(max) = content::max_tokens(&body) {
        options.insert("num_predict".into(), json!(max));
    }
    let stop = content::stop(&body);
    if !stop.is_empty() {
        options.insert("stop".into(), json!(stop));
    }
    let mut out = json!({
        "model": model, "messages": messages, "stream": flag(&body, "stream"), "options": options,
    });
    match pointer(&body, "/response_format/type").and_then(Value::as_str) {
        Some("json_object") => out["format"] = json!("json"),
        Some("json_schema") => {
            out["format"] = pointer(&body, "/response_format/json_schema/schema")
                .cloned()
                .ok_or_else(|| bad_request("response_format.json_schema.schema is required"))?;
        }
        _ => {}
    }
    if let Some(tools) = body.get("tools").filter(|t| t.is_array()) {
        out["tools"] = tools.clone();
    }
    Ok(out)
}

/// Text and OpenAI tool calls of a response line; `indexed` adds the stream's tool-call index.
fn message_of(body: &Value, tools: &mut u64, indexed: bool) -> (String, Vec<Value>) {
    let text = body
        .pointer("/message/content")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut calls = Vec::new();
    for call in body
        .pointer("/message/tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let args = call
            .pointer("/function/arguments")
            .map(Value::to_string)
            .unwrap_or_else(|| "{}".into());
        let mut c = json!({
            "id": format!("call_{}", *tools), "type": "function",
            "function": {"name": call.pointer("/function/name"), "arguments": args},
        });
        if indexed {
            c["index"] = json!(*tools);
        }
        calls.push(c);
        *tools += 1;
    }
    (text, calls)
}

fn finish_reason(body: &Value, tool_calls: bool) -> &'static str {
    match body.get("done_reason").and_then(Value::as_str) {
        Some("length") => "length",
        _ if tool_calls => "tool_calls",
        _ => "stop",
    }
}

fn usage_of(body: &Value) -> Usage {
    let get = |k: &str| body.get(k).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        input_tokens: get("prompt_eval_count"),
        output_tokens: get("eval_count"),
        cached_tokens: 0,
    }
}

pairgate_plugin_sdk::plugin!(Ollama);
