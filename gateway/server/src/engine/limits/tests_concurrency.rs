//! Limits under load: 200 concurrent requests against one budget, two replicas on one Redis (limits and proof claims), governor key pruning.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::json;

use super::test_support::{Env, Kind, Sql};
use super::tests::{on, policy, tokens};
use super::*;

const REQUESTS: usize = 200;
const LIMIT: u64 = 5_000;
/// Every request is estimated at 100 tokens: the budget fits 50 estimates.
const ESTIMATE: u64 = 100;
/// Actual usage is the estimate ± this.
const ERROR: u64 = 20;
/// A refused request retries this many times while requests in flight hold the room.
const RETRIES: u32 = 20;

/// An admitted request's times and estimation error.
#[derive(Debug, Clone, Copy)]
struct Span {
    admit_start: Instant,
    admit_done: Instant,
    settle_done: Instant,
    error: i64,
}

/// `spent <= limit + sum of the (positive) estimation errors of the requests in flight when
/// the last request was admitted`. The last admission is not observable from outside, so
/// take the largest such sum over every admission, with "in flight" widened to every
/// request whose [admit start, settle done] overlaps it: an upper bound of the true one.
fn in_flight_error(spans: &[Span]) -> i64 {
    spans
        .iter()
        .map(|r| {
            spans
                .iter()
                .filter(|x| x.admit_start <= r.admit_done && x.settle_done >= r.admit_start)
                .map(|x| x.error.max(0))
                .sum::<i64>()
        })
        .max()
        .unwrap_or(0)
}

