//! `Owner`: the extractor behind every admin and approval route. It admits a request only with a
//! live server-side session cookie, and, for anything but GET/HEAD, the session's CSRF token in
//! the `x-csrf-token` header. Apps' DPoP credentials are never accepted here.

use axum::extract::FromRequestParts;
use http::request::Parts;

use crate::base::clock::now_ms;
use crate::base::error::ApiError;
use crate::domain::owner::{CSRF_HEADER, SESSION_COOKIE, SESSION_IDLE_MS, csrf_for};
use crate::engine::keys::{Purpose, digests_equal};
use crate::state::AppState;

/// An authenticated owner.
#[derive(Debug, Clone)]
pub struct Owner {
    pub owner_id: String,
    /// Digest of the session token (to end this session).
    pub session_hash: String,
    /// The session's CSRF token (for the UI after a reload).
    pub csrf: String,
}

impl Owner {
    /// The actor name in the audit log.
    pub fn actor(&self) -> String {
        format!("owner:{}", self.owner_id)
    }
}

/// The session token from the `Cookie` header(s).
pub fn session_cookie(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

impl FromRequestParts<AppState> for Owner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = session_cookie(parts).ok_or(ApiError::OwnerRequired)?;
        if token.len() > 200 {
            return Err(ApiError::OwnerRequired);
        }
        let hash = state.keys.digest(Purpose::OwnerSession, token.as_bytes());
        let session = state
            .store
            .live_session(&hash, now_ms(), SESSION_IDLE_MS)
            .await?
            .ok_or(ApiError::OwnerRequired)?;
        let csrf = csrf_for(state, &token);
        let safe = matches!(parts.method, http::Method::GET | http::Method::HEAD);
        if !safe {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !digests_equal(sent, &csrf) {
                return Err(ApiError::Csrf);
            }
        }
        Ok(Owner {
            owner_id: session.owner_id,
            session_hash: hash,
            csrf,
        })
    }
}
