//! Where the connector keeps what it needs: the session (gateway, grant, tokens) in
//! `session.json`, and its secrets (the DPoP private key and the caller token) in the OS keychain
//! or, when none is usable, in `secret.json`; the state dir is 0700 and every file 0600.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use pairgate_sdk::{RefreshGuard, SdkError, Storage, StoredSession};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::cli::commands::CommandError;

/// The keychain service every connector entry is filed under.
pub const KEYCHAIN_SERVICE: &str = "pairgate-connect";
const SESSION_FILE: &str = "session.json";
const SECRET_FILE: &str = "secret.json";
const REFRESH_LOCK: &str = "refresh.lock";
/// The address the running `connect serve` listens on, for `connect env`.
const SERVE_ADDR: &str = "serve.addr";

/// Where to keep the secrets, as asked on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SecretStoreChoice {
    /// The OS keychain: macOS Keychain, Windows Credential Manager, the Secret Service on Linux
    /// (GNOME Keyring, KWallet); a 0600 file wherever none is usable (on Linux kernel keyutils
    /// are not used unasked: their entries do not survive a reboot).
    Auto,
    /// The OS keychain, or fail (on Linux: the Secret Service, else kernel keyutils, which are
    /// lost at reboot).
    Keychain,
    /// A 0600 file in the state dir.
    File,
}

/// Where the secrets are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretPlace {
    /// The platform keychain (kernel keyutils on Linux).
    Keychain,
    /// The freedesktop Secret Service (Linux).
    #[serde(rename = "secret-service")]
    SecretService,
    File,
}

impl SecretPlace {
    /// The keychain backend holding the secrets, if they are in one.
    fn backend(self) -> Option<keychain::Backend> {
        match self {
            SecretPlace::Keychain => Some(keychain::Backend::Native),
            SecretPlace::SecretService => Some(keychain::Backend::SecretService),
            SecretPlace::File => None,
        }
    }
}

/// `session.json`: everything but the secrets.
#[derive(Clone, Serialize, Deserialize)]
struct SessionFile {
    gateway_url: String,
    grant_id: String,
    access_token: String,
    refresh_token: Option<String>,
    expires_at: i64,
    #[serde(default)]
    nonce: Option<String>,
    secrets: SecretPlace,
}

/// The secrets, stored as one JSON text.
#[derive(Serialize, Deserialize)]
struct Secrets {
    private_jwk: serde_json::Value,
    caller_token: String,
}