on!(overspend_is_bounded: local_sqlite => Kind::Local(Sql::Sqlite), local_postgres => Kind::Local(Sql::Postgres), redis => Kind::Redis);
async fn overspend_is_bounded(kind: Kind) {
    let env = Env::new(kind).await;
    let p = Arc::new(policy(json!({"token_budget": {"daily": LIMIT}})));
    let t0 = pairgate_store::now_ms();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(tokio::sync::Barrier::new(REQUESTS));
    let began = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..REQUESTS {
        let (l, p, start) = (env.limiter.clone(), p.clone(), start.clone());
        let (in_flight, max_in_flight) = (in_flight.clone(), max_in_flight.clone());
        let (actual, pause) = {
            let mut rng = rand::thread_rng();
            (
                ESTIMATE - ERROR + rng.gen_range(0..=2 * ERROR),
                rng.gen_range(1..10),
            )
        };
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            // a refusal that says "fits once requests in flight finish" is retried shortly
            let mut attempts = 0;
            let (a, admit_start) = loop {
                let admit_start = Instant::now();
                match l
                    .admit("g", &p, tokens(ESTIMATE / 2, ESTIMATE / 2), 0, t0)
                    .await
                {
                    Ok(a) => break (a, admit_start),
                    Err(r) if r.retry_after_secs == Some(1) && attempts < RETRIES => {
                        attempts += 1;
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                    }
                    Err(r) => return Err(r.code),
                }
            };
            let admit_done = Instant::now();
            let n = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            max_in_flight.fetch_max(n, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(pause)).await;
            a.settle(tokens(actual / 2, actual - actual / 2), 0)
                .await
                .unwrap();
            in_flight.fetch_sub(1, Ordering::SeqCst);
            Ok((
                actual,
                Span {
                    admit_start,
                    admit_done,
                    settle_done: Instant::now(),
                    error: actual as i64 - ESTIMATE as i64,
                },
            ))
        }));
    }
    let (mut spans, mut spent, mut refused) = (Vec::new(), 0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok((actual, span)) => {
                spent += actual;
                spans.push(span);
            }
            Err(code) => {
                assert_eq!(code, "insufficient_quota");
                refused += 1;
            }
        }
    }
    let elapsed = began.elapsed();
    let v = env.limiter.remaining("g", &p, t0).await.unwrap();
    let daily = &v["token_budget"]["daily"];
    let stored = daily["spent"].as_u64().unwrap();
    assert_eq!(stored, spent, "every settlement counted once");
    assert_eq!(daily["reserved"], 0, "no reservation left behind");
    let overspend = stored as i64 - LIMIT as i64;
    let bound = in_flight_error(&spans);
    let k = max_in_flight.load(Ordering::SeqCst);
    eprintln!(
        "overspend {kind:?}: {} admitted, {refused} refused in {elapsed:?}; spent {stored} of {LIMIT} \
         (overspend {overspend}); in-flight estimation error bound {bound}; max {k} in flight",
        spans.len()
    );
    assert!(
        overspend <= bound,
        "overspend {overspend} > in-flight error {bound}"
    );
    assert!(spans.len() >= 50 && spans.len() + refused == REQUESTS);
    // what is left still admits a request that fits (room freed by settlements)
    if stored + ESTIMATE <= LIMIT {
        let a = env.limiter.admit("g", &p, tokens(ESTIMATE, 0), 0, t0).await;
        a.unwrap().release().await.unwrap();
    }
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_rates_and_budgets() {
    let env = Env::new(Kind::Redis).await;
    let a = &env.limiter;
    let b = &Env::limiter(Kind::Redis, &env.db, &env.namespace).await;
    let t0 = pairgate_store::now_ms();
    let p = policy(json!({"requests_per_minute": 4}));
    for l in [a, b, a, b] {
        l.admit("g", &p, tokens(1, 0), 0, t0).await.unwrap();
    }
    let r = a.admit("g", &p, tokens(1, 0), 0, t0).await.unwrap_err();
    assert_eq!(
        (r.code, r.retry_after_ms),
        ("rate_limit_exceeded", Some(15_000))
    );
    assert!(b.admit("g", &p, tokens(1, 0), 0, t0).await.is_err());

    let budget = policy(json!({"token_budget": {"lifetime": 1000}, "max_concurrent": 2}));
    let first = a.admit("h", &budget, tokens(600, 0), 0, t0).await.unwrap();
    let r = b
        .admit("h", &budget, tokens(600, 0), 0, t0)
        .await
        .unwrap_err();
    assert_eq!(r.code, "insufficient_quota");
    first.settle(tokens(200, 0), 0).await.unwrap();
    let second = b.admit("h", &budget, tokens(600, 0), 0, t0).await.unwrap();
    let third = a.admit("h", &budget, tokens(100, 0), 0, t0).await.unwrap();
    let r = b
        .admit("h", &budget, tokens(1, 0), 0, t0)
        .await
        .unwrap_err();
    assert_eq!(r.code, "concurrency_limit_exceeded");
    second.release().await.unwrap();
    third.settle(tokens(100, 0), 0).await.unwrap();
    let v = b.remaining("h", &budget, t0).await.unwrap();
    assert_eq!(v["token_budget"]["lifetime"]["spent"], 300);
    assert_eq!(v["max_concurrent"]["in_flight"], 0);
    env.cleanup().await;
}

