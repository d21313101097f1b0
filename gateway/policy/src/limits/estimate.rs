//! Conservative token estimates for reservations, before the provider reports real usage.
//!
//! The estimate is a heuristic, deliberately on the high side for English text: one token
//! per [`CHARS_PER_TOKEN`] bytes of UTF-8 text (bytes rather than characters, so
//! non-Latin scripts count more), [`TOKENS_PER_MESSAGE`] per chat message, and a flat
//! [`IMAGE_PART_TOKENS`] per image part (its URL or base64 data is not counted as text).
//! The error only matters until settlement replaces the reservation by the real usage.

use serde_json::Value;

use super::Usage;

/// Bytes of text per estimated token.
pub const CHARS_PER_TOKEN: u64 = 4;
/// Overhead per chat message (role, separators).
pub const TOKENS_PER_MESSAGE: u64 = 4;
/// Flat estimate for one image input part.
pub const IMAGE_PART_TOKENS: u64 = 1_000;
/// Most choices (`n`) an estimate multiplies the output by.
const MAX_CHOICES: u64 = 128;

/// Request fields whose content is sent to the model as input.
const INPUT_FIELDS: [&str; 8] = [
    "input",
    "prompt",
    "tools",
    "functions",
    "tool_choice",
    "response_format",
    "instructions",
    "system",
];

#[derive(Default)]
struct Tally {
    text_bytes: u64,
    tokens: u64,
}

fn is_image_part(part: &serde_json::Map<String, Value>) -> bool {
    match part.get("type").and_then(Value::as_str) {
        Some(kind) => matches!(kind, "image_url" | "input_image" | "image"),
        None => part.contains_key("image_url"),
    }
}

/// Strings (and object keys) count as text; numbers (token ids in `input`) as one token
/// each; image parts as [`IMAGE_PART_TOKENS`].
fn walk(value: &Value, tally: &mut Tally) {
    match value {
        Value::String(s) => tally.text_bytes = tally.text_bytes.saturating_add(s.len() as u64),
        Value::Number(_) => tally.tokens = tally.tokens.saturating_add(1),
        Value::Bool(_) | Value::Null => {}
        Value::Array(items) => items.iter().for_each(|v| walk(v, tally)),
        Value::Object(map) if is_image_part(map) => {
            tally.tokens = tally.tokens.saturating_add(IMAGE_PART_TOKENS)
        }
        Value::Object(map) => {
            for (k, v) in map {
                tally.text_bytes = tally.text_bytes.saturating_add(k.len() as u64);
                walk(v, tally);
            }
        }
    }
}

/// Estimated input tokens of an OpenAI-style chat or embeddings request body: every
/// message (content parts, tool calls, names), `input` (strings or token-id arrays),
/// `prompt`, tool and function definitions, `tool_choice`, `response_format`,
/// `instructions` and `system`.
pub fn estimate_prompt_tokens(body: &Value) -> u64 {
    let mut tally = Tally::default();
    if let Some(messages) = body.get("messages").and_then(Value::as_array) {
        for message in messages {
            tally.tokens = tally.tokens.saturating_add(TOKENS_PER_MESSAGE);
            walk(message, &mut tally);
        }
    }
    for field in INPUT_FIELDS {
        if let Some(v) = body.get(field) {
            walk(v, &mut tally);
        }
    }
    tally
        .tokens
        .saturating_add(tally.text_bytes.div_ceil(CHARS_PER_TOKEN))
}

/// The usage to reserve for a request: estimated input, and as output the max tokens
/// that will be sent upstream (or `default_max_output` when none is; pass 0 for
/// embeddings), times the number of choices `n`.
pub fn estimate_request(
    body: &Value,
    max_tokens_after_clamp: Option<u32>,
    default_max_output: u32,
) -> Usage {
    let choices = body
        .get("n")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .clamp(1, MAX_CHOICES);
    let per_choice = u64::from(max_tokens_after_clamp.unwrap_or(default_max_output));
    Usage {
        input_tokens: estimate_prompt_tokens(body),
        output_tokens: per_choice * choices,
        cached_tokens: 0,
    }
}

/// Estimated output tokens of a stream that ended without a usage report, from the UTF-8
/// byte length of the text (content, tool-call arguments) streamed to the client.
pub fn estimate_output_from_text(chars: usize) -> u64 {
    (chars as u64).div_ceil(CHARS_PER_TOKEN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prompt_estimates() {
        let cases: Vec<(Value, u64)> = vec![
            (json!({}), 0),
            (json!({"model": "gpt-4o", "temperature": 0.5}), 0),
            // "role"(4) "user"(4) "content"(7) "abcdefgh"(8) = 23 bytes -> 6, + 4 per message
            (
                json!({"messages": [{"role": "user", "content": "abcdefgh"}]}),
                10,
            ),
            (
                json!({"messages": [{"role": "user", "content": ""}, {"role": "user", "content": ""}]}),
                8 + 4 + 4,
            ),
            // "role" "user" "content" "type" "text" "text" "hi" = 29 -> 8; + image + message
            (
                json!({"messages": [{"role": "user", "content": [
                    {"type": "text", "text": "hi"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
                ]}]}),
                8 + 1_000 + 4,
            ),
            (json!({"input": "abcd"}), 1),
            (json!({"input": ["abcd", "abcde"]}), 3),
            (json!({"input": [1, 2, 3]}), 3),
            (json!({"input": [[1, 2], [3]]}), 3),
            (json!({"prompt": "abcdefgh"}), 2),
            // "type"(4) "function"(8) "function"(8) "name"(4) "f"(1) = 25 -> 7
            (
                json!({"tools": [{"type": "function", "function": {"name": "f"}}]}),
                7,
            ),
            (
                json!({"messages": [{"content": [{"type": "image", "source": {"data": "x".repeat(10_000)}}]}]}),
                1_000 + 4 + 2,
            ),
        ];
        for (body, want) in cases {
            assert_eq!(estimate_prompt_tokens(&body), want, "{body}");
        }
    }

    #[test]
    fn text_is_counted_in_bytes() {
        let ascii = estimate_prompt_tokens(&json!({"input": "aaaaaaaa"}));
        let cjk = estimate_prompt_tokens(&json!({"input": "日本語日本語日本"}));
        assert_eq!((ascii, cjk), (2, 6));
    }

    #[test]
    fn request_estimates() {
        let body = json!({"messages": [{"role": "user", "content": "abcdefgh"}], "n": 3});
        assert_eq!(
            estimate_request(&body, Some(100), 4096),
            Usage {
                input_tokens: 10,
                output_tokens: 300,
                cached_tokens: 0
            }
        );
        let body = json!({"input": "abcd"});
        assert_eq!(estimate_request(&body, None, 0).output_tokens, 0);
        assert_eq!(estimate_request(&body, None, 512).output_tokens, 512);
        assert_eq!(
            estimate_request(&json!({"n": 100_000}), Some(1), 0).output_tokens,
            128
        );
        assert_eq!(
            estimate_request(&json!({"n": 0}), Some(5), 0).output_tokens,
            5
        );
    }

    #[test]
    fn output_from_text() {
        let cases = [(0, 0), (1, 1), (4, 1), (5, 2), (4_000, 1_000)];
        for (chars, want) in cases {
            assert_eq!(estimate_output_from_text(chars), want, "{chars}");
        }
    }
}
