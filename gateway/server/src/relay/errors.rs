//! How every refusal and failure on the way to a provider becomes the app's error, in one place:
//! the grant's policy ([`denial`]), the limiter ([`limited`]), the plugin's view of an upstream
//! failure ([`failure`]), and a call that could not be sent or answered ([`send_error`]).
//! Upstream text about the owner's credential never reaches the app.

use pairgate_plugin_host::{Failure, FailureKind};
use pairgate_policy::decide::Denial;

use super::upstream::SendError;
use crate::base::error::ApiError;
use crate::engine::providers::Provider;

/// The app's error for a policy refusal: 400 when the client can fix the request, else 403.
pub fn denial(d: Denial) -> ApiError {
    let message = d.message.clone();
    match d.code.http_status() {
        400 => ApiError::BadRequest {
            code: d.code.as_str(),
            message,
        },
        _ => ApiError::Forbidden {
            code: d.code.as_str(),
            message,
        },
    }
}

/// A refusal by the limiter (429), 503 when the limits backend failed and the request is
/// refused rather than let through unmetered, or 401 when admission found the request's proof
/// already claimed (a replay, `Limiter::admit_claiming`).
pub fn limited(r: crate::engine::limits::LimitRejection) -> ApiError {
    if r.status == 401 {
        // the proof's replay claim, made with the admission (`Limiter::admit_claiming`)
        tracing::warn!("replayed DPoP proof refused at admission");
        return ApiError::Dpop {
            code: r.code,
            message: r.message,
            site: crate::base::error::ProofSite::Resource,
            nonce: None,
        };
    }
    if r.status == 503 {
        return ApiError::Degraded {
            code: r.code,
            message: r.message,
        };
    }
    ApiError::Limited {
        code: r.code,
        message: r.message,
        retry_after_secs: r.retry_after_secs,
        headers: r.headers,
    }
}

/// Maps a plugin's view of an upstream failure onto our error table. Upstream error text about
/// credentials never reaches the app.
pub fn failure(provider: &Provider, f: Failure) -> ApiError {
    match f.kind {
        FailureKind::Authentication => ApiError::ProviderAuth {
            message: format!(
                "the provider {} rejected the owner's credential; the owner must update it",
                provider.id
            ),
        },
        FailureKind::RateLimited => ApiError::ProviderRateLimit {
            retry_after_secs: f.retry_after_seconds.map(u64::from),
        },
        FailureKind::Overloaded | FailureKind::Upstream => ApiError::ProviderUnavailable {
            message: format!(
                "the provider {} is unavailable (status {})",
                provider.id, f.status
            ),
            timed_out: false,
        },
        FailureKind::BadResponse => ApiError::ProviderUnavailable {
            message: format!(
                "the provider {} sent an answer that could not be read",
                provider.id
            ),
            timed_out: false,
        },
        FailureKind::InvalidRequest | FailureKind::NotFound | FailureKind::Permission => {
            ApiError::Upstream {
                status: if (400..500).contains(&f.status) {
                    f.status
                } else {
                    400
                },
                code: f.code.unwrap_or_else(|| "invalid_request".into()),
                message: f.message.chars().take(1000).collect(),
                kind: f.kind.openai_type(),
            }
        }
    }
}

/// The app's error for a call to `provider` that failed to be sent or answered.
pub fn send_error(provider: &Provider, e: SendError) -> ApiError {
    match e {
        SendError::Refused(refused) => ApiError::ProviderAddressRefused {
            provider: provider.id.clone(),
            host: refused.host,
        },
        e => ApiError::ProviderUnavailable {
            message: format!("{} ({})", e, provider.id),
            timed_out: matches!(e, SendError::Timeout),
        },
    }
}
