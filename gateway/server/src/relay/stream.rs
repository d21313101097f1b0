//! Streamed answers: upstream bytes are framed (SSE or NDJSON), translated by the plugin batch by
//! batch, and written to the app as OpenAI Server-Sent Events chunk by chunk, never buffered
//! whole. A stall, a cut or a plugin failure ends the stream with an error event and
//! `data: [DONE]`; a client that goes away cancels the upstream call. Usage is settled and the
//! ledger row written on every path, from the provider's report or, failing that, estimated from
//! what was streamed (and marked estimated). The owner's credential is cut out of the upstream
//! bytes before framing (see [`super::upstream::Redactor`]).

use std::borrow::Cow;
use std::convert::Infallible;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::response::Response;
use futures_util::StreamExt;
use http::{HeaderValue, header};
use pairgate_plugin_host::ResponseMode;
use pairgate_policy::limits::{Usage, estimate_output_from_text};
use tokio::sync::mpsc;

use super::errors::failure;
use super::exchange::Exchange;
use super::framing::{Framer, Framing};
use super::plugin::{plugin_call, policy_usage};
use super::upstream::{Redactor, StreamRedactor};
use crate::base::error::ApiError;

/// One piece of a streamed answer.
pub type Chunk = Result<Bytes, Infallible>;

/// Starts pumping the upstream stream to the app; returns the streaming response at once.
pub fn respond(
    exchange: Exchange,
    upstream: reqwest::Response,
    mode: ResponseMode,
    call_state: Vec<u8>,
    estimate: Usage,
    redactor: Redactor,
) -> Response {
    let (tx, rx) = mpsc::channel::<Chunk>(16);
    let framing = if mode == ResponseMode::Ndjson {
        Framing::Ndjson
    } else {
        Framing::Sse
    };
    let rate_headers = exchange.rate_headers();
    tokio::spawn(pump(
        exchange,
        upstream,
        framing,
        call_state,
        estimate,
        tx,
        redactor.stream(),
    ));
    event_stream(rx, "text/event-stream", rate_headers)
}

/// The response that streams `rx` to the app as it comes: an event stream that proxies must not
/// cache or buffer, with the admission's rate headers.
pub fn event_stream(
    rx: mpsc::Receiver<Chunk>,
    content_type: &'static str,
    rate_headers: Vec<(&'static str, String)>,
) -> Response {
    let mut res = Response::new(Body::from_stream(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ));
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    for (k, v) in rate_headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    res
}

/// A translated chunk as far as [`content_chars`] reads it (the OpenAI chunk our plugins emit).
#[derive(serde::Deserialize)]
struct ChunkText<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<ChoiceText<'a>>>,
}

#[derive(serde::Deserialize)]
struct ChoiceText<'a> {
    #[serde(default, borrow)]
    delta: Option<DeltaText<'a>>,
}

#[derive(serde::Deserialize)]
struct DeltaText<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    tool_calls: Option<Vec<ToolCallText<'a>>>,
}

#[derive(serde::Deserialize)]
struct ToolCallText<'a> {
    #[serde(default, borrow)]
    function: Option<FunctionText<'a>>,
}

#[derive(serde::Deserialize)]
struct FunctionText<'a> {
    #[serde(default, borrow)]
    arguments: Option<Cow<'a, str>>,
}

/// Characters (bytes) of generated text in a translated chunk, for estimating unreported usage:
/// its deltas' content and tool-call arguments; a chunk that is not such JSON counts a quarter
/// of its length.
fn content_chars(chunk: &str) -> usize {
    let Ok(parsed) = serde_json::from_str::<ChunkText>(chunk) else {
        return chunk.len() / 4;
    };
    let len = |s: &Option<Cow<str>>| s.as_ref().map_or(0, |s| s.len());
    parsed
        .choices
        .iter()
        .flatten()
        .filter_map(|c| c.delta.as_ref())
        .map(|d| {
            len(&d.content)
                + d.tool_calls
                    .iter()
                    .flatten()
                    .map(|t| t.function.as_ref().map_or(0, |f| len(&f.arguments)))
                    .sum::<usize>()
        })
        .sum()
}

async fn send_event(tx: &mpsc::Sender<Chunk>, data: &str) -> bool {
    tx.send(Ok(Bytes::from(format!("data: {data}\n\n"))))
        .await
        .is_ok()
}

