//! The providers' own wire formats the gateway serves natively (Anthropic's Messages API and
//! OpenAI's Responses API): a typed view of a request for the policy check and the estimate, the
//! rewrite the grant imposes (model and output cap), and the usage an answer or a stream reports.
//!
//! The request body is parsed once into a JSON object and kept whole: fields the gateway does
//! not know pass through to the provider untouched. Only `model` and the output cap are ever
//! rewritten. No I/O: the gateway feeds bytes and stream events in and reads facts out.

use serde_json::Value;

use crate::body::any_image;
use crate::limits::{Usage, estimate_output_from_text};

/// Which native API a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// Anthropic `POST /v1/messages`.
    Messages,
    /// Anthropic `POST /v1/messages/count_tokens` (no output, not billed by the provider).
    CountTokens,
    /// OpenAI `POST /v1/responses`.
    Responses,
}

impl Api {
    /// The plugin action that maps this API onto a provider.
    pub fn action(self) -> &'static str {
        match self {
            Api::Messages => "messages",
            Api::CountTokens => "count-tokens",
            Api::Responses => "responses",
        }
    }

    /// The endpoint written to the usage ledger.
    pub fn ledger_endpoint(self) -> &'static str {
        match self {
            Api::Messages => "messages",
            Api::CountTokens => "messages/count_tokens",
            Api::Responses => "responses",
        }
    }

    /// The request field carrying the output cap.
    fn cap_field(self) -> Option<&'static str> {
        match self {
            Api::Messages => Some("max_tokens"),
            Api::CountTokens => None,
            Api::Responses => Some("max_output_tokens"),
        }
    }

    /// Whether answers of this API generate (and bill) output tokens.
    pub fn generates(self) -> bool {
        self != Api::CountTokens
    }
}

/// Why a native request body cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is not valid JSON: {0}")]
    NotJson(String),
    #[error("the request body must be a JSON object")]
    NotObject,
    #[error("`model` is required and must be a string")]
    NoModel,
    #[error("`{0}` must be a whole number")]
    BadNumber(&'static str),
    #[error("`stream` must be true or false")]
    BadStream,
}

/// A native request: its JSON object, and the facts the policy needs read from it once.
#[derive(Debug, Clone)]
pub struct NativeRequest {
    pub api: Api,
    /// Always a JSON object.
    body: Value,
    /// The model as the client named it.
    pub model: String,
    pub stream: bool,
    pub has_tools: bool,
    pub has_images: bool,
    /// The output cap the client asked for (`max_tokens` or `max_output_tokens`).
    pub max_tokens: Option<u32>,
    /// Tools the provider runs and bills per use, beyond tokens (web search, code execution,
    /// file search, image generation...): their `type`s.
    pub billed_tools: Vec<String>,
}

/// Whether a tool definition names a tool the provider runs and bills per use. Anthropic: its
/// server tools (`web_search_*`, `web_fetch_*`, `code_execution_*`); client tools, its own
/// client-run ones (`bash_*`, `text_editor_*`, `computer_*`) included, are billed as tokens only.
/// Responses: every built-in tool (anything but `function` and `custom`).
fn billed_tool(api: Api, tool: &Value) -> Option<String> {
    let kind = tool.get("type").and_then(Value::as_str)?;
    let billed = match api {
        Api::Messages | Api::CountTokens => ["web_search", "web_fetch", "code_execution"]
            .iter()
            .any(|p| kind.starts_with(p)),
        Api::Responses => !matches!(kind, "function" | "custom"),
    };
    billed.then(|| kind.chars().take(64).collect())
}

