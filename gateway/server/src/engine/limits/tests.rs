//! Limits on every backend: each limit refuses with the right code, message and retry-after; settlement, drop and janitor.

use pairgate_policy::{GrantPolicy, Usage, Window, window_ends_at};
use serde_json::{Value, json};

use super::test_support::{Env, Kind, Sql};
use super::*;

pub fn policy(v: Value) -> GrantPolicy {
    let p: GrantPolicy = serde_json::from_value(v).unwrap();
    p.validate().unwrap();
    p
}

pub fn tokens(input: u64, output: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        cached_tokens: 0,
    }
}

pub fn header<'a>(h: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
}

/// Runs a scenario on the given backends, one test each.
macro_rules! on {
    ($name:ident: $($test:ident => $kind:expr),+) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$name($kind).await
                }
            )+
        }
    };
}
pub(super) use on;

on!(request_rates: local => Kind::Local(Sql::Sqlite), redis => Kind::Redis);
async fn request_rates(kind: Kind) {
    let env = Env::new(kind).await;
    let l = &env.limiter;
    let p = policy(json!({"requests_per_minute": 3}));
    let t0 = pairgate_store::now_ms();
    for left in (0..3).rev() {
        let a = l.admit("g1", &p, tokens(1, 1), 0, t0).await.unwrap();
        let h = a.headers();
        assert_eq!(header(&h, "x-ratelimit-limit-requests"), Some("3"));
        assert_eq!(
            header(&h, "x-ratelimit-remaining-requests"),
            Some(left.to_string().as_str())
        );
        a.settle(tokens(1, 1), 0).await.unwrap();
    }
    let r = l.admit("g1", &p, tokens(1, 1), 0, t0).await.unwrap_err();
    assert_eq!((r.code, r.status), ("rate_limit_exceeded", 429));
    assert!(r.message.contains("3 requests per minute"), "{}", r.message);
    assert_eq!(
        (r.retry_after_ms, r.retry_after_secs),
        (Some(20_000), Some(20))
    );
    assert_eq!(header(&r.headers, "retry-after"), Some("20"));
    assert_eq!(
        header(&r.headers, "x-ratelimit-remaining-requests"),
        Some("0")
    );
    // other grants are independent; one ms early is still refused, on time is admitted
    l.admit("g2", &p, tokens(1, 1), 0, t0).await.unwrap();
    let early = l.admit("g1", &p, tokens(1, 1), 0, t0 + 19_999).await;
    assert_eq!(early.unwrap_err().retry_after_ms, Some(1));
    l.admit("g1", &p, tokens(1, 1), 0, t0 + 20_000)
        .await
        .unwrap();

    let t1 = t0 + 30_000;
    let d = policy(json!({"requests_per_day": 2, "requests_per_minute": 100}));
    for _ in 0..2 {
        l.admit("g3", &d, tokens(1, 1), 0, t1).await.unwrap();
    }
    let r = l.admit("g3", &d, tokens(1, 1), 0, t1).await.unwrap_err();
    assert_eq!(r.code, "rate_limit_exceeded");
    assert!(r.message.contains("2 requests per day"), "{}", r.message);
    assert_eq!(r.retry_after_ms, Some(43_200_000));
    assert_eq!(r.retry_after_secs, Some(43_200));
    env.cleanup().await;
}

on!(a_changed_rate_keeps_the_grants_state: local => Kind::Local(Sql::Sqlite), redis => Kind::Redis);
async fn a_changed_rate_keeps_the_grants_state(kind: Kind) {
    let env = Env::new(kind).await;
    let l = &env.limiter;
    let t0 = pairgate_store::now_ms();
    let wide = policy(json!({"requests_per_minute": 3}));
    l.admit("g1", &wide, tokens(1, 1), 0, t0).await.unwrap();
    // The owner lowers the limit to 1 a minute: the request just made (20 s of the old
    // spacing) still counts, so the next one waits for it instead of getting a fresh burst.
    let narrow = policy(json!({"requests_per_minute": 1}));
    let r = l
        .admit("g1", &narrow, tokens(1, 1), 0, t0 + 1)
        .await
        .unwrap_err();
    assert_eq!(
        (r.code, r.retry_after_ms),
        ("rate_limit_exceeded", Some(19_999))
    );
    l.admit("g1", &narrow, tokens(1, 1), 0, t0 + 20_000)
        .await
        .unwrap();
    // Raised again: the state carries over the other way too.
    let r = l.admit("g1", &wide, tokens(1, 1), 0, t0 + 20_000).await;
    assert_eq!(r.unwrap_err().retry_after_ms, Some(20_000));
}

