//! The one place the domain's typed errors become HTTP answers (the `ApiError` vocabulary and
//! its single status mapping): the domain says what went wrong, this says what the client gets.

use crate::base::error::ApiError;
use crate::domain::hosts::HostError;
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
