//! The one place the domain's typed errors become HTTP answers (the `ApiError` vocabulary and
//! its single status mapping): the domain says what went wrong, this says what the client gets.

use crate::base::error::ApiError;
use crate::domain::consent::DecisionError;
use crate::domain::grant_policy::PolicyError;
use crate::domain::hosts::HostError;
use crate::domain::owner::{LockedOut, OwnerError, SignInError};
use crate::domain::pairing::OwnerActionError;
use crate::domain::passkeys::PasskeyError;
use crate::domain::prices::PriceError;
use crate::engine::grant_cache::GrantLoadError;

impl From<HostError> for ApiError {
    fn from(e: HostError) -> Self {
        match e {
            HostError::UnknownProvider(_) | HostError::NotApproved { .. } => ApiError::NotFound,
            HostError::NotDeclared { .. } => {
                ApiError::bad_request("host_not_declared", e.to_string())
            }
            HostError::Store(e) => e.into(),
        }
    }
}

impl From<PriceError> for ApiError {
    fn from(e: PriceError) -> Self {
        match e {
            PriceError::UnknownProvider(_) => ApiError::NotFound,
            PriceError::Invalid(message) => ApiError::bad_request("invalid_price", message),
            PriceError::Store(e) => e.into(),
        }
    }
}

impl From<GrantLoadError> for ApiError {
    fn from(e: GrantLoadError) -> Self {
        match e {
            GrantLoadError::Store(e) => e.into(),
            GrantLoadError::InvalidPolicy { .. } => ApiError::Internal(e.into()),
        }
    }
}

impl From<PolicyError> for ApiError {
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::Invalid(_) => ApiError::bad_request("invalid_policy", e.to_string()),
            PolicyError::UnknownGrant(_) => ApiError::NotFound,
            PolicyError::Revoked => ApiError::bad_request("invalid_state", e.to_string()),
            PolicyError::Store(e) => e.into(),
        }
    }
}

impl From<OwnerActionError> for ApiError {
    fn from(e: OwnerActionError) -> Self {
        match e {
            OwnerActionError::LifetimeTooLong => {
                ApiError::bad_request("invalid_request", e.to_string())
            }
            OwnerActionError::UnknownGrant(_) => ApiError::NotFound,
            OwnerActionError::WrongState { .. } => {
                ApiError::bad_request("invalid_state", e.to_string())
            }
            OwnerActionError::Policy(e) => e.into(),
            OwnerActionError::PairingString(_) => ApiError::Internal(e.into()),
            OwnerActionError::Store(e) => e.into(),
        }
    }
}

impl From<DecisionError> for ApiError {
    fn from(e: DecisionError) -> Self {
        match e {
            DecisionError::TooManyAttempts { retry_after_secs } => ApiError::TooManyRequests {
                code: "too_many_attempts",
                message: e.to_string(),
                retry_after_secs,
            },
            DecisionError::UnknownCode => ApiError::NotFound,
            DecisionError::NotPending { .. } | DecisionError::DecidedMeanwhile => {
                ApiError::bad_request("invalid_state", e.to_string())
            }
            DecisionError::Policy(e) => e.into(),
            DecisionError::Inconsistent(_) => ApiError::Internal(e.into()),
            DecisionError::Store(e) => e.into(),
        }
    }
}

impl From<OwnerError> for ApiError {
    fn from(e: OwnerError) -> Self {
        match e {
            OwnerError::BadSetupToken => ApiError::Forbidden {
                code: "invalid_setup_token",
                message: e.to_string(),
            },
            OwnerError::BadUsername => ApiError::bad_request("invalid_request", e.to_string()),
            OwnerError::WeakPassword => ApiError::bad_request("weak_password", e.to_string()),
            OwnerError::Exists => ApiError::Forbidden {
                code: "owner_exists",
                message: e.to_string(),
            },
            OwnerError::Hashing(_) => ApiError::Internal(e.into()),
            OwnerError::Store(e) => e.into(),
        }
    }
}

impl From<LockedOut> for ApiError {
    fn from(e: LockedOut) -> Self {
        ApiError::TooManyRequests {
            code: "too_many_attempts",
            message: e.to_string(),
            retry_after_secs: e.retry_after_secs,
        }
    }
}

impl From<SignInError> for ApiError {
    fn from(e: SignInError) -> Self {
        match e {
            SignInError::LockedOut(e) => e.into(),
            SignInError::BadCredentials => ApiError::OwnerRequired,
            SignInError::Passkey(e) => e.into(),
            SignInError::Store(e) => e.into(),
        }
    }
}

impl From<PasskeyError> for ApiError {
    fn from(e: PasskeyError) -> Self {
        let forbidden = |code: &'static str, e: PasskeyError| ApiError::Forbidden {
            code,
            message: e.to_string(),
        };
        match e {
            PasskeyError::Unavailable(_) => {
                ApiError::bad_request("passkeys_unavailable", e.to_string())
            }
            PasskeyError::LockedOut(e) => e.into(),
            PasskeyError::TooManyStarts { retry_after_secs } => ApiError::TooManyRequests {
                code: "too_many_attempts",
                message: e.to_string(),
                retry_after_secs,
            },
            PasskeyError::OwnerGone => ApiError::OwnerRequired,
            PasskeyError::WrongPassword => forbidden("wrong_password", e),
            PasskeyError::BadName | PasskeyError::NotACredential { .. } => {
                ApiError::bad_request("invalid_request", e.to_string())
            }
            PasskeyError::ChallengeInvalid | PasskeyError::OtherSession => {
                forbidden("passkey_challenge_invalid", e)
            }
            PasskeyError::NewKeyRefused(_) | PasskeyError::Rejected => {
                forbidden("passkey_rejected", e)
            }
            PasskeyError::Exists => forbidden("passkey_exists", e),
            PasskeyError::Unknown => ApiError::NotFound,
            PasskeyError::LastRequired => forbidden("last_required_passkey", e),
            PasskeyError::NoPasskey => forbidden("no_passkey", e),
            PasskeyError::Internal(_) => ApiError::Internal(e.into()),
            PasskeyError::Store(e) => e.into(),
        }
    }
}
