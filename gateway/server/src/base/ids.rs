//! Identifiers: fresh random tokens, and the request id every request carries.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderName;

/// The request id header set on every request and echoed on every response. Always the
/// gateway's own: a client-sent one is dropped, since it could repeat another request's id (and
/// so hide that request's usage-ledger row) or carry text into the logs.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A new request id: `req_`, then 32 hex digits: the time in milliseconds (48 bits, 12 digits)
/// and 80 random bits. Unique (it names one usage-ledger row), and ids made later sort after
/// earlier ones, so the ledger's unique index on them grows at its right edge: a group commit of
/// n rows then changes one or two of its pages, where random ids put each row on a page of its
/// own (on SQLite each changed page is a 4 KiB frame in the write-ahead log, and later a page to
/// copy back into the database).
pub fn new_request_id(now_ms: i64) -> String {
    let millis = u64::try_from(now_ms).unwrap_or(0) & 0xffff_ffff_ffff;
    let random = rand::random::<u128>() & ((1 << 80) - 1);
    format!("req_{millis:012x}{random:020x}")
}

/// A fresh random secret of `n` bytes, base64url: tokens, codes, ids.
pub fn random_token(n: usize) -> String {
    use rand_core::RngCore;
    let mut bytes = vec![0u8; n];
    rand_core::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_and_sort_by_time() {
        let a = new_request_id(1_800_000_000_000);
        let b = new_request_id(1_800_000_000_000);
        let later = new_request_id(1_800_000_000_001);
        for id in [&a, &b, &later] {
            assert!(id.starts_with("req_") && id.len() == 36, "{id}");
            assert!(
                id[4..]
                    .bytes()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
        }
        assert_ne!(a, b);
        assert_eq!(a[..16], b[..16], "same millisecond, same prefix");
        assert!(later > a && later > b, "{later} sorts after {a} and {b}");
        assert!(new_request_id(-5).starts_with("req_000000000000"));
    }
}
