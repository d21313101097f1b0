//! The connector's loopback listener: checks the caller token, drops it, and forwards the request
//! to the gateway signed with a fresh DPoP proof (the SDK refreshes tokens and retries nonces);
//! answers, streams included, go back chunk by chunk.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use pairgate_sdk::{Client, SdkError};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::cli::commands::CommandError;

/// Where `connect serve` and `connect env` listen unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8790";

/// The largest request body forwarded (images in chat requests can be large).
const MAX_BODY: usize = 64 << 20;

/// Headers never forwarded to the gateway: the caller's credentials, claims about the client's
/// address (the connector is the client), and hop-by-hop headers.
const DROPPED_REQUEST: &[&str] = &[
    "host",
    "authorization",
    "x-api-key",
    "dpop",
    "new-dpop",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "content-length",
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers of the gateway's answer not passed back (the local connection frames its own body).
const DROPPED_RESPONSE: &[&str] = &["content-length", "transfer-encoding", "connection"];

/// Parses `--listen`; only loopback addresses are accepted.
pub fn parse_listen(text: &str) -> Result<SocketAddr, CommandError> {
    let addr: SocketAddr = text.parse().map_err(|_| {
        CommandError::Usage(format!(
            "--listen {text} is not an address with a port; use 127.0.0.1:PORT or [::1]:PORT"
        ))
    })?;
    if !addr.ip().is_loopback() {
        return Err(CommandError::Usage(format!(
            "--listen {text} is not a loopback address: the connector signs with your key for \
             whoever holds the caller token, so it listens on this machine only; use \
             127.0.0.1:{} or [::1]:{}",
            addr.port(),
            addr.port()
        )));
    }
    Ok(addr)
}

/// Binds the listener.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, CommandError> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        CommandError::Api(format!(
            "cannot listen on {addr}: {e}; pick another port with --listen"
        ))
    })
}

struct Connector {
    client: Client,
    token_hash: [u8; 32],
}

/// Serves on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    client: Client,
    caller_token: &SecretString,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), CommandError> {
    let connector = Arc::new(Connector {
        client,
        token_hash: Sha256::digest(caller_token.expose_secret().as_bytes()).into(),
    });
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let connector = connector.clone();
        async move { handle(&connector, req).await }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| CommandError::Api(format!("the connector stopped: {e}")))
}

/// The values the caller presented as its key.
fn presented(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    let api_key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    bearer.into_iter().chain(api_key)
}

fn authorized(connector: &Connector, headers: &HeaderMap) -> bool {
    presented(headers).any(|value| {
        let hash: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        bool::from(hash.ct_eq(&connector.token_hash))
    })
}

/// Whether a path is part of what a tool may reach through the connector: the gateway's app API
/// (`/v1/...`, resources under `/r/...`), not its OAuth, owner or console routes, and not key
/// rotation, which only the connector itself may do.
/// A path that URL normalisation would change (dot segments, `%2e%2e`) is refused, since the
/// gateway would see the normalised one.
fn forwarded_path(path: &str) -> bool {
    let Ok(url) = url::Url::parse(&format!("http://connector{path}")) else {
        return false;
    };
    let normal = url.path();
    normal == path
        && (normal.starts_with("/v1/") || normal.starts_with("/r/"))
        && normal != "/v1/grant/rotate-key"
}

/// An error in the shape the caller's SDK expects: Anthropic's on `/v1/messages`, OpenAI's
/// elsewhere.
fn error(path: &str, status: StatusCode, code: &str, message: &str) -> Response {
    let body = if path.starts_with("/v1/messages") {
        let kind = match status {
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::NOT_FOUND => "not_found_error",
            StatusCode::PAYLOAD_TOO_LARGE => "request_too_large",
            StatusCode::BAD_REQUEST => "invalid_request_error",
            _ => "api_error",
        };
        serde_json::json!({"type": "error", "error": {"type": kind, "message": message}})
    } else {
        let kind = match status {
            StatusCode::UNAUTHORIZED
            | StatusCode::BAD_REQUEST
            | StatusCode::NOT_FOUND
            | StatusCode::PAYLOAD_TOO_LARGE => "invalid_request_error",
            _ => "api_error",
        };
        serde_json::json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
    };
    (status, axum::Json(body)).into_response()
}

