//! The change signal: a number that moves whenever any process changes a grant or a credential.
//!
//! The gateway keeps grants (its grant cache) and sealed credential rows (see
//! [`Store::active_value`]) in memory and must still refuse a revoked, suspended or re-keyed
//! grant, apply an edited policy, or use a rotated or removed credential's new state, on the very
//! next request, whoever made the change: this process, the owner's CLI on the same machine, or
//! another replica. Every [`Store`] write that changes a grant's status, bound key, policy or
//! bearer key, or a credential's value, calls [`Store::announce_change`], which moves the signal
//! three ways:
//!
//! * in this process: an atomic counter;
//! * on SQLite: one byte appended to the sidecar file `<database>-changes` (the CLI runs in
//!   another process on the same file); the file only grows, so its length is a counter every
//!   process on the machine can read with one `fstat`, without a database statement;
//! * on PostgreSQL: `NOTIFY` on [`CHANNEL`]; [`Store::listen_for_changes`] (started by
//!   `pairgate serve`) counts the notifications it receives, and a lost listener connection
//!   counts as a change (notifications may have been missed while it reconnected).
//!
//! [`Store::change_epoch`] sums the three; a cache entry loaded under another epoch is stale.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::{Backend, Store, StoreError};

/// The PostgreSQL channel changes are announced on, followed by `:` and the schema (so
/// installations sharing one database in different schemas do not disturb each other).
pub const CHANNEL: &str = "pairgate_changes";

/// The shared state behind [`Store::change_epoch`].
#[derive(Default)]
pub(crate) struct Changes {
    /// Changes made through this process's store.
    local: AtomicU64,
    /// Notifications (and reconnections) seen by the PostgreSQL listener.
    notified: AtomicU64,
    /// SQLite: the sidecar file whose length counts changes made by any process.
    sidecar: Option<PathBuf>,
    /// SQLite: the sidecar kept open once it exists, so a reading is one `fstat` rather than a
    /// path lookup ([`Changes::sidecar_len`]).
    sidecar_file: std::sync::OnceLock<std::fs::File>,
    /// PostgreSQL: the URL the listener connects with (never logged: it may hold a password).
    listen_url: Option<String>,
    /// PostgreSQL: the channel (see [`CHANNEL`]).
    channel: String,
}

impl std::fmt::Debug for Changes {
    /// Without the listener's URL (it may hold a password).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes")
            .field("local", &self.local)
            .field("notified", &self.notified)
            .field("sidecar", &self.sidecar)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl Changes {
    /// The signal of a store on `url`; `schema` is PostgreSQL's `current_schema()`.
    pub(crate) fn new(backend: Backend, url: &str, schema: Option<&str>) -> Changes {
        let mut changes = Changes::default();
        match backend {
            Backend::Sqlite => changes.sidecar = sqlite_file(url).map(|p| sidecar_path(&p)),
            Backend::Postgres => {
                changes.listen_url = Some(url.to_owned());
                changes.channel = format!("{CHANNEL}:{}", schema.unwrap_or("public"));
            }
        }
        changes
    }

    /// The sidecar's length: `fstat` on the kept file, by path until it exists, and by path
    /// again once the kept file has been deleted (a later change creates a new one).
    fn sidecar_len(&self, path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt as _;
        if let Some(file) = self.sidecar_file.get()
            && let Ok(meta) = file.metadata()
            && meta.nlink() > 0
        {
            return meta.len();
        }
        if self.sidecar_file.get().is_none()
            && let Ok(file) = std::fs::File::open(path)
        {
            let len = file.metadata().map_or(0, |m| m.len());
            let _ = self.sidecar_file.set(file);
            return len;
        }
        std::fs::metadata(path).map_or(0, |m| m.len())
    }
}

/// The database file a SQLite URL names (`None` for an in-memory database).
fn sqlite_file(url: &str) -> Option<PathBuf> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    let rest = url
        .strip_prefix("sqlite://")
        .or(url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty()).then(|| PathBuf::from(path))
}

/// The sidecar file of a SQLite database: `<database>-changes`.
pub fn sidecar_path(database: &Path) -> PathBuf {
    let mut p = database.as_os_str().to_owned();
    p.push("-changes");
    PathBuf::from(p)
}

