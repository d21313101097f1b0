//! Upstream faults, judged by the books: for every way a provider can fail (refused connection,
//! no headers in time, 5xx, 429 with Retry-After, a body cut mid-JSON, a stream cut mid-event, a
//! stalled stream, the owner's key refused), streamed or not and through two plugins, the app gets
//! the documented OpenAI-shaped error (or a terminal error event then `[DONE]`), the ledger has
//! exactly one row for the request with that status and code, the budget reservation is gone
//! (settled or released, so spent equals the ledger's tokens), and nothing leaks: no relayed
//! request stays in flight, the fake's streams are closed, the gateway's descriptors stay flat.

use std::time::Duration;

use pairgate_protocol::keys::KeyKind;
use pairgate_sdk::Client;
use pairgate_tests::app::pair;
use pairgate_tests::fake::{Behaviour, FakeProvider, Fault};
use pairgate_tests::probe::{self, books, grant_usage, proc_stats};
use pairgate_tests::providers::{self, sse_data};
use pairgate_tests::{Backend, Gateway};
use serde_json::{Value, json};

const BUDGET: u64 = 10_000_000;

fn chat(model: &str, stream: bool) -> Value {
    json!({ "model": model, "stream": stream, "max_tokens": 20,
        "messages": [{ "role": "user", "content": "hello" }] })
}

/// What the app must see and the ledger must say for one fault.
struct Case {
    name: &'static str,
    fault: Fault,
    /// `None`: the provider `deadai`, whose origin refuses connections.
    provider: Option<&'static str>,
    stream: bool,
    status: u16,
    code: &'static str,
    /// The ledger row's status (a stream that failed after its 200 records the failure's).
    ledger_status: i64,
    retry_after: Option<&'static str>,
}

fn cases() -> Vec<Case> {
    let c = |name, fault, provider, stream, status, code, ledger_status| Case {
        name,
        fault,
        provider,
        stream,
        status,
        code,
        ledger_status,
        retry_after: None,
    };
    let mut out = Vec::new();
    out.push(c(
        "connection refused",
        Fault::None,
        None,
        false,
        502,
        "provider_unavailable",
        502,
    ));
    out.push(c(
        "connection refused, streamed",
        Fault::None,
        None,
        true,
        502,
        "provider_unavailable",
        502,
    ));
    for p in ["openai", "anthropic"] {
        let p = Some(p);
        let slow = Fault::DelayHeaders(Duration::from_secs(3));
        out.extend([
            c(
                "timeout before headers",
                slow.clone(),
                p,
                false,
                504,
                "provider_unavailable",
                504,
            ),
            c(
                "timeout before headers, streamed",
                slow,
                p,
                true,
                504,
                "provider_unavailable",
                504,
            ),
            c(
                "500",
                Fault::Status(500),
                p,
                false,
                502,
                "provider_unavailable",
                502,
            ),
            c(
                "503, streamed",
                Fault::Status(503),
                p,
                true,
                502,
                "provider_unavailable",
                502,
            ),
            Case {
                retry_after: Some("7"),
                ..c(
                    "429",
                    Fault::RateLimit,
                    p,
                    false,
                    429,
                    "provider_rate_limit",
                    429,
                )
            },
            Case {
                retry_after: Some("7"),
                ..c(
                    "429, streamed",
                    Fault::RateLimit,
                    p,
                    true,
                    429,
                    "provider_rate_limit",
                    429,
                )
            },
            c(
                "body cut mid-JSON",
                Fault::CutJson,
                p,
                false,
                502,
                "provider_unavailable",
                502,
            ),
            c(
                "owner's key refused",
                Fault::Unauthorized,
                p,
                false,
                502,
                "provider_auth_failed",
                502,
            ),
            c(
                "owner's key refused, streamed",
                Fault::Unauthorized,
                p,
                true,
                502,
                "provider_auth_failed",
                502,
            ),
            c(
                "stream cut mid-event",
                Fault::CutStream,
                p,
                true,
                200,
                "provider_unavailable",
                502,
            ),
            c(
                "stream stalls",
                Fault::Stall,
                p,
                true,
                200,
                "provider_unavailable",
                504,
            ),
        ]);
    }
    out
}

fn model_of(case: &Case) -> &'static str {
    match case.provider {
        None => "deadai/gpt-4o-mini",
        Some("openai") => "openai/gpt-4o-mini",
        Some(_) => "anthropic/claude-sonnet-4-5",
    }
}

struct Bench {
    gw: Gateway,
    fake: FakeProvider,
    client: Client,
}

async fn bench(backend: Backend) -> Bench {
    let extra = "[providers.deadai]\nplugin = \"openai\"\norigin_override = \"http://127.0.0.1:1\"\n[upstream]\ntimeout = \"1s\"\n";
    let (gw, fake) = providers::start(backend, extra).await;
    let (code, _, err) =
        pairgate_tests::gateway::run_cli(&gw, &["credential", "add", "deadai"], Some("sk-dead\n"))
            .await;
    assert_eq!(code, 0, "{err}");
    let client = pair(
        &gw,
        KeyKind::Ed25519,
        &[
            "--lifetime-tokens",
            &BUDGET.to_string(),
            "--concurrent",
            "50",
        ],
    )
    .await;
    Bench { gw, fake, client }
}

