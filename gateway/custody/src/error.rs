//! The crate's single error type; every message names a source, never a secret value.

use std::process::ExitStatus;
use std::time::Duration;

/// Everything that can go wrong in key custody.
///
/// Messages are one line each and name the credential, file, variable or program
/// involved. They never contain key material, plaintext, command output or a guess at
/// any of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CustodyError {
    /// The master key is not the one the data was sealed with.
    #[error(
        "wrong master key: the configured master key is not the one this data was sealed with \
         (check the master key source before touching anything)"
    )]
    WrongMasterKey,

    /// A sealed credential failed authentication under the right master key.
    #[error(
        "stored credential `{credential_id}` cannot be decrypted: it is corrupt or belongs to \
         another credential or provider"
    )]
    Corrupt {
        /// The credential whose stored bytes failed to decrypt.
        credential_id: String,
    },

    /// The stored master-key verifier is truncated or fails authentication.
    #[error("stored master-key verifier is corrupt (truncated or altered)")]
    CorruptVerifier,

    /// A blob starts with a version byte this build does not understand.
    #[error("unsupported custody format version {version:#04x} (this build understands 0x01)")]
    UnsupportedVersion {
        /// The version byte found.
        version: u8,
    },

    /// Master key material is not 32 bytes written as standard base64.
    #[error("bad master key material from {source_desc}: {reason}")]
    BadKeyMaterial {
        /// Where the material came from (file, variable, command...).
        source_desc: String,
        /// What is wrong with it; a fixed text, never derived from the content.
        reason: &'static str,
    },

    /// A credential value (or passphrase) is unusable: empty, not UTF-8, too large.
    #[error("unusable secret from {source_desc}: {reason}")]
    BadSecret {
        /// Where the value came from.
        source_desc: String,
        /// What is wrong with it; a fixed text, never derived from the content.
        reason: &'static str,
    },

    /// A file could not be read or written, or a program could not be started.
    #[error("I/O error on {what}: {source}")]
    Io {
        /// The file or program involved.
        what: String,
        /// The underlying OS error.
        #[source]
        source: std::io::Error,
    },

    /// A command did not finish in time; it was killed.
    #[error("command `{program}` did not finish within {timeout:?} and was killed")]
    CommandTimeout {
        /// The program that was run.
        program: String,
        /// The configured limit.
        timeout: Duration,
    },

    /// A command exited unsuccessfully. Its output is discarded, never shown.
    #[error("command `{program}` failed ({status})")]
    CommandFailed {
        /// The program that was run.
        program: String,
        /// How it exited.
        status: ExitStatus,
    },

    /// No usable OS keychain service.
    #[error("OS keychain unavailable: {reason}")]
    KeyringUnavailable {
        /// Why (platform error text or "no keychain on this platform").
        reason: String,
    },

    /// A variable, file, keychain entry or systemd credential does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: String,
    },

    /// Argon2id rejected its parameters or input.
    #[error("passphrase key derivation failed: {reason}")]
    Kdf {
        /// Argon2 error text or a fixed reason.
        reason: String,
    },

    /// A source or reference is misconfigured (empty program name, bad credential name...).
    #[error("invalid key source configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
}

/// Result alias used throughout the crate.
pub type Result<T, E = CustodyError> = std::result::Result<T, E>;
