//! The usage ledger writer: requests are recorded without waiting for the database; a background task writes them in batches.
//!
//! [`Ledger::record`] puts a row on a bounded channel and returns; the writer task takes
//! up to [`BATCH_ROWS`] rows, or whatever arrived within [`BATCH_WINDOW`] of the first,
//! and inserts them in one transaction ([`pairgate_store::Store::record_usage`]). An answered
//! request uses [`Ledger::record_closing`] instead. With the journal open (`serve`, the default)
//! its row and its budget spend (local limits backend) are appended to the journal file
//! ([`crate::engine::journal`]), the spend moves into `spent` in memory, and the answer completes
//! at once; the row joins the next batch. Without it (CLI commands, `ledger_journal = false`, or
//! the journal failing) they join whatever else is queued in one transaction (group commit), and
//! the answer completes once that has committed. A batch failing with a transient error (database
//! unreachable, busy) is retried with backoff ([`RETRIES`] times; a spend goes in only with its
//! row, so a retry never charges twice) before it is logged and dropped (its reservations are
//! released uncharged, as its rows are lost); one failing otherwise is written row by row, so a
//! bad row costs only itself.
//!
//! Rows nobody waits on (journaled rows, [`Ledger::record`]) go on a second channel that the
//! writer does not listen to while a batch window is open: it takes them when the window ends or
//! with the next message someone waits on, so they do not wake it (a cross-thread wake-up) one
//! by one.
//!
//! Backpressure: when the channel is full, [`Ledger::record_async`] waits for room;
//! [`Ledger::record`] (for callers that cannot await) hands the row to a spawned task
//! that waits, so no row is dropped while the writer lives.
//!
//! Durability (see docs/ARCHITECTURE.md, "Usage ledger"): [`Ledger::close`] writes every
//! row recorded before it; after a hard kill, an answered request's row is in the database or
//! in the journal, which the next start replays; the rows lost are those of requests still in
//! flight, and rows recorded without waiting ([`Ledger::record`]) in the last batch window (at
//! most [`BATCH_WINDOW`], plus the duration of the insert in progress).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pairgate_store::{LedgerSession, Store};
use tokio::sync::{mpsc, oneshot};

use crate::engine::journal::{Journal, JournalError, Replayed};
use crate::engine::limits::book::Hold;
use crate::engine::limits::{Closing, Limiter, RedisSettle};

pub use pairgate_store::LedgerRow;

/// Most rows per insert transaction.
pub const BATCH_ROWS: usize = 200;
/// Longest a recorded row waits for its batch to fill.
pub const BATCH_WINDOW: Duration = Duration::from_millis(50);
/// Rows the channel holds before callers wait.
pub const CHANNEL_CAPACITY: usize = 10_000;
/// Retries of a failed batch (100 ms, then three times longer each time, at most
/// [`MAX_RETRY_DELAY`]: about 15 s in all, so a short database outage loses nothing).
pub const RETRIES: u32 = 6;
/// Longest wait between two retries.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
/// The writer keeps its database connection between commits
/// ([`pairgate_store::LedgerSession`]) and gives it back after this long without one...
pub const IDLE_RELEASE: Duration = Duration::from_millis(10);
/// ...or, under steady load, once it has held it this long, so the pool's other writers wait at
/// most about this (on SQLite the write pool has one connection).
pub const MAX_HOLD: Duration = Duration::from_millis(20);
/// How long a batch waits for a Redis settlement (usually a round trip, already done) before the
/// writer gives its connection back while it waits on.
const SETTLEMENT_PATIENCE: Duration = Duration::from_millis(5);

/// What someone waits on (the writer's `tx` channel).
enum Msg {
    /// A row whose request waits for it to be committed before its answer completes, with
    /// what its admission left to commit along with it.
    Committed(Box<LedgerRow>, Box<Closing>, oneshot::Sender<()>),
    Flush(oneshot::Sender<()>),
    Close(oneshot::Sender<()>),
}

/// A row nobody waits on (the writer's `lazy` channel).
enum Lazy {
    Row(Box<LedgerRow>),
    /// A row already in the journal segment numbered here, with the spend it carries (its
    /// hold has moved into `spent`), and, on Redis, word of its settlement having run.
    Journaled(
        Box<LedgerRow>,
        Option<pairgate_store::Spend>,
        u64,
        Option<oneshot::Receiver<()>>,
    ),
}