/// Sends one request under `case`'s fault and checks what the app sees; returns its request id.
async fn run_case(b: &Bench, case: &Case) -> String {
    b.fake.set(Behaviour {
        fault: case.fault.clone(),
        ..Behaviour::default()
    });
    let res = tokio::time::timeout(
        Duration::from_secs(15),
        b.client
            .post("/v1/chat/completions")
            .json(&chat(model_of(case), case.stream))
            .send(),
    )
    .await
    .unwrap_or_else(|_| panic!("{}: no answer in time", case.name))
    .unwrap();
    let name = case.name;
    let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let status = res.status().as_u16();
    let retry_after = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let content_type = res.headers()["content-type"].to_str().unwrap().to_string();
    let text = tokio::time::timeout(Duration::from_secs(15), res.text())
        .await
        .unwrap_or_else(|_| panic!("{name}: the body never ended"))
        .unwrap();
    assert_eq!(status, case.status, "{name}: {text}");
    let error = if status == 200 {
        assert_eq!(content_type, "text/event-stream", "{name}");
        let data = sse_data(&text);
        assert_eq!(
            data.last().map(String::as_str),
            Some("[DONE]"),
            "{name}: the stream ends cleanly: {text}"
        );
        serde_json::from_str::<Value>(&data[data.len() - 2]).unwrap()
    } else {
        assert!(
            content_type.starts_with("application/json"),
            "{name}: {content_type}"
        );
        serde_json::from_str::<Value>(&text).unwrap()
    };
    let e = &error["error"];
    assert_eq!(e["code"], case.code, "{name}: {error}");
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()) && e["type"].is_string(),
        "{name}: OpenAI-shaped: {error}"
    );
    assert!(e.get("param").is_some(), "{name}: OpenAI-shaped: {error}");
    assert!(
        !text.contains("sk-test") && !text.contains("sk-dead"),
        "{name}: no key in the answer"
    );
    assert_eq!(
        retry_after.as_deref(),
        case.retry_after,
        "{name}: retry-after"
    );
    id
}

async fn fault_matrix(backend: Backend, rounds: usize) {
    let b = bench(backend).await;
    let grant = b.client.grant_id();
    // Warm up the paths (pools, plugin instances) before counting descriptors.
    let res = b
        .client
        .post("/v1/chat/completions")
        .json(&chat("openai/gpt-4o-mini", false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut seen = vec![res.headers()["x-request-id"].to_str().unwrap().to_string()];
    let _ = res.text().await;
    let mut fds_after_first_round = 0;
    for round in 0..rounds {
        for case in cases() {
            let id = run_case(&b, &case).await;
            let name = case.name;
            // The row is committed before the answer completes: no waiting needed.
            let books = books(&b.gw, &grant).await;
            let rows: Vec<_> = books.ledger.iter().filter(|r| r.request_id == id).collect();
            assert_eq!(rows.len(), 1, "{name}: one ledger row: {:?}", books.ledger);
            let row = rows[0];
            assert_eq!(
                (row.status, row.error_code.as_deref()),
                (case.ledger_status, Some(case.code)),
                "{name}: {row:?}"
            );
            if case.status != 200 {
                assert_eq!(row.tokens(), 0, "{name}: nothing used, nothing charged");
            } else {
                assert_eq!(row.estimated, 1, "{name}: usage estimated from the stream");
            }
            seen.push(id);
            assert_eq!(
                books.ledger.len(),
                seen.len(),
                "{name}: exactly one row per request"
            );
            assert_eq!(books.reservations, 0, "{name}: no reservation left");
            let usage = grant_usage(&b.client).await;
            assert_eq!(usage.reserved, 0, "{name}: {usage:?}");
            assert_eq!(
                usage.spent as i64,
                books.ledger_tokens(),
                "{name}: spent equals the ledger's tokens"
            );
            assert_eq!(usage.in_flight, 0, "{name}: concurrency permit returned");
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while b.fake.open_streams() > 0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{name}: the upstream stream was never closed"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if round == 0 {
            probe::assert_settled(&b.gw, usize::MAX / 2, 0).await;
            fds_after_first_round = proc_stats(&b.gw).fds;
        }
    }
    // Another round of every fault leaves the descriptor count where the first one left it.
    probe::assert_settled(&b.gw, fds_after_first_round, 4).await;
    // And the gateway still serves.
    b.fake.set(Behaviour::default());
    let res = b
        .client
        .post("/v1/chat/completions")
        .json(&chat("openai/gpt-4o-mini", true))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let data = sse_data(&res.text().await.unwrap());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test]
async fn every_upstream_fault_is_answered_recorded_and_released_on_sqlite() {
    fault_matrix(Backend::Sqlite, 2).await;
}

#[tokio::test]
async fn every_upstream_fault_is_answered_recorded_and_released_on_postgres() {
    fault_matrix(Backend::Postgres, 1).await;
}