async fn pump(
    exchange: Exchange,
    upstream: reqwest::Response,
    framing: Framing,
    mut call_state: Vec<u8>,
    estimate: Usage,
    tx: mpsc::Sender<Chunk>,
    mut redactor: StreamRedactor,
) {
    let state = exchange.state.clone();
    let provider = exchange.provider.clone();
    let started = Instant::now();
    let stall = state.config.upstream_timeout;
    let mut framer = Framer::new(framing);
    let mut bytes = upstream.bytes_stream();
    let mut usage: Option<Usage> = None;
    let mut out_chars = 0usize;
    let mut error: Option<ApiError> = None;
    let mut client_gone = false;
    let mut done = false;
    loop {
        let (events, last) = match tokio::time::timeout(stall, bytes.next()).await {
            Err(_) => {
                error = Some(ApiError::ProviderUnavailable {
                    message: format!("the provider {} stopped sending", provider.id),
                    timed_out: true,
                });
                break;
            }
            Ok(Some(Err(_))) => {
                error = Some(ApiError::ProviderUnavailable {
                    message: format!("the provider {} cut the stream off", provider.id),
                    timed_out: false,
                });
                break;
            }
            // The credential is cut out before framing, so no event the plugin sees holds it.
            Ok(Some(Ok(b))) => (framer.push(&redactor.push(&b)), false),
            Ok(None) => {
                let tail = redactor.finish();
                match framer.push(&tail) {
                    Ok(mut events) => (
                        framer.finish().map(|rest| {
                            events.extend(rest);
                            events
                        }),
                        true,
                    ),
                    Err(e) => (Err(e), true),
                }
            }
        };
        let events = match events {
            Ok(e) => e,
            Err(e) => {
                error = Some(ApiError::ProviderUnavailable {
                    message: format!("the provider {} sent a malformed stream: {e}", provider.id),
                    timed_out: false,
                });
                break;
            }
        };
        if !events.is_empty() {
            let id = provider.plugin.clone();
            let st = std::mem::take(&mut call_state);
            let size = st.len() + events.iter().map(|e| e.data.len()).sum::<usize>();
            match plugin_call(&state, &provider, size, move |host| {
                host.translate_events(&id, &st, events)
            })
            .await
            {
                Ok(Ok(t)) => {
                    call_state = t.state;
                    if let Some(u) = t.usage {
                        usage = Some(policy_usage(u));
                    }
                    for chunk in &t.chunks {
                        out_chars += content_chars(chunk);
                        if !send_event(&tx, chunk).await {
                            client_gone = true;
                            break;
                        }
                    }
                    done = t.done;
                }
                Ok(Err(f)) => {
                    error = Some(failure(&provider, f));
                    break;
                }
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        if client_gone || done {
            break;
        }
        if last {
            error = Some(ApiError::ProviderUnavailable {
                message: format!("the provider {} ended the stream early", provider.id),
                timed_out: false,
            });
            break;
        }
    }
    // Stop reading upstream: dropping the body cancels the provider call.
    drop(bytes);
    if !client_gone && let Some(e) = &error {
        let body = serde_json::json!({ "error": { "message": e.to_string(), "type": "server_error", "code": e.code(), "param": null } });
        let _ = send_event(&tx, &body.to_string()).await;
    }
    let (final_usage, estimated) = match usage {
        Some(u) => (u, false),
        None => (
            Usage {
                input_tokens: estimate.input_tokens,
                output_tokens: estimate_output_from_text(out_chars),
                cached_tokens: 0,
            },
            true,
        ),
    };
    let (status, code) = match (&error, client_gone) {
        (Some(e), _) => (e.status().as_u16(), Some(e.code().to_string())),
        (None, true) => (499, Some("client_disconnected".to_string())),
        (None, false) => (200, None),
    };
    if let Some(e) = &error {
        tracing::warn!(error = %e, "stream ended with an error");
    }
    tracing::debug!(
        stream_ms = started.elapsed().as_millis() as u64,
        "stream finished"
    );
    // The row is committed before the stream completes, so an answered stream is never missing
    // from the ledger, even after a hard kill.
    exchange.finish(status, final_usage, estimated, code).await;
    if !client_gone {
        let _ = send_event(&tx, "[DONE]").await;
    }
}

#[cfg(test)]
mod tests {
    use super::content_chars;

    #[test]
    fn content_chars_counts_deltas_and_tool_arguments() {
        let chunk = r#"{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":"h\u00e9llo"}},{"index":1,"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{\"a\":1}"}},{"index":1,"function":{"name":"g"}}]}},{"index":2,"finish_reason":"stop"}],"usage":null}"#;
        assert_eq!(content_chars(chunk), "héllo".len() + r#"{"a":1}"#.len());
        assert_eq!(
            content_chars(r#"{"choices":[{"delta":{"content":null}}]}"#),
            0
        );
        assert_eq!(content_chars(r#"{"object":"chat.completion.chunk"}"#), 0);
        assert_eq!(
            content_chars(r#"{"choices":null,"usage":{"total_tokens":3}}"#),
            0
        );
        assert_eq!(
            content_chars("not json at all"),
            "not json at all".len() / 4
        );
    }
}
