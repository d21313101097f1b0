//! What a request body says about itself, read once for the policy: the model, streaming, tool
//! definitions, image inputs and the output cap it asks for. One reading for every shape the
//! gateway sees: OpenAI chat completions, embeddings and Responses, Anthropic Messages, and a
//! provider's native body passed through. A field of an unexpected type states nothing (the
//! provider refuses the body; the policy never reads more into it than is there).

use serde_json::Value;

/// The output-cap fields of OpenAI chat completions, newest first.
pub const CHAT_CAP_FIELDS: &[&str] = &["max_completion_tokens", "max_tokens"];
/// Every output-cap field a provider's native body may use (Responses, chat, Anthropic).
pub const ANY_CAP_FIELDS: &[&str] = &["max_output_tokens", "max_completion_tokens", "max_tokens"];

/// The facts a JSON body states.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyFacts {
    /// `model`, at most 200 characters.
    pub model: Option<String>,
    /// `stream: true`.
    pub stream: bool,
    /// A non-empty `tools` array, or `functions`.
    pub has_tools: bool,
    /// An image among the messages or input items (or their content blocks).
    pub has_images: bool,
    /// The first of `cap_fields` present as a whole number (saturated to `u32`).
    pub max_tokens: Option<u32>,
}

impl BodyFacts {
    /// Reads the facts of `body` (anything but an object states nothing).
    pub fn of(body: &Value, cap_fields: &[&str]) -> BodyFacts {
        let Some(map) = body.as_object() else {
            return BodyFacts::default();
        };
        BodyFacts {
            model: map
                .get("model")
                .and_then(Value::as_str)
                .map(|m| m.chars().take(200).collect()),
            stream: map.get("stream").and_then(Value::as_bool) == Some(true),
            has_tools: map
                .get("tools")
                .and_then(Value::as_array)
                .is_some_and(|t| !t.is_empty())
                || map.contains_key("functions"),
            has_images: any_image(map.get("messages")) || any_image(map.get("input")),
            max_tokens: cap_fields.iter().find_map(|f| {
                map.get(*f)
                    .and_then(Value::as_u64)
                    .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
            }),
        }
    }
}

fn image_block(v: &Value) -> bool {
    matches!(
        v.get("type").and_then(Value::as_str),
        Some("image" | "input_image" | "image_url")
    )
}

/// Whether any item (a message or an input item), or any content block inside one (a tool
/// result's content included, one level further down), is an image.
pub fn any_image(items: Option<&Value>) -> bool {
    let Some(items) = items.and_then(Value::as_array) else {
        return false;
    };
    let blocks_have_image = |v: &Value| {
        v.get("content")
            .and_then(Value::as_array)
            .is_some_and(|blocks| blocks.iter().any(image_block))
    };
    items.iter().any(|item| {
        image_block(item)
            || item
                .get("content")
                .and_then(Value::as_array)
                .is_some_and(|blocks| {
                    blocks
                        .iter()
                        .any(|b| image_block(b) || blocks_have_image(b))
                })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_shape_states_its_facts() {
        let chat = json!({"model": "gpt-4o", "stream": true, "max_completion_tokens": 9, "max_tokens": 5,
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
            "tools": [{"type": "function"}]});
        assert_eq!(
            BodyFacts::of(&chat, CHAT_CAP_FIELDS),
            BodyFacts {
                model: Some("gpt-4o".into()),
                stream: true,
                has_tools: true,
                has_images: true,
                max_tokens: Some(9),
            }
        );
        let responses =
            json!({"model": "o3", "max_output_tokens": 7, "input": [{"type": "input_image"}]});
        let f = BodyFacts::of(&responses, ANY_CAP_FIELDS);
        assert_eq!(
            (f.max_tokens, f.has_images, f.stream),
            (Some(7), true, false)
        );
        assert_eq!(BodyFacts::of(&responses, CHAT_CAP_FIELDS).max_tokens, None);
        let nested = json!({"messages": [{"role": "user", "content": [
            {"type": "tool_result", "content": [{"type": "image", "source": {}}]}]}]});
        assert!(BodyFacts::of(&nested, ANY_CAP_FIELDS).has_images);
        assert!(BodyFacts::of(&json!({"functions": []}), ANY_CAP_FIELDS).has_tools);
        assert!(!BodyFacts::of(&json!({"tools": []}), ANY_CAP_FIELDS).has_tools);
    }

    #[test]
    fn odd_types_and_non_objects_state_nothing() {
        assert_eq!(
            BodyFacts::of(&json!([1, 2]), ANY_CAP_FIELDS),
            BodyFacts::default()
        );
        let odd =
            json!({"model": 5, "stream": "yes", "tools": {}, "max_tokens": -1, "messages": "hi"});
        assert_eq!(BodyFacts::of(&odd, ANY_CAP_FIELDS), BodyFacts::default());
        let big = json!({"max_tokens": u64::MAX, "model": "m".repeat(500)});
        let f = BodyFacts::of(&big, ANY_CAP_FIELDS);
        assert_eq!(f.max_tokens, Some(u32::MAX));
        assert_eq!(f.model.map(|m| m.len()), Some(200));
    }
}