/// The next thing for the writer, from either channel.
enum Next {
    Msg(Msg),
    Lazy(Lazy),
}

/// A handle on the ledger writer. Cloning copies the handle.
#[derive(Debug, Clone)]
pub struct Ledger {
    /// What someone waits on: committed rows, flushes, the close. Wakes the writer at once.
    tx: mpsc::Sender<Msg>,
    /// Rows nobody waits on (journaled, or recorded without waiting). While a batch window is
    /// open the writer does not listen here, so these do not wake it one by one; it takes them
    /// when the window ends, or with the next message on `tx`.
    lazy: mpsc::Sender<Lazy>,
    /// For settlements the writer can no longer take (it has stopped).
    store: Store,
    counts: Arc<Counts>,
    /// Set once by `serve` ([`Ledger::open_journal`]); shared with the writer.
    journal: Arc<OnceLock<Arc<Journal>>>,
}

/// Rows recorded, and rows finished with (written, or given up on and logged); the difference
/// is the lag (queued, waiting for room, or in a batch).
#[derive(Debug, Default)]
pub struct Counts {
    recorded: AtomicU64,
    finished: AtomicU64,
    /// Messages the writer was woken for (it waited, and one arrived): the tests check that
    /// rows nobody waits on do not wake it one by one.
    woken: AtomicU64,
}

impl Counts {
    /// (recorded, finished), finished read first so it never exceeds recorded.
    pub fn read(&self) -> (u64, u64) {
        let finished = self.finished.load(Ordering::Acquire);
        (self.recorded.load(Ordering::Acquire), finished)
    }

    /// How many times the writer was woken by a message.
    pub fn woken(&self) -> u64 {
        self.woken.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Committed(r, ..) => write!(f, "Row({})", r.request_id),
            Msg::Flush(_) => f.write_str("Flush"),
            Msg::Close(_) => f.write_str("Close"),
        }
    }
}

impl Ledger {
    /// Starts the writer task on the current runtime.
    pub fn start(store: Store) -> Ledger {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let (lazy, lazy_rx) = mpsc::channel(CHANNEL_CAPACITY);
        let counts = Arc::new(Counts::default());
        let journal = Arc::new(OnceLock::new());
        let inbox = Inbox { rx, lazy: lazy_rx };
        tokio::spawn(writer(
            store.clone(),
            inbox,
            counts.clone(),
            journal.clone(),
        ));
        Ledger {
            tx,
            lazy,
            store,
            counts,
            journal,
        }
    }

    /// Replays what a stopped gateway left in `data_dir`'s journal, then journals answered
    /// requests' rows from here on (see [`Ledger::record_closing`]). `serve` calls it once,
    /// before serving.
    pub async fn open_journal(
        &self,
        data_dir: &Path,
        limiter: &Limiter,
    ) -> Result<Replayed, JournalError> {
        let replayed = crate::engine::journal::replay(data_dir, &self.store, limiter).await?;
        let journal = Journal::open(data_dir)?;
        let _ = self.journal.set(Arc::new(journal));
        Ok(replayed)
    }

    /// Records a row and waits until a hard kill can no longer lose it (in the journal, or
    /// committed): the relay calls this before an answer completes, so a hard kill can lose only
    /// the rows of requests still in flight. Without the journal, rows that arrive together share
    /// one transaction (group commit); nobody waits for a batch window.
    pub async fn record_committed(&self, row: LedgerRow) {
        self.record_closing(row, Closing::default()).await
    }

