//! A paired app turned hostile: each way around its grant that once reached a provider is tried
//! through the real binary (quota races, unpriced models under a money budget, model calls and
//! pass-through under `/r/`), and the ledger, the budget counters and the fake provider's
//! record show that nothing beyond the grant happened, not only the status code.

use pairgate_protocol::keys::KeyKind;
use pairgate_sdk::Client;
use pairgate_tests::app::pair;
use pairgate_tests::fake::FakeProvider;
use pairgate_tests::gateway::run_cli;
use pairgate_tests::probe::{books, books_with};
use pairgate_tests::providers;
use pairgate_tests::{Backend, Gateway};
use serde_json::{Value, json};

/// Pairs an app whose policy is `policy` (written to a file for `--policy`).
async fn pair_with(gw: &Gateway, name: &str, policy: &Value) -> Client {
    let path = gw.dir.path().join(format!("{name}.json"));
    std::fs::write(&path, policy.to_string()).unwrap();
    pair(gw, KeyKind::Ed25519, &["--policy", path.to_str().unwrap()]).await
}

async fn post(client: &Client, path: &str, body: &Value) -> (u16, Value) {
    let res = client.post(path).json(body).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn calls_to(fake: &FakeProvider, path: &str) -> usize {
    fake.received().iter().filter(|r| r.path == path).count()
}

fn mail() -> Value {
    json!({ "from": "app@example.com", "to": ["a@example.org"], "subject": "hi", "text": "hello" })
}

fn redis_limits() -> String {
    let namespace = format!(
        "e2e-quota-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    format!(
        "[limits]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\nredis_namespace = \"{namespace}\"\n"
    )
}

/// Twenty concurrent e-mails against a quota of three: exactly three reach the provider, the
/// ledger has three sends and seventeen `quota_exceeded` refusals, and (SQLite) the quota's
/// counter holds three with nothing left reserved.
async fn quota_race(backend: Backend, extra: &str) {
    const QUOTA: usize = 3;
    const SENDS: usize = 20;
    let (gw, fake) = providers::start(backend, extra).await;
    let policy = json!({
        "endpoints": ["resource:resend/send-email"],
        "resources": { "resend": { "messages_per_day": QUOTA } }
    });
    let app = pair_with(&gw, "mailer", &policy).await;
    let mut sends = Vec::new();
    for _ in 0..SENDS {
        let app = app.clone();
        sends.push(tokio::spawn(async move {
            post(&app, "/r/resend/send-email", &mail()).await
        }));
    }
    let mut ok = 0;
    for s in sends {
        let (status, body) = s.await.unwrap();
        match status {
            200 => ok += 1,
            429 => {
                assert_eq!(body["error"]["code"], "quota_exceeded", "{body}");
                let message = body["error"]["message"].as_str().unwrap();
                assert!(
                    message.contains("resources.resend.messages_per_day"),
                    "the refusal names the limit: {message}"
                );
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(ok, QUOTA, "exactly the quota's e-mails are sent");
    assert_eq!(
        calls_to(&fake, "/emails"),
        QUOTA,
        "the provider saw only those"
    );
    // A later send is refused too, and costs the provider nothing.
    let (status, body) = post(&app, "/r/resend/send-email", &mail()).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(calls_to(&fake, "/emails"), QUOTA);

    // The app sees the same numbers on GET /v1/grant.
    let grant: Value = app
        .get("/v1/grant")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let quota = &grant["remaining"]["quotas"]["resources.resend.messages_per_day"];
    assert_eq!(
        (
            &quota["limit"],
            &quota["used"],
            &quota["reserved"],
            &quota["remaining"]
        ),
        (&json!(QUOTA), &json!(QUOTA), &json!(0), &json!(0)),
        "{grant}"
    );

    let b = books_with(&gw, &app.grant_id(), SENDS + 1).await;
    assert_eq!(b.ledger.len(), SENDS + 1, "one ledger row per request");
    assert_eq!(b.ledger.iter().filter(|r| r.status == 200).count(), QUOTA);
    assert_eq!(
        b.ledger
            .iter()
            .filter(|r| r.error_code.as_deref() == Some("quota_exceeded"))
            .count(),
        SENDS + 1 - QUOTA
    );
    if backend == Backend::Sqlite && extra.is_empty() {
        let counter = b
            .counters
            .iter()
            .find(|c| c.kind == "quota:resend/messages")
            .expect("the quota has a counter");
        assert!(counter.window_key.starts_with("d:"), "{counter:?}");
        assert_eq!(
            (counter.spent, counter.reserved),
            (QUOTA as i64, 0),
            "spent as sent, nothing left held"
        );
        assert_eq!(b.reservations, 0);
    }
}

#[tokio::test]
async fn concurrent_sends_never_exceed_a_resource_quota_on_sqlite() {
    quota_race(Backend::Sqlite, "").await;
}

#[tokio::test]
async fn concurrent_sends_never_exceed_a_resource_quota_on_postgres_and_redis() {
    pairgate_tests::require_tcp("127.0.0.1:6379", "Redis", "redis-server --daemonize yes");
    quota_race(Backend::Postgres, &redis_limits()).await;
}

/// A refused provider call does not use the quota: the e-mail the provider refused (4xx) is
/// released, so the next one still goes.
#[tokio::test]
async fn a_refused_send_does_not_use_the_quota() {
    let (gw, fake) = providers::start(Backend::Sqlite, "").await;
    let policy = json!({
        "endpoints": ["resource:resend/send-email"],
        "resources": { "resend": { "messages_per_day": 1 } }
    });
    let app = pair_with(&gw, "mailer", &policy).await;
    fake.fault(pairgate_tests::fake::Fault::Status(422));
    let (status, body) = post(&app, "/r/resend/send-email", &mail()).await;
    assert_eq!(status / 100, 4, "{body}");
    fake.fault(pairgate_tests::fake::Fault::None);
    let (status, body) = post(&app, "/r/resend/send-email", &mail()).await;
    assert_eq!(
        status, 200,
        "the quota was not used by the refused send: {body}"
    );
    let (status, _) = post(&app, "/r/resend/send-email", &mail()).await;
    assert_eq!(status, 429, "now it is");
}

/// Under a money budget, a model nobody can price is refused before the provider sees it; a
/// dated snapshot is priced as its family; the owner's price list and fallback price make a
/// model usable and charged.
#[tokio::test]
async fn unpriced_models_cannot_spend_a_money_budget() {
    let extra = "[[providers.openai.prices]]\nmodel = \"zz-owned*\"\ninput = 2.0\noutput = 4.0\n\
                 [providers.backup]\nplugin = \"openai\"\norigin_override = \"{fake}\"\n\
                 [providers.backup.fallback_price]\ninput = 1.0\noutput = 3.0\n";
    let fake = FakeProvider::start().await;
    let config = providers::fake_config(&fake, &extra.replace("{fake}", &fake.url()));
    let gw = Gateway::builder(Backend::Sqlite)
        .config(config)
        .start()
        .await;
    providers::add_credentials(&gw).await;
    let (code, _, err) = run_cli(
        &gw,
        &["credential", "add", "backup"],
        Some(&format!("{}\n", providers::test_key("backup"))),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    // $0.001 a day
    let policy = json!({ "cost_budget_micros": { "daily": 1_000 } });
    let app = pair_with(&gw, "spender", &policy).await;
    let chat = |model: &str, max: u32| json!({ "model": model, "max_tokens": max, "messages": [{ "role": "user", "content": "hi" }] });

    // Unknown ids and dated snapshots: never free.
    let (status, body) = post(
        &app,
        "/v1/chat/completions",
        &chat("openai/zz-unknown-1", 100_000),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "model_not_priced", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("providers.openai.prices"),
        "says what the owner can do: {body}"
    );
    let (status, body) = post(
        &app,
        "/v1/chat/completions",
        &chat("openai/gpt-4o-2024-08-06", 100_000),
    )
    .await;
    assert_eq!(status, 429, "priced as gpt-4o, far over $0.001: {body}");
    assert_eq!(body["error"]["code"], "insufficient_quota", "{body}");
    assert_eq!(
        calls_to(&fake, "/v1/chat/completions"),
        0,
        "no refused request reached the provider"
    );

    // Priced by the owner (list, then fallback): admitted and charged.
    let (status, body) = post(&app, "/v1/chat/completions", &chat("openai/zz-owned-7", 20)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        &app,
        "/v1/chat/completions",
        &chat("backup/zz-anything", 20),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(calls_to(&fake, "/v1/chat/completions"), 2);

    let b = books_with(&gw, &app.grant_id(), 4).await;
    let costs: Vec<(Option<&str>, i64, i64)> = b
        .ledger
        .iter()
        .map(|r| (r.error_code.as_deref(), r.cost_micros, r.tokens()))
        .collect();
    assert_eq!(costs.len(), 4, "{costs:?}");
    assert_eq!(costs[0], (Some("model_not_priced"), 0, 0));
    assert_eq!(costs[1], (Some("insufficient_quota"), 0, 0));
    // The fake answers 11 prompt and 7 completion tokens.
    assert_eq!(
        costs[2],
        (None, 11 * 2 + 7 * 4, 18),
        "the owner's price list"
    );
    assert_eq!(costs[3], (None, 11 + 7 * 3, 18), "the fallback price");
    let spent: i64 = b
        .counters
        .iter()
        .filter(|c| c.kind == "cost")
        .map(|c| c.spent)
        .sum();
    assert_eq!(
        spent,
        costs[2].1 + costs[3].1,
        "the budget counter charged both"
    );
}

/// Under `/r/`, a grant whose endpoints say `*` (or `resource:*`, or `resource:openai/*`) still
/// reaches no model call and no pass-through: the forbidden model, the unclamped output, the
/// forbidden streaming and tools, and the unlisted provider never reach the fake, and the token
/// budget is untouched.
#[tokio::test]
async fn r_routes_reach_no_model_and_no_provider_beyond_the_grant() {
    let (gw, fake) = providers::start(Backend::Sqlite, "").await;
    for (i, endpoints) in [
        json!(["*"]),
        json!(["resource:*"]),
        json!(["chat", "resource:openai/*", "resource:anthropic/*"]),
    ]
    .into_iter()
    .enumerate()
    {
        let policy = json!({
            "endpoints": endpoints,
            "providers": ["openai"],
            "models": ["openai/gpt-4o-mini"],
            "max_output_tokens": 100,
            "allow_streaming": false,
            "allow_tools": false,
            "token_budget": { "lifetime": 1_000 },
        });
        let app = pair_with(&gw, &format!("sneaky{i}"), &policy).await;
        let o3 = json!({
            "model": "o3", "max_completion_tokens": 100_000, "stream": true,
            "tools": [{ "type": "function", "function": { "name": "f" } }],
            "messages": [{ "role": "user", "content": "hi" }], "input": "hi"
        });
        let attempts = [
            "/r/openai/chat",
            "/r/openai/embeddings",
            "/r/anthropic/chat",
            "/r/openai/v1/responses",
            "/r/openai/v1/images/generations",
            "/r/anthropic/v1/messages",
        ];
        for path in attempts {
            let (status, body) = post(&app, path, &o3).await;
            assert_eq!(status, 403, "{endpoints} {path}: {body}");
            assert_eq!(
                body["error"]["code"], "endpoint_not_allowed",
                "{endpoints} {path}: {body}"
            );
        }
        let b = books_with(&gw, &app.grant_id(), attempts.len()).await;
        assert_eq!(b.ledger.len(), attempts.len(), "every refusal is recorded");
        assert!(
            b.ledger
                .iter()
                .all(|r| r.tokens() == 0 && r.cost_micros == 0),
            "{:?}",
            b.ledger
        );
        assert!(
            b.counters.iter().all(|c| c.spent == 0 && c.reserved == 0),
            "the token budget is untouched: {:?}",
            b.counters
        );
    }
    assert!(
        fake.received().is_empty(),
        "nothing reached the provider: {:?}",
        fake.received()
            .iter()
            .map(|r| r.path.clone())
            .collect::<Vec<_>>()
    );
}

/// Pass-through must be named exactly; it is refused under token or money limits (its answers
/// are not metered); what the body says is checked against the grant's providers, models and
/// output cap; and only then does it reach the provider.
#[tokio::test]
async fn pass_through_is_checked_against_the_grant_and_refused_under_a_budget() {
    let (gw, fake) = providers::start(Backend::Sqlite, "").await;
    let responses = |model: &str| json!({ "model": model, "input": "hi", "max_output_tokens": 50 });

    let budgeted = json!({
        "endpoints": ["chat", "resource:openai/passthrough"],
        "cost_budget_micros": { "daily": 1_000_000 },
    });
    let app = pair_with(&gw, "budgeted", &budgeted).await;
    let (status, body) = post(&app, "/r/openai/v1/moderations", &responses("gpt-4o-mini")).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("passthrough_not_metered")),
        "{body}"
    );

    let narrow = json!({
        "endpoints": ["resource:openai/passthrough"],
        "models": ["openai/gpt-4o-mini"],
        "max_output_tokens": 100,
    });
    let app = pair_with(&gw, "narrow", &narrow).await;
    let (status, body) = post(&app, "/r/openai/v1/moderations", &responses("o3")).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("model_not_allowed")),
        "{body}"
    );
    let (status, body) = post(
        &app,
        "/r/openai/v1/moderations",
        &json!({ "input": "hi", "max_output_tokens": 50 }),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("model_not_allowed")),
        "no model named: {body}"
    );
    let (status, body) = post(
        &app,
        "/r/openai/v1/moderations",
        &json!({ "model": "gpt-4o-mini", "input": "hi", "max_output_tokens": 5_000 }),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("max_tokens_exceeded")),
        "{body}"
    );
    let (status, body) = post(
        &app,
        "/r/openai/v1/moderations",
        &json!({ "model": "gpt-4o-mini", "input": "hi" }),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("max_tokens_exceeded")),
        "an unbounded body under a cap: {body}"
    );

    let elsewhere = json!({
        "endpoints": ["resource:openai/passthrough"],
        "providers": ["anthropic"],
    });
    let app2 = pair_with(&gw, "elsewhere", &elsewhere).await;
    let (status, body) = post(&app2, "/r/openai/v1/moderations", &responses("gpt-4o-mini")).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("provider_not_allowed")),
        "{body}"
    );
    assert!(
        fake.received().is_empty(),
        "no refused pass-through reached the provider"
    );

    // Within the grant it goes (the fake has no moderations API: its 404 is passed on as is).
    let (status, _) = post(&app, "/r/openai/v1/moderations", &responses("gpt-4o-mini")).await;
    assert_eq!(status, 404);
    assert_eq!(calls_to(&fake, "/v1/moderations"), 1);
    let b = books(&gw, &app.grant_id()).await;
    assert_eq!(
        b.ledger.last().map(|r| r.status),
        Some(404),
        "the admitted pass-through has its ledger row"
    );
}

