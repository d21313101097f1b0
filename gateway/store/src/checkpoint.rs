//! SQLite's WAL checkpoints, moved off the write pool's commits into a task of their own.
//!
//! By default SQLite checkpoints inside a commit: the commit that takes the write-ahead log past
//! 1,000 pages then copies the log into the main file and syncs both to disk before it returns.
//! On the write pool that commit is the usage ledger's group commit, which every answer waits
//! for, so each such checkpoint (milliseconds of `fsync`) stalled every request in flight. The
//! write pool's connection therefore never checkpoints (`wal_autocheckpoint = 0`); every
//! [`WRITES_PER_CHECKPOINT`] commits through it, a spawned task runs a `PASSIVE` checkpoint on the
//! read pool, which in WAL mode goes on beside the writer without blocking it.
//!
//! SQLite starts the log over only when a write begins while every frame of it is already in
//! the main file, and the writer adds frames while a checkpoint runs: under steady writes the
//! log keeps growing. (More passive checkpoints to catch up, or emptying the log more often, cost
//! more than they save: each adds `fsync`s that slow the writer's own appends; measured in
//! docs/benchmarks.md.) A log longer than [`WAL_LIMIT_FRAMES`] after the passive checkpoint
//! therefore gets a `RESTART` checkpoint on the write pool's own connection. It queues in that
//! pool like any writer (never sleeping in the busy handler for the ledger's lock) and copies
//! what the passive run left, so the next commit starts the log over: the ledger waits for it
//! once per [`WAL_LIMIT_FRAMES`] pages written, and the log file stays within that size.
//!
//! A `RESTART` waits for every reader of the log's old frames to finish (in SQLite's busy
//! handler), and the ledger waits behind it. A long read (a backup, a large export, the CLI in
//! another process) must not stall every answer for the whole busy timeout, so this checkpoint
//! waits at most [`RESTART_WAIT`] for readers and otherwise leaves the log to the next round.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::{BUSY_TIMEOUT, Store, StoreError};

/// Commits through the write pool between two checkpoints.
pub const WRITES_PER_CHECKPOINT: u32 = 256;

/// The log's size, in pages (128 MiB of 4 KiB pages), above which the write pool's connection
/// has it start over (`RESTART`).
pub const WAL_LIMIT_FRAMES: i64 = 32_768;

/// Longest a `RESTART` checkpoint waits for readers of old log frames (the ledger's commits wait
/// behind it) before it gives up until the next round; the connection's busy timeout otherwise.
pub const RESTART_WAIT: Duration = Duration::from_millis(20);

/// What one checkpoint round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointRound {
    /// The log's size in pages that the passive checkpoint found.
    pub log_frames: i64,
    /// Whether the log was over the limit, and then whether the `RESTART` completed (`false`:
    /// readers of old frames were still there after [`RESTART_WAIT`]).
    pub restarted: Option<bool>,
}

/// The checkpoint schedule of one store (shared by its clones).
#[derive(Debug, Default)]
pub(crate) struct Checkpoints {
    /// Whether this store's write pool has checkpoints turned off (SQLite with a write pool of
    /// its own); otherwise SQLite checkpoints in the commit, or PostgreSQL needs none.
    enabled: bool,
    writes: AtomicU32,
    running: AtomicBool,
    done: AtomicU64,
}

impl Checkpoints {
    pub(crate) fn new(enabled: bool) -> Checkpoints {
        Checkpoints {
            enabled,
            ..Checkpoints::default()
        }
    }
}

