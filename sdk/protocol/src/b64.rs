//! Strict base64url without padding (RFC 4648 §5), the only base64 flavour on the wire.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Why a base64url string was rejected. Never contains the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid base64url (expected unpadded, canonical base64url)")]
pub struct B64Error;

/// Encodes bytes as base64url without padding.
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded base64url.
///
/// Rejects padding (`=`), the standard alphabet (`+`, `/`), whitespace, impossible lengths
/// (`len % 4 == 1`) and non-canonical encodings whose unused trailing bits are not zero, so every
/// byte string has exactly one accepted encoding.
pub fn decode(text: &str) -> Result<Vec<u8>, B64Error> {
    URL_SAFE_NO_PAD.decode(text).map_err(|_| B64Error)
}

/// Decodes into a fixed-size array, failing when the decoded length differs.
pub fn decode_array<const N: usize>(text: &str) -> Result<[u8; N], B64Error> {
    decode(text)?.try_into().map_err(|_| B64Error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_known_values() {
        assert_eq!(encode(b""), "");
        assert_eq!(encode(b"f"), "Zg");
        assert_eq!(encode(&[0xfb, 0xff]), "-_8");
        assert_eq!(decode("-_8").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn rejects_padding_std_alphabet_and_noncanonical() {
        for bad in [
            "Zg==", "Zg=", "+/8", "Z", "Zh", "Zg ", " Zg", "Z\ng", "Zm9v!",
        ] {
            assert_eq!(decode(bad), Err(B64Error), "{bad:?} must be rejected");
        }
        // "Zh" would decode to 'f' with a non-zero trailing bit; only "Zg" is canonical.
        assert!(decode("Zg").is_ok());
    }

    #[test]
    fn decode_array_checks_length() {
        assert_eq!(decode_array::<2>("-_8").unwrap(), [0xfb, 0xff]);
        assert_eq!(decode_array::<3>("-_8"), Err(B64Error));
    }
}
