//! Database faults under load: PostgreSQL going away (every connection cut, new ones refused, via a
//! proxy in front of the shared server) and SQLite held busy by another writer. Requests during
//! the fault fail with a clear OpenAI-shaped 503 or succeed late; nothing is left corrupt; every
//! answered request is in the ledger; the gateway recovers by itself, without a restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pairgate_protocol::keys::KeyKind;
use pairgate_sdk::Client;
use pairgate_tests::app::pair;
use pairgate_tests::pgproxy::DbProxy;
use pairgate_tests::probe::{Books, books, books_with, grant_usage};
use pairgate_tests::providers::{self, fake_config};
use pairgate_tests::{Backend, Gateway, TestDb};
use serde_json::{Value, json};

fn body() -> Value {
    json!({ "model": "openai/gpt-4o-mini", "max_tokens": 20, "messages": [{ "role": "user", "content": "hi" }] })
}

/// One answer: (status, request id, error code).
type Answer = (u16, String, Option<String>);

async fn one(client: &Client) -> Answer {
    match client
        .post("/v1/chat/completions")
        .json(&body())
        .send()
        .await
    {
        Ok(res) => {
            let status = res.status().as_u16();
            let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
            let v: Value = res.json().await.unwrap_or(Value::Null);
            if status != 200 {
                assert!(
                    v["error"]["message"].is_string() && v["error"]["type"].is_string(),
                    "an OpenAI-shaped error: {status} {v}"
                );
            } else {
                assert_eq!(v["object"], "chat.completion", "{v}");
            }
            (status, id, v["error"]["code"].as_str().map(str::to_string))
        }
        Err(e) => panic!("the gateway did not answer: {e}"),
    }
}

/// `workers` tasks send requests until `stop`.
fn load(
    client: &Client,
    workers: usize,
    stop: &Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Answer>> {
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (client, stop) = (client.clone(), stop.clone());
            tokio::spawn(async move {
                let mut out = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    out.push(one(&client).await);
                }
                out
            })
        })
        .collect();
    tokio::spawn(async move {
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    })
}

/// Every answered request has exactly one row; the budget is whole again; nothing is left held.
async fn check_books(gw: &Gateway, client: &Client, b: &Books, answers: &[Answer]) {
    let mut ids: Vec<&str> = b.ledger.iter().map(|r| r.request_id.as_str()).collect();
    ids.sort_unstable();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "no duplicate ledger rows");
    for (status, id, _) in answers.iter().filter(|a| a.0 == 200) {
        assert!(b.has(id), "answered {status} but not in the ledger: {id}");
    }
    for r in &b.ledger {
        assert!(
            (r.status == 200 && r.tokens() == 18) || (r.status >= 400 && r.tokens() == 0),
            "a sane row: {r:?}"
        );
    }
    // A reservation whose outcome the fault hid is released in the background once the
    // database is back.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut usage = grant_usage(client).await;
    while usage.reserved > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        usage = grant_usage(client).await;
    }
    assert_eq!(usage.reserved, 0, "{usage:?}");
    let b = &books(gw, &client.grant_id()).await;
    assert_eq!(b.reservations, 0);
    assert_eq!(
        usage.spent as i64,
        b.ledger_tokens(),
        "spent equals the ledger's tokens"
    );
}

