//! Grant limits end to end through `/v1`: every limit refuses the request that crosses it with its
//! OpenAI-shaped error and headers, refused requests never reach the provider, streamed usage is
//! metered (reported or estimated), 200 parallel requests never overspend a token budget, and two
//! replicas sharing PostgreSQL and Redis enforce one rate limit and one revocation.

use std::time::Duration;

use pairgate_protocol::keys::KeyKind;
use pairgate_sdk::{Client, MemoryStorage, PairOptions, Storage};
use pairgate_tests::app::{self, now, pair, pairing_string};
use pairgate_tests::fake::{Behaviour, FakeProvider};
use pairgate_tests::gateway::run_cli;
use pairgate_tests::providers::{self, fake_config, sse_data, test_key};
use pairgate_tests::{Backend, Gateway};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

const MODEL: &str = "openai/gpt-4o-mini";

/// A one-message chat asking for at most `max_tokens`. Its estimate is 9 input tokens (4 per
/// message + 20 bytes / 4) plus `max_tokens`; the fake answers with 11 + 7 = 18 tokens.
pub(crate) fn chat(max_tokens: u32) -> Value {
    json!({ "model": MODEL, "max_tokens": max_tokens, "messages": [{ "role": "user", "content": "hello" }] })
}

const ESTIMATE_20: u64 = 9 + 20;
const ACTUAL: u64 = 11 + 7;

pub(crate) async fn send(client: &Client, body: &Value) -> (u16, Value, HeaderMap) {
    send_to(client, "/v1/chat/completions", body).await
}

async fn send_to(client: &Client, path: &str, body: &Value) -> (u16, Value, HeaderMap) {
    let res = client.post(path).json(body).send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body, headers)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Requests the fake received on a chat path.
pub(crate) fn chat_calls(fake: &FakeProvider) -> usize {
    fake.received()
        .iter()
        .filter(|r| r.path.contains("chat/completions"))
        .count()
}

/// Pairs an app whose policy is `policy` (written to a file for `--policy`).
async fn pair_with(gw: &Gateway, name: &str, policy: &Value) -> Client {
    let path = gw.dir.path().join(format!("{name}.json"));
    std::fs::write(&path, policy.to_string()).unwrap();
    pair(gw, KeyKind::Ed25519, &["--policy", path.to_str().unwrap()]).await
}

/// Every rate and budget: `ok` requests of `ok_max` tokens pass, the next one (`cross_max`) is
/// refused with `code` and the headers of the limit it crossed.
struct LimitCase {
    name: &'static str,
    flags: &'static [&'static str],
    ok: usize,
    ok_max: u32,
    cross_max: u32,
    code: &'static str,
    kind: &'static str,
    /// The `x-ratelimit-limit-*` header and value the refusal carries (rates only).
    limit_header: Option<(&'static str, &'static str)>,
}