on!(token_rate: local => Kind::Local(Sql::Sqlite), redis => Kind::Redis);
async fn token_rate(kind: Kind) {
    let env = Env::new(kind).await;
    let l = &env.limiter;
    let p = policy(json!({"tokens_per_minute": 1000}));
    // in the future, so settlement (which reads the wall clock) happens at t0 exactly
    let t0 = pairgate_store::now_ms() + 3_600_000;
    let a = l.admit("g", &p, tokens(500, 100), 0, t0).await.unwrap();
    let h = a.headers();
    assert_eq!(header(&h, "x-ratelimit-limit-tokens"), Some("1000"));
    assert_eq!(header(&h, "x-ratelimit-remaining-tokens"), Some("400"));
    assert_eq!(header(&h, "x-ratelimit-reset-tokens"), Some("36s"));
    assert_eq!(header(&h, "x-ratelimit-limit-requests"), None);
    // T = 60 ms per token: 1200 tokens by t0 is 12 s beyond the minute's burst
    let r = l.admit("g", &p, tokens(500, 100), 0, t0).await.unwrap_err();
    assert_eq!(r.code, "tokens_per_minute_exceeded");
    assert!(
        r.message.contains("1000 tokens per minute"),
        "{}",
        r.message
    );
    assert_eq!(r.retry_after_ms, Some(12_000));
    let r = l.admit("g", &p, tokens(1001, 0), 0, t0).await.unwrap_err();
    assert_eq!(r.code, "tokens_per_minute_exceeded");
    assert_eq!(
        r.retry_after_secs, None,
        "a request above the limit never fits"
    );
    assert!(r.message.contains("more than"), "{}", r.message);
    // 100 tokens above the estimate are charged at settlement: 700 used, 400 more is 6 s early
    a.settle(tokens(600, 100), 0).await.unwrap();
    let r = l.admit("g", &p, tokens(400, 0), 0, t0).await.unwrap_err();
    assert_eq!(r.retry_after_ms, Some(6_000));
    let v = l.remaining("g", &p, t0).await.unwrap();
    assert_eq!(v["tokens_per_minute"]["remaining"], 300);
    env.cleanup().await;
}

on!(concurrency: local => Kind::Local(Sql::Sqlite), redis => Kind::Redis);
async fn concurrency(kind: Kind) {
    let env = Env::new(kind).await;
    let l = &env.limiter;
    let p = policy(json!({"max_concurrent": 2}));
    let t0 = pairgate_store::now_ms();
    let a1 = l.admit("g", &p, tokens(1, 1), 0, t0).await.unwrap();
    let a2 = l.admit("g", &p, tokens(1, 1), 0, t0).await.unwrap();
    let r = l.admit("g", &p, tokens(1, 1), 0, t0).await.unwrap_err();
    assert_eq!((r.code, r.status), ("concurrency_limit_exceeded", 429));
    assert!(r.message.contains("2 concurrent requests"), "{}", r.message);
    assert_eq!(r.retry_after_secs, Some(1));
    l.admit("other", &p, tokens(1, 1), 0, t0)
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
    let v = l.remaining("g", &p, t0).await.unwrap();
    assert_eq!(
        v["max_concurrent"],
        json!({"limit": 2, "in_flight": 2, "remaining": 0})
    );
    a1.settle(tokens(1, 1), 0).await.unwrap();
    let a3 = l.admit("g", &p, tokens(1, 1), 0, t0).await.unwrap();
    // a dropped admission (client gone, task cancelled) frees its permit
    drop(a2);
    wait_for(|| async {
        l.remaining("g", &p, t0).await.unwrap()["max_concurrent"]["in_flight"] == 1
    })
    .await;
    let a4 = l.admit("g", &p, tokens(1, 1), 0, t0).await.unwrap();
    a3.release().await.unwrap();
    a4.release().await.unwrap();
    env.cleanup().await;
}

/// Polls `check` for up to 3 s.
pub async fn wait_for<F, Fut>(check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 3 s");
}