    /// [`Ledger::record_committed`], committing the request's budget settlement in the same
    /// transaction as its row (the concurrency permit is freed once both are committed; a Redis
    /// settlement runs first). With the journal open, the row and spend (or Redis settlement)
    /// are appended to it instead, the hold moves into `spent`, the permit is freed, the Redis
    /// settlement is sent without waiting for its reply, and the row joins the next batch once
    /// that settlement has run.
    pub async fn record_closing(&self, row: LedgerRow, closing: Closing) {
        self.counts.recorded.fetch_add(1, Ordering::AcqRel);
        let (row, mut closing) = match self.journal.get() {
            Some(journal) => match self.journaled(journal, row, closing).await {
                None => return,
                Some(refused) => refused,
            },
            None => (row, closing),
        };
        if let Some(redis) = closing.redis.take() {
            settle_redis(&redis).await;
        }
        let (done, wait) = oneshot::channel();
        if let Err(mpsc::error::SendError(msg)) = self
            .tx
            .send(Msg::Committed(Box::new(row), Box::new(closing), done))
            .await
        {
            self.lost();
            // the row is lost, but the budgets must still be settled
            if let Msg::Committed(_, closing, _) = msg {
                settle_alone(&self.store, *closing).await;
            }
            return;
        }
        let _ = wait.await;
    }

    /// Appends the row to the journal and queues it; gives it back if the journal refused it.
    async fn journaled(
        &self,
        journal: &Journal,
        row: LedgerRow,
        closing: Closing,
    ) -> Option<(LedgerRow, Closing)> {
        let spend = closing.hold.as_ref().and_then(|h| h.spend(&row.request_id));
        let settlement = closing.redis.as_ref().map(RedisSettle::settlement);
        let seq = match journal.append(&row, spend.as_ref(), settlement) {
            Ok(seq) => seq,
            Err(e) => {
                tracing::warn!(error = %e, "usage ledger: the journal refused a row; its answer waits for the database commit");
                return Some((row, closing));
            }
        };
        if let Some(hold) = closing.hold {
            hold.commit();
        }
        drop(closing.permit);
        let settled = match closing.redis {
            Some(redis) => Some(send_settlement(redis).await),
            None => None,
        };
        if self
            .lazy
            .send(Lazy::Journaled(Box::new(row), spend, seq, settled))
            .await
            .is_err()
        {
            self.finish_one();
            tracing::warn!("usage ledger is closed; a journaled row waits for the next start");
        }
        None
    }

