//! Load and crashes: 20,000 signed requests at 200 concurrency through the whole check path (token,
//! proof, replay cache, grant, policy, rate limit, plugin, provider, ledger) with no unexpected
//! error, bounded memory and one ledger row per answer; and a gateway killed with SIGKILL under
//! load, restarted on the same database, whose ledger and budgets are consistent (the guarantee is
//! in docs/ARCHITECTURE.md, "Usage ledger").

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pairgate_protocol::keys::KeyKind;
use pairgate_sdk::Client;
use pairgate_tests::Backend;
use pairgate_tests::app::pair;
use pairgate_tests::probe::{books, books_with, grant_usage, metric, proc_stats};
use pairgate_tests::providers;
use serde_json::json;

const MODEL: &str = "openai/gpt-4o-mini";
/// Tokens the fake reports for every chat answer (11 in, 7 out).
const ACTUAL: i64 = 18;

fn body() -> serde_json::Value {
    json!({ "model": MODEL, "max_tokens": 20, "messages": [{ "role": "user", "content": "hi" }] })
}

/// What one worker saw: request ids answered 200, and anything else.
#[derive(Debug, Default)]
struct Seen {
    ok: Vec<String>,
    other: Vec<String>,
}

/// `workers` tasks send requests until `total` were started or `stop` is set.
async fn drive(client: &Client, workers: usize, total: usize, stop: Arc<AtomicBool>) -> Seen {
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (client, next, stop) = (client.clone(), next.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seen = Seen::default();
                while next.fetch_add(1, Ordering::Relaxed) < total && !stop.load(Ordering::Relaxed)
                {
                    match client
                        .post("/v1/chat/completions")
                        .json(&body())
                        .send()
                        .await
                    {
                        Ok(res) => {
                            let status = res.status().as_u16();
                            let id = res
                                .headers()
                                .get("x-request-id")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string();
                            match res.text().await {
                                // Answered: the whole body arrived.
                                Ok(text) if status == 200 => {
                                    assert!(text.contains("chat.completion"), "{text}");
                                    seen.ok.push(id);
                                }
                                Ok(text) => seen.other.push(format!("{status}: {text}")),
                                Err(e) => seen.other.push(format!("{status}, body: {e}")),
                            }
                        }
                        Err(e) => seen.other.push(format!("send: {e}")),
                    }
                }
                seen
            })
        })
        .collect();
    let mut all = Seen::default();
    for t in tasks {
        let s = t.await.unwrap();
        all.ok.extend(s.ok);
        all.other.extend(s.other);
    }
    all
}

#[tokio::test]
async fn twenty_thousand_requests_at_200_concurrency_all_answered_and_all_in_the_ledger() {
    const TOTAL: usize = 20_000;
    const WORKERS: usize = 200;
    let (gw, _fake) = providers::start(Backend::Sqlite, "").await;
    let client = pair(&gw, KeyKind::Ed25519, &["--rpm", "1000000"]).await;
    // Warm-up: pools, plugin instances, allocator arenas.
    let warm = drive(&client, WORKERS, 1_000, Arc::new(AtomicBool::new(false))).await;
    assert!(
        warm.other.is_empty(),
        "{:?}",
        &warm.other[..warm.other.len().min(5)]
    );
    let before = proc_stats(&gw);
    let started = Instant::now();
    let seen = drive(&client, WORKERS, TOTAL, Arc::new(AtomicBool::new(false))).await;
    let took = started.elapsed();
    let after = proc_stats(&gw);
    println!(
        "{TOTAL} requests at {WORKERS} concurrency: {took:?} ({:.0} req/s); gateway RSS {} -> {} MiB, \
         descriptors {} -> {}, threads {} -> {}",
        TOTAL as f64 / took.as_secs_f64(),
        before.rss_kib / 1024,
        after.rss_kib / 1024,
        before.fds,
        after.fds,
        before.threads,
        after.threads
    );
    assert!(
        seen.other.is_empty(),
        "{} unexpected answers, e.g. {:?}",
        seen.other.len(),
        &seen.other[..seen.other.len().min(5)]
    );
    assert_eq!(seen.ok.len(), TOTAL);
    // Memory: bounded, not growing with the number of requests served.
    assert!(
        after.rss_kib < before.rss_kib + 64 * 1024,
        "RSS grew from {} to {} KiB",
        before.rss_kib,
        after.rss_kib
    );
    let b = books_with(&gw, &client.grant_id(), TOTAL + 1_000).await;
    assert_eq!(
        b.ledger.len(),
        TOTAL + 1_000,
        "ledger rows equal requests answered"
    );
    assert!(
        b.ledger
            .iter()
            .all(|r| r.status == 200 && r.tokens() == ACTUAL)
    );
    let mut ids: Vec<&str> = b.ledger.iter().map(|r| r.request_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), TOTAL + 1_000, "no duplicate rows");
    assert_eq!(metric(&gw, "pairgate_relay_in_flight").await, 0.0);
}

