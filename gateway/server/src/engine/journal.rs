//! The ledger journal: an answered request's row and budget spend, appended to a file before its answer, so the database commit can follow in batches without a hard kill losing the row.
//!
//! Files: `<data dir>/ledger-journal/<start ms>-<pid>-<n>-<seq>.jsonl`, one JSON object per line, 0600
//! in a 0700 folder. The process writing a segment holds an exclusive lock (`flock`) on it until
//! the segment is deleted or the process ends. The ledger writer ([`crate::engine::ledger`])
//! counts, per segment, the journaled rows it has finished with (committed, or refused by the
//! database as bad); a segment is deleted once it has been rotated out (at [`SEGMENT_BYTES`]) and
//! all of its rows are finished, and at a clean close. A batch the database kept refusing as
//! unreachable is not counted, so its segment stays for the next start.
//!
//! At start, before serving, [`replay`] commits every segment no live process holds (what a hard
//! kill left behind) and deletes it. Replaying is idempotent: a row already in the ledger is
//! skipped together with its spend ([`pairgate_store::Store::record_usage`]). A line cut short
//! by the kill is skipped.
//!
//! What it guarantees: a row's line is written (to the kernel) before its answer completes, so a
//! killed process loses no answered row. Lines are not synced to disk one by one: like SQLite's
//! `synchronous = NORMAL`, which the database runs with, a power cut may lose the last ones.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use pairgate_store::{LedgerRow, Spend, SpendLine, Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::engine::limits::{Limiter, LimitsError, Settlement};

/// A segment is rotated out once it holds this many bytes (about 10,000 rows).
pub const SEGMENT_BYTES: u64 = 4 << 20;
/// The journal's folder in the data dir.
pub const FOLDER: &str = "ledger-journal";
/// Rows per transaction when replaying.
const REPLAY_ROWS: usize = 200;

/// Why the journal could not be opened or replayed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("ledger journal {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error(
        "replaying the ledger journal {path}: {source} (the file is kept; start again once the database is reachable)"
    )]
    Database { path: String, source: StoreError },
    #[error(
        "replaying the ledger journal {path}: settling its budgets on Redis: {source} (the file is kept; start again once Redis is reachable)"
    )]
    Redis { path: String, source: LimitsError },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// One line as written.
#[derive(Serialize)]
struct LineOut<'a> {
    row: &'a LedgerRow,
    #[serde(skip_serializing_if = "Option::is_none")]
    spend: Option<SpendOut<'a>>,
    /// The Redis backend's settlement, sent after the line is written.
    #[serde(skip_serializing_if = "Option::is_none")]
    redis: Option<&'a Settlement>,
}

#[derive(Serialize)]
struct SpendOut<'a> {
    grant: &'a str,
    /// (kind, window key, amount)
    lines: Vec<(&'a str, &'a str, u64)>,
}

/// One line as read back.
#[derive(Deserialize)]
struct LineIn {
    row: LedgerRow,
    #[serde(default)]
    spend: Option<SpendIn>,
    #[serde(default)]
    redis: Option<Settlement>,
}

#[derive(Deserialize)]
struct SpendIn {
    grant: String,
    lines: Vec<(String, String, u64)>,
}

/// The segment being written, or one rotated out whose rows are not all finished.
#[derive(Debug)]
struct Segment {
    /// Open and locked for as long as the segment exists.
    file: File,
    seq: u64,
    bytes: u64,
    lines: u64,
}

#[derive(Debug)]
struct State {
    /// `None` once closed (or when a new segment could not be created): appends then fail and
    /// the ledger falls back to committing before the answer.
    current: Option<Segment>,
    next_seq: u64,
    retired: Vec<Segment>,
}

/// An open journal: appended to by requests, collected by the ledger writer.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    /// `<start ms>-<pid>-<n>`: this journal's segments (`n` counts the journals this process
    /// opened).
    prefix: String,
    state: Mutex<State>,
}

