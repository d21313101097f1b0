//! `htu` normalisation: the form in which the proof's `htu` and the request URL are compared.

use std::fmt::Write as _;

use super::ProofError;

/// Normalises an `htu` (or the verifier's request URL) for comparison.
///
/// Rules (see docs/protocol.md, "htu normalisation"):
/// * printable ASCII only (no spaces, controls, backslashes or `%` in the authority);
/// * an absolute `http://` or `https://` URL with a non-empty host and no userinfo;
/// * scheme and host are lowercased, a default port (80 / 443) is removed;
/// * query and fragment are dropped;
/// * the path is kept byte-for-byte (an empty path becomes `/`); a path that is not already in
///   normal form (dot segments, characters that would need percent-encoding) is rejected rather
///   than rewritten, so `/a/../b` never matches `/b`.
///
/// Returns `scheme://host[:port]/path`. Errors are `ProofError::BadClaim("htu")`.
pub fn normalize_htu(raw: &str) -> Result<String, ProofError> {
    const BAD: ProofError = ProofError::BadClaim("htu");
    if raw.len() > super::MAX_PROOF_BYTES
        || !raw.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
    {
        return Err(BAD);
    }
    let (scheme, rest) = raw.split_once("://").ok_or(BAD)?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(BAD);
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if authority.is_empty() || authority.contains(['@', '%']) {
        return Err(BAD);
    }
    let after_authority = &rest[authority_end..];
    let path_end = after_authority
        .find(['?', '#'])
        .unwrap_or(after_authority.len());
    let path = match &after_authority[..path_end] {
        "" => "/",
        path => path,
    };

    let url = url::Url::parse(raw).map_err(|_| BAD)?;
    if url.path() != path {
        return Err(BAD);
    }
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or(BAD)?;
    let mut out = format!("{scheme}://{host}");
    if let Some(port) = url.port() {
        let _ = write!(out, ":{port}");
    }
    out.push_str(path);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_scheme_host_port_query_fragment() {
        let cases = [
            (
                "https://gateway.example/v1/chat",
                "https://gateway.example/v1/chat",
            ),
            (
                "HTTPS://GateWay.EXAMPLE/v1/chat",
                "https://gateway.example/v1/chat",
            ),
            (
                "https://gateway.example:443/v1/chat",
                "https://gateway.example/v1/chat",
            ),
            ("http://gateway.example:80/v1", "http://gateway.example/v1"),
            // ports compare as numbers: leading zeros are not significant
            (
                "http://gateway.example:018440/v1",
                "http://gateway.example:18440/v1",
            ),
            (
                "https://gateway.example:0443/v1",
                "https://gateway.example/v1",
            ),
            (
                "https://gateway.example:8443/v1",
                "https://gateway.example:8443/v1",
            ),
            (
                "http://gateway.example:443/v1",
                "http://gateway.example:443/v1",
            ),
            (
                "https://gateway.example/v1/chat?x=1&y=2#frag",
                "https://gateway.example/v1/chat",
            ),
            ("https://gateway.example", "https://gateway.example/"),
            ("https://gateway.example?q", "https://gateway.example/"),
            (
                "https://gateway.example/V1/Chat/",
                "https://gateway.example/V1/Chat/",
            ),
            (
                "https://gateway.example/a%2fb/%7e",
                "https://gateway.example/a%2fb/%7e",
            ),
            ("http://[::1]:8080/x", "http://[::1]:8080/x"),
            ("http://127.0.0.1:3000/x", "http://127.0.0.1:3000/x"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize_htu(input).as_deref(), Ok(expected), "{input}");
        }
    }

    #[test]
    fn rejects_unsupported_or_ambiguous_urls() {
        for input in [
            "",
            "/v1/chat",
            "gateway.example/v1",
            "ftp://gateway.example/v1",
            "wss://gateway.example/v1",
            "https:gateway.example/v1",
            "https:///v1",
            "https://user:pw@gateway.example/v1",
            "https://gate way.example/v1",
            "https://gateway.example/v1 x",
            "https://gateway.example/v1\n",
            "https://gateway.example\\v1",
            "https://gateway.example/a/../b",
            "https://gateway.example/a/./b",
            "https://gateway.example/a/%2e%2e/b",
            "https://gateway.example/\u{e9}",
            "https://gatew%61y.example/v1",
            "https://gateway.example:99999/v1",
            "https://gateway.example:x/v1",
        ] {
            assert_eq!(
                normalize_htu(input),
                Err(ProofError::BadClaim("htu")),
                "{input:?}"
            );
        }
    }
}