async fn handle(connector: &Connector, req: axum::extract::Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    if !authorized(connector, &parts.headers) {
        return error(
            &path,
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "this pairgate connector needs its caller token, sent as `Authorization: Bearer \
             <token>` or `x-api-key: <token>`; `pairgate connect env <tool>` prints it",
        );
    }
    if !forwarded_path(parts.uri.path()) {
        return error(
            &path,
            StatusCode::NOT_FOUND,
            "unknown_url",
            "the connector forwards the gateway's app API only (/v1/..., /r/...)",
        );
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return error(
            &path,
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            "the request body is larger than the connector forwards (64 MiB)",
        );
    };
    let client = &connector.client;
    let method = parts.method.clone();
    let mut builder = client
        .http()
        .request(parts.method, format!("{}{path}", client.gateway_url()));
    for (name, value) in &parts.headers {
        if !DROPPED_REQUEST.contains(&name.as_str()) {
            builder = builder.header(name, value);
        }
    }
    let request = match builder.body(body).build() {
        Ok(r) => r,
        Err(_) => {
            return error(
                &path,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the request cannot be forwarded (malformed URL or header)",
            );
        }
    };
    match client.send(request).await {
        Ok(res) => {
            let mut out = Response::builder().status(res.status());
            for (name, value) in res.headers() {
                if !DROPPED_RESPONSE.contains(&name.as_str()) {
                    out = out.header(name, value);
                }
            }
            out.body(Body::from_stream(res.bytes_stream()))
                .unwrap_or_else(|_| {
                    error(
                        &path,
                        StatusCode::BAD_GATEWAY,
                        "bad_gateway",
                        "the gateway's answer could not be passed on",
                    )
                })
        }
        Err(e) => {
            eprintln!("pairgate connect: {} {}: {e}", method, parts_path(&path));
            // The gateway refusing the connector's session (a revoked or expired grant, a spent
            // refresh token) is an authentication failure for the tool, which must not retry
            // it; anything else means the gateway could not be reached.
            let status = match &e {
                SdkError::Gateway {
                    status: 400 | 401 | 403,
                    ..
                } => StatusCode::UNAUTHORIZED,
                _ => StatusCode::BAD_GATEWAY,
            };
            error(
                &path,
                status,
                e.code().unwrap_or("gateway_unreachable"),
                &format!("the connector could not complete the request with the gateway: {e}"),
            )
        }
    }
}

/// The path without its query, for the connector's own messages.
fn parts_path(path: &str) -> &str {
    path.split_once('?').map_or(path, |(p, _)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_are_accepted() {
        assert!(parse_listen("127.0.0.1:0").is_ok());
        assert!(parse_listen("[::1]:8790").is_ok());
        for bad in ["0.0.0.0:8790", "192.168.1.2:80", "[::]:1", "localhost"] {
            assert!(parse_listen(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refusals_have_the_shape_of_the_route() {
        let body = |res: Response| async move {
            let bytes = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let openai = rt.block_on(body(error(
            "/v1/chat/completions",
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "m",
        )));
        assert_eq!(openai["error"]["code"], "invalid_api_key");
        assert_eq!(openai["error"]["type"], "invalid_request_error");
        let anthropic = rt.block_on(body(error(
            "/v1/messages?beta=true",
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "m",
        )));
        assert_eq!(anthropic["type"], "error");
        assert_eq!(anthropic["error"]["type"], "authentication_error");
    }

    #[test]
    fn only_the_app_api_is_forwarded() {
        for ok in [
            "/v1/chat/completions",
            "/v1/messages",
            "/v1/models",
            "/r/email/send",
        ] {
            assert!(forwarded_path(ok), "{ok}");
        }
        for no in [
            "/oauth/token",
            "/admin/api/overview",
            "/v1/grant/rotate-key",
            "/v1/../oauth/token",
            "/v1/%2e%2e/oauth/token",
            "/v1/./grant/rotate-key",
            "/healthz",
        ] {
            assert!(!forwarded_path(no), "{no}");
        }
    }

    #[test]
    fn caller_token_is_found_in_either_header() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "bearer  tok ".parse().unwrap());
        assert_eq!(presented(&h).collect::<Vec<_>>(), ["tok"]);
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "tok".parse().unwrap());
        h.insert("authorization", "DPoP other".parse().unwrap());
        assert_eq!(presented(&h).collect::<Vec<_>>(), ["tok"]);
    }
}