impl Journal {
    /// Creates the folder (0700) if needed and this process's first segment.
    pub fn open(data_dir: &Path) -> Result<Journal, JournalError> {
        let dir = data_dir.join(FOLDER);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_error(&dir))?;
        static OPENED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let prefix = format!("{}-{}-{n}", pairgate_store::now_ms(), std::process::id());
        let journal = Journal {
            dir,
            prefix,
            state: Mutex::new(State {
                current: None,
                next_seq: 1,
                retired: Vec::new(),
            }),
        };
        let first = journal.segment(0).map_err(io_error(&journal.path(0)))?;
        journal.lock().current = Some(first);
        Ok(journal)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{}-{seq:06}.jsonl", self.prefix))
    }

    fn segment(&self, seq: u64) -> io::Result<Segment> {
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(self.path(seq))?;
        file.try_lock().map_err(io::Error::from)?;
        Ok(Segment {
            file,
            seq,
            bytes: 0,
            lines: 0,
        })
    }

    /// Appends a row (with the spend or Redis settlement it carries) and returns the segment it
    /// went to. An error means the row is not in the journal: its caller must commit it before
    /// answering.
    pub fn append(
        &self,
        row: &LedgerRow,
        spend: Option<&Spend>,
        redis: Option<&Settlement>,
    ) -> io::Result<u64> {
        let mut line = serde_json::to_vec(&LineOut {
            row,
            redis,
            spend: spend.map(|s| SpendOut {
                grant: &s.grant_id,
                lines: s
                    .lines
                    .iter()
                    .map(|l| (l.kind, l.window_key.as_str(), l.amount))
                    .collect(),
            }),
        })
        .map_err(io::Error::other)?;
        line.push(b'\n');
        let mut state = self.lock();
        let seg = state
            .current
            .as_mut()
            .ok_or_else(|| io::Error::other("the ledger journal is closed"))?;
        let seq = seg.seq;
        if let Err(e) = seg.file.write_all(&line) {
            // Part of the line may be in the file: nothing more goes after it.
            self.rotate(&mut state);
            return Err(e);
        }
        seg.lines += 1;
        seg.bytes += line.len() as u64;
        if seg.bytes >= SEGMENT_BYTES {
            self.rotate(&mut state);
        }
        Ok(seq)
    }

    /// Retires the current segment and starts the next one.
    fn rotate(&self, state: &mut State) {
        let seq = state.next_seq;
        state.next_seq += 1;
        let next = match self.segment(seq) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, dir = %self.dir.display(), "ledger journal: cannot start a new segment; answers wait for their database commit from now on");
                None
            }
        };
        if let Some(old) = std::mem::replace(&mut state.current, next) {
            state.retired.push(old);
        }
    }

    /// Deletes the retired segments whose rows are all finished; `finished` counts the rows
    /// finished per segment (the ledger writer's count).
    pub fn collect(&self, finished: &mut HashMap<u64, u64>) {
        let mut state = self.lock();
        state.retired.retain(|seg| {
            if finished.get(&seg.seq).copied().unwrap_or(0) < seg.lines {
                return true;
            }
            finished.remove(&seg.seq);
            if let Err(e) = std::fs::remove_file(self.path(seg.seq))
                && e.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(error = %e, "ledger journal: cannot delete a finished segment");
            }
            false
        });
    }

    /// The ledger writer is stopping: no more appends; every segment whose rows are all
    /// finished is deleted, the others stay for the next start.
    pub fn close(&self, finished: &mut HashMap<u64, u64>) {
        {
            let mut state = self.lock();
            if let Some(seg) = state.current.take() {
                state.retired.push(seg);
            }
        }
        self.collect(finished);
    }
}

/// What [`replay`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    pub segments: usize,
    pub rows: usize,
    /// Lines that could not be read (cut short by a kill).
    pub skipped: usize,
}

/// Commits and deletes every segment in `data_dir`'s journal that no live process holds. A
/// row's Redis settlement is run again first, if the row is not in the ledger yet: the relay
/// runs it before the row's commit, so a row in the ledger is one whose settlement ran, and
/// one not in it may have been settled too (charged twice, then: a crash may over-charge a
/// budget, never under-charge it).
pub async fn replay(
    data_dir: &Path,
    store: &Store,
    limiter: &Limiter,
) -> Result<Replayed, JournalError> {
    let dir = data_dir.join(FOLDER);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Replayed::default()),
        Err(e) => return Err(io_error(&dir)(e)),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    paths.sort();
    let mut done = Replayed::default();
    for path in paths {
        let mut file = OpenOptions::new()
            .read(true)
            .open(&path)
            .map_err(io_error(&path))?;
        if file.try_lock().is_err() {
            // a running gateway's segment (another replica on this data dir)
            continue;
        }
        let mut text = Vec::new();
        file.read_to_end(&mut text).map_err(io_error(&path))?;
        let Parsed {
            rows,
            spends,
            settlements,
            skipped,
        } = parse(&text);
        for (i, chunk) in rows.chunks(REPLAY_ROWS).enumerate() {
            settle_unrecorded(store, limiter, chunk, &settlements)
                .await
                .map_err(|e| e.at(&path))?;
            let ids: std::collections::HashSet<&str> =
                chunk.iter().map(|r| r.request_id.as_str()).collect();
            let chunk_spends: Vec<Spend> = spends
                .iter()
                .filter(|s| ids.contains(s.request_id.as_str()))
                .cloned()
                .collect();
            commit(store, chunk, &chunk_spends)
                .await
                .map_err(|source| JournalError::Database {
                    path: path.display().to_string(),
                    source,
                })?;
            tracing::debug!(chunk = i, rows = chunk.len(), "ledger journal: replayed");
        }
        std::fs::remove_file(&path).map_err(io_error(&path))?;
        if skipped > 0 {
            tracing::warn!(file = %path.display(), skipped, "ledger journal: lines that could not be read were skipped (cut short by a kill)");
        }
        done.segments += 1;
        done.rows += rows.len();
        done.skipped += skipped;
    }
    if done.segments > 0 {
        tracing::info!(
            segments = done.segments,
            rows = done.rows,
            "ledger journal: replayed what a stopped gateway left"
        );
    }
    Ok(done)
}