    /// Records a row without waiting. If the channel is full the row waits for room in a
    /// spawned task (backpressure without blocking the caller).
    pub fn record(&self, row: LedgerRow) {
        self.counts.recorded.fetch_add(1, Ordering::AcqRel);
        match self.lazy.try_send(Lazy::Row(Box::new(row))) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(msg)) => {
                let ledger = self.clone();
                tokio::spawn(async move {
                    if ledger.lazy.send(msg).await.is_err() {
                        ledger.lost();
                    }
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => self.lost(),
        }
    }

    /// Records a row, waiting while the channel is full.
    pub async fn record_async(&self, row: LedgerRow) {
        self.counts.recorded.fetch_add(1, Ordering::AcqRel);
        if self.lazy.send(Lazy::Row(Box::new(row))).await.is_err() {
            self.lost();
        }
    }

    fn lost(&self) {
        self.finish_one();
        tracing::error!("usage ledger is closed; a usage row was dropped");
    }

    fn finish_one(&self) {
        self.counts.finished.fetch_add(1, Ordering::AcqRel);
    }

    /// Waits until every row recorded before this call is written (or given up on).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Writes every row recorded before this call and stops the writer. Rows recorded
    /// afterwards are dropped (logged). Call once the server has drained.
    pub async fn close(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Close(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Rows recorded and not yet written.
    pub fn lag(&self) -> usize {
        let (recorded, finished) = self.counts.read();
        recorded.saturating_sub(finished) as usize
    }

    /// The writer's counts (for `/metrics`).
    pub fn counts(&self) -> Arc<Counts> {
        self.counts.clone()
    }
}

/// Sends a Redis settlement without waiting for its reply, which a spawned task awaits; the
/// receiver hears when it has run. The first poll, here, puts the command on the Redis
/// connection's queue, so whatever this thread sends Redis next (the admission of the app's next
/// request on the same connection, say) is run after it: the app never finds its own finished
/// request's concurrency lease still held.
async fn send_settlement(redis: RedisSettle) -> oneshot::Receiver<()> {
    let (done, settled) = oneshot::channel();
    let mut task = Box::pin(tokio::task::unconstrained(async move {
        settle_redis(&redis).await;
        let _ = done.send(());
    }));
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(task.as_mut().poll(cx))).await;
    if first.is_pending() {
        tokio::spawn(task);
    }
    settled
}

/// Runs a Redis settlement; a failure is logged (its reservations are released uncharged by the
/// janitor once they expire, and its lease frees itself).
async fn settle_redis(redis: &RedisSettle) {
    if let Err(e) = redis.run().await {
        let s = redis.settlement();
        tracing::error!(error = %e, grant = %s.grant, "limits: settling a request on Redis failed; its reservations expire uncharged");
    }
}

/// Writes one closing's spend on its own (the writer is gone), retrying passing failures; the
/// hold then moves into `spent` (or, if the write failed, is released).
async fn settle_alone(store: &Store, closing: Closing) {
    let Some(hold) = closing.hold else {
        return;
    };
    let Some(spend) = hold.spend("") else {
        hold.commit();
        return;
    };
    let mut delay = Duration::from_millis(100);
    for attempt in 0..=RETRIES {
        match store.add_spent(&spend).await {
            Err(e) if e.is_transient() && attempt < RETRIES => {
                tokio::time::sleep(delay).await;
                delay = (delay * 3).min(MAX_RETRY_DELAY);
            }
            Err(e) => {
                tracing::error!(error = %e, grant = %spend.grant_id, "usage ledger: writing a spend failed; it is not charged");
                return;
            }
            Ok(()) => {
                hold.commit();
                return;
            }
        }
    }
}

/// What one group commit writes: ledger rows, the spends that go with them, and the budget
/// holds and permits let go once they are committed.
#[derive(Default)]
struct Batch {
    rows: Vec<LedgerRow>,
    spends: Vec<pairgate_store::Spend>,
    /// Each hold with the request id of its row.
    holds: Vec<(String, Hold)>,
    permits: Vec<crate::engine::limits::local::Permit>,
    /// The journal segment of each journaled row.
    segments: Vec<u64>,
    /// Journaled rows whose Redis settlement is still running: request id, segment, word of it.
    settling: Vec<(String, u64, oneshot::Receiver<()>)>,
}

impl Batch {
    /// Adds a row nobody waits on.
    fn take(&mut self, lazy: Lazy) {
        match lazy {
            Lazy::Row(row) => self.push(*row, Closing::default()),
            Lazy::Journaled(row, spend, seq, settled) => {
                self.push_journaled(*row, spend, seq, settled)
            }
        }
    }

    fn push(&mut self, row: LedgerRow, closing: Closing) {
        if let Some(hold) = closing.hold {
            self.spends.extend(hold.spend(&row.request_id));
            self.holds.push((row.request_id.clone(), hold));
        }
        self.rows.push(row);
        self.permits.extend(closing.permit);
    }

    fn push_journaled(
        &mut self,
        row: LedgerRow,
        spend: Option<pairgate_store::Spend>,
        seq: u64,
        settled: Option<oneshot::Receiver<()>>,
    ) {
        if let Some(settled) = settled {
            self.settling.push((row.request_id.clone(), seq, settled));
        }
        self.spends.extend(spend);
        self.rows.push(row);
        self.segments.push(seq);
    }

    /// Waits for the rows' Redis settlements, so a row in the ledger is one whose settlement
    /// has run (what the journal's replay counts on). A settlement dropped unrun (its runtime
    /// stopped) keeps its row out: it stays in the journal, unfinished, and the next start
    /// replays both. The session is given back if a settlement keeps it waiting (Redis slow or
    /// gone): its other writers must not wait for Redis.
    async fn wait_settlements(&mut self, session: &mut LedgerSession) {
        for (id, seq, mut settled) in std::mem::take(&mut self.settling) {
            let ran = match tokio::time::timeout(SETTLEMENT_PATIENCE, &mut settled).await {
                Ok(r) => r.is_ok(),
                Err(_) => {
                    session.release();
                    settled.await.is_ok()
                }
            };
            if !ran {
                tracing::warn!(request_id = %id, "usage ledger: a Redis settlement was dropped unrun; its row waits in the journal for the next start");
                self.rows.retain(|r| r.request_id != id);
                if let Some(i) = self.segments.iter().position(|s| *s == seq) {
                    self.segments.swap_remove(i);
                }
            }
        }
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// The writer's bookkeeping: its counts, and the journal's segments it has finished rows of.
struct Progress {
    counts: Arc<Counts>,
    journal: Arc<OnceLock<Arc<Journal>>>,
    /// Journaled rows finished, per segment.
    finished: HashMap<u64, u64>,
}

impl Progress {
    /// A batch is done with: its rows count as finished; if `settled` (committed, or refused
    /// row by row) its journaled rows' segments may go.
    fn done(&mut self, batch: &Batch, settled: bool) {
        self.counts
            .finished
            .fetch_add(batch.len() as u64, Ordering::AcqRel);
        if let Some(journal) = self.journal.get()
            && settled
            && !batch.segments.is_empty()
        {
            for seq in &batch.segments {
                *self.finished.entry(*seq).or_default() += 1;
            }
            journal.collect(&mut self.finished);
        }
    }

    fn close(&mut self) {
        if let Some(journal) = self.journal.get() {
            journal.close(&mut self.finished);
        }
    }
}

async fn write(session: &mut LedgerSession, batch: &mut Batch, progress: &mut Progress) {
    batch.wait_settlements(session).await;
    if batch.is_empty() {
        return;
    }
    let mut delay = Duration::from_millis(100);
    let mut attempt = 0;
    let mut settled = true;
    loop {
        // a retry charges nothing twice: a spend goes in only with its row, once
        match session.record_usage(&batch.rows, &batch.spends).await {
            Ok(()) => {
                batch.holds.drain(..).for_each(|(_, h)| h.commit());
                break;
            }
            Err(e) if e.is_transient() && attempt < RETRIES => {
                tracing::warn!(error = %e, rows = batch.len(), attempt, "usage ledger: batch insert failed, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 3).min(MAX_RETRY_DELAY);
                attempt += 1;
            }
            Err(e) if e.is_transient() => {
                if batch.segments.is_empty() {
                    tracing::error!(error = %e, rows = batch.len(), "usage ledger: batch dropped after retries; its usage is not charged to the budgets");
                } else {
                    tracing::error!(error = %e, rows = batch.len(), journaled = batch.segments.len(), "usage ledger: batch dropped after retries; its journaled rows are written at the next start");
                }
                settled = false;
                break;
            }
            Err(e) => {
                // not a passing failure: one by one, so a bad row costs only itself
                tracing::warn!(error = %e, rows = batch.len(), "usage ledger: batch refused, writing rows one by one");
                let mut holds = std::mem::take(&mut batch.holds);
                for row in batch.rows.iter() {
                    let spends: Vec<_> = batch
                        .spends
                        .iter()
                        .filter(|s| s.request_id == row.request_id)
                        .cloned()
                        .collect();
                    let written = session
                        .record_usage(std::slice::from_ref(row), &spends)
                        .await;
                    if let Err(e) = &written {
                        tracing::error!(error = %e, request_id = %row.request_id, "usage ledger: row dropped");
                    }
                    // The book follows the database: a written row's hold moves into `spent`, a
                    // dropped one's is released uncharged.
                    let (mine, rest): (Vec<_>, Vec<_>) =
                        holds.into_iter().partition(|(id, _)| *id == row.request_id);
                    holds = rest;
                    if written.is_ok() {
                        mine.into_iter().for_each(|(_, h)| h.commit());
                    }
                }
                break;
            }
        }
    }
    progress.done(batch, settled);
    *batch = Batch::default();
    if session.held_for().is_some_and(|held| held >= MAX_HOLD) {
        session.release();
    }
}

async fn writer(
    store: Store,
    mut inbox: Inbox,
    counts: Arc<Counts>,
    journal: Arc<OnceLock<Arc<Journal>>>,
) {
    let mut progress = Progress {
        counts,
        journal,
        finished: HashMap::new(),
    };
    let p = &mut progress;
    let mut batch = Batch::default();
    let mut session = store.ledger_session();
    loop {
        let first = if session.held_for().is_some() {
            match tokio::time::timeout(IDLE_RELEASE, inbox.any()).await {
                Ok(m) => m,
                Err(_) => {
                    session.release();
                    continue;
                }
            }
        } else {
            inbox.any().await
        };
        let Some(first) = first else {
            break;
        };
        p.counts.woken.fetch_add(1, Ordering::Relaxed);
        let mut next = Some(first);
        let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
        loop {
            let msg = match next.take() {
                Some(Next::Msg(m)) => m,
                Some(Next::Lazy(lazy)) => {
                    batch.take(lazy);
                    continue;
                }
                None if batch.is_empty() => break,
                // Only `tx` wakes the writer inside the window (see `Ledger::lazy`).
                None => match tokio::time::timeout_at(deadline, inbox.rx.recv()).await {
                    Ok(Some(m)) => {
                        p.counts.woken.fetch_add(1, Ordering::Relaxed);
                        m
                    }
                    Ok(None) | Err(_) => break,
                },
            };
            match msg {
                Msg::Committed(row, closing, done) => {
                    // Group commit: take what is already queued, write at once, then answer.
                    inbox.take_lazy(&mut session, &mut batch, p).await;
                    batch.push(*row, *closing);
                    let mut waiting = vec![done];
                    let mut closing = None;
                    while batch.len() < BATCH_ROWS {
                        match inbox.rx.try_recv() {
                            Ok(Msg::Committed(row, closing, d)) => {
                                batch.push(*row, *closing);
                                waiting.push(d);
                            }
                            Ok(Msg::Flush(d)) => waiting.push(d),
                            Ok(Msg::Close(d)) => {
                                closing = Some(d);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    write(&mut session, &mut batch, p).await;
                    for d in waiting {
                        let _ = d.send(());
                    }
                    if let Some(d) = closing {
                        next = Some(Next::Msg(Msg::Close(d)));
                    }
                }
                Msg::Flush(done) => {
                    inbox.take_lazy(&mut session, &mut batch, p).await;
                    write(&mut session, &mut batch, p).await;
                    let _ = done.send(());
                }
                Msg::Close(done) => {
                    // refuse new messages, write what is already queued, then answer
                    inbox.rx.close();
                    inbox.lazy.close();
                    let mut waiting = vec![done];
                    inbox.take_lazy(&mut session, &mut batch, p).await;
                    while let Ok(m) = inbox.rx.try_recv() {
                        match m {
                            Msg::Committed(row, closing, d) => {
                                batch.push(*row, *closing);
                                waiting.push(d);
                            }
                            Msg::Flush(d) | Msg::Close(d) => waiting.push(d),
                        }
                        if batch.len() >= BATCH_ROWS {
                            write(&mut session, &mut batch, p).await;
                        }
                    }
                    inbox.take_lazy(&mut session, &mut batch, p).await;
                    write(&mut session, &mut batch, p).await;
                    p.close();
                    for d in waiting {
                        let _ = d.send(());
                    }
                    return;
                }
            }
        }
        // The window is over: what waited on the lazy channel joins this batch.
        inbox.take_lazy(&mut session, &mut batch, p).await;
        write(&mut session, &mut batch, p).await;
    }
    // every handle is gone
    inbox.take_lazy(&mut session, &mut batch, p).await;
    write(&mut session, &mut batch, p).await;
    p.close();
}

/// The writer's two channels (see [`Ledger`]'s `tx` and `lazy`).
struct Inbox {
    rx: mpsc::Receiver<Msg>,
    lazy: mpsc::Receiver<Lazy>,
}

impl Inbox {
    /// The next message on either channel, `tx`'s first; `None` once both are closed and empty.
    async fn any(&mut self) -> Option<Next> {
        tokio::select! {
            biased;
            Some(m) = self.rx.recv() => Some(Next::Msg(m)),
            Some(l) = self.lazy.recv() => Some(Next::Lazy(l)),
            else => None,
        }
    }

    /// Moves what waits on the lazy channel into `batch`, writing each time it fills. Takes only
    /// what was there when called, so a steady stream cannot keep a waiting commit back.
    async fn take_lazy(
        &mut self,
        session: &mut LedgerSession,
        batch: &mut Batch,
        p: &mut Progress,
    ) {
        for _ in 0..self.lazy.len() {
            let Ok(m) = self.lazy.try_recv() else {
                break;
            };
            batch.take(m);
            if batch.len() >= BATCH_ROWS {
                write(session, batch, p).await;
            }
        }
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