on!(budgets: local_sqlite => Kind::Local(Sql::Sqlite), local_postgres => Kind::Local(Sql::Postgres), redis => Kind::Redis);
async fn budgets(kind: Kind) {
    let env = Env::new(kind).await;
    let l = &env.limiter;
    let t0 = pairgate_store::now_ms();
    let p = policy(json!({"token_budget": {"daily": 1000}}));
    let a = l.admit("g", &p, tokens(500, 100), 0, t0).await.unwrap();
    let r = l.admit("g", &p, tokens(500, 100), 0, t0).await.unwrap_err();
    assert_eq!((r.code, r.status), ("insufficient_quota", 429));
    for part in [
        "daily token budget",
        "limit 1000 tokens",
        "0 tokens spent",
        "600 tokens reserved",
    ] {
        assert!(r.message.contains(part), "{part}: {}", r.message);
    }
    assert_eq!(
        r.retry_after_secs,
        Some(1),
        "fits once the request in flight settles"
    );
    // settlement returns the over-estimate: 300 used, so another 600 fits
    a.settle(tokens(200, 100), 0).await.unwrap();
    let b = l.admit("g", &p, tokens(500, 100), 0, t0).await.unwrap();
    b.settle(tokens(500, 100), 0).await.unwrap();
    let r = l.admit("g", &p, tokens(100, 50), 0, t0).await.unwrap_err();
    let day_end = window_ends_at(Window::Day, t0).unwrap();
    assert_eq!(r.retry_after_ms, Some((day_end - t0) as u64));
    assert!(r.message.contains("resets at"), "{}", r.message);
    let v = l.remaining("g", &p, t0).await.unwrap();
    let daily = &v["token_budget"]["daily"];
    assert_eq!(
        (daily["spent"].as_u64(), daily["reserved"].as_u64()),
        (Some(900), Some(0))
    );
    assert_eq!(
        (daily["remaining"].as_u64(), daily["resets_at"].as_i64()),
        (Some(100), Some(day_end))
    );

    let c = policy(json!({"cost_budget_micros": {"monthly": 5000}}));
    let r = l.admit("g2", &c, tokens(1, 1), 6000, t0).await.unwrap_err();
    assert_eq!(r.retry_after_secs, None);
    assert!(
        r.message.contains("this request alone exceeds"),
        "{}",
        r.message
    );
    let a = l.admit("g2", &c, tokens(1, 1), 3000, t0).await.unwrap();
    a.settle(tokens(1, 1), 4500).await.unwrap();
    let r = l.admit("g2", &c, tokens(1, 1), 1000, t0).await.unwrap_err();
    assert!(r.message.contains("monthly cost budget"), "{}", r.message);
    assert!(r.message.contains("$0.004500 spent"), "{}", r.message);
    let month_end = window_ends_at(Window::Month, t0).unwrap();
    assert_eq!(r.retry_after_ms, Some((month_end - t0) as u64));

    let life = policy(json!({"token_budget": {"lifetime": 100}}));
    let a = l.admit("g3", &life, tokens(50, 0), 0, t0).await.unwrap();
    a.settle(tokens(100, 0), 0).await.unwrap();
    let r = l.admit("g3", &life, tokens(1, 0), 0, t0).await.unwrap_err();
    assert!(r.message.contains("lifetime token budget"), "{}", r.message);
    assert!(r.message.contains("does not reset"), "{}", r.message);
    assert_eq!(
        (r.retry_after_secs, header(&r.headers, "retry-after")),
        (None, None)
    );

    // one window refusing leaves the others untouched (one transaction / one script)
    let both = policy(
        json!({"token_budget": {"daily": 1000, "monthly": 500}, "cost_budget_micros": {"daily": 10}}),
    );
    let r = l
        .admit("g4", &both, tokens(600, 0), 5, t0)
        .await
        .unwrap_err();
    assert!(r.message.contains("monthly token budget"), "{}", r.message);
    let v = l.remaining("g4", &both, t0).await.unwrap();
    assert_eq!(v["token_budget"]["daily"]["reserved"], 0);
    assert_eq!(v["cost_budget_micros"]["daily"]["reserved"], 0);
    env.cleanup().await;
}

