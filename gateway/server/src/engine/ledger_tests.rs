//! The usage ledger on SQLite and PostgreSQL: every row recorded from many tasks is written by close(); rollups and filters.

use std::collections::BTreeMap;

use pairgate_store::{RollupRow, UsageFilter};

use super::*;
use crate::engine::limits::test_support::{Sql, db};

/// 2026-11-20T00:00:00Z.
const DAY0: i64 = 1_795_132_800_000;
const DAY_MS: i64 = 86_400_000;

fn row(i: usize) -> LedgerRow {
    let failed = i.is_multiple_of(10);
    LedgerRow {
        request_id: format!("req-{i}"),
        grant_id: Some(format!("g{}", i % 3)),
        app_name: Some(format!("app {}", i % 3)),
        provider: Some("openai".into()),
        model: Some(
            if i.is_multiple_of(2) {
                "gpt-4o"
            } else {
                "gpt-4o-mini"
            }
            .into(),
        ),
        endpoint: "chat".into(),
        input_tokens: (i % 97) as u64,
        output_tokens: (i % 13) as u64,
        cached_tokens: (i % 5) as u64,
        cost_micros: (i * 7) as u64,
        estimated: i.is_multiple_of(4),
        status: if failed { 502 } else { 200 },
        error_code: failed.then(|| "upstream_error".to_owned()),
        upstream_ms: (!failed).then_some(i as i64),
        total_ms: i as i64 + 3,
        // two UTC days
        created_at: DAY0 + (i as i64 % 2) * DAY_MS + i as i64,
    }
}

fn expected_rollup(rows: &[LedgerRow], grant: Option<&str>) -> Vec<RollupRow> {
    let mut groups: BTreeMap<(i64, Option<String>, Option<String>), RollupRow> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| grant.is_none() || r.grant_id.as_deref() == grant)
    {
        let day_ms = r.created_at / DAY_MS * DAY_MS;
        let g = groups
            .entry((day_ms, r.grant_id.clone(), r.model.clone()))
            .or_insert_with(|| RollupRow {
                day_ms,
                grant_id: r.grant_id.clone(),
                app_name: r.app_name.clone(),
                provider: r.provider.clone(),
                model: r.model.clone(),
                ..RollupRow::default()
            });
        g.requests += 1;
        g.errors += u64::from(r.status >= 400);
        g.input_tokens += r.input_tokens;
        g.output_tokens += r.output_tokens;
        g.cached_tokens += r.cached_tokens;
        g.cost_micros += r.cost_micros;
    }
    groups.into_values().collect()
}

