//! Shared versioned-AEAD blob format: `version(1) || nonce(24) || extra || ciphertext+tag`.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

/// The only format version this build writes and reads.
pub(crate) const VERSION: u8 = 0x01;
/// XChaCha20-Poly1305 nonce length.
pub(crate) const NONCE_LEN: usize = 24;
/// Poly1305 tag length.
pub(crate) const TAG_LEN: usize = 16;
/// Length of the key-id check bytes carried by wrapped data keys and verifiers.
pub(crate) const KID_LEN: usize = 8;

/// Why a blob could not be opened; callers map this to a [`crate::CustodyError`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BlobError {
    /// Empty blob or shorter than header + tag.
    Truncated,
    /// First byte is not [`VERSION`].
    Version(u8),
    /// Authentication failed.
    Auth,
}

/// A blob split into its parts (not yet authenticated).
pub(crate) struct Parsed<'a> {
    pub(crate) nonce: &'a [u8],
    pub(crate) extra: &'a [u8],
    pub(crate) body: &'a [u8],
}

/// Builds associated data: `purpose || 0x00 || version || extra || (u32be len || field)*`.
///
/// Length prefixes make the encoding injective, so `("ab","c")` and `("a","bc")` differ.
pub(crate) fn aad(purpose: &str, extra: &[u8], fields: &[&str]) -> Vec<u8> {
    let cap = purpose.len() + 2 + extra.len() + fields.iter().map(|f| 4 + f.len()).sum::<usize>();
    let mut out = Vec::with_capacity(cap);
    out.extend_from_slice(purpose.as_bytes());
    out.push(0x00);
    out.push(VERSION);
    out.extend_from_slice(extra);
    for field in fields {
        // Identifiers longer than 4 GiB cannot occur in practice; saturate rather than wrap.
        let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(field.as_bytes());
    }
    out
}

/// Encrypts `msg` under `key` with a fresh random nonce; `extra` is copied in clear after
/// the nonce (callers include it in `aad` so it is authenticated).
///
/// Returns `None` only if the AEAD refuses the input (plaintext beyond ~256 GiB).
pub(crate) fn seal(key: &[u8; 32], extra: &[u8], msg: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let body = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg, aad })
        .ok()?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + extra.len() + body.len());
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(extra);
    out.extend_from_slice(&body);
    Some(out)
}

/// Splits a blob, checking the version byte and minimum length.
pub(crate) fn parse(blob: &[u8], extra_len: usize) -> Result<Parsed<'_>, BlobError> {
    let (&version, rest) = blob.split_first().ok_or(BlobError::Truncated)?;
    if version != VERSION {
        return Err(BlobError::Version(version));
    }
    if rest.len() < NONCE_LEN + extra_len + TAG_LEN {
        return Err(BlobError::Truncated);
    }
    let (nonce, rest) = rest.split_at(NONCE_LEN);
    let (extra, body) = rest.split_at(extra_len);
    Ok(Parsed { nonce, extra, body })
}

/// Authenticates and decrypts a parsed blob; the plaintext is wiped when dropped.
pub(crate) fn open(
    key: &[u8; 32],
    parsed: &Parsed<'_>,
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, BlobError> {
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher
        .decrypt(
            XNonce::from_slice(parsed.nonce),
            Payload {
                msg: parsed.body,
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| BlobError::Auth)
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aad_is_injective_over_field_boundaries() {
        assert_ne!(aad("p", b"", &["ab", "c"]), aad("p", b"", &["a", "bc"]));
        assert_ne!(aad("p", b"", &["a"]), aad("q", b"", &["a"]));
    }

    #[test]
    fn parse_rejects_empty_short_and_unknown_version() {
        assert_eq!(parse(&[], 0).err(), Some(BlobError::Truncated));
        assert_eq!(parse(&[VERSION; 10], 0).err(), Some(BlobError::Truncated));
        assert_eq!(parse(&[0x02; 64], 0).err(), Some(BlobError::Version(0x02)));
    }

    #[test]
    fn seal_open_roundtrip_and_hex() {
        let key = [7u8; 32];
        let blob = seal(&key, b"xy", b"hello", b"ctx").unwrap();
        assert_eq!(blob[0], VERSION);
        assert_eq!(blob.len(), 1 + NONCE_LEN + 2 + 5 + TAG_LEN);
        let parsed = parse(&blob, 2).unwrap();
        assert_eq!(parsed.extra, b"xy");
        assert_eq!(open(&key, &parsed, b"ctx").unwrap().as_slice(), b"hello");
        assert_eq!(open(&key, &parsed, b"other").err(), Some(BlobError::Auth));
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
    }
}
