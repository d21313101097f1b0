//! Sending a plugin's prepared call: the pooled client (address-checked unless the provider
//! allows private addresses, see `resolve.rs`), the host re-check of the URL, the origin
//! override, stripping any auth header the plugin set, and injecting the credential at the last
//! moment (as a sensitive header value, never logged). The value is handed back with
//! the request as a [`Redactor`], so the provider's answer can be cleaned of it (providers echo a
//! rejected key in their error text) before a plugin or the app sees a byte of it.

use pairgate_custody::{ExposeSecret, SecretString};
use pairgate_plugin_host::{Credential, UpstreamCall, check_upstream, strip_auth_headers};

use crate::base::error::ApiError;
use crate::engine::providers::Provider;
use crate::state::AppState;

/// Why the upstream could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the provider did not answer in time")]
    Timeout,
    #[error("the provider could not be reached")]
    Connect,
    #[error("the provider connection failed")]
    Other,
    /// The provider's host resolves only to addresses it may not reach (see `resolve.rs`).
    #[error("{0}")]
    Refused(crate::engine::resolve::AddressRefused),
}

impl From<reqwest::Error> for SendError {
    fn from(e: reqwest::Error) -> Self {
        if let Some(refused) = crate::engine::resolve::refusal(&e) {
            SendError::Refused(refused)
        } else if e.is_timeout() {
            SendError::Timeout
        } else if e.is_connect() {
            SendError::Connect
        } else {
            SendError::Other
        }
    }
}

/// What replaces the credential in anything the provider sends back.
pub const REDACTED: &str = "[redacted]";

/// Removes the credential value sent with a request from the provider's answer: headers, body
/// and streamed bytes. Holds the value as a [`SecretString`] (zeroized on drop, redacted in
/// `Debug`); without a credential it changes nothing.
#[derive(Debug, Default)]
pub struct Redactor {
    secret: Option<SecretString>,
}

impl Redactor {
    /// Redacts `secret` (an empty value redacts nothing).
    pub fn new(secret: SecretString) -> Redactor {
        // The log scrubber learns the value too (a second line of defence for log lines).
        crate::base::redact::remember(secret.expose_secret());
        Redactor {
            secret: (!secret.expose_secret().is_empty()).then_some(secret),
        }
    }

    fn needle(&self) -> Option<&[u8]> {
        self.secret.as_ref().map(|s| s.expose_secret().as_bytes())
    }

    /// `bytes` with every occurrence of the credential replaced by [`REDACTED`].
    pub fn bytes(&self, bytes: Vec<u8>) -> Vec<u8> {
        match self.needle() {
            Some(n) if contains(&bytes, n) => replace(&bytes, n),
            _ => bytes,
        }
    }

    /// `text` with every occurrence of the credential replaced by [`REDACTED`].
    pub fn text(&self, text: String) -> String {
        match &self.secret {
            Some(s) if text.contains(s.expose_secret()) => {
                text.replace(s.expose_secret(), REDACTED)
            }
            _ => text,
        }
    }

    /// A redactor for a byte stream: an occurrence split across chunks is still found.
    pub fn stream(self) -> StreamRedactor {
        StreamRedactor {
            redactor: self,
            carry: Vec::new(),
        }
    }
}

/// Redacts a stream chunk by chunk, holding back the end of a chunk while it could be the start
/// of the credential (at most its length minus one byte, and only then).
pub struct StreamRedactor {
    redactor: Redactor,
    carry: Vec<u8>,
}

impl std::fmt::Debug for StreamRedactor {
    /// The held-back bytes may be most of the credential: only their count is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamRedactor")
            .field("redactor", &self.redactor)
            .field("held_back", &self.carry.len())
            .finish()
    }
}

impl StreamRedactor {
    /// The redacted bytes that are safe to pass on after `chunk`.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        let Some(needle) = self.redactor.needle() else {
            return chunk.to_vec();
        };
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(chunk);
        let mut out = if contains(&buf, needle) {
            replace(&buf, needle)
        } else {
            buf
        };
        let keep = (1..needle.len().min(out.len() + 1))
            .rev()
            .find(|k| out.ends_with(&needle[..*k]))
            .unwrap_or(0);
        self.carry = out.split_off(out.len() - keep);
        out
    }

    /// The bytes held back at the end of the stream (not the whole credential, so passed on).
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.carry)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && memchr::memmem::find(haystack, needle).is_some()
}

fn replace(haystack: &[u8], needle: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = 0;
    for at in memchr::memmem::find_iter(haystack, needle) {
        out.extend_from_slice(&haystack[rest..at]);
        out.extend_from_slice(REDACTED.as_bytes());
        rest = at + needle.len();
    }
    out.extend_from_slice(&haystack[rest..]);
    out
}

