//! Where an app keeps its key and tokens: a file with 0600 permissions, or memory.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::SdkError;

/// Everything a paired app must keep: the gateway, its private key (JWK), and its tokens.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredSession {
    pub gateway_url: String,
    pub private_jwk: serde_json::Value,
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// Unix seconds at which the access token expires.
    pub expires_at: i64,
    pub grant_id: String,
    /// The last server nonce seen, if the gateway uses nonces.
    #[serde(default)]
    pub nonce: Option<String>,
}

impl std::fmt::Debug for StoredSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSession")
            .field("gateway_url", &self.gateway_url)
            .field("grant_id", &self.grant_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A place to keep the session between runs.
pub trait Storage: Send + Sync + 'static {
    fn load(&self) -> Result<Option<StoredSession>, SdkError>;
    fn save(&self, session: &StoredSession) -> Result<(), SdkError>;

    /// Held while the client refreshes, for storage that several processes share: a refresh
    /// token works once, so they must refresh one at a time, each first adopting what another
    /// saved. The default (storage of one process) holds nothing.
    fn lock_for_refresh(&self) -> Result<Option<RefreshGuard>, SdkError> {
        Ok(None)
    }
}

/// Whatever keeps a [`Storage::lock_for_refresh`] lock; dropping it releases the lock.
pub type RefreshGuard = Box<dyn std::any::Any + Send>;

/// A JSON file readable only by its owner (mode 0600), replaced atomically on every save.
#[derive(Debug, Clone)]
pub struct FileStorage {
    path: PathBuf,
}

impl FileStorage {
    pub fn new(path: impl AsRef<Path>) -> FileStorage {
        FileStorage {
            path: path.as_ref().to_path_buf(),
        }
    }
}

impl Storage for FileStorage {
    fn load(&self) -> Result<Option<StoredSession>, SdkError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                SdkError::Session(format!(
                    "{} is not a session file: {e}",
                    self.path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SdkError::Storage(format!(
                "cannot read {}: {e}",
                self.path.display()
            ))),
        }
    }

    fn save(&self, session: &StoredSession) -> Result<(), SdkError> {
        use std::io::Write;
        let fail = |e: std::io::Error| {
            SdkError::Storage(format!("cannot write {}: {e}", self.path.display()))
        };
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp).map_err(fail)?;
        let bytes =
            serde_json::to_vec_pretty(session).map_err(|e| SdkError::Storage(e.to_string()))?;
        f.write_all(&bytes).map_err(fail)?;
        f.sync_all().map_err(fail)?;
        std::fs::rename(&tmp, &self.path).map_err(fail)
    }
}

/// Keeps the session in memory only (it is lost when the process ends).
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    inner: Arc<Mutex<Option<StoredSession>>>,
}

impl MemoryStorage {
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }
}

impl Storage for MemoryStorage {
    fn load(&self) -> Result<Option<StoredSession>, SdkError> {
        Ok(self
            .inner
            .lock()
            .map_err(|_| SdkError::Storage("poisoned".into()))?
            .clone())
    }

    fn save(&self, session: &StoredSession) -> Result<(), SdkError> {
        *self
            .inner
            .lock()
            .map_err(|_| SdkError::Storage("poisoned".into()))? = Some(session.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> StoredSession {
        StoredSession {
            gateway_url: "http://127.0.0.1:1".into(),
            private_jwk: serde_json::json!({"kty": "OKP"}),
            access_token: "secret-access".into(),
            refresh_token: Some("secret-refresh".into()),
            expires_at: 1,
            grant_id: "gr_1".into(),
            nonce: None,
        }
    }

    #[test]
    fn file_storage_round_trips_with_owner_only_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStorage::new(dir.path().join("s.json"));
        assert!(s.load().unwrap().is_none());
        s.save(&session()).unwrap();
        assert_eq!(s.load().unwrap().unwrap().grant_id, "gr_1");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("s.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn debug_output_hides_tokens_and_keys() {
        let text = format!("{:?}", session());
        assert!(
            !text.contains("secret-access")
                && !text.contains("secret-refresh")
                && !text.contains("OKP")
        );
    }
}