/// The connector's state dir.
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// `--state-dir`, or the platform config dir's `pairgate/connect`.
    pub fn resolve(flag: Option<PathBuf>) -> Result<StateDir, CommandError> {
        let path = match flag {
            Some(p) => p,
            None => directories::ProjectDirs::from("", "", "pairgate")
                .map(|d| d.config_dir().join("connect"))
                .ok_or_else(|| {
                    CommandError::Usage(
                        "no home directory to keep the connector's state in; pass --state-dir DIR"
                            .into(),
                    )
                })?,
        };
        let path = if path.is_absolute() {
            path
        } else {
            std::env::current_dir()
                .map_err(|e| CommandError::Api(format!("cannot read the current dir: {e}")))?
                .join(path)
        };
        Ok(StateDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn secret_file(&self) -> PathBuf {
        self.path.join(SECRET_FILE)
    }

    fn session_file(&self) -> PathBuf {
        self.path.join(SESSION_FILE)
    }

    /// The keychain account for this state dir, so several connectors can coexist.
    fn keychain_user(&self) -> String {
        let digest = Sha256::digest(self.path.to_string_lossy().as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("connect-{hex}")
    }

    /// Creates the dir (0700) if needed.
    pub fn create(&self) -> Result<(), CommandError> {
        let fail = |e: std::io::Error| {
            CommandError::Api(format!("cannot create {}: {e}", self.path.display()))
        };
        std::fs::create_dir_all(&self.path).map_err(fail)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o700))
                .map_err(fail)?;
        }
        Ok(())
    }

    fn read_session(&self) -> Result<Option<SessionFile>, CommandError> {
        let path = self.session_file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                CommandError::Api(format!(
                    "{} is not a connector session ({e}); `pairgate connect forget` removes it",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CommandError::Api(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// Records where `connect serve` listens (removed when it stops).
    pub fn record_listen(&self, addr: std::net::SocketAddr) -> Result<(), CommandError> {
        let path = self.path.join(SERVE_ADDR);
        write_private(&path, addr.to_string().as_bytes())
            .map_err(|e| CommandError::Api(format!("cannot write {}: {e}", path.display())))
    }

    pub fn clear_listen(&self) {
        let _ = std::fs::remove_file(self.path.join(SERVE_ADDR));
    }

    /// Where a `connect serve` from this dir said it listens, if one did.
    pub fn recorded_listen(&self) -> Option<std::net::SocketAddr> {
        std::fs::read_to_string(self.path.join(SERVE_ADDR))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The grant this dir is paired with, if any.
    pub fn paired_grant(&self) -> Result<Option<String>, CommandError> {
        Ok(self.read_session()?.map(|s| s.grant_id))
    }

    /// Deletes the secrets (keychain entry and file) and the session; true if anything was
    /// there.
    pub fn forget(&self) -> Result<bool, CommandError> {
        let session = self.read_session().ok().flatten();
        let mut found = session.is_some();
        let place = session.and_then(|s| s.secrets.backend());
        for backend in [keychain::Backend::Native, keychain::Backend::SecretService] {
            match keychain::delete(backend, &self.keychain_user()) {
                Ok(deleted) => found |= deleted,
                // Without a session saying the key is there, an unusable keychain holds
                // nothing of ours.
                Err(_) if place != Some(backend) => {}
                Err(e) => {
                    return Err(CommandError::Api(format!(
                        "cannot delete the connector's keychain entry ({e}); nothing was deleted"
                    )));
                }
            }
        }
        for file in [
            self.secret_file(),
            self.session_file(),
            self.path.join(REFRESH_LOCK),
            self.path.join(SERVE_ADDR),
        ] {
            match std::fs::remove_file(&file) {
                Ok(()) => found = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(CommandError::Api(format!(
                        "cannot delete {}: {e}",
                        file.display()
                    )));
                }
            }
        }
        // Only an empty dir goes; anything else in it is not ours to delete.
        let _ = std::fs::remove_dir(&self.path);
        Ok(found)
    }

    /// Decides where the secrets of a new pairing go; says on stderr when it is a file.
    pub fn choose_place(&self, choice: SecretStoreChoice) -> Result<SecretPlace, CommandError> {
        let file = self.secret_file();
        let announce = |why: &str| {
            eprintln!(
                "pairgate connect: {why}; the private key and the caller token are kept in {} \
                 (mode 0600, readable by this user only)",
                file.display()
            );
        };
        match choice {
            SecretStoreChoice::File => {
                announce("--secret-store file");
                Ok(SecretPlace::File)
            }
            SecretStoreChoice::Keychain if cfg!(target_os = "linux") => {
                let user = self.keychain_user();
                let service = keychain::probe(keychain::Backend::SecretService, &user);
                if service.is_ok() {
                    return Ok(SecretPlace::SecretService);
                }
                match keychain::probe(keychain::Backend::Native, &user) {
                    Ok(()) => {
                        eprintln!(
                            "pairgate connect: no Secret Service is reachable ({}); the secrets \
                             are kept in kernel keyutils, which are lost at reboot",
                            service.err().unwrap_or_default()
                        );
                        Ok(SecretPlace::Keychain)
                    }
                    Err(e) => Err(CommandError::Api(format!(
                        "the OS keychain is not usable here ({e}); use --secret-store file"
                    ))),
                }
            }
            SecretStoreChoice::Keychain => {
                match keychain::probe(keychain::Backend::Native, &self.keychain_user()) {
                    Ok(()) => Ok(SecretPlace::Keychain),
                    Err(e) => Err(CommandError::Api(format!(
                        "the OS keychain is not usable here ({e}); use --secret-store file"
                    ))),
                }
            }
            SecretStoreChoice::Auto if cfg!(target_os = "linux") => {
                match keychain::probe(keychain::Backend::SecretService, &self.keychain_user()) {
                    Ok(()) => Ok(SecretPlace::SecretService),
                    Err(e) => {
                        announce(&format!(
                            "no Secret Service is reachable ({e}), and kernel keyutils entries \
                             are lost at reboot"
                        ));
                        Ok(SecretPlace::File)
                    }
                }
            }
            SecretStoreChoice::Auto => {
                match keychain::probe(keychain::Backend::Native, &self.keychain_user()) {
                    Ok(()) => Ok(SecretPlace::Keychain),
                    Err(e) => {
                        announce(&format!("no usable OS keychain ({e})"));
                        Ok(SecretPlace::File)
                    }
                }
            }
        }
    }
}

/// Writes `bytes` to `path` with mode 0600, replacing it atomically.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The SDK's session storage for the connector: the private key goes to the secret store, the
/// rest to `session.json`.
pub struct ConnectorStorage {
    dir: StateDir,
    place: SecretPlace,
    caller_token: SecretString,
    /// The private key as last stored, so a save writes the secret store only when it changed.
    stored_key: Mutex<Option<serde_json::Value>>,
}

impl std::fmt::Debug for ConnectorStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorStorage")
            .field("dir", &self.dir)
            .field("place", &self.place)
            .finish_non_exhaustive()
    }
}

impl ConnectorStorage {
    /// Storage for a new pairing, with a fresh caller token.
    pub fn new_pairing(dir: StateDir, place: SecretPlace) -> ConnectorStorage {
        use rand_core::RngCore;
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand_core::OsRng.fill_bytes(bytes.as_mut());
        let token = format!(
            "pgc_{}",
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                bytes.as_ref()
            )
        );
        ConnectorStorage {
            dir,
            place,
            caller_token: SecretString::from(token),
            stored_key: Mutex::new(None),
        }
    }

    /// Opens a paired state dir: reads the session and the secrets.
    pub fn open(dir: StateDir) -> Result<ConnectorStorage, CommandError> {
        let session = dir.read_session()?.ok_or_else(|| {
            CommandError::Usage(format!(
                "{} holds no pairing; run `pairgate connect pair <pairing string>` (or \
                 `pairgate connect request`) first",
                dir.path().display()
            ))
        })?;
        let text = match session.secrets.backend() {
            Some(backend) => keychain::get(backend, &dir.keychain_user()).map_err(|e| {
                CommandError::Api(format!(
                    "cannot read the connector's key from the OS keychain ({e}); pair again \
                     after `pairgate connect forget`"
                ))
            })?,
            None => Zeroizing::new(std::fs::read_to_string(dir.secret_file()).map_err(|e| {
                CommandError::Api(format!(
                    "cannot read {} ({e}); pair again after `pairgate connect forget`",
                    dir.secret_file().display()
                ))
            })?),
        };
        let secrets: Secrets = serde_json::from_str(&text).map_err(|_| {
            CommandError::Api(
                "the connector's stored key is damaged; pair again after `pairgate connect \
                 forget`"
                    .into(),
            )
        })?;
        Ok(ConnectorStorage {
            place: session.secrets,
            dir,
            caller_token: SecretString::from(secrets.caller_token),
            stored_key: Mutex::new(Some(secrets.private_jwk)),
        })
    }

    pub fn caller_token(&self) -> &SecretString {
        &self.caller_token
    }

    pub fn place(&self) -> SecretPlace {
        self.place
    }

    pub fn dir(&self) -> &StateDir {
        &self.dir
    }

    fn write_secrets(&self, key: &serde_json::Value) -> Result<(), SdkError> {
        let text = Zeroizing::new(
            serde_json::to_string(&Secrets {
                private_jwk: key.clone(),
                caller_token: self.caller_token.expose_secret().to_string(),
            })
            .map_err(|e| SdkError::Storage(e.to_string()))?,
        );
        match self.place.backend() {
            Some(backend) => keychain::set(backend, &self.dir.keychain_user(), &text)
                .map_err(|e| SdkError::Storage(format!("cannot write the OS keychain: {e}"))),
            None => {
                let path = self.dir.secret_file();
                write_private(&path, text.as_bytes())
                    .map_err(|e| SdkError::Storage(format!("cannot write {}: {e}", path.display())))
            }
        }
    }
}

