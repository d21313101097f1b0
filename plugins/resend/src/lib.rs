//! The `resend` plugin, a non-LLM resource: action "send-email" posts to Resend's
//! `POST /emails`, within the grant's `resources.resend` limits:
//!
//! ```json
//! {"resources": {"resend": {"sender_domains": ["example.com"], "recipient_domains": ["example.org"],
//!                           "max_recipients": 5, "messages_per_day": 100}}}
//! ```
//!
//! `sender_domains` and `recipient_domains` accept `*.domain` for subdomains; a missing list means
//! no restriction. `messages_per_day` is counted by the host (the descriptor's "messages" quota;
//! each call charges 1).

use pairgate_plugin_sdk::grant::Grant;
use pairgate_plugin_sdk::json::parse_object;
use pairgate_plugin_sdk::oa;
use pairgate_plugin_sdk::reply::{
    bad_request, header, is_success, json_headers, reject_with, unsupported_action,
    upstream_failure,
};
use pairgate_plugin_sdk::{
    Charge, Credential, Descriptor, Failure, Finished, Period, Plugin, PrepareRequest, Quota,
    Rejection, ResponseMode, UpstreamCall, UpstreamResponse,
};
use serde_json::{Value, json};

struct Resend;

impl Plugin for Resend {
    fn describe(_config: &str) -> Result<Descriptor, Rejection> {
        Ok(Descriptor {
            id: "resend".into(),
            display_name: "Resend".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            actions: vec!["send-email".into()],
            models: Vec::new(),
            hosts: vec!["api.resend.com".into()],
            credential: Credential::Bearer,
            passthrough: Vec::new(),
            quotas: vec![Quota {
                name: "messages".into(),
                grant_field: "/resources/resend/messages_per_day".into(),
                period: Period::Day,
            }],
        })
    }

    fn prepare(req: PrepareRequest) -> Result<UpstreamCall, Rejection> {
        if req.action != "send-email" {
            return Err(unsupported_action(&req.action));
        }
        let grant = Grant::parse(&req.grant)?;
        let limits = grant.resource("resend").ok_or_else(|| {
            reject_with(
                403,
                "resource_not_granted",
                "this grant does not include sending e-mail",
                json!({"resource": "resend"}),
            )
        })?;
        let body = parse_object(&req.body)?;
        let from = body
            .get("from")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_request("from is required"))?;
        if body.get("subject").and_then(Value::as_str).is_none() {
            return Err(bad_request("subject is required"));
        }
        if !["html", "text", "template"]
            .iter()
            .any(|k| body.contains_key(*k))
        {
            return Err(bad_request("html or text is required"));
        }
        let sender = domain_of(from)?;
        if let Some(allowed) = list(limits, "sender_domains")
            && !allowed.iter().any(|p| domain_matches(p, &sender))
        {
            return Err(reject_with(
                403,
                "sender_domain_not_allowed",
                format!("this grant may not send from {sender}"),
                json!({"domain": sender, "allowed": allowed}),
            ));
        }
        let mut recipients = Vec::new();
        for key in ["to", "cc", "bcc"] {
            match body.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) => recipients.push(s.as_str()),
                Some(Value::Array(a)) => {
                    for r in a {
                        recipients.push(
                            r.as_str()
                                .ok_or_else(|| bad_request(format!("{key} must hold strings")))?,
                        );
                    }
                }
                Some(_) => return Err(bad_request(format!("{key} must be a string or an array"))),
            }
        }
        if recipients.is_empty() {
            return Err(bad_request("to is required"));
        }
        if let Some(max) = limits.get("max_recipients").and_then(Value::as_u64)
            && recipients.len() as u64 > max
        {
            return Err(reject_with(
                403,
                "too_many_recipients",
                format!("this grant allows at most {max} recipients per message"),
                json!({"max_recipients": max, "recipients": recipients.len()}),
            ));
        }
        if let Some(allowed) = list(limits, "recipient_domains") {
            for r in &recipients {
                let domain = domain_of(r)?;
                if !allowed.iter().any(|p| domain_matches(p, &domain)) {
                    return Err(reject_with(
                        403,
                        "recipient_domain_not_allowed",
                        format!("this grant may not send to {domain}"),
                        json!({"domain": domain, "allowed": allowed}),
                    ));
                }
            }
        }
        let mut headers = json_headers();
        if let Some(key) = header(&req.headers, "idempotency-key") {
            headers.push(("idempotency-key".into(), key.into()));
        }
        Ok(UpstreamCall {
            method: "POST".into(),
            url: "https://api.resend.com/emails".into(),
            headers,
            body: req.body,
            response_mode: ResponseMode::Json,
            state: Vec::new(),
            charges: vec![Charge {
                quota: "messages".into(),
                amount: 1,
            }],
        })
    }

    fn finish(resp: UpstreamResponse) -> Result<Finished, Failure> {
        if is_success(resp.status) {
            return Ok(Finished {
                status: resp.status,
                body: resp.body,
                usage: None,
            });
        }
        let parsed: Option<Value> = serde_json::from_slice(&resp.body).ok();
        let message = parsed
            .as_ref()
            .and_then(|v| v.get("message"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| oa::fallback_message(&resp));
        let code = parsed
            .as_ref()
            .and_then(|v| v.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Err(upstream_failure(resp.status, code, message, &resp.headers))
    }
}

fn list(limits: &Value, key: &str) -> Option<Vec<String>> {
    limits.get(key).and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_ascii_lowercase)
            .collect()
    })
}

/// The domain of `addr@domain` or `Name <addr@domain>`, lower case.
fn domain_of(address: &str) -> Result<String, Rejection> {
    let addr = match (address.rfind('<'), address.rfind('>')) {
        (Some(open), Some(close)) if open < close => &address[open + 1..close],
        _ => address,
    };
    let (local, domain) = addr
        .trim()
        .rsplit_once('@')
        .ok_or_else(|| bad_request(format!("{address:?} is not an e-mail address")))?;
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let valid = !local.is_empty()
        && domain.contains('.')
        && domain
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !valid {
        return Err(bad_request(format!("{address:?} is not an e-mail address")));
    }
    Ok(domain)
}

/// `example.com` matches exactly; `*.example.com` matches its subdomains.
fn domain_matches(pattern: &str, domain: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(parent) => domain
            .strip_suffix(parent)
            .is_some_and(|rest| rest.ends_with('.')),
        None => pattern == domain,
    }
}

pairgate_plugin_sdk::plugin!(Resend);