/// The owner prices a model from the console (owner session and CSRF only): the next request for
/// it is admitted under the money budget and charged at that price; removing the price makes it
/// unpriced again. An app's credentials cannot reach the route.
#[tokio::test]
async fn the_owner_prices_a_model_in_the_console_and_it_applies_to_the_next_request() {
    use pairgate_tests::owner::{create_owner, login};
    let (gw, fake) = providers::start(Backend::Sqlite, "").await;
    create_owner(&gw).await;
    let owner = login(&gw).await;
    let app = pair_with(
        &gw,
        "spender",
        &json!({ "cost_budget_micros": { "daily": 1_000 } }),
    )
    .await;
    let chat = json!({ "model": "openai/ft:house-model", "max_tokens": 20,
        "messages": [{ "role": "user", "content": "hi" }] });
    let (status, body) = post(&app, "/v1/chat/completions", &chat).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("model_not_priced")),
        "{body}"
    );

    // An app cannot set prices (it holds no owner session).
    let res = app
        .post("/admin/api/providers/openai/prices")
        .json(&json!({ "prices": [{ "model": "*", "input": 0, "output": 0 }] }))
        .send()
        .await
        .unwrap();
    assert!(
        matches!(res.status().as_u16(), 401 | 403 | 405),
        "{}",
        res.status()
    );

    let (status, body) = owner
        .put(
            "/admin/api/providers/openai/prices",
            &json!({ "prices": [{ "model": "ft:*", "input": 5.0, "output": 6.0 }] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let openai = body
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == "openai")
        .unwrap();
    assert_eq!(openai["console"][0]["model"], "ft:*", "{openai}");
    let (status, body) = owner
        .put(
            "/admin/api/providers/openai/prices",
            &json!({ "prices": [{ "model": "ft:*", "input": -1, "output": 6.0 }] }),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalid_price")),
        "{body}"
    );

    let (status, body) = post(&app, "/v1/chat/completions", &chat).await;
    assert_eq!(status, 200, "priced by the console now: {body}");
    let b = books_with(&gw, &app.grant_id(), 2).await;
    assert_eq!(
        b.ledger.last().map(|r| r.cost_micros),
        Some(11 * 5 + 7 * 6),
        "charged at the console's price"
    );

    let (status, _) = owner
        .put(
            "/admin/api/providers/openai/prices",
            &json!({ "prices": [] }),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = post(&app, "/v1/chat/completions", &chat).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("model_not_priced")),
        "{body}"
    );
    assert_eq!(calls_to(&fake, "/v1/chat/completions"), 1);
    let (_, audit) = owner.get("/admin/api/audit").await;
    assert!(
        audit.to_string().contains("provider.prices_changed"),
        "the change is audited: {audit}"
    );
}

/// A model with an unknown provider prefix is a typo, not a model of the default provider: it is
/// refused before any provider sees it, on the chat route and the model route.
#[tokio::test]
async fn an_unknown_provider_prefix_reaches_no_provider() {
    let (gw, fake) = providers::start(Backend::Sqlite, "").await;
    let app = pair(&gw, KeyKind::Ed25519, &[]).await;
    let chat = json!({ "model": "nosuch/zzz", "messages": [{ "role": "user", "content": "hi" }] });
    let (status, body) = post(&app, "/v1/chat/completions", &chat).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("model_not_found")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("openai"),
        "lists the providers there are: {body}"
    );
    let res = app.get("/v1/models/nosuch/zzz").send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(fake.received().is_empty(), "nothing reached a provider");
    let b = books_with(&gw, &app.grant_id(), 1).await;
    assert_eq!(b.ledger[0].error_code.as_deref(), Some("model_not_found"));
}
