//! OS keychain access through the `keyring` crate: Linux kernel keyutils (pure Rust),
//! macOS Keychain, Windows Credential Manager. Elsewhere every call reports that no
//! keychain is available.
//!
//! Note: Linux keyutils entries live in kernel memory (session/persistent keyrings) and do
//! not survive a reboot.

use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::error::Result;

/// How a keychain entry is named in errors.
pub(crate) fn entry_desc(service: &str, user: &str) -> String {
    format!("keychain entry (service `{service}`, user `{user}`)")
}

/// Reads the entry's text.
pub(crate) async fn get(service: &str, user: &str) -> Result<Zeroizing<String>> {
    let (s, u) = (service.to_owned(), user.to_owned());
    crate::fetch::blocking(move || native::get(&s, &u)).await
}

/// Stores `secret` (e.g. [`crate::MasterKey::export_base64`]) in the OS keychain under
/// `service`/`user`, replacing any previous value.
pub async fn keyring_store(service: &str, user: &str, secret: SecretString) -> Result<()> {
    let (s, u) = (service.to_owned(), user.to_owned());
    crate::fetch::blocking(move || native::set(&s, &u, &secret)).await
}

/// Removes the entry; a missing entry is not an error.
pub async fn keyring_delete(service: &str, user: &str) -> Result<()> {
    let (s, u) = (service.to_owned(), user.to_owned());
    crate::fetch::blocking(move || native::delete(&s, &u)).await
}

#[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
mod native {
    use secrecy::{ExposeSecret, SecretString};
    use zeroize::Zeroizing;

    use super::entry_desc;
    use crate::error::{CustodyError, Result};

    /// Which call failed; keyutils reports "access denied" as `NoEntry`, so a missing
    /// entry only means "not found" for reads.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Op {
        Open,
        Get,
        Set,
        Delete,
    }

    /// On Linux, kernel keyutils by name: the server crate also enables the Secret Service
    /// backend for `pairgate connect`, which would otherwise become `keyring`'s default.
    fn entry(service: &str, user: &str) -> Result<keyring::Entry> {
        #[cfg(target_os = "linux")]
        let entry = keyring::keyutils::KeyutilsCredential::new_with_target(None, service, user)
            .map(|c| keyring::Entry::new_with_credential(Box::new(c)));
        #[cfg(not(target_os = "linux"))]
        let entry = keyring::Entry::new(service, user);
        entry.map_err(|e| map(e, Op::Open, service, user))
    }

    pub(super) fn get(service: &str, user: &str) -> Result<Zeroizing<String>> {
        entry(service, user)?
            .get_password()
            .map(Zeroizing::new)
            .map_err(|e| map(e, Op::Get, service, user))
    }

    pub(super) fn set(service: &str, user: &str, secret: &SecretString) -> Result<()> {
        let entry = entry(service, user)?;
        entry.set_password(secret.expose_secret()).map_err(|e| {
            // Do not leave a half-stored copy behind (keyutils adds, then links).
            let _ = entry.delete_credential();
            map(e, Op::Set, service, user)
        })
    }

    pub(super) fn delete(service: &str, user: &str) -> Result<()> {
        match entry(service, user)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(map(e, Op::Delete, service, user)),
        }
    }

    /// Maps keyring errors; never formats a value (`BadEncoding` carries the raw bytes).
    fn map(e: keyring::Error, op: Op, service: &str, user: &str) -> CustodyError {
        let desc = entry_desc(service, user);
        match e {
            keyring::Error::NoEntry if op == Op::Get || op == Op::Delete => {
                CustodyError::NotFound { what: desc }
            }
            keyring::Error::NoEntry => CustodyError::KeyringUnavailable {
                reason: format!(
                    "the keychain denied access while {} {desc} (on Linux: no usable kernel \
                     session or persistent keyring for this process)",
                    if op == Op::Set { "storing" } else { "opening" }
                ),
            },
            keyring::Error::PlatformFailure(err) | keyring::Error::NoStorageAccess(err) => {
                CustodyError::KeyringUnavailable {
                    reason: format!("{err} (while accessing {desc})"),
                }
            }
            keyring::Error::BadEncoding(bytes) => {
                drop(Zeroizing::new(bytes));
                CustodyError::BadSecret {
                    source_desc: desc,
                    reason: "not valid UTF-8",
                }
            }
            keyring::Error::TooLong(attr, limit) => CustodyError::InvalidConfig {
                reason: format!("{desc}: `{attr}` is longer than the platform limit of {limit}"),
            },
            keyring::Error::Invalid(attr, why) => CustodyError::InvalidConfig {
                reason: format!("{desc}: `{attr}` is invalid: {why}"),
            },
            keyring::Error::Ambiguous(_) => CustodyError::InvalidConfig {
                reason: format!("{desc} matches several stored credentials"),
            },
            _ => CustodyError::KeyringUnavailable {
                reason: format!("unexpected keychain error (while accessing {desc})"),
            },
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
mod native {
    use secrecy::SecretString;
    use zeroize::Zeroizing;

    use crate::error::{CustodyError, Result};

    fn unavailable() -> CustodyError {
        CustodyError::KeyringUnavailable {
            reason: "no supported OS keychain on this platform (supported: Linux kernel \
                     keyutils, macOS Keychain, Windows Credential Manager); use a file, \
                     systemd credential or command source instead"
                .into(),
        }
    }

    pub(super) fn get(_service: &str, _user: &str) -> Result<Zeroizing<String>> {
        Err(unavailable())
    }

    pub(super) fn set(_service: &str, _user: &str, _secret: &SecretString) -> Result<()> {
        Err(unavailable())
    }

    pub(super) fn delete(_service: &str, _user: &str) -> Result<()> {
        Err(unavailable())
    }
}