#[tokio::test]
async fn after_kill_9_under_load_the_ledger_and_budgets_are_consistent() {
    const WORKERS: usize = 100;
    const BUDGET: i64 = 100_000_000;
    let (mut gw, _fake) = providers::start(Backend::Sqlite, "").await;
    let client = pair(
        &gw,
        KeyKind::Ed25519,
        &["--lifetime-tokens", &BUDGET.to_string()],
    )
    .await;
    let grant = client.grant_id();
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (client, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move { drive(&client, WORKERS, usize::MAX, stop).await })
    };
    // Kill it in the middle of the load, once a good number of requests were answered.
    let deadline = Instant::now() + Duration::from_secs(30);
    while books(&gw, &grant).await.ledger.len() < 500 {
        assert!(Instant::now() < deadline, "the load never got going");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // No new requests from here on; those in flight are cut by the kill.
    stop.store(true, Ordering::Relaxed);
    gw.signal("KILL");
    assert_eq!(gw.wait().await, None, "killed by a signal");
    let seen = load.await.unwrap();
    // Restart on the same database: before it serves, the rows the kill left in the ledger
    // journal (answered, not yet committed) go into the database with their spends.
    gw.restart().await;
    assert!(
        gw.logs()
            .contains("ledger journal: replayed what a stopped gateway left"),
        "the restart replays the journal"
    );
    let killed = books(&gw, &grant).await;
    // Only requests cut by the kill failed: connection errors, never an error answer.
    let answered_errors: Vec<&String> = seen
        .other
        .iter()
        .filter(|e| !e.starts_with("send:") && !e.contains(", body:"))
        .collect();
    assert!(answered_errors.is_empty(), "{answered_errors:?}");
    // Every answered request is in the ledger.
    let missing: Vec<&String> = seen.ok.iter().filter(|id| !killed.has(id)).collect();
    assert!(
        missing.is_empty(),
        "answered but not in the ledger: {missing:?}"
    );
    assert!(
        killed
            .ledger
            .iter()
            .all(|r| r.status == 200 && r.tokens() == ACTUAL)
    );
    let (spent, reserved) = killed.lifetime_tokens().expect("a lifetime counter");
    println!(
        "killed with {} answered, {} ledger rows, {} cut; spent {spent}, reserved {reserved} in {} reservations",
        seen.ok.len(),
        killed.ledger.len(),
        seen.other.len(),
        killed.reservations
    );
    // `spent` moves only with the ledger's rows, in the same transaction (journaled together,
    // replayed together): exactly equal, and nothing of the requests in flight is held (their
    // reservations died with the process).
    assert_eq!(spent, killed.ledger_tokens(), "spent equals the ledger");
    assert_eq!((reserved, killed.reservations), (0, 0));

    // The restarted gateway serves on with the budget as spent.
    let usage = grant_usage(&client).await;
    assert_eq!((usage.spent as i64, usage.reserved), (spent, 0));
    let after = drive(&client, 10, 50, Arc::new(AtomicBool::new(false))).await;
    assert!(after.other.is_empty(), "{:?}", after.other);
    let b = books_with(&gw, &grant, killed.ledger.len() + 50).await;
    let (spent_now, reserved_now) = b.lifetime_tokens().unwrap();
    assert_eq!(reserved_now, 0);
    assert_eq!(
        spent_now,
        b.ledger_tokens(),
        "after the restart, spent and ledger move together"
    );
}
