//! The one fake in the suite: a local AI provider on 127.0.0.1:0 that speaks the wire formats of
//! OpenAI (chat completions and the Responses API), Anthropic (Messages, with its stream events
//! and error shape), Gemini, Ollama and Resend, records every request it receives (headers and
//! body, so tests can check what the gateway sent, including the injected credential), and
//! misbehaves on command: error statuses, 429 with Retry-After, rejected credentials, a body cut
//! mid-JSON, a stream cut mid-event, a stall, a delay before headers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use serde_json::{Value, json};

/// What the fake does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Answer with this status and an error body.
    Status(u16),
    /// 429 with `Retry-After: 7`.
    RateLimit,
    /// 401 naming the key it was sent (as real providers do).
    Unauthorized,
    /// This status with an error message quoting the key it was sent (Gemini answers a bad key
    /// with a 400, and a plugin passes a 400's message on to the app).
    EchoKey(u16),
    /// 200 with a JSON body cut in the middle.
    CutJson,
    /// Stream two events, then close the connection mid-event.
    CutStream,
    /// Stream one event, then send nothing more.
    Stall,
    /// Wait this long before sending headers.
    DelayHeaders(Duration),
}

/// How the fake answers.
#[derive(Debug, Clone)]
pub struct Behaviour {
    pub fault: Fault,
    /// Content chunks in a streamed answer.
    pub chunks: usize,
    pub chunk_interval: Duration,
    /// Delay before answering (non-streamed) or before the first chunk.
    pub delay: Duration,
    /// Whether streamed answers carry a usage report (when the request asks for one).
    pub stream_usage: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            fault: Fault::None,
            chunks: 3,
            chunk_interval: Duration::ZERO,
            delay: Duration::ZERO,
            stream_usage: true,
        }
    }
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Debug, Default)]
struct Shared {
    behaviour: Mutex<Behaviour>,
    received: Mutex<Vec<Recorded>>,
    /// Streamed answers still being written (their task ends when the reader goes away).
    open_streams: std::sync::atomic::AtomicUsize,
    /// Set by [`FakeProvider::stop_recording`]: load runs would otherwise grow without bound.
    unrecorded: std::sync::atomic::AtomicBool,
}

/// Counts one streamed answer as open until dropped.
struct OpenStream(Arc<Shared>);