impl NativeRequest {
    /// Reads a native request body.
    pub fn parse(api: Api, bytes: &[u8]) -> Result<NativeRequest, BodyError> {
        let body = match serde_json::from_slice::<Value>(bytes) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return Err(BodyError::NotObject),
            Err(e) => return Err(BodyError::NotJson(e.to_string())),
        };
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .ok_or(BodyError::NoModel)?
            .to_string();
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b && api != Api::CountTokens,
            Some(_) => return Err(BodyError::BadStream),
        };
        let max_tokens = match api.cap_field().and_then(|f| body.get(f).map(|v| (f, v))) {
            None | Some((_, Value::Null)) => None,
            Some((field, v)) => Some(
                v.as_u64()
                    .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
                    .ok_or(BodyError::BadNumber(field))?,
            ),
        };
        let tools = body.get("tools").and_then(Value::as_array);
        let has_tools = tools.is_some_and(|t| !t.is_empty());
        let billed_tools = tools
            .map(|t| t.iter().filter_map(|tool| billed_tool(api, tool)).collect())
            .unwrap_or_default();
        let has_images = match api {
            Api::Messages | Api::CountTokens => any_image(body.get("messages")),
            Api::Responses => any_image(body.get("input")),
        };
        Ok(NativeRequest {
            api,
            body,
            model,
            stream,
            has_tools,
            has_images,
            max_tokens,
            billed_tools,
        })
    }

    /// The body as it will be sent: the model as the provider names it, and the output cap the
    /// grant allows (set when the grant has one, whether or not the client sent any).
    pub fn rewrite(&mut self, provider_model: &str, max_tokens: Option<u32>) {
        self.body["model"] = Value::String(provider_model.to_string());
        if let (Some(field), Some(max)) = (self.api.cap_field(), max_tokens) {
            self.body[field] = Value::from(max);
        }
    }

    /// The body as a JSON value (for the estimate).
    pub fn body(&self) -> &Value {
        &self.body
    }

    /// The body's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.body).unwrap_or_default()
    }
}

