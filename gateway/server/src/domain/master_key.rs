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

use std::time::{Duration, Instant};

use pairgate_store::credentials::MASTER_KEY_ID;

use crate::state::AppState;

/// After a failed reload, further triggers within this time do not try again.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

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
    match crate::engine::keys::load_master_key(&state.config, &state.store, false).await {
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