/// Why replaying a chunk's Redis settlements failed.
enum SettleError {
    Database(StoreError),
    Redis(LimitsError),
}

impl SettleError {
    fn at(self, path: &Path) -> JournalError {
        let path = path.display().to_string();
        match self {
            SettleError::Database(source) => JournalError::Database { path, source },
            SettleError::Redis(source) => JournalError::Redis { path, source },
        }
    }
}

/// Runs the Redis settlements of the rows of `chunk` that the ledger does not hold yet.
async fn settle_unrecorded(
    store: &Store,
    limiter: &Limiter,
    chunk: &[LedgerRow],
    settlements: &HashMap<String, Settlement>,
) -> Result<(), SettleError> {
    let ids: Vec<&str> = chunk
        .iter()
        .map(|r| r.request_id.as_str())
        .filter(|id| settlements.contains_key(*id))
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let held = store
        .ledger_holds(&ids)
        .await
        .map_err(SettleError::Database)?;
    for id in ids.into_iter().filter(|id| !held.contains(*id)) {
        let ran = limiter
            .settle_redis(&settlements[id])
            .await
            .map_err(SettleError::Redis)?;
        if !ran {
            tracing::warn!(
                request_id = id,
                "ledger journal: a Redis budget settlement is skipped (the limits backend is local now)"
            );
        }
    }
    Ok(())
}

/// A segment's lines, read back.
#[derive(Default)]
struct Parsed {
    rows: Vec<LedgerRow>,
    spends: Vec<Spend>,
    /// Redis settlements by request id.
    settlements: HashMap<String, Settlement>,
    /// Lines that could not be read.
    skipped: usize,
}

/// Reads a segment's lines.
fn parse(text: &[u8]) -> Parsed {
    let mut out = Parsed::default();
    let Parsed {
        rows,
        spends,
        settlements,
        skipped,
    } = &mut out;
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(LineIn { row, spend, redis }) = serde_json::from_slice::<LineIn>(line) else {
            *skipped += 1;
            continue;
        };
        if let Some(s) = redis {
            settlements.insert(row.request_id.clone(), s);
        }
        if let Some(s) = spend {
            spends.push(Spend {
                request_id: row.request_id.clone(),
                grant_id: s.grant,
                lines: s
                    .lines
                    .into_iter()
                    .map(|(kind, window_key, amount)| SpendLine {
                        kind: crate::engine::providers::interned(kind),
                        window_key,
                        amount,
                    })
                    .collect(),
            });
        }
        rows.push(row);
    }
    out
}