fn num(v: Option<&Value>, key: &str) -> u64 {
    v.and_then(|v| v.get(key))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// Anthropic's `usage` object: input is every prompt token (uncached, cache writes and cache
/// reads); cached is the cache reads.
fn anthropic_usage(u: &Value) -> Usage {
    let cached = num(Some(u), "cache_read_input_tokens");
    Usage {
        input_tokens: num(Some(u), "input_tokens")
            .saturating_add(cached)
            .saturating_add(num(Some(u), "cache_creation_input_tokens")),
        output_tokens: num(Some(u), "output_tokens"),
        cached_tokens: cached,
    }
}

/// OpenAI Responses' `usage` object.
fn responses_usage(u: &Value) -> Usage {
    Usage {
        input_tokens: num(Some(u), "input_tokens"),
        output_tokens: num(Some(u), "output_tokens"),
        cached_tokens: num(u.get("input_tokens_details"), "cached_tokens"),
    }
}

/// The usage a whole (non-streamed) successful answer reports, if it reports one.
pub fn answer_usage(api: Api, body: &[u8]) -> Option<Usage> {
    let v: Value = serde_json::from_slice(body).ok()?;
    match api {
        Api::Messages => v.get("usage").map(anthropic_usage),
        Api::CountTokens => Some(Usage::default()),
        Api::Responses => v
            .get("usage")
            .filter(|u| u.is_object())
            .map(responses_usage),
    }
}

/// The error code of a provider's native error body (Anthropic's `error.type`, OpenAI's
/// `error.code` or `error.type`), for the ledger.
pub fn error_code(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let e = v.get("error")?;
    e.get("code")
        .and_then(Value::as_str)
        .or_else(|| e.get("type").and_then(Value::as_str))
        .map(|s| s.chars().take(64).collect())
}

/// Follows a native event stream: usage as it is reported, the generated text's length (for an
/// estimate when the stream ends without a report), and whether the stream completed.
#[derive(Debug, Clone)]
pub struct StreamMeter {
    api: Api,
    usage: Option<Usage>,
    /// The final output count came (not only `message_start`'s initial one).
    output_reported: bool,
    /// Bytes of generated text (and tool-call arguments) seen.
    pub output_bytes: usize,
    /// The terminal event arrived (`message_stop`; `response.completed`, `.incomplete` or
    /// `.failed`).
    pub complete: bool,
    /// The provider sent an `error` event (or a failed response).
    pub failed: bool,
    /// The last `sequence_number` seen (Responses), so an event the gateway adds follows it.
    pub last_sequence: Option<u64>,
}

impl StreamMeter {
    pub fn new(api: Api) -> StreamMeter {
        StreamMeter {
            api,
            usage: None,
            output_reported: false,
            output_bytes: 0,
            complete: false,
            failed: false,
            last_sequence: None,
        }
    }

    /// The usage reported so far, if any.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// What the stream is charged, and whether that is an estimate: the provider's final report
    /// when it came (Anthropic's last `message_delta`, the Responses terminal event); otherwise
    /// the input the provider reported or `estimated_input`, and the larger of the output it
    /// reported so far and the text streamed.
    pub fn settled(&self, estimated_input: u64) -> (Usage, bool) {
        if self.output_reported
            && let Some(u) = self.usage
        {
            return (u, false);
        }
        let streamed = estimate_output_from_text(self.output_bytes);
        let usage = match self.usage {
            Some(u) => Usage {
                output_tokens: u.output_tokens.max(streamed),
                ..u
            },
            None => Usage {
                input_tokens: estimated_input,
                output_tokens: streamed,
                cached_tokens: 0,
            },
        };
        (usage, true)
    }

    /// Takes one event (its `event:` name, if any, and its data).
    pub fn observe(&mut self, event: Option<&str>, data: &str) {
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return;
        };
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .or(event)
            .unwrap_or_default();
        if let Some(n) = v.get("sequence_number").and_then(Value::as_u64) {
            self.last_sequence = Some(n);
        }
        match self.api {
            Api::Messages | Api::CountTokens => self.anthropic(kind, &v),
            Api::Responses => self.responses(kind, &v),
        }
    }

    fn anthropic(&mut self, kind: &str, v: &Value) {
        match kind {
            "message_start" => {
                if let Some(u) = v.get("message").and_then(|m| m.get("usage")) {
                    self.usage = Some(anthropic_usage(u));
                }
            }
            "content_block_delta" => {
                let d = v.get("delta");
                for key in ["text", "partial_json", "thinking"] {
                    if let Some(s) = d.and_then(|d| d.get(key)).and_then(Value::as_str) {
                        self.output_bytes += s.len();
                    }
                }
            }
            "message_delta" => {
                // Cumulative counts: output always; input and cache fields when present.
                if let Some(u) = v.get("usage") {
                    let mut usage = self.usage.unwrap_or_default();
                    let reported = anthropic_usage(u);
                    if u.get("output_tokens").is_some() {
                        usage.output_tokens = reported.output_tokens;
                        self.output_reported = true;
                    }
                    if u.get("input_tokens").is_some() {
                        usage.input_tokens = reported.input_tokens;
                        usage.cached_tokens = reported.cached_tokens;
                    }
                    self.usage = Some(usage);
                }
            }
            "message_stop" => self.complete = true,
            "error" => self.failed = true,
            _ => {}
        }
    }

    fn responses(&mut self, kind: &str, v: &Value) {
        match kind {
            "response.output_text.delta"
            | "response.function_call_arguments.delta"
            | "response.reasoning_summary_text.delta"
            | "response.refusal.delta" => {
                if let Some(s) = v.get("delta").and_then(Value::as_str) {
                    self.output_bytes += s.len();
                }
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                if let Some(u) = v
                    .get("response")
                    .and_then(|r| r.get("usage"))
                    .filter(|u| u.is_object())
                {
                    self.usage = Some(responses_usage(u));
                    self.output_reported = true;
                }
                self.complete = true;
                self.failed |= kind == "response.failed";
            }
            "error" => self.failed = true,
            _ => {}
        }
    }

    /// The event that ends a native stream the gateway has to cut short, in the API's own shape
    /// (SSE text, ready to write).
    pub fn error_event(&self, kind: &str, message: &str) -> String {
        let data = match self.api {
            Api::Messages | Api::CountTokens => serde_json::json!({
                "type": "error",
                "error": { "type": kind, "message": message },
            }),
            Api::Responses => serde_json::json!({
                "type": "error",
                "code": kind,
                "message": message,
                "param": null,
                "sequence_number": self.last_sequence.map_or(0, |n| n + 1),
            }),
        };
        format!("event: error\ndata: {data}\n\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(api: Api, v: Value) -> Result<NativeRequest, BodyError> {
        NativeRequest::parse(api, v.to_string().as_bytes())
    }

    #[test]
    fn messages_requests_are_read_once_and_rewritten_only_where_the_grant_says() {
        let mut r = parse(
            Api::Messages,
            json!({"model": "claude-sonnet-4-5", "max_tokens": 64000, "stream": true,
                "system": [{"type": "text", "text": "be brief"}],
                "messages": [{"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "image", "source": {}}]}]}],
                "tools": [{"name": "x", "input_schema": {}}], "metadata": {"user_id": "u"}}),
        )
        .unwrap();
        assert_eq!(r.model, "claude-sonnet-4-5");
        assert!(r.stream && r.has_tools && r.has_images);
        assert_eq!(r.max_tokens, Some(64000));
        r.rewrite("claude-sonnet-4-5", Some(1000));
        let out: Value = serde_json::from_slice(&r.to_bytes()).unwrap();
        assert_eq!(out["max_tokens"], 1000);
        assert_eq!(
            out["metadata"]["user_id"], "u",
            "unknown fields pass through"
        );
        assert_eq!(r.body()["system"][0]["text"], "be brief");
        let plain = parse(
            Api::Messages,
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .unwrap();
        assert!(!plain.stream && !plain.has_tools && !plain.has_images);
        assert_eq!(plain.max_tokens, None);
    }

    #[test]
    fn responses_requests_read_their_own_fields() {
        let r = parse(
            Api::Responses,
            json!({"model": "gpt-5", "max_output_tokens": 10, "stream": true,
                "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}),
        )
        .unwrap();
        assert_eq!(r.max_tokens, Some(10));
        assert!(r.stream && r.has_images && !r.has_tools);
        let text = parse(Api::Responses, json!({"model": "gpt-5", "input": "hi"})).unwrap();
        assert!(!text.has_images);
        // count_tokens never streams and has no output cap.
        let c = parse(
            Api::CountTokens,
            json!({"model": "m", "stream": true, "max_tokens": 5, "messages": []}),
        )
        .unwrap();
        assert!(!c.stream);
        assert_eq!(c.max_tokens, None);
    }

    #[test]
    fn tools_billed_per_use_are_named() {
        let m = parse(
            Api::Messages,
            json!({"model": "m", "tools": [{"name": "f", "input_schema": {}},
                {"type": "bash_20250124", "name": "bash"},
                {"type": "web_search_20250305", "name": "web_search"}]}),
        )
        .unwrap();
        assert_eq!(m.billed_tools, ["web_search_20250305"]);
        let r = parse(
            Api::Responses,
            json!({"model": "m", "tools": [{"type": "function", "name": "f"}, {"type": "file_search"}]}),
        )
        .unwrap();
        assert_eq!(r.billed_tools, ["file_search"]);
    }

    #[test]
    fn bad_bodies_say_what_to_fix() {
        assert!(matches!(
            NativeRequest::parse(Api::Messages, b"{"),
            Err(BodyError::NotJson(_))
        ));
        assert_eq!(
            parse(Api::Messages, json!([1])).unwrap_err(),
            BodyError::NotObject
        );
        assert_eq!(
            parse(Api::Messages, json!({"max_tokens": 1})).unwrap_err(),
            BodyError::NoModel
        );
        assert_eq!(
            parse(Api::Messages, json!({"model": "m", "max_tokens": -1})).unwrap_err(),
            BodyError::BadNumber("max_tokens")
        );
        assert_eq!(
            parse(Api::Responses, json!({"model": "m", "stream": "yes"})).unwrap_err(),
            BodyError::BadStream
        );
    }

    #[test]
    fn answers_report_usage_in_each_apis_shape() {
        let m = json!({"usage": {"input_tokens": 5, "cache_read_input_tokens": 3,
            "cache_creation_input_tokens": 2, "output_tokens": 7}});
        assert_eq!(
            answer_usage(Api::Messages, m.to_string().as_bytes()),
            Some(Usage {
                input_tokens: 10,
                output_tokens: 7,
                cached_tokens: 3
            })
        );
        let r = json!({"usage": {"input_tokens": 9, "output_tokens": 4,
            "input_tokens_details": {"cached_tokens": 2}}});
        assert_eq!(
            answer_usage(Api::Responses, r.to_string().as_bytes()),
            Some(Usage {
                input_tokens: 9,
                output_tokens: 4,
                cached_tokens: 2
            })
        );
        assert_eq!(answer_usage(Api::Responses, br#"{"usage": null}"#), None);
        assert_eq!(
            error_code(br#"{"type":"error","error":{"type":"overloaded_error","message":"x"}}"#),
            Some("overloaded_error".into())
        );
    }

    #[test]
    fn an_anthropic_stream_is_metered_from_start_and_delta() {
        let mut m = StreamMeter::new(Api::Messages);
        m.observe(
            Some("message_start"),
            r#"{"type":"message_start","message":{"usage":{"input_tokens":11,"output_tokens":1}}}"#,
        );
        m.observe(Some("ping"), r#"{"type":"ping"}"#);
        m.observe(
            Some("content_block_delta"),
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hello"}}"#,
        );
        assert!(!m.complete);
        m.observe(
            Some("message_delta"),
            r#"{"type":"message_delta","delta":{},"usage":{"output_tokens":3}}"#,
        );
        m.observe(Some("message_stop"), r#"{"type":"message_stop"}"#);
        assert!(m.complete && !m.failed);
        assert_eq!(m.output_bytes, 5);
        assert_eq!(
            m.usage(),
            Some(Usage {
                input_tokens: 11,
                output_tokens: 3,
                cached_tokens: 0
            })
        );
        assert_eq!(m.settled(99), (m.usage().unwrap(), false));
        assert!(
            m.error_event("api_error", "cut")
                .starts_with("event: error\ndata: {")
        );
    }

    #[test]
    fn a_stream_cut_before_its_report_is_charged_an_estimate() {
        let mut m = StreamMeter::new(Api::Messages);
        m.observe(
            None,
            r#"{"type":"message_start","message":{"usage":{"input_tokens":11,"output_tokens":1}}}"#,
        );
        m.observe(
            None,
            r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"0123456789abcdef"}}"#,
        );
        let (u, estimated) = m.settled(500);
        assert!(estimated);
        assert_eq!((u.input_tokens, u.output_tokens), (11, 4));
        let (u, estimated) = StreamMeter::new(Api::Responses).settled(500);
        assert!(estimated);
        assert_eq!((u.input_tokens, u.output_tokens), (500, 0));
    }

    #[test]
    fn a_responses_stream_is_metered_from_its_terminal_event() {
        let mut m = StreamMeter::new(Api::Responses);
        m.observe(
            Some("response.output_text.delta"),
            r#"{"type":"response.output_text.delta","delta":"abc","sequence_number":4}"#,
        );
        assert_eq!(m.usage(), None);
        m.observe(
            Some("response.completed"),
            r#"{"type":"response.completed","sequence_number":5,"response":{"usage":{"input_tokens":2,"output_tokens":3}}}"#,
        );
        assert!(m.complete);
        assert_eq!(m.output_bytes, 3);
        assert_eq!(m.usage().map(|u| u.output_tokens), Some(3));
        assert!(
            m.error_event("server_error", "x")
                .contains("\"sequence_number\":6")
        );
    }
}
