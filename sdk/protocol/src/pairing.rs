//! Owner-initiated pairing strings (`pgpair1.<payload>.<check>`) and pairing ids.

use std::fmt;
use std::str::FromStr;

use rand_core::CryptoRngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::b64;

/// The version prefix of a pairing string.
pub const PAIRING_PREFIX: &str = "pgpair1";
/// The prefix of a displayed pairing id.
pub const PAIRING_ID_PREFIX: &str = "pr_";
/// Maximum length of a pairing string, in characters, after trimming.
pub const MAX_PAIRING_STRING_LEN: usize = 2048;
/// A regular expression for secret scanners.
pub const PAIRING_STRING_REGEX: &str = r"pgpair1\.[A-Za-z0-9_-]{70,}\.[A-Za-z0-9_-]{6}";

const ID_LEN: usize = 16;
const SECRET_LEN: usize = 32;
const CHECK_CHARS: usize = 6;

/// Why a pairing string or id was rejected. Messages never echo the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PairingError {
    /// Longer than [`MAX_PAIRING_STRING_LEN`].
    #[error("pairing string is too long")]
    TooLong,
    /// Does not start with `pgpair1.`.
    #[error("not a pairing string (expected the pgpair1. prefix)")]
    WrongPrefix,
    /// Not `pgpair1.<payload>.<check>` with base64url parts of plausible sizes.
    #[error("pairing string is malformed")]
    Malformed,
    /// The check characters do not match: most likely a copy/paste or typing error.
    #[error("pairing string checksum mismatch (was it copied completely?)")]
    BadChecksum,
    /// The embedded gateway URL is not an absolute http(s) URL.
    #[error("pairing string contains an invalid gateway URL")]
    BadUrl,
    /// A pairing id that is not `pr_` followed by 22 base64url characters.
    #[error("invalid pairing id")]
    BadId,
}

/// A 16-byte pairing id, shown as `pr_` + base64url (25 characters in total).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PairingId(pub [u8; ID_LEN]);

impl PairingId {
    /// A fresh random id.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut bytes = [0u8; ID_LEN];
        rng.fill_bytes(&mut bytes);
        PairingId(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }
}

impl fmt::Display for PairingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PAIRING_ID_PREFIX}{}", b64::encode(&self.0))
    }
}

impl fmt::Debug for PairingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PairingId({self})")
    }
}

impl FromStr for PairingId {
    type Err = PairingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix(PAIRING_ID_PREFIX)
            .ok_or(PairingError::BadId)?;
        b64::decode_array(rest)
            .map(PairingId)
            .map_err(|_| PairingError::BadId)
    }
}