/// Checks, authorizes and builds the outbound request for a prepared call. Returns it with the
/// [`Redactor`] for the credential it carries.
pub async fn build(
    state: &AppState,
    provider: &Provider,
    call: UpstreamCall,
    stream: bool,
) -> Result<(reqwest::RequestBuilder, Redactor), ApiError> {
    let plugin_fail = |message: String| ApiError::Plugin {
        plugin: provider.plugin.clone(),
        message,
    };
    let approved = state
        .host_approvals
        .approved(&state.store, provider)
        .await?;
    let checked = check_upstream(
        &call.url,
        &provider.descriptor.hosts,
        &approved,
        provider.allow_private,
    )
    .map_err(|e| plugin_fail(format!("refused upstream URL: {e}")))?;
    let mut url = checked.url().clone();
    if let Some(origin) = &provider.origin_override {
        // The plugin's URL passed the declared-host check; the owner redirects it.
        let _ = url.set_scheme(origin.scheme());
        let _ = url.set_host(origin.host_str());
        let _ = url.set_port(origin.port_or_known_default());
    }
    let method = reqwest::Method::from_bytes(call.method.as_bytes())
        .map_err(|_| plugin_fail("invalid method".into()))?;
    let headers = strip_auth_headers(call.headers, &provider.descriptor.credential);
    let client = state.relay.http.for_provider(provider);
    let mut req = client.request(method, url).body(call.body);
    if !stream {
        req = req.timeout(state.config.upstream_timeout);
    }
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let header = match &provider.descriptor.credential {
        Credential::None => None,
        Credential::Bearer => Some(("authorization".to_string(), "Bearer ")),
        Credential::Header(name) => Some((name.clone(), "")),
    };
    if let Some((name, prefix)) = header {
        let secret = crate::domain::credentials::resolve(state, &provider.id, &provider.credential).await.map_err(|e| {
            // The database failing is not the owner's credential failing: 503, retry later.
            if let crate::domain::credentials::CredentialError::Store(e) = e {
                return ApiError::from(e);
            }
            // The detail (reference names, paths, ids) is for the owner's log, not the app.
            tracing::error!(provider = %provider.id, error = %e, "the provider credential could not be used");
            if let crate::domain::credentials::CredentialError::NotFound(_) = e {
                return ApiError::CredentialUnavailable {
                    code: "provider_not_configured",
                    message: format!(
                        "the owner has not added a credential for provider {}; nothing was sent",
                        provider.id
                    ),
                };
            }
            ApiError::CredentialUnavailable {
                code: "provider_credential_unavailable",
                message: format!(
                    "the gateway cannot use its credential for provider {} right now; the owner must fix it",
                    provider.id
                ),
            }
        })?;
        let mut value = http::HeaderValue::from_str(&format!("{prefix}{}", secret.expose_secret()))
            .map_err(|_| ApiError::ProviderAuth {
                message: format!(
                    "the owner's credential for {} is not a valid header value",
                    provider.id
                ),
            })?;
        value.set_sensitive(true);
        req = req.header(name, value);
        return Ok((req, Redactor::new(secret)));
    }
    Ok((req, Redactor::default()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const KEY: &str = "sk-live-0123456789abcdef";

    fn redactor() -> Redactor {
        Redactor::new(SecretString::from(KEY))
    }

    #[test]
    fn a_body_and_a_header_lose_every_copy_of_the_key() {
        let r = redactor();
        let body = format!(
            r#"{{"error":{{"message":"Incorrect API key provided: Bearer {KEY}; again {KEY}{KEY}"}}}}"#
        );
        let out = String::from_utf8(r.bytes(body.into_bytes())).unwrap();
        assert_eq!(
            out,
            r#"{"error":{"message":"Incorrect API key provided: Bearer [redacted]; again [redacted][redacted]"}}"#
        );
        assert_eq!(r.text(format!("key={KEY}")), "key=[redacted]");
        // Near misses and answers without the key are passed on unchanged.
        let near = format!("{} and {}", &KEY[..KEY.len() - 1], &KEY[1..]);
        assert_eq!(r.text(near.clone()), near);
        assert_eq!(r.bytes(b"plain".to_vec()), b"plain");
        let mut s = redactor().stream();
        let _ = s.push(&KEY.as_bytes()[..KEY.len() - 1]);
        let debug = format!("{r:?} {s:?}");
        assert!(!debug.contains(KEY), "{debug}");
    }

    #[test]
    fn without_a_credential_nothing_changes() {
        for r in [Redactor::default(), Redactor::new(SecretString::from(""))] {
            assert_eq!(r.bytes(b"[redacted] sk-".to_vec()), b"[redacted] sk-");
            assert_eq!(r.text("x".into()), "x");
            let mut s = r.stream();
            assert_eq!(s.push(b"abc"), b"abc");
            assert!(s.finish().is_empty());
        }
    }

    fn through(chunks: &[&[u8]]) -> Vec<u8> {
        let mut s = redactor().stream();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(s.push(c));
        }
        out.extend(s.finish());
        out
    }

    #[test]
    fn a_key_split_anywhere_across_stream_chunks_is_still_redacted() {
        let text = format!("data: {{\"m\":\"{KEY}\"}}\n\ndata: sk-live-x {KEY}\n\n");
        let want = text.replace(KEY, REDACTED).into_bytes();
        let b = text.as_bytes();
        for i in 0..=b.len() {
            assert_eq!(through(&[&b[..i], &b[i..]]), want, "split at {i}");
            for j in i..=b.len() {
                let out = through(&[&b[..i], &b[i..j], &b[j..]]);
                assert_eq!(out, want, "splits at {i} and {j}");
            }
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = b.chunks(1).collect();
        assert_eq!(through(&bytes), want);
    }

    #[test]
    fn a_stream_holds_back_only_what_could_start_the_key() {
        let mut s = redactor().stream();
        assert_eq!(s.push(b"data: tok0\n\n"), b"data: tok0\n\n");
        assert_eq!(s.push(b"partial sk-li"), b"partial ");
        assert_eq!(s.push(b"ve is not it\n"), b"sk-live is not it\n");
        assert_eq!(s.push(b"ends with sk"), b"ends with ");
        assert_eq!(s.finish(), b"sk", "a prefix at the end is passed on");
    }
}
