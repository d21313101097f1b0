//! RFC 8628 user codes (`XXXX-XXXX` from a 20-consonant alphabet) and device codes.

use rand_core::CryptoRngCore;

use crate::b64;

/// The user-code alphabet: 20 upper-case consonants without vowels (no words) and without
/// easily confused letters, as suggested by RFC 8628 §6.1.
pub const ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Number of code characters (excluding the separator): 20^8 ≈ 2^34.6 codes.
pub const CODE_CHARS: usize = 8;
/// Longest input [`normalize`] looks at.
const MAX_INPUT_LEN: usize = 64;

/// Why a user code was rejected. Never echoes the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UserCodeError {
    /// Not exactly 8 code characters after removing `-` and whitespace.
    #[error("the code must have 8 letters")]
    WrongLength,
    /// A character outside the alphabet (vowels, digits, …).
    #[error("the code contains a character that is not used in codes")]
    InvalidCharacter,
}

/// A fresh user code in its canonical form `XXXX-XXXX`, uniformly distributed.
pub fn generate(rng: &mut impl CryptoRngCore) -> String {
    let mut chars = Vec::with_capacity(CODE_CHARS);
    while chars.len() < CODE_CHARS {
        let mut byte = [0u8; 1];
        rng.fill_bytes(&mut byte);
        // 240 = 12 * 20: rejection sampling keeps the distribution uniform.
        if byte[0] < 240 {
            chars.push(ALPHABET[usize::from(byte[0] % 20)]);
        }
    }
    format_canonical(&chars)
}

/// Normalises what a person typed: case-insensitive, `-` and whitespace ignored; exactly 8
/// letters from [`ALPHABET`]. Returns the canonical `XXXX-XXXX`.
pub fn normalize(input: &str) -> Result<String, UserCodeError> {
    if input.len() > MAX_INPUT_LEN {
        return Err(UserCodeError::WrongLength);
    }
    let mut chars = Vec::with_capacity(CODE_CHARS);
    for c in input.chars() {
        if c == '-' || c.is_whitespace() {
            continue;
        }
        let upper = c.to_ascii_uppercase();
        if !upper.is_ascii() || !ALPHABET.contains(&(upper as u8)) {
            return Err(UserCodeError::InvalidCharacter);
        }
        chars.push(upper as u8);
    }
    if chars.len() != CODE_CHARS {
        return Err(UserCodeError::WrongLength);
    }
    Ok(format_canonical(&chars))
}

/// A fresh device code: 256 random bits, base64url (43 characters).
pub fn new_device_code(rng: &mut impl CryptoRngCore) -> String {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    b64::encode(&bytes)
}

fn format_canonical(chars: &[u8]) -> String {
    let (a, b) = chars.split_at(CODE_CHARS / 2);
    format!(
        "{}-{}",
        String::from_utf8_lossy(a),
        String::from_utf8_lossy(b)
    )
}

#[cfg(test)]
mod tests {
    use rand_core::OsRng;

    use super::*;

    #[test]
    fn normalises_typed_codes() {
        for (input, expected) in [
            ("WDJB-MJHT", "WDJB-MJHT"),
            ("wdjbmjht", "WDJB-MJHT"),
            (" wdjb - mjht\n", "WDJB-MJHT"),
            ("W-D-J-B-M-J-H-T", "WDJB-MJHT"),
        ] {
            assert_eq!(normalize(input).as_deref(), Ok(expected), "{input:?}");
        }
    }

    #[test]
    fn rejects_bad_codes() {
        for (input, expected) in [
            ("", UserCodeError::WrongLength),
            ("WDJB-MJH", UserCodeError::WrongLength),
            ("WDJB-MJHTB", UserCodeError::WrongLength),
            ("WDJB-MJH0", UserCodeError::InvalidCharacter),
            ("WDJA-MJHT", UserCodeError::InvalidCharacter),
            ("WDJB_MJHT", UserCodeError::InvalidCharacter),
            ("WDJB-MJHṪ", UserCodeError::InvalidCharacter),
            ("ẞDJB-MJHT", UserCodeError::InvalidCharacter),
        ] {
            assert_eq!(normalize(input), Err(expected), "{input:?}");
        }
        assert_eq!(
            normalize(&"B".repeat(1000)),
            Err(UserCodeError::WrongLength)
        );
    }

    #[test]
    fn generated_codes_are_canonical() {
        for _ in 0..50 {
            let code = generate(&mut OsRng);
            assert_eq!(code.len(), 9);
            assert_eq!(normalize(&code).as_deref(), Ok(code.as_str()));
        }
        let device = new_device_code(&mut OsRng);
        assert_eq!(device.len(), 43);
        assert_ne!(device, new_device_code(&mut OsRng));
    }
}
