//! Building rejections, failures and results: the status mapping every plugin shares.

use crate::{Failure, FailureKind, Finished, Rejection, Usage};
use serde_json::Value;

/// A rejection with a machine-readable `code`.
pub fn reject(status: u16, code: &str, message: impl Into<String>) -> Rejection {
    Rejection {
        status,
        code: code.to_owned(),
        message: message.into(),
        details: None,
    }
}

/// A rejection carrying JSON details (the limit that was hit, the allowed values, ...).
pub fn reject_with(
    status: u16,
    code: &str,
    message: impl Into<String>,
    details: Value,
) -> Rejection {
    Rejection {
        details: Some(details.to_string()),
        ..reject(status, code, message)
    }
}

/// 400 `invalid_request`.
pub fn bad_request(message: impl Into<String>) -> Rejection {
    reject(400, "invalid_request", message)
}

/// 400 `unsupported_parameter`: the provider cannot do what the request asks.
pub fn unsupported(message: impl Into<String>) -> Rejection {
    reject(400, "unsupported_parameter", message)
}

/// 404 `unsupported_action`.
pub fn unsupported_action(action: &str) -> Rejection {
    reject(
        404,
        "unsupported_action",
        format!("this plugin does not support the action {action:?}"),
    )
}

/// 400 `invalid_config`: the instance configuration is unusable.
pub fn bad_config(message: impl Into<String>) -> Rejection {
    reject(400, "invalid_config", message)
}

/// A failure with no code and no retry hint.
pub fn failure(status: u16, kind: FailureKind, message: impl Into<String>) -> Failure {
    Failure {
        status,
        kind,
        code: None,
        message: message.into(),
        retry_after_seconds: None,
    }
}

/// 502 `bad-response`: the provider answered something this plugin cannot read.
pub fn bad_response(message: impl Into<String>) -> Failure {
    failure(502, FailureKind::BadResponse, message)
}

/// Maps an upstream error status onto what the app sees. The owner's credential being refused
/// (401) is the gateway's problem, not the app's: it becomes a 502.
pub fn upstream_failure(
    upstream_status: u16,
    code: Option<String>,
    message: String,
    headers: &[(String, String)],
) -> Failure {
    let (status, kind) = match upstream_status {
        400 | 422 => (upstream_status, FailureKind::InvalidRequest),
        401 => (502, FailureKind::Authentication),
        402 | 403 => (403, FailureKind::Permission),
        404 => (404, FailureKind::NotFound),
        408 | 504 => (504, FailureKind::Upstream),
        413 => (413, FailureKind::InvalidRequest),
        429 => (429, FailureKind::RateLimited),
        503 | 529 => (503, FailureKind::Overloaded),
        405..=499 => (upstream_status, FailureKind::InvalidRequest),
        _ => (502, FailureKind::Upstream),
    };
    let retry_after_seconds = match kind {
        FailureKind::RateLimited | FailureKind::Overloaded => retry_after(headers),
        _ => None,
    };
    Failure {
        status,
        kind,
        code,
        message,
        retry_after_seconds,
    }
}

/// The value of a header, by case-insensitive name.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// `retry-after` in seconds, when it is given as a number.
pub fn retry_after(headers: &[(String, String)]) -> Option<u32> {
    header(headers, "retry-after").and_then(|v| v.trim().parse().ok())
}

/// A finished JSON body.
pub fn finished(status: u16, body: &Value, usage: Option<Usage>) -> Finished {
    Finished {
        status,
        body: body.to_string().into_bytes(),
        usage,
    }
}

/// `application/json` content type, the header every JSON upstream call carries.
pub fn json_headers() -> Vec<(String, String)> {
    vec![("content-type".to_owned(), "application/json".to_owned())]
}

/// A success status.
pub fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}
