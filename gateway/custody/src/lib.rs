//! Key custody: master key sources and envelope encryption of provider credentials.
//!
//! * [`MasterKey`]: the gateway's 32-byte root key (random, raw base64 or Argon2id
//!   passphrase), HKDF subkeys via [`MasterKey::derive`], a non-secret [`MasterKey::key_id`]
//!   and a stored [`MasterKey::verifier`] to detect a wrong key at start.
//! * [`seal`]/[`open`]/[`rewrap`]: per-credential data keys wrapped under the master key,
//!   XChaCha20-Poly1305 bound to credential id and provider (layouts in [`envelope`]).
//! * [`load`]: fetch the master key from a [`MasterKeySource`].
//! * [`resolve`]: fetch a credential kept outside the database ([`CredentialRef`]).
//!
//! Nothing here knows about HTTP or SQL; callers store the bytes. No secret is ever part
//! of an error message or `Debug` output.

#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod blob;
mod credref;
pub mod envelope;
mod error;
mod fetch;
mod keychain;
mod master;
mod source;

pub use credref::{CredentialRef, DEFAULT_COMMAND_TIMEOUT, resolve};
pub use envelope::{CredentialAad, Sealed, fingerprint, last4, open, rewrap, seal, wrapped_key_id};
pub use error::{CustodyError, Result};
pub use keychain::{keyring_delete, keyring_store};
pub use master::{KdfParams, MasterKey, new_salt};
pub use source::{Loaded, MasterKeySource, PassphraseFrom, load, process_env};

pub use secrecy::{ExposeSecret, SecretBox, SecretString};