#[tokio::test]
async fn redis_leases_of_a_crashed_replica_expire() {
    let env = Env::new(Kind::Redis).await;
    let l = &env.limiter;
    let t0 = pairgate_store::now_ms();
    let p = policy(json!({"max_concurrent": 1}));
    std::mem::forget(l.admit("g", &p, tokens(1, 0), 0, t0).await.unwrap());
    assert!(l.admit("g", &p, tokens(1, 0), 0, t0 + 1000).await.is_err());
    let later = t0 + RESERVATION_TTL_MS + 1;
    let a = l.admit("g", &p, tokens(1, 0), 0, later).await.unwrap();
    a.release().await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn governor_keys_are_pruned() {
    let env = Env::new(Kind::Local(Sql::Sqlite)).await;
    let l = &env.limiter;
    let Engine::Local { rates, .. } = &l.inner.engine else {
        unreachable!()
    };
    let p = policy(json!({"requests_per_minute": 60}));
    let t0 = pairgate_store::now_ms();
    for i in 0..1000 {
        let a = l
            .admit(&format!("g{i}"), &p, tokens(1, 0), 0, t0)
            .await
            .unwrap();
        a.release().await.unwrap();
    }
    assert_eq!((l.rate_keys(), rates.limiters()), (1000, 1));
    // a grant used just now is kept; the others are back to a full burst and dropped
    l.admit("hot", &p, tokens(1, 0), 0, t0 + 1500)
        .await
        .unwrap();
    let report = l.run_janitor(t0 + 2000).await.unwrap();
    assert_eq!(report.rate_keys, 1);
    assert_eq!(l.rate_keys(), 1);
    // a changed limit uses another limiter (over the same state); unused limiters go too
    let p2 = policy(json!({"requests_per_minute": 30}));
    l.admit("hot", &p2, tokens(1, 0), 0, t0 + 2000)
        .await
        .unwrap();
    l.admit("hot", &p, tokens(1, 0), 0, t0 + 2000)
        .await
        .unwrap();
    assert_eq!(rates.limiters(), 2);
    assert_eq!(l.run_janitor(t0 + 10_000).await.unwrap().rate_keys, 0);
    assert_eq!(rates.limiters(), 0);
}

/// A proof's claim made inside the admission script: of 20 concurrent admissions with one proof
/// on two replicas exactly one is admitted, the others are refused as replays before any limit
/// is charged; the claim outlives a refusal; without limits the claim is made on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_proof_claimed_in_admission_is_admitted_once_across_replicas() {
    let env = Env::new(Kind::Redis).await;
    let b = Env::limiter(Kind::Redis, &env.db, &env.namespace).await;
    let t0 = pairgate_store::now_ms();
    let p = Arc::new(policy(json!({
        "requests_per_minute": 1000,
        "max_concurrent": 50,
        "token_budget": {"daily": 100_000}
    })));
    let claim = env.limiter.replay_claim("jkt", "jti-1", 60_000).unwrap();
    assert_eq!(b.replay_claim("jkt", "jti-1", 60_000), Some(claim.clone()));
    let start = Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let l = if i % 2 == 0 {
                env.limiter.clone()
            } else {
                b.clone()
            };
            let (p, claim, start) = (p.clone(), claim.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                l.admit_claiming("g", &p, tokens(50, 50), 0, &[], Some(&claim), t0)
                    .await
            })
        })
        .collect();
    let mut admitted = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(a) => admitted.push(a),
            Err(r) => {
                assert_eq!((r.status, r.code), (401, "invalid_dpop_proof"));
                assert!(r.message.contains("already used"), "{}", r.message);
            }
        }
    }
    assert_eq!(admitted.len(), 1, "one proof, one admission");
    // the refusals charged nothing: one permit, one request, one reservation
    let v = b.remaining("g", &p, t0).await.unwrap();
    assert_eq!(v["max_concurrent"]["in_flight"], 1, "{v}");
    assert_eq!(v["requests_per_minute"]["remaining"], 999, "{v}");
    assert_eq!(v["token_budget"]["daily"]["reserved"], 100, "{v}");
    admitted
        .pop()
        .unwrap()
        .settle(tokens(40, 40), 0)
        .await
        .unwrap();
    // a refused admission keeps its claim: the proof cannot be tried again
    let tight = policy(json!({"requests_per_minute": 1}));
    let used = env.limiter.replay_claim("jkt", "jti-2", 60_000).unwrap();
    let once = env.limiter.replay_claim("jkt", "jti-3", 60_000).unwrap();
    env.limiter
        .admit_claiming("t", &tight, tokens(1, 0), 0, &[], Some(&once), t0)
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
    let r = b
        .admit_claiming("t", &tight, tokens(1, 0), 0, &[], Some(&used), t0)
        .await
        .unwrap_err();
    assert_eq!(r.code, "rate_limit_exceeded");
    let r = env
        .limiter
        .admit_claiming("t", &tight, tokens(1, 0), 0, &[], Some(&used), t0 + 60_000)
        .await
        .unwrap_err();
    assert_eq!(r.code, "invalid_dpop_proof");
    // a grant without limits: the claim alone
    let none = policy(json!({}));
    let free = env.limiter.replay_claim("jkt", "jti-4", 60_000).unwrap();
    assert!(
        b.admit_claiming("n", &none, tokens(1, 0), 0, &[], Some(&free), t0)
            .await
            .is_ok()
    );
    let r = env
        .limiter
        .admit_claiming("n", &none, tokens(1, 0), 0, &[], Some(&free), t0)
        .await
        .unwrap_err();
    assert_eq!(r.code, "invalid_dpop_proof");
    assert!(!env.limiter.claim(&free).await.unwrap());
    env.cleanup().await;
}