on!(dropped_admission_releases: local_sqlite => Kind::Local(Sql::Sqlite), local_postgres => Kind::Local(Sql::Postgres), redis => Kind::Redis);
async fn dropped_admission_releases(kind: Kind) {
    let env = Env::new(kind).await;
    let l = &env.limiter;
    let t0 = pairgate_store::now_ms();
    let p = policy(json!({"max_concurrent": 1, "token_budget": {"daily": 1000}}));
    let a = l.admit("g", &p, tokens(500, 0), 0, t0).await.unwrap();
    let r = l.admit("g", &p, tokens(1, 0), 0, t0).await.unwrap_err();
    assert_eq!(r.code, "concurrency_limit_exceeded");
    drop(a);
    wait_for(|| async {
        let v = l.remaining("g", &p, t0).await.unwrap();
        v["max_concurrent"]["in_flight"] == 0 && v["token_budget"]["daily"]["reserved"] == 0
    })
    .await;
    l.admit("g", &p, tokens(1000, 0), 0, t0)
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
    let v = l.remaining("g", &p, t0).await.unwrap();
    assert_eq!(
        v["token_budget"]["daily"]["spent"], 0,
        "released, not spent"
    );
    env.cleanup().await;
}

on!(janitor_releases_expired: redis => Kind::Redis);
async fn janitor_releases_expired(kind: Kind) {
    let env = Env::new(kind).await;
    let l = &env.limiter;
    let t0 = pairgate_store::now_ms();
    let p = policy(json!({"token_budget": {"lifetime": 1000}}));
    // `a` is never settled in time (a crashed replica, a request stuck for 15 minutes)
    let a = l.admit("g", &p, tokens(600, 0), 0, t0).await.unwrap();
    assert!(
        l.admit("g", &p, tokens(600, 0), 0, t0 + 1000)
            .await
            .is_err()
    );
    let early = l.run_janitor(t0 + RESERVATION_TTL_MS - 1).await.unwrap();
    assert_eq!(early.released, 0);
    let due = l.run_janitor(t0 + RESERVATION_TTL_MS).await.unwrap();
    assert_eq!(due.released, 1);
    let later = t0 + RESERVATION_TTL_MS + 1;
    assert_eq!(
        l.remaining("g", &p, later).await.unwrap()["token_budget"]["lifetime"]["reserved"],
        0
    );
    let b = l.admit("g", &p, tokens(600, 0), 0, later).await.unwrap();
    // the late settlement adds its usage but does not take b's reservation away
    a.settle(tokens(100, 0), 0).await.unwrap();
    let v = l.remaining("g", &p, later).await.unwrap();
    assert_eq!(v["token_budget"]["lifetime"]["spent"], 100);
    assert_eq!(v["token_budget"]["lifetime"]["reserved"], 600);
    b.release().await.unwrap();
    assert_eq!(
        l.run_janitor(later + 2 * RESERVATION_TTL_MS)
            .await
            .unwrap()
            .released,
        0
    );
    env.cleanup().await;
}

on!(reservation_members: redis => Kind::Redis);
/// One member per admission holds every budget line; the janitor releases them all, and it and
/// the settlement still read the one-line members an older gateway wrote (`id|amount|key`).
async fn reservation_members(kind: Kind) {
    let env = Env::new(kind).await;
    let l = &env.limiter;
    let set = format!("pairgate:{}:reservations", env.namespace);
    let mut conn = redis::Client::open(super::test_support::REDIS_URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let p = policy(json!({"token_budget": {"daily": 1000, "lifetime": 1000}}));
    let reserved = |grant: &'static str, at: i64| {
        let p = p.clone();
        async move {
            let v = l.remaining(grant, &p, at).await.unwrap();
            let b = &v["token_budget"];
            (
                b["daily"]["reserved"].clone(),
                b["lifetime"]["reserved"].clone(),
            )
        }
    };
    // A member in the older form, one per line: what a gateway before this one wrote.
    let to_older_form = |member: &str| -> Vec<String> {
        let (id, mut rest) = member.split_once('|').unwrap();
        let mut lines = Vec::new();
        while !rest.is_empty() {
            let (amount, tail) = rest.split_once('|').unwrap();
            let (len, tail) = tail.split_once('|').unwrap();
            let (key, tail) = tail.split_at(len.parse().unwrap());
            lines.push(format!("{id}|{amount}|{key}"));
            rest = tail.strip_prefix('|').unwrap_or(tail);
        }
        lines
    };
    let members = |conn: &mut redis::aio::MultiplexedConnection| {
        let mut conn = conn.clone();
        let set = set.clone();
        async move {
            let m: Vec<(String, i64)> = redis::cmd("ZRANGE")
                .arg(&set)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(&mut conn)
                .await
                .unwrap();
            m
        }
    };
    let t0 = pairgate_store::now_ms();

    let a = l.admit("g1", &p, tokens(600, 0), 0, t0).await.unwrap();
    std::mem::forget(a);
    let m = members(&mut conn).await;
    assert_eq!(m.len(), 1, "one member for both lines: {m:?}");
    assert_eq!(to_older_form(&m[0].0).len(), 2);
    assert_eq!(reserved("g1", t0).await, (json!(600), json!(600)));
    let report = l.run_janitor(t0 + RESERVATION_TTL_MS).await.unwrap();
    assert_eq!(report.released, 1);
    assert_eq!(reserved("g1", t0).await, (json!(0), json!(0)));

    // the older form, released by the janitor
    let b = l.admit("g2", &p, tokens(600, 0), 0, t0).await.unwrap();
    std::mem::forget(b);
    let rewrite = |conn: &mut redis::aio::MultiplexedConnection| {
        let mut conn = conn.clone();
        let set = set.clone();
        async move {
            let m = members(&mut conn).await;
            assert_eq!(m.len(), 1);
            let (member, score) = &m[0];
            let mut pipe = redis::pipe();
            pipe.cmd("ZREM").arg(&set).arg(member);
            for line in to_older_form(member) {
                pipe.cmd("ZADD").arg(&set).arg(*score).arg(line);
            }
            let _: () = pipe.query_async(&mut conn).await.unwrap();
        }
    };
    rewrite(&mut conn).await;
    assert_eq!(members(&mut conn).await.len(), 2);
    let report = l.run_janitor(t0 + RESERVATION_TTL_MS).await.unwrap();
    assert_eq!(report.released, 2);
    assert_eq!(reserved("g2", t0).await, (json!(0), json!(0)));

    // the older form, settled
    let c = l.admit("g3", &p, tokens(600, 0), 0, t0).await.unwrap();
    rewrite(&mut conn).await;
    c.settle(tokens(100, 0), 0).await.unwrap();
    assert_eq!(reserved("g3", t0).await, (json!(0), json!(0)));
    let v = l.remaining("g3", &p, t0).await.unwrap();
    assert_eq!(v["token_budget"]["daily"]["spent"], 100);
    assert_eq!(v["token_budget"]["lifetime"]["spent"], 100);
    assert!(members(&mut conn).await.is_empty());
    env.cleanup().await;
}