async fn every_row_is_written(sql: Sql) {
    let db = db(sql).await;
    let ledger = Ledger::start(db.store.clone());
    let mut tasks = Vec::new();
    for t in 0..20 {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            for j in 0..50 {
                let r = row(t * 50 + j);
                if j.is_multiple_of(2) {
                    ledger.record(r);
                } else {
                    ledger.record_async(r).await;
                }
                if j.is_multiple_of(10) {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    ledger.close().await;
    assert_eq!(ledger.lag(), 0);
    let all = UsageFilter::default();
    assert_eq!(db.store.count_usage(&all).await.unwrap(), 1000);

    let rows: Vec<LedgerRow> = (0..1000).map(row).collect();
    let got = db
        .store
        .usage_rollup(DAY0, DAY0 + 2 * DAY_MS, None)
        .await
        .unwrap();
    assert_eq!(got, expected_rollup(&rows, None));
    assert_eq!(got.iter().map(|r| r.requests).sum::<u64>(), 1000);
    let one = db
        .store
        .usage_rollup(DAY0, DAY0 + 2 * DAY_MS, Some("g1"))
        .await
        .unwrap();
    assert_eq!(one, expected_rollup(&rows, Some("g1")));
    let first_day = db
        .store
        .usage_rollup(DAY0, DAY0 + DAY_MS, None)
        .await
        .unwrap();
    assert!(first_day.iter().all(|r| r.day_ms == DAY0));
    assert_eq!(first_day.iter().map(|r| r.requests).sum::<u64>(), 500);

    // after close, rows are dropped (and logged), not queued forever
    ledger.record(row(5000));
    ledger.flush().await;
    assert_eq!(ledger.lag(), 0);
    assert_eq!(db.store.count_usage(&all).await.unwrap(), 1000);
}

/// A limiter on the local backend, over `store`.
async fn local_limiter(store: &pairgate_store::Store) -> Limiter {
    Limiter::new(crate::engine::limits::LimitsBackend::Local, store.clone())
        .await
        .unwrap()
}
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_row_is_written_sqlite() {
    every_row_is_written(Sql::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_row_is_written_postgres() {
    every_row_is_written(Sql::Postgres).await;
}

async fn flush_and_filters(sql: Sql) {
    let db = db(sql).await;
    let ledger = Ledger::start(db.store.clone());
    for i in 0..30 {
        ledger.record(row(i));
    }
    ledger.record(row(3)); // the same request id again: ignored
    ledger.flush().await;
    assert_eq!(ledger.lag(), 0);
    let s = &db.store;
    let f = |edit: fn(&mut UsageFilter)| {
        let mut f = UsageFilter::default();
        edit(&mut f);
        f
    };
    assert_eq!(s.count_usage(&UsageFilter::default()).await.unwrap(), 30);
    let by_grant = f(|f| f.grant_id = Some("g2".into()));
    assert_eq!(s.count_usage(&by_grant).await.unwrap(), 10);
    let failed = f(|f| f.status = Some(502));
    assert_eq!(s.count_usage(&failed).await.unwrap(), 3);
    let mini_g1 = f(|f| {
        f.model = Some("gpt-4o-mini".into());
        f.grant_id = Some("g1".into());
    });
    assert_eq!(s.count_usage(&mini_g1).await.unwrap(), 5);
    let one = s
        .recent_usage(&f(|f| f.request_id = Some("req-7".into())), 10, 0)
        .await
        .unwrap();
    assert_eq!(one, vec![row(7)]);
    // newest first, paged
    let page = s.recent_usage(&UsageFilter::default(), 5, 5).await.unwrap();
    let mut all: Vec<LedgerRow> = (0..30).map(row).collect();
    all.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    assert_eq!(page, all[5..10].to_vec());
    let second_day = f(|f| f.from_ms = Some(DAY0 + DAY_MS));
    assert_eq!(s.count_usage(&second_day).await.unwrap(), 15);
    ledger.close().await;
}

#[tokio::test]
async fn flush_and_filters_sqlite() {
    flush_and_filters(Sql::Sqlite).await;
}

#[tokio::test]
async fn flush_and_filters_postgres() {
    flush_and_filters(Sql::Postgres).await;
}

#[tokio::test]
async fn a_bad_row_costs_only_itself() {
    // PostgreSQL refuses a NUL byte in TEXT: that batch is retried row by row
    let db = db(Sql::Postgres).await;
    let ledger = Ledger::start(db.store.clone());
    let mut bad = row(1);
    bad.model = Some("gpt\0".into());
    for r in [row(0), bad, row(2)] {
        ledger.record(r);
    }
    ledger.close().await;
    assert_eq!(ledger.lag(), 0);
    let rows = db
        .store
        .recent_usage(&UsageFilter::default(), 10, 0)
        .await
        .unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids, ["req-2", "req-0"]);
}

/// What a hard kill leaves: a journal whose writer is gone (its locks with it), some of whose
/// rows were committed already and whose last line was cut short. The next start commits the
/// rest, charging each spend once, and deletes it; a live journal is left alone.
#[tokio::test]
async fn the_next_start_replays_a_killed_journal_once_and_leaves_a_live_one() {
    use crate::engine::journal::{FOLDER, Journal, Replayed};
    use pairgate_store::{Spend, SpendLine};
    let db = db(Sql::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let spend = |r: &LedgerRow| Spend {
        request_id: r.request_id.clone(),
        grant_id: "g9".into(),
        lines: vec![SpendLine {
            kind: "tokens",
            window_key: "life".into(),
            amount: r.input_tokens,
        }],
    };
    let limiter = local_limiter(&db.store).await;
    let live = Ledger::start(db.store.clone());
    assert_eq!(
        live.open_journal(dir.path(), &limiter).await.unwrap(),
        Replayed::default()
    );
    for i in 0..10 {
        live.record_closing(row(i), Closing::default()).await;
    }
    live.flush().await;
    // the killed gateway's journal: rows 10..15 with spends, row 10 committed before the kill
    let killed = Journal::open(dir.path()).unwrap();
    let rows: Vec<LedgerRow> = (10..15).map(row).collect();
    for r in &rows {
        killed.append(r, Some(&spend(r)), None).unwrap();
    }
    db.store
        .record_usage(&rows[..1], &[spend(&rows[0])])
        .await
        .unwrap();
    drop(killed);
    let cut = std::fs::read_dir(dir.path().join(FOLDER))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            std::fs::read(p)
                .unwrap()
                .starts_with(b"{\"row\":{\"request_id\":\"req-10\"")
        })
        .expect("the killed journal's segment");
    let mut text = std::fs::read(&cut).unwrap();
    text.extend_from_slice(b"{\"row\":{\"req");
    std::fs::write(&cut, text).unwrap();

    let next = Ledger::start(db.store.clone());
    let replayed = next.open_journal(dir.path(), &limiter).await.unwrap();
    assert_eq!(
        replayed,
        Replayed {
            segments: 1,
            rows: 5,
            skipped: 1
        }
    );
    assert!(!cut.exists(), "a replayed segment is deleted");
    let all = UsageFilter::default();
    assert_eq!(db.store.count_usage(&all).await.unwrap(), 15);
    let want: u64 = rows.iter().map(|r| r.input_tokens).sum();
    let spent = db.store.budget_spent("g9", &[("tokens", "life")]);
    assert_eq!(spent.await.unwrap(), vec![want], "row 10's spend once");
    // clean closes leave no segment
    live.close().await;
    next.close().await;
    assert_eq!(db.store.count_usage(&all).await.unwrap(), 15);
    let left = std::fs::read_dir(dir.path().join(FOLDER)).unwrap().count();
    assert_eq!(
        left, 0,
        "closed journals with every row written leave nothing"
    );
}

/// Journaled rows arrive one by one, a millisecond apart, over several batch windows: the writer
/// is woken about once per window, not once per row (each wake-up is a hop between threads), and
/// a flush still covers every row recorded before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journaled_rows_do_not_wake_the_writer_one_by_one() {
    let db = db(Sql::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let limiter = local_limiter(&db.store).await;
    let ledger = Ledger::start(db.store.clone());
    ledger.open_journal(dir.path(), &limiter).await.unwrap();
    const ROWS: usize = 60;
    let started = std::time::Instant::now();
    for i in 0..ROWS {
        ledger.record_closing(row(i), Closing::default()).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let windows = started.elapsed().as_millis() as u64 / BATCH_WINDOW.as_millis() as u64 + 1;
    ledger.flush().await;
    let all = UsageFilter::default();
    assert_eq!(db.store.count_usage(&all).await.unwrap(), ROWS as u64);
    let woken = ledger.counts().woken();
    assert!(
        woken <= 2 * windows + 1,
        "the writer was woken {woken} times for {ROWS} rows over about {windows} windows"
    );
    ledger.close().await;
}

/// On Redis, a journaled request's settlement is sent before `record_closing` returns and
/// awaited by nobody on the answer's path: a one-at-a-time client under `max_concurrent: 1` is
/// never refused, every row reaches the ledger once its settlement ran, and the budget is charged
/// what was used. After a hard kill the replay runs the settlement of each row not in the ledger
/// (once), and not that of a row already in it. Redis losing its scripts (a restart) between
/// the limiter's connect and the first request changes none of this.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_the_journal_carries_settlements_and_a_replay_runs_those_not_in_the_ledger() {
    use crate::engine::journal::{Journal, Replayed};
    use crate::engine::limits::test_support::{Env, Kind};
    use pairgate_policy::{GrantPolicy, Usage};
    let env = Env::new(Kind::Redis).await;
    let l = &env.limiter;
    let policy = |max: u32| -> GrantPolicy {
        serde_json::from_value(
            serde_json::json!({"token_budget": {"lifetime": 100000}, "max_concurrent": max}),
        )
        .unwrap()
    };
    let (one, three) = (policy(1), policy(3));
    let used = |n: u64| Usage {
        input_tokens: n,
        output_tokens: 0,
        cached_tokens: 0,
    };
    let spent = || async {
        let v = l
            .remaining("g", &one, pairgate_store::now_ms())
            .await
            .unwrap();
        let b = &v["token_budget"]["lifetime"];
        (
            b["spent"].as_u64().unwrap(),
            b["reserved"].as_u64().unwrap(),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let live = Ledger::start(env.db.store.clone());
    live.open_journal(dir.path(), l).await.unwrap();
    // Redis lost its scripts after the limiter connected (a restart): the first admission's
    // `NOSCRIPT` loads the settlement's script too, so no settlement is refused `NOSCRIPT` and
    // sent again after the next admission went ahead of it (which would find the lease held).
    let mut raw = redis::Client::open(crate::engine::limits::test_support::REDIS_URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut raw)
        .await
        .unwrap();
    for i in 0..20 {
        let now = pairgate_store::now_ms();
        let a = l
            .admit("g", &one, used(500), 0, now)
            .await
            .unwrap_or_else(|r| panic!("request {i} refused: {}", r.message));
        live.record_closing(row(i), a.settle_deferred(used(10), 0))
            .await;
    }
    live.flush().await;
    let all = UsageFilter::default();
    assert_eq!(env.db.store.count_usage(&all).await.unwrap(), 20);
    assert_eq!(spent().await, (200, 0), "each settlement ran once");

    // A killed gateway's journal: three answered requests whose settlements may not have run;
    // the first one's row (and so its settlement) made it to the database before the kill.
    let killed = Journal::open(dir.path()).unwrap();
    let mut rows = Vec::new();
    for i in 100..103 {
        let a = l
            .admit("g", &three, used(500), 0, pairgate_store::now_ms())
            .await
            .unwrap();
        let closing = a.settle_deferred(used(7), 0);
        let redis = closing.redis.as_ref().unwrap();
        killed
            .append(&row(i), None, Some(redis.settlement()))
            .unwrap();
        if i == 100 {
            redis.run().await.unwrap();
            env.db.store.insert_usage(&[row(i)]).await.unwrap();
        }
        // the other two die unrun with the process (their leases and reservations held)
        std::mem::forget(closing);
        rows.push(row(i));
    }
    drop(killed);
    assert_eq!(spent().await, (207, 1000));
    let next = Ledger::start(env.db.store.clone());
    let replayed = next.open_journal(dir.path(), l).await.unwrap();
    assert_eq!(
        replayed,
        Replayed {
            segments: 1,
            rows: 3,
            skipped: 0
        }
    );
    assert_eq!(env.db.store.count_usage(&all).await.unwrap(), 23);
    assert_eq!(
        spent().await,
        (221, 0),
        "the two unrun settlements ran once, row 100's not again"
    );
    // and the leases they held are free
    let a = l
        .admit("g", &one, used(1), 0, pairgate_store::now_ms())
        .await;
    assert!(a.is_ok(), "the concurrency lease was freed by the replay");
    live.close().await;
    next.close().await;
    env.cleanup().await;
}
