//! Master-key rotation without downtime: a running gateway picks up a rotated master key by
//! re-reading its configured source, and a key file can be rotated in place.
//!
//! # In-place rotation of a key file (`pairgate master-key rotate` with no `--to-*`)
//! 1. The new key is generated into `KEY.next` (mode 0600).
//! 2. One database transaction re-wraps every data key and re-seals the gateway secret under it
//!    (`credentials::rotate_master_key`) and replaces the verifier.
//! 3. The old file is hard-linked to `KEY.retired-OLDID` (for backups made before now), then
//!    `KEY.next` is renamed over `KEY` (atomic).
//!
//! A crash between 2 and 3 leaves the database under the key in `KEY.next`: loading the master key
//! notices (the file's key fails the verifier, `KEY.next`'s passes) and uses it; a start or a
//! CLI command also completes step 3. A crash before 2 leaves a stale `KEY.next` that the next
//! rotation removes.
//!
//! # Picking up a new key while running
//! Sealed data keys carry the id of the master key that wrapped them in clear. When a gateway
//! meets one wrapped under another key (or a credential write is fenced because the database
//! moved on), it reloads the master key from its configured source, once at a time (a reload
//! for the same key id that failed is not retried for [`RETRY_AFTER_FAILURE`]), checks it
//! against the database's verifier and swaps it in. SIGHUP does the same. Sources whose value
//! cannot change under a running process (an environment variable, a systemd credential) need a
//! restart instead.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pairgate_custody::{MasterKey, MasterKeySource};
use pairgate_store::credentials::MASTER_KEY_ID;

use crate::state::AppState;

/// After a failed reload, further triggers within this time do not try again.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

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

/// Reloads the master key from the configured source, looking for the key `wanted` (a key id,
/// when the caller knows which one the data needs). Returns true when a different key is now in
/// use. Never fails: a failed reload is logged (without key material) and the old key stays in
/// use; the same reload is not tried again within [`RETRY_AFTER_FAILURE`].
pub async fn reload(state: &AppState, wanted: Option<&str>, reason: &str) -> bool {
    let before = state.keys.master().key_id();
    let mut last_failure = state.keys.reload_gate().lock().await;
    // Another task may have reloaded while this one waited.
    if state.keys.master().key_id() != before {
        return true;
    }
    if let Some((at, for_key)) = last_failure.as_ref()
        && at.elapsed() < RETRY_AFTER_FAILURE
        && for_key.as_deref() == wanted
    {
        return false;
    }
    let failed = Some((Instant::now(), wanted.map(str::to_string)));
    match crate::keys::load_master_key(&state.config, &state.store, false).await {
        Ok((key, _)) if key.key_id() != before => {
            let after = key.key_id();
            state.keys.replace_master(key);
            *last_failure = None;
            tracing::info!(old_key_id = %before, new_key_id = %after, reason, "master key reloaded");
            true
        }
        Ok(_) => {
            *last_failure = failed;
            tracing::info!(key_id = %before, reason, "master key reload: the configured source still holds the key in use");
            false
        }
        Err(e) => {
            *last_failure = failed;
            tracing::warn!(key_id = %before, reason, error = %e, "master key reload failed; the key in use stays");
            false
        }
    }
}

/// Reloads when the database says data is now sealed under another key than the one in use
/// (checked before a credential write, which is fenced on that id).
pub async fn ensure_current(state: &AppState) {
    let in_use = state.keys.master().key_id();
    if let Ok(Some(stored)) = state.store.meta_get(MASTER_KEY_ID).await
        && stored != in_use
    {
        reload(
            state,
            Some(&stored),
            "the database names another master key",
        )
        .await;
    }
}

/// Reloads when a sealed data key names another master key than the one in use. Returns true
/// when the key in use changed (the caller opens again).
pub async fn reload_for_wrap(state: &AppState, wrapped_dek: &[u8]) -> bool {
    match pairgate_custody::wrapped_key_id(wrapped_dek) {
        Ok(kid) if kid != state.keys.master().key_id() => {
            reload(
                state,
                Some(&kid),
                "a data key is wrapped under another master key",
            )
            .await
        }
        _ => false,
    }
}

/// Reloads the master key on every SIGHUP, for as long as the process runs.
pub fn spawn_sighup_reloader(state: AppState) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            // An explicit request: never skipped because an earlier attempt failed.
            *state.keys.reload_gate().lock().await = None;
            reload(&state, None, "SIGHUP").await;
        }
    });
    Ok(())
}

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
