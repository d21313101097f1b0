//! Connection threads: each client connection is served, from its first byte (its TLS handshake
//! included) to its close, on one of a few single-threaded runtimes (one per CPU) instead of the
//! shared work-stealing one.
//!
//! A relayed request wakes several tasks (its connection, the upstream connection, the ledger's
//! reply); on the work-stealing runtime each wake may hop to the other worker thread, and the
//! profile showed about a third of the gateway's CPU per request in that scheduling. On a
//! connection thread the request's own tasks (its connection and what it spawns, the upstream
//! connections it opens) stay on one thread. The accept loop and the background tasks (ledger
//! writer, janitor, change listener) stay on the shared runtime.
//!
//! Shutdown: a thread stops taking connections when the accept loop is gone and runs until the
//! connections it serves have closed, so draining works as on the shared runtime.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Makes a connection's future on the thread that serves it.
pub type Job = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// The connection threads. Cloning shares them; they stop once every clone is dropped and their
/// connections have closed.
#[derive(Clone)]
pub struct Spread {
    threads: Arc<[mpsc::UnboundedSender<Job>]>,
    next: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Spread({} threads)", self.threads.len())
    }
}

impl Spread {
    /// Starts `count` connection threads (at least one); thread `i` uses the upstream clients
    /// `crate::engine::resolve::Clients` keeps for it.
    pub fn start(count: usize) -> std::io::Result<Spread> {
        let mut threads = Vec::with_capacity(count.max(1));
        for i in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (tx, rx) = mpsc::unbounded_channel::<Job>();
            std::thread::Builder::new()
                .name(format!("pairgate-http-{i}"))
                .spawn(move || {
                    crate::engine::resolve::set_thread_clients(i);
                    runtime.block_on(serve_jobs(rx))
                })?;
            threads.push(tx);
        }
        Ok(Spread {
            threads: threads.into(),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// How many threads serve connections.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Runs `job` on the next thread in turn; the future it makes is spawned there. Gives the
    /// job back if that thread is gone.
    pub fn run(&self, job: Job) -> Result<(), Job> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.threads.len();
        self.threads[i].send(job).map_err(|e| e.0)
    }
}

/// A connection thread's loop: spawn each job's future; once no more can come, wait for the
/// futures still running.
async fn serve_jobs(mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut running = JoinSet::new();
    loop {
        tokio::select! {
            job = rx.recv() => match job {
                Some(job) => {
                    running.spawn(job());
                }
                None => break,
            },
            Some(_) = running.join_next(), if !running.is_empty() => {}
        }
    }
    while running.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::mpsc as std_mpsc;
    use std::time::Duration;

    use super::*;

    /// A job that sends the name of the thread it ran on, after `wait`.
    fn reporting(tx: std_mpsc::Sender<String>, wait: Duration) -> Job {
        Box::new(move || {
            Box::pin(async move {
                tokio::time::sleep(wait).await;
                let name = std::thread::current().name().unwrap_or("").to_string();
                tx.send(name).unwrap();
            })
        })
    }

    #[test]
    fn jobs_take_the_threads_in_turn_and_a_thread_finishes_its_jobs_after_the_last_handle() {
        let spread = Spread::start(2).unwrap();
        assert_eq!(spread.threads(), 2);
        let (tx, rx) = std_mpsc::channel();
        for _ in 0..4 {
            assert!(spread.run(reporting(tx.clone(), Duration::ZERO)).is_ok());
        }
        let mut names: Vec<String> = (0..4)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "pairgate-http-0",
                "pairgate-http-0",
                "pairgate-http-1",
                "pairgate-http-1"
            ]
        );
        // A connection still open when the accept loop lets go is served to its end.
        assert!(
            spread
                .run(reporting(tx.clone(), Duration::from_millis(100)))
                .is_ok()
        );
        drop(spread);
        let late = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(late.starts_with("pairgate-http-"), "{late}");
    }
}
