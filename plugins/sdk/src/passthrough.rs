//! Native pass-through (`/r/{plugin}/...`): only declared paths, no traversal, body untouched.

use crate::reply::{bad_request, reject};
use crate::{PrepareRequest, Rejection, ResponseMode, UpstreamCall};

/// Whether `path` (without query) matches one of the patterns: an exact path, or a prefix ending
/// in `/*` matching anything below it.
pub fn path_allowed(path: &str, patterns: &[&str]) -> bool {
    let path = path.split('?').next().unwrap_or_default();
    patterns.iter().any(|p| match p.strip_suffix("/*") {
        Some(prefix) => path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/') && rest.len() > 1),
        None => path == *p,
    })
}

/// A path is safe when it is absolute, has no empty, `.` or `..` segment, no encoded dot or
/// slash, no backslash and no control character.
pub fn path_is_clean(path: &str) -> bool {
    let bare = path.split('?').next().unwrap_or_default();
    let lower = path.to_ascii_lowercase();
    bare.starts_with('/')
        && !bare[1..]
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        && !lower.contains("%2e")
        && !lower.contains("%2f")
        && !lower.contains("%5c")
        && !path.contains('\\')
        && !path.contains('#')
        && !path.chars().any(char::is_control)
}

/// Builds a pass-through call to `origin` + path, keeping the method, body and content headers.
pub fn call(
    req: &PrepareRequest,
    origin: &str,
    patterns: &[&str],
) -> Result<UpstreamCall, Rejection> {
    let path = req
        .path
        .as_deref()
        .ok_or_else(|| bad_request("pass-through needs a path"))?;
    if !path_is_clean(path) {
        return Err(bad_request(
            "the pass-through path is not a clean absolute path",
        ));
    }
    if !path_allowed(path, patterns) {
        return Err(reject(
            403,
            "path_not_allowed",
            format!("{path} is not a pass-through path of this plugin"),
        ));
    }
    let method = req.method.to_ascii_uppercase();
    if !matches!(method.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE") {
        return Err(bad_request(format!("method {method} is not allowed")));
    }
    let headers = req
        .headers
        .iter()
        .filter(|(n, _)| {
            [
                "content-type",
                "accept",
                "accept-language",
                "idempotency-key",
            ]
            .iter()
            .any(|k| n.eq_ignore_ascii_case(k))
        })
        .cloned()
        .collect();
    Ok(UpstreamCall {
        method,
        url: format!("{origin}{path}"),
        headers,
        body: req.body.clone(),
        response_mode: ResponseMode::Raw,
        state: Vec::new(),
        charges: Vec::new(),
    })
}