#[tokio::test]
async fn each_rate_and_budget_refuses_the_request_that_crosses_it() {
    let (gw, fake) = providers::start(Backend::Sqlite, "").await;
    let cases = [
        LimitCase {
            name: "requests per minute",
            flags: &["--rpm", "3"],
            ok: 3,
            ok_max: 20,
            cross_max: 20,
            code: "rate_limit_exceeded",
            kind: "rate_limit_error",
            limit_header: Some(("x-ratelimit-limit-requests", "3")),
        },
        LimitCase {
            name: "requests per day",
            flags: &["--rpd", "2"],
            ok: 2,
            ok_max: 20,
            cross_max: 20,
            code: "rate_limit_exceeded",
            kind: "rate_limit_error",
            limit_header: Some(("x-ratelimit-limit-requests", "2")),
        },
        // 29 + 29 <= 60 < 29 * 3 (refill is one token a second)
        LimitCase {
            name: "tokens per minute",
            flags: &["--tpm", "60"],
            ok: 2,
            ok_max: 20,
            cross_max: 20,
            code: "tokens_per_minute_exceeded",
            kind: "rate_limit_error",
            limit_header: Some(("x-ratelimit-limit-tokens", "60")),
        },
        // spent 18 per request: 72 + 29 > 100 on the fifth. Lifetime budgets: no calendar
        // window can roll over during the test, and waiting cannot help (no retry-after).
        LimitCase {
            name: "lifetime token budget",
            flags: &["--lifetime-tokens", "100"],
            ok: 4,
            ok_max: 20,
            cross_max: 20,
            code: "insufficient_quota",
            kind: "insufficient_quota",
            limit_header: None,
        },
        // gpt-4o-mini: $0.15 / $0.60 per million. The second request's estimate (9 in + 1660 out
        // = 997.35 micro-USD) fits an empty $0.001 budget, not one with the first's ~6 spent.
        LimitCase {
            name: "lifetime cost budget",
            flags: &["--lifetime-usd", "0.001"],
            ok: 1,
            ok_max: 100,
            cross_max: 1660,
            code: "insufficient_quota",
            kind: "insufficient_quota",
            limit_header: None,
        },
    ];
    for case in &cases {
        let name = case.name;
        let client = pair(&gw, KeyKind::Ed25519, case.flags).await;
        for i in 0..case.ok {
            let (s, body, h) = send(&client, &chat(case.ok_max)).await;
            assert_eq!(s, 200, "{name}: request {i}: {body}");
            if let Some((limit, value)) = case.limit_header {
                assert_eq!(header(&h, limit), Some(value), "{name}: {h:?}");
            }
        }
        let before = chat_calls(&fake);
        let (s, body, h) = send(&client, &chat(case.cross_max)).await;
        assert_eq!(s, 429, "{name}: {body}");
        assert_eq!(body["error"]["code"], case.code, "{name}: {body}");
        assert_eq!(body["error"]["type"], case.kind, "{name}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{name}: {body}"
        );
        if let Some((limit, value)) = case.limit_header {
            let retry: u64 = header(&h, "retry-after")
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name}: no retry-after: {h:?}"));
            assert!(retry >= 1, "{name}: retry-after {retry}");
            let suffix = limit.trim_start_matches("x-ratelimit-limit-");
            assert_eq!(header(&h, limit), Some(value), "{name}: {h:?}");
            assert_eq!(
                header(&h, &format!("x-ratelimit-remaining-{suffix}")),
                Some("0"),
                "{name}: {h:?}"
            );
            assert!(
                header(&h, &format!("x-ratelimit-reset-{suffix}")).is_some(),
                "{name}: {h:?}"
            );
        }
        if case.limit_header.is_none() {
            assert!(
                header(&h, "retry-after").is_none(),
                "{name}: a lifetime budget does not reset: {h:?}"
            );
        }
        assert_eq!(
            chat_calls(&fake),
            before,
            "{name}: a refused request never reaches the provider"
        );
    }
    // Rates count down in the headers of answered requests too.
    let client = pair(&gw, KeyKind::Ed25519, &["--rpm", "5"]).await;
    let (_, _, h) = send(&client, &chat(20)).await;
    assert_eq!(header(&h, "x-ratelimit-remaining-requests"), Some("4"));
}

#[tokio::test]
async fn concurrent_requests_over_the_limit_are_refused_while_the_others_run() {
    let (gw, fake) = providers::start(Backend::Sqlite, "").await;
    let client = pair(&gw, KeyKind::Ed25519, &["--concurrent", "2"]).await;
    fake.set(Behaviour {
        delay: Duration::from_millis(1500),
        ..Behaviour::default()
    });
    let held: Vec<_> = (0..2)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { send(&c, &chat(20)).await })
        })
        .collect();
    // Both held requests reach the fake before the third is sent.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while chat_calls(&fake) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "held requests never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (s, body, h) = send(&client, &chat(20)).await;
    assert_eq!(s, 429, "{body}");
    assert_eq!(
        body["error"]["code"], "concurrency_limit_exceeded",
        "{body}"
    );
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    assert_eq!(header(&h, "retry-after"), Some("1"));
    assert_eq!(
        chat_calls(&fake),
        2,
        "the refused request never reached the fake"
    );
    for t in held {
        let (s, body, _) = t.await.unwrap();
        assert_eq!(s, 200, "{body}");
    }
    fake.set(Behaviour::default());
    let (s, body, _) = send(&client, &chat(20)).await;
    assert_eq!(
        s, 200,
        "the permits are back once the requests ended: {body}"
    );
}