impl Storage for ConnectorStorage {
    /// `serve`, `run` and `status` may run at once from one state dir: an exclusive lock on
    /// `refresh.lock` makes them refresh one at a time.
    fn lock_for_refresh(&self) -> Result<Option<RefreshGuard>, SdkError> {
        let path = self.dir.path().join(REFRESH_LOCK);
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true).write(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let fail =
            |e: std::io::Error| SdkError::Storage(format!("cannot lock {}: {e}", path.display()));
        let file = opts.open(&path).map_err(fail)?;
        file.lock().map_err(fail)?;
        Ok(Some(Box::new(file)))
    }

    fn load(&self) -> Result<Option<StoredSession>, SdkError> {
        let session = self
            .dir
            .read_session()
            .map_err(|e| SdkError::Storage(e.to_string()))?;
        let key = self
            .stored_key
            .lock()
            .map_err(|_| SdkError::Storage("poisoned".into()))?
            .clone();
        Ok(session.zip(key).map(|(s, key)| StoredSession {
            gateway_url: s.gateway_url,
            private_jwk: key,
            access_token: s.access_token,
            refresh_token: s.refresh_token,
            expires_at: s.expires_at,
            grant_id: s.grant_id,
            nonce: s.nonce,
        }))
    }

    fn save(&self, session: &StoredSession) -> Result<(), SdkError> {
        let mut stored = self
            .stored_key
            .lock()
            .map_err(|_| SdkError::Storage("poisoned".into()))?;
        if stored.as_ref() != Some(&session.private_jwk) {
            self.write_secrets(&session.private_jwk)?;
            *stored = Some(session.private_jwk.clone());
        }
        let file = SessionFile {
            gateway_url: session.gateway_url.clone(),
            grant_id: session.grant_id.clone(),
            access_token: session.access_token.clone(),
            refresh_token: session.refresh_token.clone(),
            expires_at: session.expires_at,
            nonce: session.nonce.clone(),
            secrets: self.place,
        };
        let bytes = Zeroizing::new(
            serde_json::to_vec_pretty(&file).map_err(|e| SdkError::Storage(e.to_string()))?,
        );
        let path = self.dir.session_file();
        write_private(&path, &bytes)
            .map_err(|e| SdkError::Storage(format!("cannot write {}: {e}", path.display())))
    }
}