on!(remaining_view: local => Kind::Local(Sql::Sqlite), redis => Kind::Redis);
async fn remaining_view(kind: Kind) {
    let env = Env::new(kind).await;
    let l = &env.limiter;
    let t0 = pairgate_store::now_ms();
    let p = policy(json!({
        "requests_per_minute": 10, "tokens_per_minute": 1000, "max_concurrent": 3,
        "token_budget": {"daily": 1000}, "cost_budget_micros": {"lifetime": 500}
    }));
    let a = l.admit("g", &p, tokens(100, 0), 50, t0).await.unwrap();
    let v = l.remaining("g", &p, t0).await.unwrap();
    assert_eq!(
        v["requests_per_minute"],
        json!({"limit": 10, "remaining": 9, "reset_ms": 6000})
    );
    assert_eq!(v["tokens_per_minute"]["remaining"], 900);
    assert_eq!(v["max_concurrent"]["in_flight"], 1);
    assert_eq!(v["token_budget"]["daily"]["reserved"], 100);
    let life = &v["cost_budget_micros"]["lifetime"];
    assert_eq!(
        (life["reserved"].as_u64(), life["remaining"].as_u64()),
        (Some(50), Some(450))
    );
    assert_eq!(
        (life["window"].as_str(), life["resets_at"].is_null()),
        (Some("life"), true)
    );
    assert!(v.get("requests_per_day").is_none());
    a.release().await.unwrap();
    // no limit at all: nothing to track
    let free = GrantPolicy::default();
    let a = l.admit("g", &free, tokens(100, 0), 50, t0).await.unwrap();
    assert!(a.headers().is_empty());
    a.settle(tokens(1, 1), 1).await.unwrap();
    assert_eq!(l.remaining("g", &free, t0).await.unwrap(), json!({}));
    env.cleanup().await;
}

#[tokio::test]
async fn backend_failure_refuses_with_503() {
    let env = Env::new(Kind::Local(Sql::Sqlite)).await;
    env.db.store.close().await;
    let p = policy(json!({"token_budget": {"daily": 1000}}));
    let r = env
        .limiter
        .admit("g", &p, tokens(1, 0), 0, pairgate_store::now_ms())
        .await
        .unwrap_err();
    assert_eq!(
        (r.code, r.status, r.retry_after_secs),
        ("limits_unavailable", 503, Some(1))
    );
}