/// A policy refusal: `body` to `path` under `policy` is refused with `status` and `code`;
/// `allowed` (if any) is a request the same grant may make.
struct Refusal {
    policy: Value,
    path: &'static str,
    body: Value,
    status: u16,
    code: &'static str,
    allowed: Option<(&'static str, Value)>,
}

#[tokio::test]
async fn policy_checks_refuse_with_their_openai_errors_before_the_provider() {
    let (gw, fake) = providers::start(Backend::Sqlite, "").await;
    let now_ms = now() * 1000;
    // Paired first: it expires while the table runs.
    let expires_at = now_ms + 4000;
    let expiring = pair_with(&gw, "expiring", &json!({ "expires_at": expires_at })).await;
    let (s, body, _) = send(&expiring, &chat(20)).await;
    assert_eq!(s, 200, "valid before expires_at: {body}");

    let chat_path = "/v1/chat/completions";
    let image = json!({ "model": MODEL, "messages": [{ "role": "user", "content": [
        { "type": "text", "text": "what is this?" },
        { "type": "image_url", "image_url": { "url": "data:image/png;base64,AAAA" } }
    ]}]});
    let tools = json!({ "model": MODEL, "messages": [{ "role": "user", "content": "hi" }],
        "tools": [{ "type": "function", "function": { "name": "f", "parameters": { "type": "object" } } }] });
    let mut stream = chat(20);
    stream["stream"] = true.into();
    let mut other_model = chat(20);
    other_model["model"] = "openai/gpt-4o".into();
    let cases = [
        Refusal {
            policy: json!({ "max_output_tokens": 50, "output_tokens_mode": "reject" }),
            path: chat_path,
            body: chat(100),
            status: 400,
            code: "max_tokens_exceeded",
            allowed: Some((chat_path, chat(50))),
        },
        Refusal {
            policy: json!({ "allow_streaming": false }),
            path: chat_path,
            body: stream,
            status: 403,
            code: "streaming_not_allowed",
            allowed: Some((chat_path, chat(20))),
        },
        Refusal {
            policy: json!({ "allow_tools": false }),
            path: chat_path,
            body: tools,
            status: 403,
            code: "tools_not_allowed",
            allowed: Some((chat_path, chat(20))),
        },
        Refusal {
            policy: json!({ "allow_images": false }),
            path: chat_path,
            body: image,
            status: 403,
            code: "images_not_allowed",
            allowed: Some((chat_path, chat(20))),
        },
        Refusal {
            policy: json!({ "models": [MODEL] }),
            path: chat_path,
            body: other_model,
            status: 403,
            code: "model_not_allowed",
            allowed: Some((chat_path, chat(20))),
        },
        Refusal {
            policy: json!({ "endpoints": ["embeddings"] }),
            path: chat_path,
            body: chat(20),
            status: 403,
            code: "endpoint_not_allowed",
            allowed: Some((
                "/v1/embeddings",
                json!({ "model": "openai/text-embedding-3-small", "input": "hi" }),
            )),
        },
        Refusal {
            policy: json!({ "not_before": now_ms + 3_600_000 }),
            path: chat_path,
            body: chat(20),
            status: 403,
            code: "not_yet_valid",
            allowed: None,
        },
        Refusal {
            policy: json!({ "source_ips": ["10.0.0.0/8", "::1"] }),
            path: chat_path,
            body: chat(20),
            status: 403,
            code: "source_ip_not_allowed",
            allowed: None,
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let client = pair_with(&gw, &format!("case{i}"), &case.policy).await;
        let before = fake.received().len();
        let (s, body, _) = send_to(&client, case.path, &case.body).await;
        let code = case.code;
        assert_eq!(s, case.status, "{code}: {body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        let kind = if s == 400 {
            "invalid_request_error"
        } else {
            "permission_error"
        };
        assert_eq!(body["error"]["type"], kind, "{code}: {body}");
        assert_eq!(
            fake.received().len(),
            before,
            "{code}: a refused request never reaches the provider"
        );
        if let Some((path, ok)) = &case.allowed {
            let (s, body, _) = send_to(&client, path, ok).await;
            assert_eq!(s, 200, "{code}: the grant still allows {ok}: {body}");
        }
    }

    // Clamp mode: the request goes through with the policy's maximum.
    let clamped = pair_with(&gw, "clamp", &json!({ "max_output_tokens": 50 })).await;
    let (s, body, _) = send(&clamped, &chat(100)).await;
    assert_eq!(s, 200, "{body}");
    let seen = fake.last().json();
    let sent = seen["max_tokens"]
        .as_u64()
        .or(seen["max_completion_tokens"].as_u64());
    assert_eq!(
        sent,
        Some(50),
        "the fake sees the clamped max tokens: {seen}"
    );

    // The allow-list with the client's address passes.
    let local = pair_with(
        &gw,
        "local",
        &json!({ "source_ips": ["10.0.0.0/8", "127.0.0.1"] }),
    )
    .await;
    let (s, body, _) = send(&local, &chat(20)).await;
    assert_eq!(s, 200, "{body}");

    // Expired: the grant that worked at the start no longer does.
    let wait = expires_at - now() * 1000 + 1100;
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
    let before = fake.received().len();
    let (s, body, _) = send(&expiring, &chat(20)).await;
    assert_eq!(s, 403, "{body}");
    assert_eq!(body["error"]["code"], "expired", "{body}");
    assert_eq!(fake.received().len(), before);
}

/// `(input, output, estimated, status)` of a grant's ledger rows, oldest first, once there are `n`.
async fn ledger_rows(gw: &Gateway, grant: &str, n: usize) -> Vec<(i64, i64, i64, i64)> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(gw.db.url.as_ref().unwrap())
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT input_tokens, output_tokens, estimated, status FROM usage_ledger \
             WHERE grant_id = $1 ORDER BY id",
        )
        .bind(grant)
        .fetch_all(&mut c)
        .await
        .unwrap();
        if rows.len() >= n || std::time::Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn streamed_usage_is_in_the_ledger_reported_or_estimated() {
    let (gw, fake) = providers::start(Backend::Postgres, "").await;
    let client = pair(&gw, KeyKind::Ed25519, &[]).await;
    let mut body = chat(20);
    body["stream"] = true.into();
    let stream = |body: Value| {
        let client = client.clone();
        async move {
            let res = client
                .post("/v1/chat/completions")
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            let data = sse_data(&res.text().await.unwrap());
            assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
        }
    };
    stream(body.clone()).await;
    fake.set(Behaviour {
        stream_usage: false,
        ..Behaviour::default()
    });
    stream(body).await;
    let rows = ledger_rows(&gw, &client.grant_id(), 2).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    // Reported by the provider: 11 in, one token per chunk (3) out.
    assert_eq!(rows[0], (11, 3, 0, 200), "{rows:?}");
    // No report: the input estimate (9) and the streamed text ("tok0 tok1 tok2 ", 15 bytes -> 4).
    let (input, output, estimated, status) = rows[1];
    assert_eq!((estimated, status), (1, 200), "{rows:?}");
    assert!(input > 0 && output > 0, "{rows:?}");
    assert_eq!((input, output), (9, 4), "{rows:?}");
}

#[tokio::test]
async fn parallel_requests_never_overspend_a_token_budget() {
    const REQUESTS: usize = 200;
    let (gw, fake) = providers::start(Backend::Postgres, "").await;
    let budget = 50 * ESTIMATE_20;
    let client = pair(
        &gw,
        KeyKind::Ed25519,
        &["--lifetime-tokens", &budget.to_string()],
    )
    .await;
    let calls = (0..REQUESTS).map(|_| {
        let c = client.clone();
        async move { send(&c, &chat(20)).await }
    });
    let answers = join_all(calls).await;
    let mut ok = 0u64;
    for (s, body, _) in &answers {
        match s {
            200 => ok += 1,
            429 => assert_eq!(body["error"]["code"], "insufficient_quota", "{body}"),
            _ => panic!("unexpected answer {s}: {body}"),
        }
    }
    let rows = ledger_rows(&gw, &client.grant_id(), REQUESTS).await;
    let spent: u64 = rows
        .iter()
        .filter(|r| r.3 == 200)
        .map(|r| (r.0 + r.1) as u64)
        .sum();
    let overspend = spent.saturating_sub(budget);
    println!(
        "token budget {budget} ({} requests' estimates of {ESTIMATE_20}); {REQUESTS} parallel requests: \
         {ok} answered 200, {} refused; spent {spent} tokens; overspend {overspend}",
        budget / ESTIMATE_20,
        REQUESTS as u64 - ok
    );
    assert_eq!(
        rows.len(),
        answers.len(),
        "one ledger row per answered request"
    );
    assert_eq!(spent, ok * ACTUAL, "{rows:?}");
    // Estimates are conservative (29 >= 18), so the in-flight estimation error is zero.
    assert_eq!(overspend, 0, "spent {spent} of {budget}");
    assert!(
        ok >= budget / ESTIMATE_20,
        "at least the budget's worth of estimates ran: {ok}"
    );
    assert!(ok < REQUESTS as u64, "the budget refused some");
    assert_eq!(
        chat_calls(&fake) as u64,
        ok,
        "refused requests never reached the fake"
    );
}

/// `join_all` without a futures dependency: spawn every future, then await each.
async fn join_all<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn two_replicas_share_one_rate_limit_and_one_revocation() {
    pairgate_tests::require_tcp("127.0.0.1:6379", "Redis", "redis-server --daemonize yes");
    let fake = FakeProvider::start().await;
    let namespace = format!(
        "e2e-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let limits = format!(
        "[limits]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\nredis_namespace = \"{namespace}\"\n"
    );
    let (a, b) = two_replicas(&fake, &limits).await;

    let (on_a, on_b) = pair_on_both(&a, &b, &["--rpm", "10"]).await;
    assert_eq!(on_a.gateway_url(), a.base_url);
    assert_eq!(on_b.gateway_url(), b.base_url);
    for i in 0..10u64 {
        let client = if i % 2 == 0 { &on_a } else { &on_b };
        let (s, body, h) = send(client, &chat(20)).await;
        assert_eq!(s, 200, "request {i}: {body}");
        assert_eq!(
            header(&h, "x-ratelimit-remaining-requests"),
            Some((9 - i).to_string().as_str()),
            "request {i} counts against one shared limit"
        );
    }
    for (name, client) in [("A", &on_a), ("B", &on_b)] {
        let (s, body, _) = send(client, &chat(20)).await;
        assert_eq!(s, 429, "replica {name}: {body}");
        assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
    }
    assert_eq!(chat_calls(&fake), 10);

    // Revoked on A: B refuses the next request.
    let (on_a, on_b) = pair_on_both(&a, &b, &[]).await;
    let (s, body, _) = send(&on_b, &chat(20)).await;
    assert_eq!(s, 200, "{body}");
    let grant = on_a.grant_id();
    let (code, _, err) = run_cli(&a, &["grant", "revoke", &grant], None).await;
    assert_eq!(code, 0, "{err}");
    let (s, body, h) = send(&on_b, &chat(20)).await;
    assert_eq!(s, 401, "B refuses a grant revoked on A: {body}");
    assert_eq!(body["error"]["code"], "grant_revoked", "{body} {h:?}");
    let (s, _, _) = send(&on_a, &chat(20)).await;
    assert_eq!(s, 401);
    assert_eq!(chat_calls(&fake), 11);
}

/// Two gateways on one PostgreSQL database, both routing to `fake`, with an OpenAI credential.
pub(crate) async fn two_replicas(fake: &FakeProvider, extra_config: &str) -> (Gateway, Gateway) {
    let config = fake_config(fake, extra_config);
    let a = Gateway::builder(Backend::Postgres)
        .config(config.clone())
        .start()
        .await;
    let (code, _, err) = run_cli(
        &a,
        &["credential", "add", "openai"],
        Some(&format!("{}\n", test_key("openai"))),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let b = Gateway::builder(Backend::Postgres)
        .config(config)
        .share_db(&a)
        .start()
        .await;
    (a, b)
}

/// Pairs on `a`; returns a client of `a` and one of `b` sharing the session (key and tokens).
pub(crate) async fn pair_on_both(a: &Gateway, b: &Gateway, flags: &[&str]) -> (Client, Client) {
    let storage = MemoryStorage::new();
    let s = pairing_string(a, flags).await;
    // The pairing string names whichever replica last recorded its address; bind to A.
    let opts = PairOptions {
        gateway_url: Some(a.base_url.clone()),
        ..PairOptions::default()
    };
    let on_a = Client::pair(&s, opts, storage.clone()).await.unwrap();
    let mut session = storage.load().unwrap().unwrap();
    session.gateway_url = b.base_url.clone();
    let other = MemoryStorage::new();
    other.save(&session).unwrap();
    let on_b = Client::from_storage(other, PairOptions::default())
        .unwrap()
        .unwrap();
    (on_a, on_b)
}

#[tokio::test]
async fn a_proof_replayed_to_another_replica_is_refused() {
    pairgate_tests::require_tcp("127.0.0.1:6379", "Redis", "redis-server --daemonize yes");
    let fake = FakeProvider::start().await;
    // Replicas behind one load balancer share one public URL: the same proof is valid for both.
    let public = "http://gateway.test";
    let namespace = format!(
        "e2e-replay-{}-{}",
        std::process::id(),
        pairgate_tests::app::jti()
    );
    let limits = format!(
        "[limits]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\nredis_namespace = \"{namespace}\"\n"
    );
    let config = format!("public_url = \"{public}\"\n{}", fake_config(&fake, &limits));
    let a = Gateway::builder(Backend::Postgres)
        .config(config.clone())
        .start()
        .await;
    let (code, _, err) = run_cli(
        &a,
        &["credential", "add", "openai"],
        Some(&format!("{}\n", test_key("openai"))),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let b = Gateway::builder(Backend::Postgres)
        .config(config)
        .share_db(&a)
        .start()
        .await;
    // limits on, so a relayed request's claim rides in the admission script
    let code = pairing_string(&a, &["--rpm", "1000", "--concurrent", "8"]).await;
    let key = app::key(KeyKind::Ed25519);
    let p = app::proof(&key, "POST", &format!("{public}/oauth/token"), None, None);
    let (status, body, _) = app::oauth_post(
        &a,
        "/oauth/token",
        &[
            ("grant_type", pairgate_protocol::oauth::GRANT_TYPE_PAIRING),
            ("pairing_code", &code),
        ],
        Some(&p),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_string();
    let auth = format!("DPoP {token}");
    let url = format!("{public}/v1/grant");
    let p = app::proof(&key, "GET", &url, Some(&token), None);
    let headers = [("authorization", auth.as_str()), ("dpop", p.as_str())];
    let (s, body, _) = app::call(&a, "GET", "/v1/grant", &headers, None).await;
    assert_eq!(s, 200, "{body}");
    let (s, body, _) = app::call(&b, "GET", "/v1/grant", &headers, None).await;
    assert_eq!(s, 401, "the same proof replayed to replica B: {body}");
    assert!(body.to_string().contains("already used"), "{body}");
    let fresh = app::proof(&key, "GET", &url, Some(&token), None);
    let headers = [("authorization", auth.as_str()), ("dpop", fresh.as_str())];
    let (s, body, _) = app::call(&b, "GET", "/v1/grant", &headers, None).await;
    assert_eq!(s, 200, "a fresh proof is fine on B: {body}");

    // A relayed request's proof is claimed by its admission (one Redis round trip for both): the
    // same chat proof sent to both replicas at once reaches the provider once, and the loser is
    // charged nothing.
    let chat = serde_json::to_vec(&chat(10)).unwrap();
    let url = format!("{public}/v1/chat/completions");
    let p = app::proof(&key, "POST", &url, Some(&token), None);
    let headers = [
        ("authorization", auth.as_str()),
        ("dpop", p.as_str()),
        ("content-type", "application/json"),
    ];
    let path = "/v1/chat/completions";
    let ((sa, body_a, _), (sb, body_b, _)) = tokio::join!(
        app::call(&a, "POST", path, &headers, Some(&chat)),
        app::call(&b, "POST", path, &headers, Some(&chat)),
    );
    let mut statuses = [sa, sb];
    statuses.sort();
    assert_eq!(statuses, [200, 401], "A: {body_a}, B: {body_b}");
    let refused = if sa == 401 { &body_a } else { &body_b };
    assert!(refused.to_string().contains("already used"), "{refused}");
    assert_eq!(chat_calls(&fake), 1, "one proof, one provider call");
    // and again on either replica, later: still refused, still one call
    for gw in [&a, &b] {
        let (s, body, _) = app::call(gw, "POST", path, &headers, Some(&chat)).await;
        assert_eq!(s, 401, "{body}");
    }
    assert_eq!(chat_calls(&fake), 1);
    let fresh = app::proof(
        &key,
        "GET",
        &format!("{public}/v1/grant"),
        Some(&token),
        None,
    );
    let headers = [("authorization", auth.as_str()), ("dpop", fresh.as_str())];
    let (s, grant, _) = app::call(&a, "GET", "/v1/grant", &headers, None).await;
    assert_eq!(s, 200, "{grant}");
    let limits = &grant["remaining"];
    assert_eq!(
        limits["requests_per_minute"]["remaining"], 999,
        "only the admitted request used the rate: {grant}"
    );
    assert_eq!(limits["max_concurrent"]["in_flight"], 0, "{grant}");
}