impl Store {
    /// Notes a commit through the write pool; every [`WRITES_PER_CHECKPOINT`] commits starts a
    /// checkpoint task unless one is running. Never waits.
    pub(crate) fn wrote(&self) {
        let c = &self.checkpoints;
        if !c.enabled || c.writes.fetch_add(1, Ordering::Relaxed) + 1 < WRITES_PER_CHECKPOINT {
            return;
        }
        if c.running.swap(true, Ordering::AcqRel) {
            return;
        }
        c.writes.store(0, Ordering::Relaxed);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            c.running.store(false, Ordering::Release);
            return;
        };
        let store = self.clone();
        runtime.spawn(async move {
            match store.checkpoint_beside_the_writer(WAL_LIMIT_FRAMES).await {
                Ok(_) => {
                    store.checkpoints.done.fetch_add(1, Ordering::AcqRel);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "SQLite checkpoint failed; the next one retries");
                }
            }
            store.checkpoints.running.store(false, Ordering::Release);
        });
    }

    /// How many checkpoint tasks have completed.
    pub fn checkpoints_done(&self) -> u64 {
        self.checkpoints.done.load(Ordering::Acquire)
    }

    /// A `PASSIVE` checkpoint on the read pool, then, if the log is still longer than `limit`
    /// pages, a `RESTART` one on the write pool's connection (the ledger waits for it, at most
    /// about [`RESTART_WAIT`] longer than the copy itself; once it completed, the next commit
    /// writes the log from its beginning).
    pub async fn checkpoint_beside_the_writer(
        &self,
        limit: i64,
    ) -> Result<CheckpointRound, StoreError> {
        let (_busy, log_frames, _copied): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(self.pool())
                .await?;
        let restarted = if log_frames > limit {
            Some(self.restart_log().await?)
        } else {
            None
        };
        Ok(CheckpointRound {
            log_frames,
            restarted,
        })
    }

    /// `RESTART` on the write pool's connection, its busy timeout lowered to [`RESTART_WAIT`]
    /// meanwhile. Whether it completed (SQLite's first column: 1 when readers blocked it). A
    /// connection whose busy timeout could not be set back is closed, not reused.
    async fn restart_log(&self) -> Result<bool, StoreError> {
        let mut conn = self.writer().acquire().await?;
        let lowered = format!("PRAGMA busy_timeout = {}", RESTART_WAIT.as_millis());
        let restored = format!("PRAGMA busy_timeout = {}", BUSY_TIMEOUT.as_millis());
        let result = async {
            sqlx::query(&lowered).execute(&mut *conn).await?;
            let checkpoint: Result<(i64, i64, i64), sqlx::Error> =
                sqlx::query_as("PRAGMA wal_checkpoint(RESTART)")
                    .fetch_one(&mut *conn)
                    .await;
            sqlx::query(&restored).execute(&mut *conn).await?;
            checkpoint.map(|(busy, _, _)| busy == 0)
        }
        .await;
        if result.is_err() {
            conn.close_on_drop();
        }
        if result.as_ref().is_ok_and(|done| !done) {
            tracing::debug!("SQLite checkpoint: readers of old log frames; restarting next round");
        }
        Ok(result?)
    }
}

#[cfg(test)]
mod tests {
    use super::WRITES_PER_CHECKPOINT;
    use crate::{LedgerRow, Store, StoreOptions, sqlite_url};

    /// A batch of 100 rows (one commit).
    fn rows(batch: u32) -> Vec<LedgerRow> {
        (0..100)
            .map(|i| LedgerRow {
                request_id: format!("req_{batch}_{i}"),
                endpoint: "chat".into(),
                model: Some("gpt-4o-mini-with-a-long-name".into()),
                status: 200,
                created_at: 1,
                ..Default::default()
            })
            .collect()
    }

    /// The write pool's commits never checkpoint (the main file stays as it was however long the
    /// log grows); the checkpoint task, started by the commits, moves the log into the main file
    /// beside the writer; after a checkpoint over the limit the next commit starts the log over.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_never_checkpoints_and_a_task_does_it_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c.db");
        let s = Store::connect(&sqlite_url(&db), &StoreOptions::default())
            .await
            .unwrap();
        s.migrate().await.unwrap();
        let auto = |pool| sqlx::query_scalar::<_, i64>("PRAGMA wal_autocheckpoint").fetch_one(pool);
        assert_eq!(auto(s.writer()).await.unwrap(), 0);
        assert_eq!(auto(s.pool()).await.unwrap(), 1000);
        s.checkpoint_beside_the_writer(0).await.unwrap();
        let size = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().len();
        let main_before = size("c.db");