/// The OS keychain through the `keyring` crate; messages never include a value.
#[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
mod keychain {
    use zeroize::Zeroizing;

    use super::KEYCHAIN_SERVICE;

    /// Which keychain.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Backend {
        /// The platform's own: macOS Keychain, Windows Credential Manager, Linux kernel keyutils.
        Native,
        /// The freedesktop Secret Service over D-Bus (Linux).
        SecretService,
    }

    fn entry(backend: Backend, user: &str) -> Result<keyring::Entry, String> {
        #[cfg(target_os = "linux")]
        let entry = match backend {
            Backend::Native => {
                keyring::keyutils::KeyutilsCredential::new_with_target(None, KEYCHAIN_SERVICE, user)
                    .map(|c| keyring::Entry::new_with_credential(Box::new(c)))
            }
            Backend::SecretService => {
                keyring::secret_service::SsCredential::new_with_target(None, KEYCHAIN_SERVICE, user)
                    .map(|c| keyring::Entry::new_with_credential(Box::new(c)))
            }
        };
        #[cfg(not(target_os = "linux"))]
        let entry = match backend {
            Backend::Native => keyring::Entry::new(KEYCHAIN_SERVICE, user),
            Backend::SecretService => {
                return Err("the Secret Service is used on Linux only".into());
            }
        };
        entry.map_err(describe)
    }

    fn describe(e: keyring::Error) -> String {
        match e {
            keyring::Error::PlatformFailure(err) | keyring::Error::NoStorageAccess(err) => {
                err.to_string().chars().take(300).collect()
            }
            // keyutils reports a refused write as a missing entry.
            keyring::Error::NoEntry => "no such entry, or access refused (on Linux: no session \
                                        or persistent keyring for this process)"
                .into(),
            keyring::Error::BadEncoding(_) => "the entry is not text".into(),
            other => format!("{other:?}").chars().take(200).collect(),
        }
    }

    /// Writes and deletes a test entry.
    pub fn probe(backend: Backend, user: &str) -> Result<(), String> {
        let probe = entry(backend, &format!("{user}-probe"))?;
        probe.set_password("probe").map_err(describe)?;
        let _ = probe.delete_credential();
        Ok(())
    }

    pub fn set(backend: Backend, user: &str, text: &str) -> Result<(), String> {
        entry(backend, user)?.set_password(text).map_err(describe)
    }

    pub fn get(backend: Backend, user: &str) -> Result<Zeroizing<String>, String> {
        entry(backend, user)?
            .get_password()
            .map(Zeroizing::new)
            .map_err(describe)
    }

    /// True if there was an entry.
    pub fn delete(backend: Backend, user: &str) -> Result<bool, String> {
        match entry(backend, user)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(describe(e)),
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
mod keychain {
    use zeroize::Zeroizing;

    const NONE: &str = "this platform has no supported OS keychain";

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Backend {
        Native,
        SecretService,
    }

    pub fn probe(_backend: Backend, _user: &str) -> Result<(), String> {
        Err(NONE.into())
    }

    pub fn set(_backend: Backend, _user: &str, _text: &str) -> Result<(), String> {
        Err(NONE.into())
    }

    pub fn get(_backend: Backend, _user: &str) -> Result<Zeroizing<String>, String> {
        Err(NONE.into())
    }

    pub fn delete(_backend: Backend, _user: &str) -> Result<bool, String> {
        Ok(false)
    }
}