impl OpenStream {
    fn new(shared: Arc<Shared>) -> OpenStream {
        shared
            .open_streams
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        OpenStream(shared)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0
            .open_streams
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A running fake provider.
#[derive(Debug, Clone)]
pub struct FakeProvider {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

/// The text every non-streamed fake answer carries.
pub const REPLY: &str = "Hello from the fake provider";

impl FakeProvider {
    pub async fn start() -> FakeProvider {
        let shared = Arc::new(Shared::default());
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Like the providers' own servers, the fake sends each write at once (no Nagle): without
        // it a stream's first small chunk waited for the client's delayed ACK, about 40 ms.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeProvider { addr, shared }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, b: Behaviour) {
        *self.shared.behaviour.lock().unwrap() = b;
    }

    pub fn fault(&self, f: Fault) {
        self.shared.behaviour.lock().unwrap().fault = f;
    }

    /// Stops keeping received requests (the benchmark sends hundreds of thousands).
    pub fn stop_recording(&self) {
        self.shared
            .unrecorded
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.shared.received.lock().unwrap().clear();
    }

    pub fn received(&self) -> Vec<Recorded> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Streamed answers the fake is still writing: 0 once every reader (the gateway) hung up or
    /// read to the end, so a test can tell that a cancelled call really stopped upstream.
    pub fn open_streams(&self) -> usize {
        self.shared
            .open_streams
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn last(&self) -> Recorded {
        self.received().pop().expect("the fake received a request")
    }
}

fn json_response(status: u16, v: Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(v.to_string()))
        .unwrap()
}

/// The credential a request carried, in whichever header its provider uses.
fn key_of(recorded: &Recorded) -> String {
    recorded
        .header("authorization")
        .or(recorded.header("x-api-key"))
        .or(recorded.header("x-goog-api-key"))
        .unwrap_or("")
        .to_string()
}

/// Anthropic's error type for a status.
fn anthropic_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

fn error_body(status: u16, recorded: &Recorded) -> Response {
    let key = key_of(recorded);
    if recorded.path.starts_with("/v1/messages") {
        let message = match status {
            401 => format!("invalid x-api-key: {key}"),
            _ => "the fake provider failed".to_string(),
        };
        let mut res = json_response(
            status,
            json!({ "type": "error", "error": { "type": anthropic_type(status), "message": message } }),
        );
        if status == 429 {
            res.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("7"));
        }
        return res;
    }
    match status {
        401 => json_response(401, json!({ "error": { "message": format!("Incorrect API key provided: {key}"), "type": "invalid_request_error", "code": "invalid_api_key" } })),
        429 => Response::builder()
            .status(429)
            .header("retry-after", "7")
            .header("content-type", "application/json")
            .body(Body::from(json!({ "error": { "message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded" } }).to_string()))
            .unwrap(),
        s => json_response(s, json!({ "error": { "message": "the fake provider failed", "type": "server_error" } })),
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default()
        .to_vec();
    let recorded = Recorded {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body,
    };
    if !shared.unrecorded.load(std::sync::atomic::Ordering::Relaxed) {
        shared.received.lock().unwrap().push(recorded.clone());
    }
    let b = shared.behaviour.lock().unwrap().clone();
    match &b.fault {
        Fault::Status(s) => return error_body(*s, &recorded),
        Fault::RateLimit => return error_body(429, &recorded),
        Fault::Unauthorized => return error_body(401, &recorded),
        Fault::EchoKey(s) => {
            let message = format!("API key not valid: {}", key_of(&recorded));
            return json_response(
                *s,
                json!({ "error": { "message": message, "type": "invalid_request_error", "code": "invalid_api_key" } }),
            );
        }
        Fault::DelayHeaders(d) => tokio::time::sleep(*d).await,
        _ => {}
    }
    if !b.delay.is_zero() {
        tokio::time::sleep(b.delay).await;
    }
    let req_json = recorded.json();
    let path = recorded.path.split('?').next().unwrap_or("").to_string();
    // OpenAI-compatible services live under any base path (`/openai/v1/...`).
    let path = ["/chat/completions", "/embeddings", "/models", "/responses"]
        .iter()
        .find(|suffix| {
            path.ends_with(*suffix) && path.contains("/v1/") && !path.starts_with("/v1beta")
        })
        .map(|suffix| format!("/v1{suffix}"))
        .unwrap_or(path);
    let model = req_json["model"]
        .as_str()
        .unwrap_or("fake-model")
        .to_string();
    let stream =
        req_json["stream"].as_bool() == Some(true) || path.contains(":streamGenerateContent");
    let (api, events): (&str, Vec<(Option<String>, String)>) = match path.as_str() {
        "/v1/chat/completions" | "/chat/completions" if stream => (
            "sse",
            openai_stream(
                &model,
                &b,
                req_json["stream_options"]["include_usage"] == true,
            ),
        ),
        "/v1/chat/completions" | "/chat/completions" => {
            return answer(
                &b,
                json!({
                    "id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": model,
                    "choices": [{ "index": 0, "message": { "role": "assistant", "content": REPLY }, "finish_reason": "stop", "logprobs": null }],
                    "usage": { "prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18 }
                }),
            );
        }
        "/v1/embeddings" | "/embeddings" => {
            return answer(
                &b,
                json!({
                    "object": "list", "model": model,
                    "data": [{ "object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3] }],
                    "usage": { "prompt_tokens": 4, "total_tokens": 4 }
                }),
            );
        }
        "/v1/models" | "/models" => {
            return answer(
                &b,
                json!({ "object": "list", "data": [{ "id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "openai" }] }),
            );
        }
        "/v1/messages/count_tokens" => return answer(&b, json!({ "input_tokens": 11 })),
        "/v1/responses" if stream => ("sse", responses_stream(&model, &b)),
        "/v1/responses" => {
            let usage = responses_usage(7);
            return answer(&b, response_object(&model, "completed", REPLY, usage));
        }
        "/v1/messages" if stream => ("sse", anthropic_stream(&model, &b)),
        "/v1/messages" => {
            return answer(
                &b,
                json!({
                    "id": "msg_fake", "type": "message", "role": "assistant", "model": model,
                    "content": [{ "type": "text", "text": REPLY }], "stop_reason": "end_turn", "stop_sequence": null,
                    "usage": { "input_tokens": 11, "output_tokens": 7 }
                }),
            );
        }
        p if p.starts_with("/v1beta/models/") && p.ends_with(":batchEmbedContents") => {
            return answer(&b, json!({ "embeddings": [{ "values": [0.1, 0.2, 0.3] }] }));
        }
        p if p.starts_with("/v1beta/models/") && stream => ("sse", gemini_stream(&b)),
        p if p.starts_with("/v1beta/models") && p.contains(":generateContent") => {
            return answer(
                &b,
                json!({
                    "candidates": [{ "content": { "parts": [{ "text": REPLY }], "role": "model" }, "finishReason": "STOP", "index": 0 }],
                    "usageMetadata": { "promptTokenCount": 11, "candidatesTokenCount": 7, "totalTokenCount": 18 }
                }),
            );
        }
        "/v1beta/models" => {
            return answer(
                &b,
                json!({ "models": [{ "name": "models/gemini-2.5-flash" }] }),
            );
        }
        "/api/chat" if req_json["stream"] != false => ("ndjson", ollama_stream(&model, &b)),
        "/api/chat" => {
            return answer(
                &b,
                json!({
                    "model": model, "created_at": "2026-01-01T00:00:00Z", "message": { "role": "assistant", "content": REPLY },
                    "done": true, "done_reason": "stop", "prompt_eval_count": 11, "eval_count": 7
                }),
            );
        }
        "/api/embed" => {
            return answer(
                &b,
                json!({ "model": model, "embeddings": [[0.1, 0.2, 0.3]], "prompt_eval_count": 4 }),
            );
        }
        "/api/tags" => return answer(&b, json!({ "models": [{ "name": "llama3.2" }] })),
        "/emails" => return answer(&b, json!({ "id": "email_fake_1" })),
        _ => {
            return json_response(
                404,
                json!({ "error": { "message": format!("the fake has no {path}") } }),
            );
        }
    };
    stream_response(api, events, b, OpenStream::new(shared))
}

fn answer(b: &Behaviour, v: Value) -> Response {
    if b.fault == Fault::CutJson {
        let text = v.to_string();
        return Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Body::from(text[..text.len() / 2].to_string()))
            .unwrap();
    }
    json_response(200, v)
}

fn openai_stream(model: &str, b: &Behaviour, include_usage: bool) -> Vec<(Option<String>, String)> {
    let chunk = |delta: Value, finish: Value| {
        json!({ "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] })
        .to_string()
    };
    let mut out = vec![(
        None,
        chunk(json!({ "role": "assistant", "content": "" }), Value::Null),
    )];
    for i in 0..b.chunks {
        out.push((
            None,
            chunk(json!({ "content": format!("tok{i} ") }), Value::Null),
        ));
    }
    out.push((None, chunk(json!({}), json!("stop"))));
    if include_usage && b.stream_usage {
        out.push((None, json!({ "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [],
            "usage": { "prompt_tokens": 11, "completion_tokens": b.chunks, "total_tokens": 11 + b.chunks } }).to_string()));
    }
    out.push((None, "[DONE]".into()));
    out
}

fn anthropic_stream(model: &str, b: &Behaviour) -> Vec<(Option<String>, String)> {
    let ev = |name: &str, v: Value| (Some(name.to_string()), v.to_string());
    let mut out = vec![
        ev(
            "message_start",
            json!({ "type": "message_start", "message": { "id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "usage": { "input_tokens": 11, "output_tokens": 1 } } }),
        ),
        ev(
            "content_block_start",
            json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } }),
        ),
    ];
    for i in 0..b.chunks {
        out.push(ev("content_block_delta", json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": format!("tok{i} ") } })));
        if i == 0 {
            out.push(ev("ping", json!({ "type": "ping" })));
        }
    }
    out.push(ev(
        "content_block_stop",
        json!({ "type": "content_block_stop", "index": 0 }),
    ));
    let usage = if b.stream_usage {
        json!({ "output_tokens": b.chunks })
    } else {
        json!({})
    };
    out.push(ev("message_delta", json!({ "type": "message_delta", "delta": { "stop_reason": "end_turn", "stop_sequence": null }, "usage": usage })));
    out.push(ev("message_stop", json!({ "type": "message_stop" })));
    out
}

fn responses_usage(output: usize) -> Value {
    json!({ "input_tokens": 11, "input_tokens_details": { "cached_tokens": 0 },
        "output_tokens": output, "output_tokens_details": { "reasoning_tokens": 0 }, "total_tokens": 11 + output })
}

/// A Responses API `response` object with one output message.
fn response_object(model: &str, status: &str, text: &str, usage: Value) -> Value {
    let output = if status == "in_progress" {
        json!([])
    } else {
        json!([{ "type": "message", "id": "msg_fake", "status": "completed", "role": "assistant",
            "content": [{ "type": "output_text", "text": text, "annotations": [] }] }])
    };
    json!({
        "id": "resp_fake", "object": "response", "created_at": 1, "status": status, "model": model,
        "output": output, "usage": usage, "error": null, "incomplete_details": null,
        "instructions": null, "metadata": {}, "parallel_tool_calls": true, "temperature": 1.0,
        "tool_choice": "auto", "tools": [], "top_p": 1.0, "text": { "format": { "type": "text" } },
    })
}

/// The Responses API's streamed events, each with its `sequence_number`.
fn responses_stream(model: &str, b: &Behaviour) -> Vec<(Option<String>, String)> {
    let text: String = (0..b.chunks).map(|i| format!("tok{i} ")).collect();
    let item = |status: &str, content: Value| json!({ "type": "message", "id": "msg_fake", "status": status, "role": "assistant", "content": content });
    let part = |t: &str| json!({ "type": "output_text", "text": t, "annotations": [] });
    let mut events = vec![
        (
            "response.created",
            json!({ "response": response_object(model, "in_progress", "", Value::Null) }),
        ),
        (
            "response.in_progress",
            json!({ "response": response_object(model, "in_progress", "", Value::Null) }),
        ),
        (
            "response.output_item.added",
            json!({ "output_index": 0, "item": item("in_progress", json!([])) }),
        ),
        (
            "response.content_part.added",
            json!({ "item_id": "msg_fake", "output_index": 0, "content_index": 0, "part": part("") }),
        ),
    ];
    for i in 0..b.chunks {
        events.push(("response.output_text.delta", json!({ "item_id": "msg_fake", "output_index": 0, "content_index": 0, "delta": format!("tok{i} "), "logprobs": [] })));
    }
    let usage = if b.stream_usage {
        responses_usage(b.chunks)
    } else {
        Value::Null
    };
    events.extend([
        ("response.output_text.done", json!({ "item_id": "msg_fake", "output_index": 0, "content_index": 0, "text": text, "logprobs": [] })),
        ("response.content_part.done", json!({ "item_id": "msg_fake", "output_index": 0, "content_index": 0, "part": part(&text) })),
        ("response.output_item.done", json!({ "output_index": 0, "item": item("completed", json!([part(&text)])) })),
        ("response.completed", json!({ "response": response_object(model, "completed", &text, usage) })),
    ]);
    events
        .into_iter()
        .enumerate()
        .map(|(n, (name, mut data))| {
            data["type"] = json!(name);
            data["sequence_number"] = json!(n);
            (Some(name.to_string()), data.to_string())
        })
        .collect()
}

fn gemini_stream(b: &Behaviour) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    for i in 0..b.chunks {
        out.push((None, json!({ "candidates": [{ "content": { "parts": [{ "text": format!("tok{i} ") }], "role": "model" }, "index": 0 }] }).to_string()));
    }
    let mut last = json!({ "candidates": [{ "content": { "parts": [{ "text": "" }], "role": "model" }, "finishReason": "STOP", "index": 0 }] });
    if b.stream_usage {
        last["usageMetadata"] = json!({ "promptTokenCount": 11, "candidatesTokenCount": b.chunks, "totalTokenCount": 11 + b.chunks });
    }
    out.push((None, last.to_string()));
    out
}

fn ollama_stream(model: &str, b: &Behaviour) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    for i in 0..b.chunks {
        out.push((None, json!({ "model": model, "message": { "role": "assistant", "content": format!("tok{i} ") }, "done": false }).to_string()));
    }
    let mut last = json!({ "model": model, "message": { "role": "assistant", "content": "" }, "done": true, "done_reason": "stop" });
    if b.stream_usage {
        last["prompt_eval_count"] = json!(11);
        last["eval_count"] = json!(b.chunks);
    }
    out.push((None, last.to_string()));
    out
}

fn stream_response(
    kind: &'static str,
    events: Vec<(Option<String>, String)>,
    b: Behaviour,
    open: OpenStream,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(4);
    tokio::spawn(async move {
        let _open = open;
        for (i, (event, data)) in events.iter().enumerate() {
            if i > 0 && !b.chunk_interval.is_zero() {
                tokio::time::sleep(b.chunk_interval).await;
            }
            let text = match kind {
                "ndjson" => format!("{data}\n"),
                _ => match event {
                    Some(e) => format!("event: {e}\ndata: {data}\n\n"),
                    None => format!("data: {data}\n\n"),
                },
            };
            match (&b.fault, i) {
                (Fault::CutStream, 2) => {
                    let _ = tx
                        .send(Ok(Bytes::from(text[..text.len() / 2].to_string())))
                        .await;
                    return;
                }
                (Fault::Stall, 1) => {
                    // Stalled, but still notices a reader that went away.
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(3600)) => {}
                        () = tx.closed() => {}
                    }
                    return;
                }
                _ => {}
            }
            if tx.send(Ok(Bytes::from(text))).await.is_err() {
                return;
            }
        }
    });
    let ct = if kind == "ndjson" {
        "application/x-ndjson"
    } else {
        "text/event-stream"
    };
    Response::builder()
        .status(200)
        .header("content-type", ct)
        .body(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .unwrap()
}