        let mut session = s.ledger_session();
        for batch in 0..WRITES_PER_CHECKPOINT - 1 {
            session.record_usage(&rows(batch), &[]).await.unwrap();
        }
        // Far past SQLite's 1,000 pages at which a commit would have checkpointed by default.
        assert!(
            size("c.db-wal") > 2_000 * 4096,
            "{} bytes",
            size("c.db-wal")
        );
        assert_eq!(size("c.db"), main_before, "a commit checkpointed");
        assert_eq!(s.checkpoints_done(), 0);

        session
            .record_usage(&rows(WRITES_PER_CHECKPOINT), &[])
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while s.checkpoints_done() == 0 {
            assert!(std::time::Instant::now() < deadline, "no checkpoint ran");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // The rows (25,600 of them, about 2.5 MB) are in the main file now.
        assert!(
            size("c.db") > main_before + (1 << 20),
            "{} bytes",
            size("c.db")
        );
        let rows_kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_ledger")
            .fetch_one(s.pool())
            .await
            .unwrap();
        assert_eq!(rows_kept, i64::from(WRITES_PER_CHECKPOINT) * 100);

        // Over the limit: once the ledger gives the write pool's connection back (as its
        // writer does when idle), the log is copied and the next commit starts it over: the
        // file does not grow.
        session.record_usage(&rows(u32::MAX), &[]).await.unwrap();
        session.release();
        s.checkpoint_beside_the_writer(0).await.unwrap();
        let wal = size("c.db-wal");
        session
            .record_usage(&rows(u32::MAX - 1), &[])
            .await
            .unwrap();
        assert_eq!(size("c.db-wal"), wal);
    }

    /// A read transaction on old log frames (a backup, an export) holds the `RESTART` back for
    /// [`RESTART_WAIT`](super::RESTART_WAIT), not for the connection's 5-second busy timeout: the
    /// round reports it did not restart, the writer's busy timeout is back, the ledger commits
    /// at once; once the reader is gone the next round restarts the log.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_reader_delays_the_restart_briefly_not_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("r.db");
        let s = Store::connect(&sqlite_url(&db), &StoreOptions::default())
            .await
            .unwrap();
        s.migrate().await.unwrap();
        let mut session = s.ledger_session();
        session.record_usage(&rows(0), &[]).await.unwrap();

        let mut reader = s.pool().begin().await.unwrap();
        let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_ledger")
            .fetch_one(&mut *reader)
            .await
            .unwrap();
        assert_eq!(seen, 100);
        session.record_usage(&rows(1), &[]).await.unwrap();
        session.release();

        let started = std::time::Instant::now();
        let round = s.checkpoint_beside_the_writer(0).await.unwrap();
        assert!(round.log_frames > 0, "{round:?}");
        assert_eq!(round.restarted, Some(false), "the reader did not block it");
        assert!(
            started.elapsed() < super::BUSY_TIMEOUT / 2,
            "the checkpoint waited {:?} for the reader",
            started.elapsed()
        );
        let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(s.writer())
            .await
            .unwrap();
        assert_eq!(busy, super::BUSY_TIMEOUT.as_millis() as i64);
        session.record_usage(&rows(2), &[]).await.unwrap();
        session.release();

        // The reader still sees its snapshot; once it is gone the restart goes through.
        let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_ledger")
            .fetch_one(&mut *reader)
            .await
            .unwrap();
        assert_eq!(seen, 100);
        reader.rollback().await.unwrap();
        let round = s.checkpoint_beside_the_writer(0).await.unwrap();
        assert_eq!(round.restarted, Some(true), "{round:?}");
        let size = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().len();
        let wal = size("r.db-wal");
        session.record_usage(&rows(3), &[]).await.unwrap();
        assert_eq!(size("r.db-wal"), wal, "the log did not start over");
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_ledger")
            .fetch_one(s.pool())
            .await
            .unwrap();
        assert_eq!(total, 400);
    }
}
