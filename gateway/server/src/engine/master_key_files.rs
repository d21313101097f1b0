//! The master key's files during an in-place rotation (`KEY.next`, `KEY.retired-ID`), and the
//! gate reloads pass: what `engine::keys` needs to load the right key at start, and what the
//! rotation and reload in `domain::master_key` use.

use std::path::{Path, PathBuf};
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pairgate_custody::{MasterKey, MasterKeySource};

/// `KEY.next`: where an in-place rotation writes the new key before it commits.
pub fn next_path(key_file: &Path) -> PathBuf {
    let mut p = key_file.as_os_str().to_owned();
    p.push(".next");
    PathBuf::from(p)
}

/// `KEY.retired-ID`: where an in-place rotation keeps the old key.
pub fn retired_path(key_file: &Path, old_key_id: &str) -> PathBuf {
    let mut p = key_file.as_os_str().to_owned();
    p.push(format!(".retired-{old_key_id}"));
    PathBuf::from(p)
}

/// The key in `KEY.next` when the database's verifier (base64) rejects `current` and accepts it:
/// an in-place rotation committed but not yet renamed.
pub async fn pending_file_key(
    key_file: &Path,
    current: &MasterKey,
    verifier_b64: &str,
) -> Option<MasterKey> {
    let verifier = STANDARD.decode(verifier_b64).ok()?;
    if current.check_verifier(&verifier).is_ok() {
        return None;
    }
    let next = next_path(key_file);
    if !next.exists() {
        return None;
    }
    let source = MasterKeySource::File {
        path: next,
        create_if_missing: false,
    };
    let loaded = pairgate_custody::load(&source, &pairgate_custody::process_env)
        .await
        .ok()?;
    loaded.key.check_verifier(&verifier).ok()?;
    Some(loaded.key)
}

/// Step 3 of an in-place rotation: keeps the old key file as `KEY.retired-OLDID` and renames
/// `KEY.next` over `KEY`. Returns false when another process already completed it.
pub fn finish_file_rotation(key_file: &Path, old_key_id: &str) -> std::io::Result<bool> {
    let next = next_path(key_file);
    if !next.exists() {
        return Ok(false);
    }
    match std::fs::hard_link(key_file, retired_path(key_file, old_key_id)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    match std::fs::rename(&next, key_file) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Serialises reloads; remembers the last failed one (when, and which key id it was after).
pub type ReloadGate = tokio::sync::Mutex<Option<(Instant, Option<String>)>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn write_key(path: &Path, key: &MasterKey) {
        use pairgate_custody::ExposeSecret;
        std::fs::write(path, key.export_base64().expose_secret()).unwrap();
    }

    #[tokio::test]
    async fn a_committed_rotation_is_found_and_finished_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("master.key");
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        write_key(&file, &old);
        let old_verifier = STANDARD.encode(old.verifier());
        let new_verifier = STANDARD.encode(new.verifier());
        // Nothing pending while the database is still under the file's key.
        assert!(pending_file_key(&file, &old, &old_verifier).await.is_none());
        write_key(&next_path(&file), &new);
        assert!(pending_file_key(&file, &old, &old_verifier).await.is_none());
        // Committed: the verifier now names the key in KEY.next.
        let found = pending_file_key(&file, &old, &new_verifier).await.unwrap();
        assert_eq!(found.key_id(), new.key_id());
        // A third key matching nothing is not "pending".
        let other = STANDARD.encode(MasterKey::generate().verifier());
        assert!(pending_file_key(&file, &old, &other).await.is_none());

        assert!(finish_file_rotation(&file, &old.key_id()).unwrap());
        assert!(
            !finish_file_rotation(&file, &old.key_id()).unwrap(),
            "already done"
        );
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        use pairgate_custody::ExposeSecret;
        assert_eq!(read(&file), *new.export_base64().expose_secret());
        let retired = retired_path(&file, &old.key_id());
        assert_eq!(read(&retired), *old.export_base64().expose_secret());
        assert!(!next_path(&file).exists());
        assert!(pending_file_key(&file, &new, &new_verifier).await.is_none());
    }
}
