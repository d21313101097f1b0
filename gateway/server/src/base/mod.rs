//! Layer 0, the ground floor: the clock, identifiers, client addresses, the error vocabulary
//! (`ApiError`, one status mapping), metrics and log redaction. Imports nothing of this crate
//! above it.

pub mod clock;
pub mod error;
pub mod ids;
pub mod metrics;
pub mod net;
pub mod redact;