#[tokio::test]
async fn unreachable_redis_is_a_clear_setup_error() {
    let db = super::test_support::db(Sql::Sqlite).await;
    let backend = LimitsBackend::Redis {
        url: "redis://:hunter2@127.0.0.1:1".to_owned(),
    };
    let e = Limiter::new(backend, db.store.clone()).await.unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, LimitsSetupError::RedisUnreachable { .. }),
        "{msg}"
    );
    assert!(
        msg.contains("127.0.0.1:1") && !msg.contains("hunter2"),
        "{msg}"
    );
    let bad = LimitsBackend::Redis {
        url: "http://example.com".to_owned(),
    };
    let e = Limiter::new(bad, db.store.clone()).await.unwrap_err();
    assert!(matches!(e, LimitsSetupError::RedisUrl { .. }), "{e}");
}

#[test]
fn header_durations_read_like_openai() {
    let cases = [
        (0, "0ms"),
        (250, "250ms"),
        (1000, "1s"),
        (1500, "1.5s"),
        (36_000, "36s"),
        (60_000, "1m0s"),
        (360_000, "6m0s"),
        (3_723_000, "1h2m3s"),
        (86_400_000, "24h0m0s"),
    ];
    for (ms, want) in cases {
        assert_eq!(plan::duration(ms), want);
    }
}

on!(janitor_prunes_ended_windows: local_sqlite => Kind::Local(Sql::Sqlite), local_postgres => Kind::Local(Sql::Postgres));
async fn janitor_prunes_ended_windows(kind: Kind) {
    const DAY: i64 = 86_400_000;
    let env = Env::new(kind).await;
    let l = &env.limiter;
    let t0 = pairgate_store::now_ms();
    let p = policy(json!({"token_budget": {"daily": 1000, "monthly": 5000, "lifetime": 9000}}));
    let a = l.admit("g", &p, tokens(100, 0), 0, t0).await.unwrap();
    a.settle(tokens(40, 0), 0).await.unwrap();
    // The day after: yesterday's counter is kept (a day of slack); nothing else goes.
    let next = l.run_janitor(t0 + DAY).await.unwrap();
    assert_eq!(next.pruned_counters, 0);
    // Three days on, the day counter went; month and lifetime stay while they can be read.
    let later = l.run_janitor(t0 + 3 * DAY).await.unwrap();
    assert_eq!(later.pruned_counters, 1);
    let v = l.remaining("g", &p, t0 + 3 * DAY).await.unwrap();
    assert_eq!(v["token_budget"]["lifetime"]["spent"], 40);
    assert_eq!(v["token_budget"]["daily"]["spent"], 0);
    // Two months on, the month counter went too; the lifetime one never does.
    let much_later = l.run_janitor(t0 + 70 * DAY).await.unwrap();
    assert_eq!(much_later.pruned_counters, 1);
    let v = l.remaining("g", &p, t0 + 70 * DAY).await.unwrap();
    assert_eq!(v["token_budget"]["lifetime"]["spent"], 40);
    env.cleanup().await;
}

on!(a_restart_keeps_spent_and_forgets_reservations: sqlite => Sql::Sqlite, postgres => Sql::Postgres);
/// Local backend: reservations live in memory only (a crash releases them at once); `spent`
/// comes back from the database.
async fn a_restart_keeps_spent_and_forgets_reservations(sql: Sql) {
    let env = Env::new(Kind::Local(sql)).await;
    let l = &env.limiter;
    let t0 = pairgate_store::now_ms();
    let p = policy(json!({"token_budget": {"lifetime": 1000}}));
    let a = l.admit("g", &p, tokens(100, 0), 0, t0).await.unwrap();
    a.settle(tokens(60, 0), 0).await.unwrap();
    // held by a request in flight when the process dies
    std::mem::forget(l.admit("g", &p, tokens(900, 0), 0, t0).await.unwrap());
    assert!(l.admit("g", &p, tokens(100, 0), 0, t0).await.is_err());
    let restarted = Env::limiter(Kind::Local(sql), &env.db, &env.namespace).await;
    let v = restarted.remaining("g", &p, t0).await.unwrap();
    assert_eq!(
        (
            v["token_budget"]["lifetime"]["spent"].as_u64(),
            v["token_budget"]["lifetime"]["reserved"].as_u64()
        ),
        (Some(60), Some(0))
    );
    let b = restarted
        .admit("g", &p, tokens(900, 0), 0, t0)
        .await
        .unwrap();
    b.release().await.unwrap();
    env.cleanup().await;
}
