//! The epoch ticker: advances the engine's epoch once a tick while plugin calls run, which is
//! what bounds each call's CPU time (`Store::set_epoch_deadline`), and sleeps while none do.
//!
//! A gateway that idles would otherwise wake this thread every tick for nothing (50 times a
//! second with the default limits). So after [`IDLE_BEFORE_PARKING`] with no call started and
//! none running, the thread parks. A call announces itself ([`Ticker::call`]) before its
//! instance is created: that costs two atomic increments, plus an unpark when the ticker was
//! parked. A call's deadline counts ticks from its start, so a parked ticker never shortens or
//! stretches one.
//!
//! Why no call can run unticked: the ticker parks only after it stored `parked = true` and then
//! still saw no new call (`started` unchanged); a call increments `started` and then reads
//! `parked`. Both use sequentially consistent operations, so either the ticker sees the call and
//! stays awake, or the call sees `parked` and unparks it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use wasmtime::Engine;

use crate::error::PluginError;

/// How long the ticker keeps ticking after the last call before it parks.
pub const IDLE_BEFORE_PARKING: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct Shared {
    /// Calls started so far.
    started: AtomicU64,
    /// Calls running now.
    running: AtomicUsize,
    /// The ticker is parked, or about to: a call starting must unpark it.
    parked: AtomicBool,
    stop: AtomicBool,
    /// Epoch increments so far (for tests and diagnostics).
    ticks: AtomicU64,
}

/// Advances the engine's epoch every tick while calls run, until dropped.
pub(crate) struct Ticker {
    shared: Arc<Shared>,
    thread: Thread,
    handle: Option<JoinHandle<()>>,
}

/// A running call: keeps the ticker awake until dropped.
pub(crate) struct Running<'a>(&'a Shared);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, SeqCst);
    }
}

impl Ticker {
    pub(crate) fn start(engine: Engine, tick: Duration) -> Result<Self, PluginError> {
        let shared = Arc::new(Shared::default());
        let idle_ticks = (IDLE_BEFORE_PARKING.as_nanos() / tick.as_nanos().max(1)).max(1) as u64;
        let s = shared.clone();
        let handle = std::thread::Builder::new()
            .name("pairgate-plugin-epoch".to_owned())
            .spawn(move || run(&engine, &s, tick, idle_ticks))
            .map_err(|e| PluginError::Engine(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Self {
            shared,
            thread: handle.thread().clone(),
            handle: Some(handle),
        })
    }

    /// Announces a call about to start (before its instance is created); the ticker ticks at
    /// least until the returned guard is dropped.
    pub(crate) fn call(&self) -> Running<'_> {
        self.shared.running.fetch_add(1, SeqCst);
        self.shared.started.fetch_add(1, SeqCst);
        if self.shared.parked.load(SeqCst) {
            self.thread.unpark();
        }
        Running(&self.shared)
    }

    /// The ticker is parked (no call for [`IDLE_BEFORE_PARKING`]).
    #[cfg(test)]
    pub(crate) fn parked(&self) -> bool {
        self.shared.parked.load(SeqCst)
    }

    /// Epoch increments so far.
    #[cfg(test)]
    pub(crate) fn ticks(&self) -> u64 {
        self.shared.ticks.load(SeqCst)
    }
}

fn run(engine: &Engine, shared: &Shared, tick: Duration, idle_ticks: u64) {
    let mut seen = shared.started.load(SeqCst);
    let mut quiet = 0u64;
    loop {
        std::thread::sleep(tick);
        if shared.stop.load(SeqCst) {
            return;
        }
        engine.increment_epoch();
        shared.ticks.fetch_add(1, SeqCst);
        let started = shared.started.load(SeqCst);
        if started != seen || shared.running.load(SeqCst) > 0 {
            seen = started;
            quiet = 0;
            continue;
        }
        quiet += 1;
        if quiet < idle_ticks {
            continue;
        }
        shared.parked.store(true, SeqCst);
        // `park` may return spuriously or for an unpark meant for an earlier round: look again.
        while shared.started.load(SeqCst) == seen && !shared.stop.load(SeqCst) {
            std::thread::park();
        }
        shared.parked.store(false, SeqCst);
        quiet = 0;
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.stop.store(true, SeqCst);
        self.thread.unpark();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}
