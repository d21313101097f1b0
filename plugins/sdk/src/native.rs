//! A provider's own API served natively (`POST /v1/messages`, `POST /v1/responses`): the host has
//! already checked the request against the grant and rewritten its model and output cap, so the
//! plugin maps as little as it must: the URL, the protocol headers, and the body untouched. The
//! answer comes back to the app as the provider sent it (`ResponseMode::Raw`); the host meters it.

use crate::{PrepareRequest, ResponseMode, UpstreamCall};

/// A `POST` of the request body to `url`, with `content-type: application/json`, the given
/// fixed headers, and those of the app's headers whose names are in `forwarded` (protocol
/// options such as `anthropic-beta`; a fixed header of the same name gives way to the app's).
pub fn call(
    req: &PrepareRequest,
    url: String,
    fixed: &[(&str, &str)],
    forwarded: &[&str],
) -> UpstreamCall {
    let from_app = |name: &str| {
        req.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    for (name, value) in fixed {
        let value = from_app(name).unwrap_or_else(|| (*value).to_owned());
        headers.push(((*name).to_owned(), value));
    }
    for name in forwarded {
        if fixed.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            continue;
        }
        if let Some(value) = from_app(name) {
            headers.push(((*name).to_owned(), value));
        }
    }
    UpstreamCall {
        method: "POST".into(),
        url,
        headers,
        body: req.body.clone(),
        response_mode: ResponseMode::Raw,
        state: Vec::new(),
        charges: Vec::new(),
    }
}
