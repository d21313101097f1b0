//! JSON in and out: request bodies, grant and config text, and the opaque state blob.

use crate::reply::{bad_request, bad_response};
use crate::{Failure, Rejection};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Parses a request body that must be a JSON object.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, Rejection> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(bad_request("the request body must be a JSON object")),
        Err(e) => Err(bad_request(format!(
            "the request body is not valid JSON: {e}"
        ))),
    }
}

/// Parses JSON text given by the host (grant, config); empty text is `{}`.
pub fn parse_text(text: &str) -> Result<Value, serde_json::Error> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_str(text)
}

/// Parses an upstream response body.
pub fn parse_response<T: DeserializeOwned>(body: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(body).map_err(|e| {
        bad_response(format!(
            "the provider's response is not what was expected: {e}"
        ))
    })
}

/// Encodes the state handed back by the host.
pub fn encode_state<T: Serialize>(state: &T) -> Vec<u8> {
    // Serialising plain structs of strings and numbers cannot fail.
    serde_json::to_vec(state).unwrap_or_default()
}

/// Decodes the state a previous call returned.
pub fn decode_state<T: DeserializeOwned>(state: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(state)
        .map_err(|e| bad_response(format!("the stream state is corrupt: {e}")))
}

/// A string field of an object.
pub fn str_field<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key).and_then(Value::as_str)
}

/// A boolean field of an object, `false` when absent.
pub fn flag(map: &Map<String, Value>, key: &str) -> bool {
    map.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// `Value::pointer` for an object's map (`/a/b` looks up `a`, then `/b` inside it).
pub fn pointer<'a>(map: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let path = path.strip_prefix('/')?;
    match path.split_once('/') {
        Some((first, rest)) => map.get(first)?.pointer(&format!("/{rest}")),
        None => map.get(path),
    }
}