/// Commits replayed rows; a chunk the database refuses goes in row by row, so a bad row
/// costs only itself.
async fn commit(store: &Store, rows: &[LedgerRow], spends: &[Spend]) -> Result<(), StoreError> {
    match store.record_usage(rows, spends).await {
        Ok(()) => Ok(()),
        Err(e) if e.is_transient() => Err(e),
        Err(e) => {
            tracing::warn!(error = %e, rows = rows.len(), "ledger journal: a replayed batch was refused, writing rows one by one");
            for row in rows {
                let mine: Vec<Spend> = spends
                    .iter()
                    .filter(|s| s.request_id == row.request_id)
                    .cloned()
                    .collect();
                match store.record_usage(std::slice::from_ref(row), &mine).await {
                    Err(e) if e.is_transient() => return Err(e),
                    Err(e) => {
                        tracing::error!(error = %e, request_id = %row.request_id, "ledger journal: replayed row dropped")
                    }
                    Ok(()) => {}
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str) -> LedgerRow {
        LedgerRow {
            request_id: id.into(),
            grant_id: Some("g1".into()),
            endpoint: "chat".into(),
            status: 200,
            input_tokens: 7,
            created_at: 1,
            ..LedgerRow::default()
        }
    }

    fn spend(id: &str) -> Spend {
        Spend {
            request_id: id.into(),
            grant_id: "g1".into(),
            lines: vec![SpendLine {
                kind: "tokens",
                window_key: "life".into(),
                amount: 7,
            }],
        }
    }

    fn segments(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join(FOLDER))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn lines_read_back_as_written_and_a_line_cut_short_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let settlement = Settlement {
            grant: "g1".into(),
            id: "adm-b".into(),
            permit: true,
            tpm: (1_000, 3),
            lines: vec![crate::engine::limits::redis_backend::SettlementLine {
                key: "budget:g1:tokens:life".into(),
                amount: 9,
                actual: 7,
                expires: 0,
            }],
            now_ms: 5,
        };
        assert_eq!(j.append(&row("a"), Some(&spend("a")), None).unwrap(), 0);
        assert_eq!(j.append(&row("b"), None, Some(&settlement)).unwrap(), 0);
        assert_eq!(j.append(&row("c"), None, None).unwrap(), 0);
        let path = segments(dir.path()).remove(0);
        let mut text = std::fs::read(&path).unwrap();
        text.extend_from_slice(b"{\"row\":{\"request_id\":\"d\"");
        let read = parse(&text);
        assert_eq!(read.rows, vec![row("a"), row("b"), row("c")]);
        assert_eq!(read.spends, vec![spend("a")]);
        assert_eq!(
            read.settlements,
            HashMap::from([("b".to_string(), settlement)])
        );
        assert_eq!(read.skipped, 1);
    }

    /// The replay's parser on what a crash or a damaged disk can leave: written lines mixed with
    /// lines of random bytes, the last line cut anywhere. It never panics, finds every intact
    /// line in order, and counts each damaged one as skipped.
    #[test]
    fn damaged_segments_yield_every_intact_line_and_skip_the_rest() {
        use rand::{Rng as _, SeedableRng as _};
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let ids: Vec<String> = (0..8).map(|i| format!("r{i}")).collect();
        for id in &ids {
            j.append(&row(id), Some(&spend(id)), None).unwrap();
        }
        let text = std::fs::read(segments(dir.path()).remove(0)).unwrap();
        let lines: Vec<&[u8]> = text
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), ids.len());
        let mut rng = rand::rngs::StdRng::seed_from_u64(18);
        for case in 0..2_000 {
            let mut input = Vec::new();
            let (mut want, mut skipped) = (Vec::new(), 0);
            for (id, line) in ids.iter().zip(&lines) {
                if rng.gen_bool(0.3) {
                    let junk: Vec<u8> = (0..rng.gen_range(1..60))
                        .map(|_| rng.r#gen::<u8>())
                        .filter(|b| *b != b'\n')
                        .collect();
                    skipped += usize::from(!junk.is_empty());
                    input.extend_from_slice(&junk);
                    input.push(b'\n');
                }
                input.extend_from_slice(line);
                input.push(b'\n');
                want.push(row(id));
            }
            // a kill mid-write: the last line cut short (or whole, or gone)
            let cut = rng.gen_range(0..=lines[0].len() + 1);
            if cut > 0 && cut <= lines[0].len() {
                input.extend_from_slice(&lines[0][..cut]);
                skipped += usize::from(cut < lines[0].len());
                if cut == lines[0].len() {
                    want.push(row(&ids[0]));
                }
            }
            let read = parse(&input);
            assert_eq!(read.rows, want, "case {case}");
            assert_eq!(read.spends.len(), want.len(), "case {case}");
            assert_eq!(read.skipped, skipped, "case {case}");
        }
    }

    #[test]
    fn a_retired_segment_goes_once_its_rows_are_finished_and_close_keeps_unfinished_ones() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        j.append(&row("a"), None, None).unwrap();
        j.rotate(&mut j.lock());
        assert_eq!(j.append(&row("b"), None, None).unwrap(), 1);
        assert_eq!(segments(dir.path()).len(), 2);
        let mut finished = HashMap::new();
        j.collect(&mut finished);
        assert_eq!(
            segments(dir.path()).len(),
            2,
            "segment 0 has an unfinished row"
        );
        finished.insert(0, 1);
        j.collect(&mut finished);
        assert_eq!(segments(dir.path()), vec![j.path(1)]);
        // segment 1's row is not finished: close keeps it for the next start, and appends stop
        j.close(&mut finished);
        assert_eq!(segments(dir.path()), vec![j.path(1)]);
        assert!(j.append(&row("c"), None, None).is_err());
        // another process may not replay it while this one holds it...
        let other = File::open(j.path(1)).unwrap();
        assert!(other.try_lock().is_err(), "held by its writer");
        drop(j);
        // ...and may once it has gone
        assert!(other.try_lock().is_ok());
    }
}
