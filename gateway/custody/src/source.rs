//! Where the master key comes from, and loading it.
//!
//! A raw master key is always 32 bytes written as standard base64 (44 characters);
//! surrounding whitespace is ignored. Passphrase sources instead derive the key with
//! Argon2id.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::ExposeSecret;

use crate::credref::{self, CredentialRef};
use crate::error::{CustodyError, Result};
use crate::fetch;
use crate::keychain;
use crate::master::{KdfParams, MasterKey};

/// Where to get the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeySource {
    /// A file holding the base64 key; optionally generated on first start.
    File {
        /// Path to the key file.
        path: PathBuf,
        /// Generate and write a new key (mode 0600) if the file does not exist.
        create_if_missing: bool,
    },
    /// An environment variable holding the base64 key.
    Env {
        /// Variable name.
        var: String,
    },
    /// `$CREDENTIALS_DIRECTORY/<name>` (systemd `LoadCredential=`/`LoadCredentialEncrypted=`).
    SystemdCredential {
        /// Credential name.
        name: String,
    },
    /// The stdout of a program (run without a shell).
    Command {
        /// Program path or name.
        program: String,
        /// Arguments, passed as-is.
        args: Vec<String>,
        /// Hard limit; the program is killed when it expires.
        timeout: Duration,
    },
    /// An OS keychain entry holding the base64 key.
    Keyring {
        /// Keychain service name.
        service: String,
        /// Keychain user/account name.
        user: String,
    },
    /// A passphrase stretched with Argon2id.
    Passphrase {
        /// Where the passphrase comes from.
        from: PassphraseFrom,
        /// Argon2 salt (at least 8 bytes; see [`crate::new_salt`]).
        salt: Vec<u8>,
        /// Argon2id costs.
        params: KdfParams,
    },
}

/// Where a passphrase comes from (trailing `\r`/`\n` removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassphraseFrom {
    /// An environment variable.
    Env(String),
    /// A file.
    File(PathBuf),
    /// The stdout of a program (e.g. `systemd-ask-password`).
    Command {
        /// Program path or name.
        program: String,
        /// Arguments, passed as-is.
        args: Vec<String>,
        /// Hard limit; the program is killed when it expires.
        timeout: Duration,
    },
}

/// A loaded master key plus what the operator should know about it.
#[derive(Debug)]
pub struct Loaded {
    /// The key.
    pub key: MasterKey,
    /// True if the key was generated (and written) by this call.
    pub created: bool,
    /// Non-fatal advice to log (loose file permissions, generated key location...).
    pub warnings: Vec<String>,
}

