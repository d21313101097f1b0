//! Identifiers: fresh random tokens, and the request id every request carries.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderName;

/// The request id header set on every request and echoed on every response. Always the
/// gateway's own: a client-sent one is dropped, since it could repeat another request's id (and
/// so hide that request's usage-ledger row) or carry text into the logs.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A fresh random secret of `n` bytes, base64url: tokens, codes, ids.
pub fn random_token(n: usize) -> String {
    use rand_core::RngCore;
    let mut bytes = vec![0u8; n];
    rand_core::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}
