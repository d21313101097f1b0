//! `ApiError`: the one error type handlers return, with one status mapping. The client gets a
//! safe body (OpenAI-shaped on app routes, RFC 6749-shaped on OAuth routes); the log gets the
//! whole chain. No variant carries a secret, token or proof.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use pairgate_protocol::error::{OAuthErrorBody, OpenAiError, OpenAiErrorBody, codes};

/// Who caused a failure: decides the status class and whether retrying can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The caller sent something wrong; retrying the same request fails the same way.
    Client,
    /// The upstream provider failed.
    Provider,
    /// We failed (database, plugin, bug).
    Gateway,
}

/// Where a DPoP proof was checked: the token endpoint answers 400, resources 401 (RFC 9449).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofSite {
    TokenEndpoint,
    Resource,
}

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{message}")]
    Dpop {
        code: &'static str,
        message: String,
        site: ProofSite,
        nonce: Option<String>,
    },
    #[error("{0}")]
    InvalidToken(&'static str),
    #[error("the pairing code is not valid")]
    InvalidPairing,
    #[error("the pairing has expired")]
    ExpiredPairing,
    #[error("the pairing has already been used")]
    PairingUsed,
    #[error("{message}")]
    InvalidGrant { message: &'static str },
    #[error("this app's access has been revoked by the owner")]
    GrantRevoked,
    #[error("this app's access is suspended by the owner")]
    GrantSuspended,
    #[error("the owner has not decided yet")]
    AuthorizationPending,
    #[error("polling too fast; wait longer between requests")]
    SlowDown,
    #[error("the owner denied the request")]
    AccessDenied,
    #[error("the request expired before the owner decided")]
    ExpiredToken,
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("owner authentication required")]
    OwnerRequired,
    #[error("missing or wrong CSRF token")]
    Csrf,
    #[error("not found")]
    NotFound,
    #[error("{message}")]
    TooManyRequests {
        code: &'static str,
        message: String,
        retry_after_secs: u64,
    },
    #[error("request body too large")]
    TooLarge,
    #[error("the request body did not arrive within the gateway's body_read_timeout")]
    RequestTimeout,
    #[error("{message}")]
    Limited {
        code: &'static str,
        message: String,
        retry_after_secs: Option<u64>,
        headers: Vec<(&'static str, String)>,
    },
    #[error("plugin {plugin} failed: {message}")]
    Plugin { plugin: String, message: String },
    #[error("{message}")]
    ProviderAuth { message: String },
    /// The gateway has no usable credential for the provider (none added, or it cannot be
    /// decrypted or fetched): the owner's setup, not the provider's refusal. Nothing was sent.
    #[error("{message}")]
    CredentialUnavailable { code: &'static str, message: String },
    #[error("the provider is rate limiting the owner's account; retry later")]
    ProviderRateLimit { retry_after_secs: Option<u64> },
    #[error("{message}")]
    ProviderUnavailable { message: String, timed_out: bool },
    /// The provider's host resolves only to private or special-purpose addresses, which its
    /// instance may not reach (`relay/resolve.rs`): the owner's configuration, not the app's.
    #[error(
        "the gateway refused to connect to provider {provider}: its host {host} resolves only to private or special-purpose addresses; the owner must correct the provider's address or set providers.{provider}.allow_private"
    )]
    ProviderAddressRefused { provider: String, host: String },
    #[error("{message}")]
    Upstream {
        status: u16,
        code: String,
        message: String,
        kind: &'static str,
    },
    #[error("temporarily unavailable, retry shortly")]
    Unavailable(#[source] pairgate_store::StoreError),
    #[error("{message}")]
    Degraded { code: &'static str, message: String },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            BadRequest { .. }
            | InvalidPairing
            | ExpiredPairing
            | PairingUsed
            | InvalidGrant { .. }
            | AuthorizationPending
            | SlowDown
            | AccessDenied
            | ExpiredToken => StatusCode::BAD_REQUEST,
            Dpop {
                site: ProofSite::TokenEndpoint,
                ..
            } => StatusCode::BAD_REQUEST,
            Dpop {
                site: ProofSite::Resource,
                ..
            }
            | InvalidToken(_)
            | GrantRevoked
            | OwnerRequired => StatusCode::UNAUTHORIZED,
            GrantSuspended | Forbidden { .. } | Csrf => StatusCode::FORBIDDEN,
            NotFound => StatusCode::NOT_FOUND,
            Limited { .. } | ProviderRateLimit { .. } => StatusCode::TOO_MANY_REQUESTS,
            Plugin { .. } | ProviderAuth { .. } | ProviderAddressRefused { .. } => {
                StatusCode::BAD_GATEWAY
            }
            ProviderUnavailable {
                timed_out: true, ..
            } => StatusCode::GATEWAY_TIMEOUT,
            ProviderUnavailable {
                timed_out: false, ..
            } => StatusCode::BAD_GATEWAY,
            Upstream { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Unavailable(_) | Degraded { .. } | CredentialUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn blame(&self) -> Blame {
        match self {
            ApiError::Unavailable(_)
            | ApiError::Degraded { .. }
            | ApiError::Internal(_)
            | ApiError::Plugin { .. }
            | ApiError::CredentialUnavailable { .. }
            | ApiError::ProviderAddressRefused { .. } => Blame::Gateway,
            ApiError::ProviderAuth { .. }
            | ApiError::ProviderRateLimit { .. }
            | ApiError::ProviderUnavailable { .. } => Blame::Provider,
            ApiError::Upstream { status, .. } if *status >= 500 => Blame::Provider,
            _ => Blame::Client,
        }
    }

    /// The machine-readable reason.
    pub fn code(&self) -> &str {
        use ApiError::*;
        match self {
            BadRequest { code, .. }
            | Dpop { code, .. }
            | Forbidden { code, .. }
            | TooManyRequests { code, .. }
            | Limited { code, .. }
            | Degraded { code, .. }
            | CredentialUnavailable { code, .. } => code,
            Upstream { code, .. } => code,
            Plugin { .. } => "plugin_failed",
            ProviderAuth { .. } => "provider_auth_failed",
            ProviderRateLimit { .. } => "provider_rate_limit",
            ProviderUnavailable { .. } => "provider_unavailable",
            ProviderAddressRefused { .. } => "provider_address_refused",
            InvalidToken(_) => codes::INVALID_TOKEN,
            InvalidPairing => codes::INVALID_PAIRING,
            ExpiredPairing => codes::EXPIRED_PAIRING,
            PairingUsed => codes::PAIRING_ALREADY_USED,
            InvalidGrant { .. } => codes::INVALID_GRANT,
            GrantRevoked => codes::GRANT_REVOKED,
            GrantSuspended => codes::GRANT_SUSPENDED,
            AuthorizationPending => codes::AUTHORIZATION_PENDING,
            SlowDown => codes::SLOW_DOWN,
            AccessDenied => codes::ACCESS_DENIED,
            ExpiredToken => codes::EXPIRED_TOKEN,
            OwnerRequired => "owner_required",
            Csrf => "csrf_failed",
            NotFound => "not_found",
            TooLarge => "request_too_large",
            RequestTimeout => "request_timeout",
            Unavailable(_) => "service_unavailable",
            Internal(_) => "internal_error",
        }
    }

    /// The OpenAI error `type` for this error.
    fn openai_type(&self) -> &str {
        match (self, self.blame(), self.status()) {
            (ApiError::Upstream { kind, .. }, _, _) => kind,
            _ if self.code() == "insufficient_quota" => "insufficient_quota",
            (_, Blame::Gateway, _) => "server_error",
            (_, Blame::Provider, _) => "upstream_error",
            (_, _, StatusCode::UNAUTHORIZED) => "authentication_error",
            (_, _, StatusCode::FORBIDDEN) => "permission_error",
            (_, _, StatusCode::TOO_MANY_REQUESTS) => "rate_limit_error",
            _ => "invalid_request_error",
        }
    }

    /// The `WWW-Authenticate` challenge for authentication failures on resources.
    fn challenge(&self) -> Option<String> {
        let code = match self {
            ApiError::Dpop {
                site: ProofSite::Resource,
                code,
                ..
            } => *code,
            ApiError::InvalidToken(_) | ApiError::GrantRevoked => codes::INVALID_TOKEN,
            _ => return None,
        };
        Some(format!(
            "DPoP error=\"{code}\", error_description=\"{}\", algs=\"EdDSA Ed25519 ES256\"",
            self.to_string().replace(['"', '\\'], "'")
        ))
    }

    fn log(&self) {
        crate::base::metrics::error(self.code());
        if self.blame() == Blame::Gateway {
            tracing::error!(error = %chain(self), code = self.code(), "request failed");
        } else {
            tracing::info!(code = self.code(), reason = %self, "request refused");
        }
    }

    fn headers(&self, res: &mut Response) {
        let h = res.headers_mut();
        if let Some(c) = self
            .challenge()
            .and_then(|c| HeaderValue::from_str(&c).ok())
        {
            h.insert(header::WWW_AUTHENTICATE, c);
        }
        if let ApiError::Dpop { nonce: Some(n), .. } = self
            && let Ok(v) = HeaderValue::from_str(n)
        {
            h.insert("dpop-nonce", v);
        }
        match self {
            ApiError::TooManyRequests {
                retry_after_secs, ..
            }
            | ApiError::Limited {
                retry_after_secs: Some(retry_after_secs),
                ..
            }
            | ApiError::ProviderRateLimit {
                retry_after_secs: Some(retry_after_secs),
            } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        if let ApiError::Limited { headers, .. } = self {
            for (name, value) in headers {
                if let Ok(v) = HeaderValue::from_str(value) {
                    h.insert(*name, v);
                }
            }
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }

    /// The RFC 6749 body, for the OAuth endpoints.
    pub fn into_oauth_response(self) -> Response {
        self.log();
        let body = OAuthErrorBody {
            error: self.code().into(),
            error_description: Some(self.to_string()),
        };
        let mut res = (self.status(), Json(body)).into_response();
        self.headers(&mut res);
        res
    }
}

impl From<pairgate_store::StoreError> for ApiError {
    fn from(e: pairgate_store::StoreError) -> Self {
        if e.is_transient() {
            ApiError::Unavailable(e)
        } else {
            ApiError::Internal(e.into())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let body = OpenAiErrorBody {
            error: OpenAiError {
                message: self.to_string(),
                r#type: self.openai_type().into(),
                code: Some(self.code().into()),
                param: None,
            },
        };
        let mut res = (self.status(), Json(body)).into_response();
        self.headers(&mut res);
        res
    }
}

/// Refuses a request whose declared `Content-Length` is over the body limit with the usual error
/// body, before anything reads it (the body-limit layer behind it answers a bare 413 otherwise;
/// bodies without a declared length are cut off there and refused by the extractors).
pub async fn refuse_declared_oversize(
    axum::extract::State(max): axum::extract::State<usize>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return ApiError::TooLarge.into_response();
    }
    next.run(req).await
}

/// An `ApiError` answered in the OAuth shape (token and device endpoints).
#[derive(Debug)]
pub struct OAuthError(pub ApiError);

impl<E: Into<ApiError>> From<E> for OAuthError {
    fn from(e: E) -> Self {
        OAuthError(e.into())
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        self.0.into_oauth_response()
    }
}

/// The error and its sources as one printable chain for the log.
fn chain(e: &ApiError) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}