/// The process environment, for [`load`] and [`crate::resolve`] outside tests.
pub fn process_env(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

/// Loads the master key from `source`. `env` looks up environment variables (pass
/// [`process_env`] in production, a closure in tests).
pub async fn load(
    source: &MasterKeySource,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Loaded> {
    let loaded = |key| Loaded {
        key,
        created: false,
        warnings: Vec::new(),
    };
    match source {
        MasterKeySource::File {
            path,
            create_if_missing,
        } => load_file(path, *create_if_missing).await,
        MasterKeySource::Env { var } => {
            let r = CredentialRef::Env { var: var.clone() };
            let text = credref::fetch_text(&r, env).await?;
            MasterKey::from_base64(&text, &r.describe()).map(loaded)
        }
        MasterKeySource::SystemdCredential { name } => load_systemd(name, env).await.map(loaded),
        MasterKeySource::Command {
            program,
            args,
            timeout,
        } => {
            let r = CredentialRef::Command {
                program: program.clone(),
                args: args.clone(),
                timeout: *timeout,
            };
            let text = credref::fetch_text(&r, env).await?;
            MasterKey::from_base64(&text, &r.describe()).map(loaded)
        }
        MasterKeySource::Keyring { service, user } => {
            let text = keychain::get(service, user).await?;
            let mut out = loaded(MasterKey::from_base64(
                &text,
                &keychain::entry_desc(service, user),
            )?);
            if cfg!(target_os = "linux") {
                out.warnings.push(
                    "the Linux kernel keyring does not survive a reboot: keep a backup of the \
                     master key outside this machine"
                        .into(),
                );
            }
            Ok(out)
        }
        MasterKeySource::Passphrase { from, salt, params } => {
            load_passphrase(from, salt, params, env).await
        }
    }
}

async fn load_systemd(
    name: &str,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<MasterKey> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(CustodyError::InvalidConfig {
            reason: format!("systemd credential name `{name}` must be a plain file name"),
        });
    }
    let dir = env("CREDENTIALS_DIRECTORY").ok_or_else(|| CustodyError::NotFound {
        what: format!(
            "environment variable CREDENTIALS_DIRECTORY (set by systemd for units with \
             LoadCredential=; needed for systemd credential `{name}`)"
        ),
    })?;
    let path = Path::new(&dir).join(name);
    let desc = format!("systemd credential `{name}` ({})", path.display());
    let file = fetch::read_file(&path).await?;
    let text = fetch::into_text(file.bytes, || desc.clone())?;
    MasterKey::from_base64(&text, &desc)
}

async fn load_passphrase(
    from: &PassphraseFrom,
    salt: &[u8],
    params: &KdfParams,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Loaded> {
    let r = match from {
        PassphraseFrom::Env(var) => CredentialRef::Env { var: var.clone() },
        PassphraseFrom::File(path) => CredentialRef::File { path: path.clone() },
        PassphraseFrom::Command {
            program,
            args,
            timeout,
        } => CredentialRef::Command {
            program: program.clone(),
            args: args.clone(),
            timeout: *timeout,
        },
    };
    let passphrase = credref::resolve(&r, env).await?;
    let (salt, params) = (salt.to_vec(), *params);
    let key =
        fetch::blocking(move || MasterKey::from_passphrase(&passphrase, &salt, &params)).await?;
    let mut warnings = Vec::new();
    if params.is_weak() {
        warnings.push(format!(
            "Argon2id parameters (m={} KiB, t={}, p={}) are below the recommended minimum \
             (m=19456 KiB, t=2): the passphrase is easier to brute-force from a stolen database",
            params.m_kib, params.t, params.p
        ));
    }
    Ok(Loaded {
        key,
        created: false,
        warnings,
    })
}

async fn load_file(path: &Path, create_if_missing: bool) -> Result<Loaded> {
    match read_key_file(path).await {
        Err(CustodyError::NotFound { .. }) if create_if_missing => {
            let owned = path.to_owned();
            if let Some(key) = fetch::blocking(move || create_key_file(&owned)).await? {
                return Ok(Loaded {
                    key,
                    created: true,
                    warnings: vec![format!(
                        "generated a new master key in {}: it sits beside the database, so \
                         anyone who copies both can decrypt every stored credential; back it \
                         up separately and prefer a systemd credential, keychain or command \
                         source",
                        path.display()
                    )],
                });
            }
            // Another process created the file first: use its key.
            read_key_file(path).await
        }
        other => other,
    }
}

async fn read_key_file(path: &Path) -> Result<Loaded> {
    let desc = format!("file {}", path.display());
    let file = fetch::read_file(path).await?;
    let text = fetch::into_text(file.bytes, || desc.clone())?;
    let key = MasterKey::from_base64(&text, &desc)?;
    let mut warnings = Vec::new();
    if let Some(mode) = file.mode.filter(|m| m & 0o077 != 0) {
        warnings.push(format!(
            "master key file {} is accessible by group or others (mode {mode:o}); run \
             `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
    Ok(Loaded {
        key,
        created: false,
        warnings,
    })
}

/// Generates a key and publishes it at `path` atomically (temp file, fsync, hard link, so a
/// crash never leaves a half-written key and an existing file is never replaced).
/// Returns `None` if `path` appeared meanwhile.
fn create_key_file(path: &Path) -> Result<Option<MasterKey>> {
    use std::io::Write as _;

    let io = |what: String| move |source| CustodyError::Io { what, source };
    let name = path
        .file_name()
        .ok_or_else(|| CustodyError::InvalidConfig {
            reason: format!("master key path {} has no file name", path.display()),
        })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".tmp-{}",
        crate::blob::hex(&crate::master::new_salt()[..6])
    ));
    let tmp = path.with_file_name(tmp_name);
    let what = format!("new master key file {}", path.display());

    let key = MasterKey::generate();
    let mut text = zeroize::Zeroizing::new(key.export_base64().expose_secret().to_owned());
    text.push('\n');

    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let write = || -> Result<()> {
        let mut f = opts.open(&tmp).map_err(io(what.clone()))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io(what.clone()))
    };
    let published = write().and_then(|()| match std::fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        // Filesystems without hard links: rename, unless the file appeared meanwhile.
        Err(_) if !path.exists() => std::fs::rename(&tmp, path)
            .map(|()| true)
            .map_err(io(what.clone())),
        Err(_) => Ok(false),
    });
    let _ = std::fs::remove_file(&tmp);
    if !published? {
        return Ok(None);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Make the new directory entry durable; not every platform can open directories.
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(Some(key))
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
