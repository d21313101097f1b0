//! The native routes raced by a hostile app: every route that reaches a provider (chat,
//! Anthropic Messages streamed and not, count_tokens, OpenAI Responses streamed and not) at once
//! against one token budget, then against a money budget, a request rate and a concurrency cap.
//! The ledger and the budget counters are checked, not only the statuses.

use pairgate_tests::Backend;
use pairgate_tests::fake::Behaviour;
use pairgate_tests::probe::books_with;
use pairgate_tests::providers;
use serde_json::{Value, json};

use crate::native::{call, message, pair_with, response};

/// A hostile app racing every route to a provider at once against one token budget: chat,
/// Messages (streamed and not) and Responses (streamed and not), concurrently. The budget is
/// never overspent beyond one estimate, every answered call is in the ledger, and the counter
/// matches the ledger with nothing left reserved.
#[tokio::test]
async fn a_token_budget_holds_across_every_route_at_once() {
    const BUDGET: i64 = 200;
    let (gw, fake) = providers::start(Backend::Sqlite, "").await;
    let app = pair_with(
        &gw,
        "racer",
        &json!({
            "endpoints": ["chat"],
            "models": ["anthropic/*", "openai/*"],
            "max_output_tokens": 100,
            "token_budget": { "lifetime": BUDGET },
        }),
    )
    .await;
    let bodies: Vec<(&str, Value)> = (0..30)
        .map(|i| match i % 5 {
            0 => ("/v1/chat/completions", json!({ "model": "openai/gpt-4o-mini", "messages": [{ "role": "user", "content": "hi" }] })),
            1 => ("/v1/messages", message("claude-haiku-4-5", false)),
            2 => ("/v1/messages", message("claude-haiku-4-5", true)),
            3 => ("/v1/responses", response("gpt-4o-mini", false)),
            _ => ("/v1/responses", response("gpt-4o-mini", true)),
        })
        .collect();
    let calls = bodies.into_iter().map(|(path, body)| {
        let app = app.clone();
        tokio::spawn(async move {
            let (status, _, _) = call(&app, path, &body, &[]).await;
            status
        })
    });
    let statuses: Vec<u16> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(ok > 0, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    assert!(statuses.contains(&429), "the budget ran out: {statuses:?}");
    let b = books_with(&gw, &app.grant_id(), statuses.len()).await;
    assert_eq!(b.ledger.len(), statuses.len(), "one row per call");
    let answered = b.ledger.iter().filter(|r| r.status == 200).count();
    assert_eq!(answered, ok);
    assert_eq!(
        fake.received().len(),
        ok,
        "only admitted calls reached the provider"
    );
    let (spent, reserved) = b.lifetime_tokens().unwrap();
    assert_eq!(spent, b.ledger_tokens(), "the counter is the ledger");
    assert_eq!(reserved, 0);
    // The last admitted call may overshoot by at most its own usage (18 tokens here).
    assert!(spent <= BUDGET + 18, "spent {spent} of {BUDGET}");
    assert!(
        b.ledger
            .iter()
            .filter(|r| r.status == 429)
            .all(|r| r.tokens() == 0),
        "refusals cost nothing"
    );
}

/// The same race with money: a daily budget in micro-USD, a request rate and a concurrency cap,
/// against every route that reaches a provider at once (chat, Messages streamed and not,
/// count_tokens, Responses streamed and not), each answer slowed so the calls overlap. Nothing
/// past the rate reaches the provider, the money spent never passes the budget by more than one
/// call, and the budget counter is the ledger's sum with nothing left reserved.
#[tokio::test]
async fn money_rate_and_concurrency_hold_across_every_route_at_once() {
    // Below one claude-haiku-4-5 reservation (about 260 micro-USD at the output cap of 50):
    // every such call is refused for money, while gpt-4o-mini calls (about 32) fit.
    const BUDGET: i64 = 100;
    const RPM: usize = 12;
    let (gw, fake) = providers::start(Backend::Sqlite, "").await;
    fake.set(Behaviour {
        delay: std::time::Duration::from_millis(150),
        ..Behaviour::default()
    });
    let app = pair_with(
        &gw,
        "spender",
        &json!({
            "endpoints": ["chat"],
            "models": ["anthropic/*", "openai/*"],
            "max_output_tokens": 50,
            "cost_budget_micros": { "daily": BUDGET },
            "requests_per_minute": RPM,
            "max_concurrent": 2,
        }),
    )
    .await;
    // Alone first: a call dearer than the whole budget is refused for money.
    let mut statuses: Vec<u16> = Vec::new();
    let (status, _, text) = call(
        &app,
        "/v1/messages",
        &message("claude-haiku-4-5", false),
        &[],
    )
    .await;
    assert_eq!(status, 429, "{text}");
    statuses.push(status);
    // Waves of five at once over every route: the concurrency cap bites within a wave, money and
    // the request rate across waves.
    for wave in 0..8 {
        let calls = (0..5).map(|i| {
            let (path, body) = match (wave + i) % 6 {
                0 => ("/v1/chat/completions", json!({ "model": "openai/gpt-4o-mini", "messages": [{ "role": "user", "content": "hi" }] })),
                1 => ("/v1/messages", message("claude-haiku-4-5", false)),
                2 => ("/v1/messages", message("claude-haiku-4-5", true)),
                3 => ("/v1/messages/count_tokens", json!({ "model": "claude-haiku-4-5", "messages": [] })),
                4 => ("/v1/responses", response("gpt-4o-mini", false)),
                _ => ("/v1/responses", response("gpt-4o-mini", true)),
            };
            let app = app.clone();
            tokio::spawn(async move { call(&app, path, &body, &[]).await.0 })
        });
        statuses.extend(
            futures_util::future::join_all(calls)
                .await
                .into_iter()
                .map(Result::unwrap),
        );
    }
    // Then free calls (count_tokens) one after another until the request rate refuses one.
    for _ in 0..=RPM {
        let body = json!({ "model": "claude-haiku-4-5", "messages": [] });
        let status = call(&app, "/v1/messages/count_tokens", &body, &[]).await.0;
        statuses.push(status);
        if status == 429 {
            break;
        }
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    assert!(ok > 0 && ok <= RPM, "{ok} answered of {statuses:?}");
    let b = books_with(&gw, &app.grant_id(), statuses.len()).await;
    assert_eq!(b.ledger.len(), statuses.len(), "one row per call");
    assert_eq!(
        fake.received().len(),
        ok,
        "only admitted calls reached the provider"
    );
    assert_eq!(b.ledger.iter().filter(|r| r.status == 200).count(), ok);
    let ledger_cost: i64 = b.ledger.iter().map(|r| r.cost_micros).sum();
    let (spent, reserved) = b
        .counters
        .iter()
        .filter(|c| c.kind == "cost")
        .fold((0, 0), |(s, r), c| (s + c.spent, r + c.reserved));
    assert_eq!(spent, ledger_cost, "the budget counter is the ledger");
    assert_eq!(reserved, 0);
    // claude-haiku-4-5 at the fake's 11 in / 7 out: 46 micro-USD, the dearest call here.
    assert!(spent <= BUDGET + 46, "spent {spent} of {BUDGET}");
    assert!(
        b.ledger
            .iter()
            .filter(|r| r.status == 429)
            .all(|r| r.cost_micros == 0),
        "refusals cost nothing"
    );
    let refused: std::collections::BTreeSet<&str> = b
        .ledger
        .iter()
        .filter_map(|r| r.error_code.as_deref())
        .collect();
    for code in [
        "concurrency_limit_exceeded",
        "rate_limit_exceeded",
        "insufficient_quota",
    ] {
        assert!(refused.contains(code), "{code} among {refused:?}");
    }
}
