//! Reading OpenAI chat requests: message content, images, stop sequences, tools and limits.

use crate::Rejection;
use crate::reply::{bad_request, unsupported};
use serde_json::{Map, Value};

/// One piece of a message's content.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    /// An image given as a `data:` URL.
    InlineImage {
        media_type: String,
        data: String,
    },
    /// An image given by an `http(s)` URL.
    ImageUrl(String),
}

/// The parts of a message's `content` (a string, an array of parts, or null).
pub fn parts(content: Option<&Value>) -> Result<Vec<Part>, Rejection> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![Part::Text(s.clone())]),
        Some(Value::Array(items)) => items.iter().map(part).collect(),
        Some(_) => Err(bad_request(
            "message content must be a string or an array of parts",
        )),
    }
}

fn part(item: &Value) -> Result<Part, Rejection> {
    match item.get("type").and_then(Value::as_str) {
        Some("text") => Ok(Part::Text(
            item.get("text")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        )),
        Some("image_url") => {
            let url = item
                .get("image_url")
                .and_then(|i| i.get("url").or(Some(i)))
                .and_then(Value::as_str)
                .ok_or_else(|| bad_request("image_url part without a url"))?;
            image(url)
        }
        Some(other) => Err(unsupported(format!(
            "content parts of type {other:?} are not supported"
        ))),
        None => Err(bad_request("content part without a type")),
    }
}

fn image(url: &str) -> Result<Part, Rejection> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| bad_request("malformed data URL"))?;
        let media_type = meta
            .strip_suffix(";base64")
            .ok_or_else(|| bad_request("data URLs must be base64"))?;
        return Ok(Part::InlineImage {
            media_type: media_type.to_owned(),
            data: data.to_owned(),
        });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(Part::ImageUrl(url.to_owned()));
    }
    Err(bad_request("image URLs must be data: or http(s): URLs"))
}

/// The concatenated text of a message's content.
pub fn text(content: Option<&Value>) -> Result<String, Rejection> {
    let mut out = String::new();
    for p in parts(content)? {
        match p {
            Part::Text(t) => {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(&t);
            }
            _ => return Err(unsupported("images are only allowed in user messages")),
        }
    }
    Ok(out)
}

/// `messages`, which must be a non-empty array of objects with a role.
pub fn messages(body: &Map<String, Value>) -> Result<Vec<&Map<String, Value>>, Rejection> {
    let list = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| bad_request("messages must be an array"))?;
    if list.is_empty() {
        return Err(bad_request("messages must not be empty"));
    }
    list.iter()
        .map(|m| {
            m.as_object()
                .filter(|o| o.get("role").and_then(Value::as_str).is_some())
                .ok_or_else(|| bad_request("every message must be an object with a role"))
        })
        .collect()
}

/// The role of a message (validated by [`messages`]).
pub fn role(message: &Map<String, Value>) -> &str {
    message
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `stop` as a list (a string or an array of strings).
pub fn stop(body: &Map<String, Value>) -> Vec<String> {
    match body.get("stop") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// `max_completion_tokens`, else `max_tokens`.
pub fn max_tokens(body: &Map<String, Value>) -> Option<u64> {
    body.get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_u64)
}

/// A function tool: name, description, JSON-schema parameters.
#[derive(Debug, Clone)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    pub parameters: Value,
}

/// `tools` (only `type: function` tools exist in chat completions).
pub fn tools(body: &Map<String, Value>) -> Result<Vec<Tool>, Rejection> {
    let Some(list) = body.get("tools").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    list.iter()
        .map(|t| {
            let f = t
                .get("function")
                .ok_or_else(|| unsupported("only function tools are supported"))?;
            Ok(Tool {
                name: f
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad_request("a tool function needs a name"))?
                    .to_owned(),
                description: f
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                parameters: f
                    .get("parameters")
                    .cloned()
                    .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
            })
        })
        .collect()
}

/// `tool_choice`, normalised.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolChoice {
    Auto,
    None,
    Required,
    Function(String),
}

/// Reads `tool_choice` (absent means auto).
pub fn tool_choice(body: &Map<String, Value>) -> Result<ToolChoice, Rejection> {
    match body.get("tool_choice") {
        None | Some(Value::Null) => Ok(ToolChoice::Auto),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            other => Err(bad_request(format!("unknown tool_choice {other:?}"))),
        },
        Some(v) => v
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(|n| ToolChoice::Function(n.to_owned()))
            .ok_or_else(|| bad_request("tool_choice must name a function")),
    }
}

/// An assistant message's `tool_calls`: (id, name, arguments JSON text).
pub fn tool_calls(message: &Map<String, Value>) -> Vec<(String, String, String)> {
    message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(|calls| {
            calls
                .iter()
                .filter_map(|c| {
                    let f = c.get("function")?;
                    Some((
                        c.get("id")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        f.get("name").and_then(Value::as_str)?.to_owned(),
                        f.get("arguments")
                            .and_then(Value::as_str)
                            .unwrap_or("{}")
                            .to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Parses tool-call arguments (JSON text) into a value; invalid JSON is kept as a string.
pub fn arguments(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}
