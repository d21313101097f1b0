//! A grant in use: the request of a paired app as the relay sees it ([`AppRequest`], made by the
//! extractor in `http::extract`), and the whole-grant check every use of a grant's credentials
//! passes ([`check_grant`]).

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Bytes;
use pairgate_protocol::dpop::VerifiedProof;
use pairgate_store::GrantRow;
use pairgate_store::grants::status;

use crate::base::error::ApiError;
use crate::engine::grant_cache::CachedGrant;
use crate::engine::limits::ReplayClaim;
use crate::state::AppState;

/// A request from a paired app, authenticated by proof of possession (or, where the owner issued
/// one, by the weaker optional bearer key).
#[derive(Debug)]
pub struct AppRequest {
    /// The `x-request-id` of this request (also in logs and the usage ledger).
    pub request_id: String,
    pub method: http::Method,
    /// Path and query as the app sent them.
    pub path_and_query: String,
    /// The grant with its policy, parsed once (from the grant cache).
    pub grant: Arc<CachedGrant>,
    /// The client's address (behind trusted proxies), when known.
    pub client_ip: Option<IpAddr>,
    pub auth: AppAuth,
    pub body: Bytes,
    pub now_ms: i64,
    /// The proof's claim across replicas (Redis limits backend), when it is still to be made:
    /// only a [`RelayRequest`] leaves it here, for its admission to make in the same round trip
    /// (`Limiter::admit_claiming`); every other app request has made it before its handler runs.
    pub replay: Option<ReplayClaim>,
}

/// An [`AppRequest`] on a route that reaches a provider, so every use of it goes through
/// admission: its extractor leaves the proof's claim across replicas to the admission.
#[derive(Debug)]
pub struct RelayRequest(pub AppRequest);

/// How the app authenticated.
#[derive(Debug)]
pub enum AppAuth {
    /// A DPoP-bound access token plus a verified proof by the bound key.
    Dpop {
        access_token: String,
        proof: Box<VerifiedProof>,
    },
    /// The owner-issued bearer key: no proof of possession (weaker; off unless issued).
    Bearer,
}

impl AppRequest {
    /// The DPoP access token, when the request used one.
    pub fn access_token(&self) -> Option<&str> {
        match &self.auth {
            AppAuth::Dpop { access_token, .. } => Some(access_token),
            AppAuth::Bearer => None,
        }
    }
}

/// Refuses a grant unless active.
pub fn require_active(grant: &GrantRow) -> Result<(), ApiError> {
    match grant.status.as_str() {
        status::ACTIVE => Ok(()),
        status::SUSPENDED => Err(ApiError::GrantSuspended),
        _ => Err(ApiError::GrantRevoked),
    }
}

/// Loads a grant and refuses it unless active.
pub async fn active_grant(state: &AppState, grant_id: &str) -> Result<GrantRow, ApiError> {
    let grant = state
        .store
        .get_grant(grant_id)
        .await?
        .ok_or(ApiError::InvalidToken("the access token is not valid"))?;
    require_active(&grant)?;
    Ok(grant)
}

/// The whole-grant check every use of a grant's credentials passes (each app route, refresh,
/// key rotation): the grant is active, inside its validity window, and `client` is one of its
/// `source_ips` ([`pairgate_policy::check_access`]).
pub fn check_grant(grant: &CachedGrant, client: Option<IpAddr>, now: i64) -> Result<(), ApiError> {
    require_active(&grant.row)?;
    pairgate_policy::check_access(&grant.policy, client, now).map_err(|d| {
        tracing::info!(grant_id = %grant.row.id, code = d.code.as_str(), "grant use refused");
        ApiError::Forbidden {
            code: d.code.as_str(),
            message: d.message,
        }
    })
}

/// [`check_grant`] for a row read from the database (its policy parsed here).
pub fn check_row(row: GrantRow, client: Option<IpAddr>, now: i64) -> Result<CachedGrant, ApiError> {
    require_active(&row)?;
    let grant = CachedGrant::parse(row, 0, now)?;
    check_grant(&grant, client, now)?;
    Ok(grant)
}

/// Prefix of the optional bearer keys (owner-issued, without proof of possession).
pub const BEARER_PREFIX: &str = "pgbk_";
