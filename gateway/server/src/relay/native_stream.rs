//! A native stream (Anthropic's Messages events, OpenAI's Responses events) relayed as the
//! provider sent it, chunk by chunk: the bytes are not re-encoded, only read on the side to meter
//! them (`pairgate_policy::native::StreamMeter`). The owner's credential is cut out first. A
//! stall, a cut or a malformed stream ends it with an `error` event in the API's own shape; a
//! client that goes away cancels the upstream call. Usage is settled and the ledger row written
//! on every path: the provider's final report, or an estimate marked as such.

use axum::body::Bytes;
use axum::response::Response;
use futures_util::StreamExt;
use pairgate_policy::limits::Usage;
use pairgate_policy::native::{Api, StreamMeter};
use tokio::sync::mpsc;

use super::exchange::Exchange;
use super::framing::{Framer, Framing};
use super::stream::Chunk;
use super::upstream::{Redactor, StreamRedactor};
use crate::base::error::ApiError;

/// Starts relaying the upstream stream to the app; returns the streaming response at once.
pub fn respond(
    exchange: Exchange,
    upstream: reqwest::Response,
    api: Api,
    estimate: Usage,
    redactor: Redactor,
) -> Response {
    let rate_headers = exchange.rate_headers();
    let (tx, rx) = mpsc::channel::<Chunk>(16);
    let relay = Relay {
        exchange,
        api,
        estimate,
        tx,
    };
    tokio::spawn(relay.pump(upstream, redactor.stream()));
    super::stream::event_stream(rx, "text/event-stream; charset=utf-8", rate_headers)
}

/// One stream in flight: what it settles when it ends.
struct Relay {
    exchange: Exchange,
    api: Api,
    estimate: Usage,
    tx: mpsc::Sender<Chunk>,
}

/// How the relay loop ended.
enum End {
    /// The provider finished the stream.
    Finished,
    /// The app went away.
    ClientGone,
    Failed(ApiError),
}

impl Relay {
    async fn pump(self, upstream: reqwest::Response, mut redactor: StreamRedactor) {
        let stall = self.exchange.state.config.upstream_timeout;
        let mut framer = Framer::new(Framing::Sse);
        let mut metered = StreamMeter::new(self.api);
        let mut bytes = upstream.bytes_stream();
        // Bytes after the last complete event: an event reaches the app whole or not at all,
        // so an error event the gateway adds never lands inside a cut one.
        let mut pending: Vec<u8> = Vec::new();
        let id = self.exchange.provider.id.clone();
        let id = &id;
        let end = loop {
            let (chunk, last) = match tokio::time::timeout(stall, bytes.next()).await {
                Err(_) => {
                    break End::Failed(ApiError::ProviderUnavailable {
                        message: format!("the provider {id} stopped sending"),
                        timed_out: true,
                    });
                }
                Ok(Some(Err(_))) => {
                    break End::Failed(ApiError::ProviderUnavailable {
                        message: format!("the provider {id} cut the stream off"),
                        timed_out: false,
                    });
                }
                Ok(Some(Ok(b))) => (redactor.push(&b), false),
                Ok(None) => (redactor.finish(), true),
            };
            let framed = framer
                .push(&chunk)
                .and_then(|mut events| {
                    if last {
                        events.extend(framer.finish()?);
                    }
                    Ok(events)
                })
                .map_err(|e| ApiError::ProviderUnavailable {
                    message: format!("the provider {id} sent a malformed stream: {e}"),
                    timed_out: false,
                });
            match framed {
                Ok(events) => {
                    for e in &events {
                        metered.observe(e.event.as_deref(), &e.data);
                    }
                }
                Err(e) => break End::Failed(e),
            }
            pending.extend_from_slice(&chunk);
            // At the end, a tail without its blank line goes out only when the stream is
            // complete; otherwise it is a cut event, and is dropped.
            let whole = if last && metered.complete {
                pending.len()
            } else {
                complete_events_len(&pending)
            };
            if whole > 0 {
                let rest = pending.split_off(whole);
                let out = std::mem::replace(&mut pending, rest);
                if self.tx.send(Ok(Bytes::from(out))).await.is_err() {
                    break End::ClientGone;
                }
            }
            if last {
                break if metered.complete {
                    End::Finished
                } else {
                    End::Failed(ApiError::ProviderUnavailable {
                        message: format!("the provider {id} ended the stream early"),
                        timed_out: false,
                    })
                };
            }
        };
        // Stop reading upstream: dropping the body cancels the provider call.
        drop(bytes);
        self.finish(end, &metered).await;
    }

    /// Tells the app how the stream ended (when it is still there), then settles and records.
    async fn finish(self, end: End, metered: &StreamMeter) {
        if let End::Failed(e) = &end {
            tracing::warn!(error = %e, "native stream ended with an error");
            let kind = match self.api {
                Api::Responses => e.code(),
                Api::Messages | Api::CountTokens => "api_error",
            };
            let event = metered.error_event(kind, &e.to_string());
            let _ = self.tx.send(Ok(Bytes::from(event))).await;
        }
        let (usage, estimated) = metered.settled(self.estimate.input_tokens);
        let (status, code) = match &end {
            End::Failed(e) => (e.status().as_u16(), Some(e.code().to_string())),
            End::ClientGone => (499, Some("client_disconnected".to_string())),
            End::Finished if metered.failed => (502, Some("provider_stream_error".to_string())),
            End::Finished => (200, None),
        };
        // Committed before the stream completes: an answered stream is never missing from the
        // ledger, even after a hard kill.
        self.exchange.finish(status, usage, estimated, code).await;
    }
}

/// The length of the prefix of `buf` made of complete SSE events (up to and including the last
/// blank line, `\n\n` or `\r\n\r\n`); 0 when no event is complete yet.
fn complete_events_len(buf: &[u8]) -> usize {
    (1..buf.len())
        .rev()
        .find(|&i| {
            buf[i] == b'\n'
                && (buf[i - 1] == b'\n' || (i >= 2 && buf[i - 1] == b'\r' && buf[i - 2] == b'\n'))
        })
        .map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::complete_events_len;

    #[test]
    fn only_whole_events_are_released() {
        assert_eq!(complete_events_len(b""), 0);
        assert_eq!(complete_events_len(b"event: a\ndata: {"), 0);
        assert_eq!(complete_events_len(b"data: 1\n\ndata: 2"), 9);
        assert_eq!(complete_events_len(b"data: 1\n\ndata: 2\n\n"), 18);
        assert_eq!(complete_events_len(b"data: 1\r\n\r\ndata"), 11);
    }
}