impl Serialize for PairingId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PairingId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The 32-byte pairing secret. No `Display`; `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct PairingSecret(pub [u8; SECRET_LEN]);

impl PairingSecret {
    /// A fresh random secret.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut bytes = [0u8; SECRET_LEN];
        rng.fill_bytes(&mut bytes);
        PairingSecret(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; SECRET_LEN] {
        &self.0
    }

    /// SHA-256 of the secret, what a gateway stores instead of the secret itself.
    pub fn sha256(&self) -> [u8; 32] {
        Sha256::digest(self.0).into()
    }

    /// Constant-time comparison with stored secret bytes.
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        self.0.as_slice().ct_eq(other).into()
    }
}

impl fmt::Debug for PairingSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PairingSecret(<redacted>)")
    }
}

/// A decoded pairing string. `Debug` redacts the secret; there is no `Display`, use
/// [`PairingString::encode`] deliberately.
#[derive(Clone, PartialEq, Eq)]
pub struct PairingString {
    /// Identifies the pairing on the gateway.
    pub id: PairingId,
    /// Proves possession of the pairing string.
    pub secret: PairingSecret,
    /// The gateway's public base URL, byte-for-byte as embedded.
    pub gateway_url: String,
}

impl PairingString {
    /// A fresh pairing string for `gateway_url` (validated as in [`Self::parse`]).
    pub fn generate(gateway_url: &str, rng: &mut impl CryptoRngCore) -> Result<Self, PairingError> {
        validate_gateway_url(gateway_url)?;
        let pairing = PairingString {
            id: PairingId::generate(rng),
            secret: PairingSecret::generate(rng),
            gateway_url: gateway_url.to_owned(),
        };
        if pairing.encode().len() > MAX_PAIRING_STRING_LEN {
            return Err(PairingError::TooLong);
        }
        Ok(pairing)
    }

    /// `pgpair1.<base64url(id ‖ secret ‖ url)>.<base64url(SHA-256("pgpair1.<payload>")[..4])>`.
    pub fn encode(&self) -> String {
        let mut raw = Vec::with_capacity(ID_LEN + SECRET_LEN + self.gateway_url.len());
        raw.extend_from_slice(&self.id.0);
        raw.extend_from_slice(&self.secret.0);
        raw.extend_from_slice(self.gateway_url.as_bytes());
        let body = format!("{PAIRING_PREFIX}.{}", b64::encode(&raw));
        let check = checksum(&body);
        format!("{body}.{check}")
    }

    /// Parses a pairing string, ignoring surrounding whitespace.
    pub fn parse(input: &str) -> Result<Self, PairingError> {
        let text = input.trim();
        if text.len() > MAX_PAIRING_STRING_LEN {
            return Err(PairingError::TooLong);
        }
        let rest = text
            .strip_prefix(PAIRING_PREFIX)
            .and_then(|r| r.strip_prefix('.'))
            .ok_or(PairingError::WrongPrefix)?;
        let (payload, check) = rest.rsplit_once('.').ok_or(PairingError::Malformed)?;
        let is_b64 = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if check.len() != CHECK_CHARS || !is_b64(check) || !is_b64(payload) {
            return Err(PairingError::Malformed);
        }
        let body = &text[..PAIRING_PREFIX.len() + 1 + payload.len()];
        if !bool::from(checksum(body).as_bytes().ct_eq(check.as_bytes())) {
            return Err(PairingError::BadChecksum);
        }
        let raw = b64::decode(payload).map_err(|_| PairingError::Malformed)?;
        if raw.len() <= ID_LEN + SECRET_LEN {
            return Err(PairingError::Malformed);
        }
        let (id, rest) = raw.split_at(ID_LEN);
        let (secret, url) = rest.split_at(SECRET_LEN);
        let gateway_url = String::from_utf8(url.to_vec()).map_err(|_| PairingError::BadUrl)?;
        validate_gateway_url(&gateway_url)?;
        Ok(PairingString {
            id: PairingId(id.try_into().map_err(|_| PairingError::Malformed)?),
            secret: PairingSecret(secret.try_into().map_err(|_| PairingError::Malformed)?),
            gateway_url,
        })
    }
}

impl fmt::Debug for PairingString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PairingString")
            .field("id", &self.id)
            .field("secret", &self.secret)
            .field("gateway_url", &self.gateway_url)
            .finish()
    }
}

fn checksum(body: &str) -> String {
    b64::encode(&Sha256::digest(body.as_bytes())[..4])
}

/// An absolute `http`/`https` URL with a host, printable ASCII, and no userinfo, query or
/// fragment.
fn validate_gateway_url(text: &str) -> Result<(), PairingError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') {
        return Err(PairingError::BadUrl);
    }
    let lower = text.to_ascii_lowercase();
    if !lower.starts_with("https://") && !lower.starts_with("http://") {
        return Err(PairingError::BadUrl);
    }
    let url = url::Url::parse(text).map_err(|_| PairingError::BadUrl)?;
    let ok = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some_and(|h| !h.is_empty())
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none();
    if ok {
        Ok(())
    } else {
        Err(PairingError::BadUrl)
    }
}

#[cfg(test)]
mod tests {
    use rand_core::OsRng;

    use super::*;

    fn fixed() -> PairingString {
        PairingString {
            id: PairingId([1; 16]),
            secret: PairingSecret([2; 32]),
            gateway_url: "https://gateway.example".to_owned(),
        }
    }

    #[test]
    fn roundtrip_and_scanner_shape() {
        let encoded = fixed().encode();
        assert!(encoded.starts_with("pgpair1."));
        let (_, check) = encoded.rsplit_once('.').unwrap();
        assert_eq!(check.len(), 6);
        assert!(encoded.split('.').nth(1).unwrap().len() >= 70);
        assert_eq!(
            PairingString::parse(&format!(" \n{encoded}\t ")).unwrap(),
            fixed()
        );
        let random = PairingString::generate("http://localhost:8080/pg", &mut OsRng).unwrap();
        assert_eq!(PairingString::parse(&random.encode()).unwrap(), random);
    }

    #[test]
    fn distinct_errors_that_never_echo_input() {
        let good = fixed().encode();
        let (body, check) = good.rsplit_once('.').unwrap();
        let flipped_check = format!(
            "{body}.{}",
            if check.starts_with('A') { "B" } else { "A" }.to_owned() + &check[1..]
        );
        let mut typo = good.clone().into_bytes();
        typo[20] = if typo[20] == b'x' { b'y' } else { b'x' };
        let typo = String::from_utf8(typo).unwrap();
        let bad_url = PairingString {
            gateway_url: "ftp://gateway.example".into(),
            ..fixed()
        }
        .encode();
        let query_url = PairingString {
            gateway_url: "https://g.example/?a=b".into(),
            ..fixed()
        }
        .encode();
        let cases = [
            (
                good.replacen("pgpair1", "pgpair2", 1),
                PairingError::WrongPrefix,
            ),
            (good.to_uppercase(), PairingError::WrongPrefix),
            ("pgpair1".to_owned(), PairingError::WrongPrefix),
            ("pgpair1.".to_owned(), PairingError::Malformed),
            (format!("{good}.x"), PairingError::Malformed),
            (format!("{body}.{}", &check[..5]), PairingError::Malformed),
            (format!("pgpair1.a+b.{check}"), PairingError::Malformed),
            (flipped_check, PairingError::BadChecksum),
            (typo, PairingError::BadChecksum),
            (bad_url, PairingError::BadUrl),
            (query_url, PairingError::BadUrl),
            (
                "x".repeat(MAX_PAIRING_STRING_LEN + 1),
                PairingError::TooLong,
            ),
        ];
        for (input, expected) in cases {
            let err = PairingString::parse(&input).unwrap_err();
            assert_eq!(err, expected, "{input}");
            // Short inputs such as "pgpair1" legitimately occur in the fixed message text.
            assert!(input.len() < 16 || !err.to_string().contains(&input));
        }
        // Too short after the checksum passes: only an id, no secret or URL.
        let body = format!("pgpair1.{}", b64::encode(&[0u8; 16]));
        let short = format!("{body}.{}", checksum(&body));
        assert_eq!(PairingString::parse(&short), Err(PairingError::Malformed));
    }

    #[test]
    fn secrets_are_redacted() {
        let shown = format!("{:?}", fixed());
        assert!(shown.contains("<redacted>"));
        assert!(!shown.contains("2, 2"));
        assert!(!shown.contains(&b64::encode(&[2; 32])));
        assert!(fixed().secret.ct_eq(&[2; 32]));
        assert!(!fixed().secret.ct_eq(&[2; 31]));
    }

    #[test]
    fn pairing_id_display_and_parse() {
        let id = PairingId([0xfb; 16]);
        let shown = id.to_string();
        assert_eq!(shown, "pr_-_v7-_v7-_v7-_v7-_v7-w");
        assert_eq!(shown.len(), 25);
        assert_eq!(shown.parse::<PairingId>(), Ok(id));
        for bad in [
            "",
            "pr_",
            "px_-_v7-_v7-_v7-_v7-_v7-w",
            "pr_-_v7-_v7-_v7-_v7-_v7-x",
            "pr_AAAA",
        ] {
            assert_eq!(bad.parse::<PairingId>(), Err(PairingError::BadId), "{bad}");
        }
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{shown}\""));
        assert_eq!(
            serde_json::from_str::<PairingId>(&format!("\"{shown}\"")).unwrap(),
            id
        );
    }
}