/// Waits until requests succeed again, then asks for ten more in a row.
async fn recovers(client: &Client, within: Duration) -> Vec<Answer> {
    let started = Instant::now();
    let mut out = Vec::new();
    loop {
        let a = one(client).await;
        let ok = a.0 == 200;
        out.push(a);
        if ok {
            break;
        }
        assert!(
            started.elapsed() < within,
            "no recovery within {within:?}: {:?}",
            out.last()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("recovered {:?} after the fault ended", started.elapsed());
    for _ in 0..10 {
        let a = one(client).await;
        assert_eq!(a.0, 200, "{a:?}");
        out.push(a);
    }
    out
}

#[tokio::test]
async fn postgres_going_away_under_load_fails_clearly_and_recovers_without_a_restart() {
    let fake = pairgate_tests::fake::FakeProvider::start().await;
    let proxy = DbProxy::start("127.0.0.1:5432").await;
    let mut db = TestDb::new(Backend::Postgres).await;
    db.url = db.url.as_deref().map(|u| proxy.url_for(u));
    let gw = Gateway::builder(Backend::Postgres)
        .with_db(db)
        .config(fake_config(&fake, ""))
        .start()
        .await;
    providers::add_credentials(&gw).await;
    let client = pair(&gw, KeyKind::Ed25519, &["--lifetime-tokens", "100000000"]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(&client, 20, &stop);
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.down();
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.up().await;
    let up = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answers = running.await.unwrap();
    let failed: Vec<&Answer> = answers.iter().filter(|a| a.0 != 200).collect();
    println!(
        "PostgreSQL cut for 3 s under load: {} answers, {} failed: {:?}",
        answers.len(),
        failed.len(),
        failed
            .iter()
            .map(|a| (a.0, a.2.clone()))
            .collect::<std::collections::BTreeSet<_>>()
    );
    for (status, _, code) in &failed {
        assert!(
            *status == 503
                && matches!(
                    code.as_deref(),
                    Some("service_unavailable" | "limits_unavailable")
                ),
            "a clear, retryable failure: {status} {code:?}"
        );
    }
    answers.extend(
        recovers(
            &client,
            Duration::from_secs(15).saturating_sub(up.elapsed()),
        )
        .await,
    );
    let b = books_with(
        &gw,
        &client.grant_id(),
        answers.iter().filter(|a| a.0 == 200).count(),
    )
    .await;
    check_books(&gw, &client, &b, &answers).await;
    assert!(
        gw.logs().contains("pairgate listening"),
        "the same process served throughout"
    );
}

#[tokio::test]
async fn sqlite_held_busy_by_another_writer_delays_or_fails_clearly_then_recovers() {
    use sqlx::Connection;
    let (gw, _fake) = providers::start(Backend::Sqlite, "").await;
    let client = pair(&gw, KeyKind::Ed25519, &["--lifetime-tokens", "100000000"]).await;
    let url = format!("sqlite://{}", gw.data_dir().join("pairgate.db").display());
    let mut answers = Vec::new();
    // A short hold (under the busy timeout): requests wait for the lock and succeed.
    // A long one (over it): requests that need to write fail clearly, or succeed late.
    for (hold, all_ok) in [
        (Duration::from_millis(1500), true),
        (Duration::from_secs(7), false),
    ] {
        let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut other)
            .await
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let running = load(&client, 10, &stop);
        tokio::time::sleep(hold).await;
        sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
        other.close().await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        let got = running.await.unwrap();
        let failed: Vec<&Answer> = got.iter().filter(|a| a.0 != 200).collect();
        println!(
            "SQLite write lock held {hold:?}: {} answers, {} failed: {:?}",
            got.len(),
            failed.len(),
            failed
                .iter()
                .map(|a| (a.0, a.2.clone()))
                .collect::<std::collections::BTreeSet<_>>()
        );
        assert!(!got.is_empty());
        if all_ok {
            assert!(failed.is_empty(), "a short lock only delays: {failed:?}");
        }
        for (status, _, code) in failed {
            assert!(
                *status == 503
                    && matches!(
                        code.as_deref(),
                        Some("service_unavailable" | "limits_unavailable")
                    ),
                "a clear, retryable failure: {status} {code:?}"
            );
        }
        answers.extend(got);
        answers.extend(recovers(&client, Duration::from_secs(10)).await);
    }
    let b = books_with(
        &gw,
        &client.grant_id(),
        answers.iter().filter(|a| a.0 == 200).count(),
    )
    .await;
    check_books(&gw, &client, &b, &answers).await;
}