impl Store {
    /// Announces that a grant or a credential changed (see the module docs). Called by every
    /// write that changes one, after it committed. It cannot fail the write it follows: if the
    /// sidecar or `NOTIFY` fails, the error is logged, this process still knows at once, and
    /// other processes' entries expire within their caches' maximum age (10 s).
    pub(crate) async fn announce_change(&self) {
        let changes = &self.changes;
        changes.local.fetch_add(1, Ordering::SeqCst);
        if let Some(path) = &changes.sidecar {
            let mut open = std::fs::OpenOptions::new();
            open.append(true).create(true);
            std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
            if let Err(e) = open.open(path).and_then(|mut f| f.write_all(b".")) {
                tracing::error!(path = %path.display(), error = %e, "cannot record a change for other processes");
            }
        }
        if self.backend == Backend::Postgres
            && let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
                .bind(&changes.channel)
                .execute(self.pool())
                .await
        {
            tracing::error!(error = %StoreError::from(e), "cannot announce a change to other replicas");
        }
    }

    /// A number that differs from any earlier reading once a grant or credential changed
    /// anywhere (this process, another process on the same SQLite file, a replica that sent
    /// `NOTIFY` while [`Store::listen_for_changes`] runs). One `stat` on SQLite; no database
    /// statement (an `fstat` of the kept file).
    pub fn change_epoch(&self) -> u64 {
        let changes = &self.changes;
        let sidecar = changes
            .sidecar
            .as_deref()
            .map_or(0, |p| changes.sidecar_len(p));
        changes.local.load(Ordering::SeqCst) + changes.notified.load(Ordering::SeqCst) + sidecar
    }

    /// PostgreSQL: listens for other processes' changes until the task is aborted (on
    /// SQLite there is nothing to listen to and the task ends at once). While the listener is
    /// not connected, every epoch reading moves (nothing is trusted that could have changed).
    pub fn listen_for_changes(&self) -> tokio::task::JoinHandle<()> {
        let changes = Arc::clone(&self.changes);
        tokio::spawn(async move {
            let Some(url) = changes.listen_url.clone() else {
                return;
            };
            loop {
                match listen(&url, &changes).await {
                    Ok(()) => {}
                    Err(e) => tracing::warn!(error = %e, "change listener: reconnecting"),
                }
                changes.notified.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    }
}

/// One connection's worth of listening: returns when the connection was lost.
async fn listen(url: &str, changes: &Changes) -> Result<(), StoreError> {
    let mut listener = sqlx::postgres::PgListener::connect(url)
        .await
        .map_err(|e| StoreError::Unreachable(crate::redact_url_error(&e.to_string())))?;
    listener.listen(&changes.channel).await?;
    // Anything changed before LISTEN took effect is covered by this bump.
    changes.notified.fetch_add(1, Ordering::SeqCst);
    loop {
        match listener.try_recv().await? {
            Some(_) => {
                changes.notified.fetch_add(1, Ordering::SeqCst);
            }
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sidecar_sits_beside_the_database_file() {
        assert_eq!(
            sqlite_file("sqlite:///data/pairgate.db?mode=rwc"),
            Some(PathBuf::from("/data/pairgate.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(
            sidecar_path(Path::new("/data/pairgate.db")),
            PathBuf::from("/data/pairgate.db-changes")
        );
    }

    #[tokio::test]
    async fn a_change_by_another_process_on_the_same_file_moves_the_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::sqlite_url(&dir.path().join("g.db"));
        let ours = Store::connect(&url, &Default::default()).await.unwrap();
        let theirs = Store::connect(&url, &Default::default()).await.unwrap();
        let before = ours.change_epoch();
        theirs.announce_change().await;
        let after = ours.change_epoch();
        assert!(after > before, "{before} -> {after}");
        ours.announce_change().await;
        assert!(ours.change_epoch() > after);
    }

    #[tokio::test]
    async fn a_deleted_sidecar_is_read_again_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("g.db");
        let url = crate::sqlite_url(&db);
        let ours = Store::connect(&url, &Default::default()).await.unwrap();
        let theirs = Store::connect(&url, &Default::default()).await.unwrap();
        theirs.announce_change().await;
        theirs.announce_change().await;
        // read once: the file is now kept open
        let kept = ours.change_epoch();
        std::fs::remove_file(sidecar_path(&db)).unwrap();
        let deleted = ours.change_epoch();
        assert_ne!(
            deleted, kept,
            "the kept file was deleted: its length no longer counts"
        );
        // another process's next change creates a new file, which is what counts now
        theirs.announce_change().await;
        assert!(ours.change_epoch() > deleted);
    }
}
