//! The providers' own APIs through the real binary: Anthropic's Messages API (`/v1/messages`,
//! `/v1/messages/count_tokens`) and OpenAI's Responses API (`/v1/responses`), streamed and not,
//! against the fake speaking each wire format. Each call is checked where it lands: what the
//! fake received (the owner's key, the grant's output cap), the events the app got, and the
//! ledger row and budget counters; refusals reach no provider and come in the route's error shape.

use pairgate_protocol::keys::KeyKind;
use pairgate_sdk::Client;
use pairgate_tests::app::pair;
use pairgate_tests::fake::{Behaviour, Fault, REPLY};
use pairgate_tests::probe::{books, books_with, grant_usage};
use pairgate_tests::providers::{self, test_key};
use pairgate_tests::{Backend, Gateway};
use serde_json::{Value, json};

pub(crate) async fn pair_with(gw: &Gateway, name: &str, policy: &Value) -> Client {
    let path = gw.dir.path().join(format!("{name}.json"));
    std::fs::write(&path, policy.to_string()).unwrap();
    pair(gw, KeyKind::Ed25519, &["--policy", path.to_str().unwrap()]).await
}

/// Status, content type and body text of a call.
pub(crate) async fn call(
    client: &Client,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut req = client.post(path).json(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, ct, res.text().await.unwrap())
}

pub(crate) async fn json_call(client: &Client, path: &str, body: &Value) -> (u16, Value) {
    let (status, _, text) = call(client, path, body, &[]).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The `(event, data)` pairs of an SSE body.
pub(crate) fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim_start().to_string())
                    .unwrap_or_default()
            };
            let data = field("data:");
            (
                field("event:"),
                serde_json::from_str(&data).unwrap_or(Value::Null),
            )
        })
        .collect()
}

pub(crate) fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(e, _)| e.as_str()).collect()
}

pub(crate) fn message(model: &str, stream: bool) -> Value {
    json!({ "model": model, "max_tokens": 5_000, "stream": stream,
        "system": "be brief", "messages": [{ "role": "user", "content": "hi" }] })
}

pub(crate) fn response(model: &str, stream: bool) -> Value {
    json!({ "model": model, "max_output_tokens": 5_000, "stream": stream, "input": "hi" })
}

const POLICY_CAP: u64 = 200;

fn policy() -> Value {
    json!({
        "endpoints": ["chat"],
        "providers": ["anthropic", "openai"],
        "models": ["anthropic/claude-*", "openai/gpt-4o-mini"],
        "max_output_tokens": POLICY_CAP,
        "allow_tools": false,
        "token_budget": { "lifetime": 1_000_000 },
        "cost_budget_micros": { "daily": 5_000_000 },
    })
}

#[tokio::test]
async fn anthropic_messages_are_served_natively_and_metered() {
    let (gw, fake) = providers::start(Backend::Sqlite, "").await;
    let app = pair_with(&gw, "claude", &policy()).await;
    let grant = app.grant_id();

    // Not streamed: Anthropic's message object, the owner's key on the way out, the cap applied,
    // the app's protocol headers kept.
    let (status, _, text) = call(
        &app,
        "/v1/messages?beta=true",
        &message("claude-sonnet-4-5", false),
        &[
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "tools-2024-05-16"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["content"][0]["text"], REPLY);
    let sent = fake.last();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(
        sent.header("x-api-key"),
        Some(test_key("anthropic").as_str())
    );
    assert_eq!(sent.header("anthropic-beta"), Some("tools-2024-05-16"));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent.json()["max_tokens"], POLICY_CAP, "the grant's cap");
    assert_eq!(
        sent.json()["system"],
        "be brief",
        "the body otherwise untouched"
    );
    let b = books(&gw, &grant).await;
    let row = b.ledger.last().unwrap();
    assert_eq!((row.endpoint.as_str(), row.status), ("messages", 200));
    assert_eq!(
        (row.input_tokens, row.output_tokens, row.estimated),
        (11, 7, 0)
    );
    assert!(row.cost_micros > 0, "priced from the catalogue");

    // Streamed: every event as Anthropic sent it, in order, metered from message_delta.
    let (status, ct, text) = call(
        &app,
        "/v1/messages",
        &message("anthropic/claude-sonnet-4-5", true),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    let evs = events(&text);
    assert_eq!(
        names(&evs),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert!(text.contains("event: message_start\ndata: {"), "{text}");
    let b = books_with(&gw, &grant, 2).await;
    let row = b.ledger.last().unwrap();
    assert_eq!(
        (row.input_tokens, row.output_tokens, row.estimated),
        (11, 3, 0)
    );

    // count_tokens: forwarded, counted as a request, charged nothing.
    let (status, body) = json_call(
        &app,
        "/v1/messages/count_tokens",
        &json!({ "model": "claude-haiku-4-5", "messages": [] }),
    )
    .await;
    assert_eq!((status, &body["input_tokens"]), (200, &json!(11)), "{body}");
    assert_eq!(fake.last().path, "/v1/messages/count_tokens");
    let b = books_with(&gw, &grant, 3).await;
    let row = b.ledger.last().unwrap();
    assert_eq!(
        (row.endpoint.as_str(), row.tokens(), row.cost_micros),
        ("messages/count_tokens", 0, 0)
    );

    // A stream the provider cuts: an Anthropic error event ends it; the row is an estimate
    // (the input message_start reported, the output streamed), never free.
    fake.fault(Fault::CutStream);
    let (status, _, text) = call(
        &app,
        "/v1/messages",
        &message("claude-sonnet-4-5", true),
        &[],
    )
    .await;
    fake.fault(Fault::None);
    assert_eq!(status, 200);
    let evs = events(&text);
    let (last, data) = evs.last().unwrap();
    assert_eq!(last, "error", "{text}");
    assert_eq!(data["type"], "error");
    assert_eq!(data["error"]["type"], "api_error");
    let b = books_with(&gw, &grant, 4).await;
    let row = b.ledger.last().unwrap();
    assert_eq!(row.estimated, 1, "{row:?}");
    assert!(row.input_tokens >= 11 && row.cost_micros > 0, "{row:?}");

    // The provider's own errors pass in Anthropic's shape, Retry-After kept, nothing charged.
    fake.fault(Fault::RateLimit);
    let res = app
        .post("/v1/messages")
        .json(&message("claude-sonnet-4-5", false))
        .send()
        .await
        .unwrap();
    fake.fault(Fault::None);
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "7");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    // A refused owner key: the gateway's answer, without the key, in Anthropic's shape.
    fake.fault(Fault::Unauthorized);
    let (status, _, text) = call(
        &app,
        "/v1/messages",
        &message("claude-sonnet-4-5", false),
        &[],
    )
    .await;
    fake.fault(Fault::None);
    assert_eq!(status, 502, "{text}");
    assert!(!text.contains(&test_key("anthropic")), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (&body["type"], &body["error"]["code"]),
        (&json!("error"), &json!("provider_auth_failed")),
        "{body}"
    );

    // What the app sees of its grant matches the ledger.
    let b = books_with(&gw, &grant, 6).await;
    assert_eq!(grant_usage(&app).await.spent, b.ledger_tokens() as u64);
    assert_eq!(b.reservations, 0, "nothing left reserved");
}

#[tokio::test]
async fn openai_responses_are_served_natively_and_metered() {
    let (gw, fake) = providers::start(Backend::Sqlite, "").await;
    let app = pair_with(&gw, "codex", &policy()).await;
    let grant = app.grant_id();

    let (status, body) = json_call(&app, "/v1/responses", &response("gpt-4o-mini", false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "response");
    assert_eq!(body["output"][0]["content"][0]["text"], REPLY);
    let sent = fake.last();
    assert_eq!(sent.path, "/v1/responses");
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {}", test_key("openai")).as_str())
    );
    assert_eq!(sent.json()["max_output_tokens"], POLICY_CAP);
    assert_eq!(sent.json()["model"], "gpt-4o-mini");
    let b = books(&gw, &grant).await;
    let row = b.ledger.last().unwrap();
    assert_eq!(
        (
            row.endpoint.as_str(),
            row.input_tokens,
            row.output_tokens,
            row.estimated
        ),
        ("responses", 11, 7, 0)
    );

    let (status, ct, text) = call(
        &app,
        "/v1/responses",
        &response("openai/gpt-4o-mini", true),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(ct.starts_with("text/event-stream"));
    let evs = events(&text);
    assert_eq!(names(&evs).first(), Some(&"response.created"));
    assert_eq!(names(&evs).last(), Some(&"response.completed"));
    assert_eq!(
        evs.iter()
            .filter(|(e, _)| e == "response.output_text.delta")
            .count(),
        3
    );
    let b = books_with(&gw, &grant, 2).await;
    let row = b.ledger.last().unwrap();
    assert_eq!(
        (row.input_tokens, row.output_tokens, row.estimated),
        (11, 3, 0)
    );

    // A stream whose terminal event carries no usage is estimated and flagged.
    fake.set(Behaviour {
        stream_usage: false,
        ..Behaviour::default()
    });
    let (status, _, _) = call(&app, "/v1/responses", &response("gpt-4o-mini", true), &[]).await;
    fake.set(Behaviour::default());
    assert_eq!(status, 200);
    let b = books_with(&gw, &grant, 3).await;
    let row = b.ledger.last().unwrap();
    assert_eq!(row.estimated, 1);
    assert!(row.input_tokens > 0 && row.output_tokens > 0, "{row:?}");

    // A stream the provider cuts mid-event ends with a Responses `error` event, estimated.
    fake.fault(Fault::CutStream);
    let (_, _, text) = call(&app, "/v1/responses", &response("gpt-4o-mini", true), &[]).await;
    fake.fault(Fault::None);
    let evs = events(&text);
    let (last, data) = evs.last().unwrap();
    assert_eq!(
        (last.as_str(), &data["type"]),
        ("error", &json!("error")),
        "{text}"
    );
    let b = books_with(&gw, &grant, 4).await;
    assert_eq!(b.ledger.last().unwrap().estimated, 1);
    assert_eq!(b.reservations, 0);
}

/// An `openai-compatible` instance configured with `"responses": true` serves `/v1/responses`
/// (its models named `<instance>/<model>`), metered the same way; one without it is refused.
#[tokio::test]
async fn an_openai_compatible_instance_serves_responses_when_configured() {
    let (gw0, fake) = providers::start(Backend::Sqlite, "").await;
    drop(gw0);
    let url = fake.url();
    let extra = format!(
        "[providers.groq]\nplugin = \"openai-compatible\"\nallow_private = true\n\
         [providers.groq.config]\nbase_url = \"{url}/openai/v1\"\nresponses = true\n\
         models = [{{ id = \"llama-3.3-70b\", max_output_tokens = 8192, input_price = 590000, output_price = 790000 }}]\n\
         [providers.mistral]\nplugin = \"openai-compatible\"\nallow_private = true\n\
         [providers.mistral.config]\nbase_url = \"{url}/mistral/v1\"\nmodels = [\"mistral-small\"]\n"
    );
    let gw = Gateway::builder(Backend::Sqlite)
        .config(providers::fake_config(&fake, &extra))
        .start()
        .await;
    for p in ["groq", "mistral"] {
        let (code, _, err) = pairgate_tests::gateway::run_cli(
            &gw,
            &["credential", "add", p],
            Some(&format!("{}\n", test_key(p))),
        )
        .await;
        assert_eq!(code, 0, "{err}");
    }
    let app = pair_with(
        &gw,
        "compat",
        &json!({ "endpoints": ["chat"], "cost_budget_micros": { "daily": 1_000_000 } }),
    )
    .await;
    let (status, body) = json_call(
        &app,
        "/v1/responses",
        &response("groq/llama-3.3-70b", false),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let sent = fake.last();
    assert_eq!(sent.path, "/openai/v1/responses");
    assert_eq!(sent.json()["model"], "llama-3.3-70b");
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {}", test_key("groq")).as_str())
    );
    let (status, body) = json_call(
        &app,
        "/v1/responses",
        &response("mistral/mistral-small", false),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("model_not_found")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not serve"),
        "{body}"
    );
    let b = books_with(&gw, &app.grant_id(), 2).await;
    let row = &b.ledger[0];
    assert_eq!(
        (row.endpoint.as_str(), row.input_tokens, row.output_tokens),
        ("responses", 11, 7)
    );
    assert!(
        row.cost_micros > 0,
        "priced from the instance's catalogue: {row:?}"
    );
    assert_eq!(fake.received().len(), 1);
}

/// Tools the provider runs and bills per use (web search, code execution, file search...) cannot
/// be priced: under a money budget they are refused before the provider (on chat completions too:
/// `web_search_options`); without one they go.
#[tokio::test]
async fn tools_billed_per_use_are_refused_under_a_money_budget() {
    let (gw, fake) = providers::start(Backend::Sqlite, "").await;
    let budget = pair_with(
        &gw,
        "budget",
        &json!({ "endpoints": ["chat"], "cost_budget_micros": { "daily": 1_000_000 } }),
    )
    .await;
    let search = json!([{ "type": "web_search_20250305", "name": "web_search", "max_uses": 5 }]);
    let mut anthropic = message("claude-haiku-4-5", false);
    anthropic["tools"] = search;
    let mut openai = response("gpt-4o-mini", false);
    openai["tools"] = json!([{ "type": "web_search" }]);
    let (status, body) = json_call(&budget, "/v1/messages", &anthropic).await;
    assert_eq!(
        (status, &body["type"], &body["error"]["code"]),
        (403, &json!("error"), &json!("tool_not_priced")),
        "{body}"
    );
    let (status, body) = json_call(&budget, "/v1/responses", &openai).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("tool_not_priced")),
        "{body}"
    );
    let chat = json!({ "model": "openai/gpt-4o-mini", "web_search_options": {}, "messages": [{ "role": "user", "content": "hi" }] });
    let (status, body) = json_call(&budget, "/v1/chat/completions", &chat).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("tool_not_priced")),
        "{body}"
    );
    assert!(fake.received().is_empty(), "nothing reached the provider");
    // A plain function tool is billed as tokens: it goes.
    let mut function = response("gpt-4o-mini", false);
    function["tools"] = json!([{ "type": "function", "name": "f", "parameters": {} }]);
    assert_eq!(json_call(&budget, "/v1/responses", &function).await.0, 200);
    // Without a money budget, the search goes too.
    let open = pair_with(&gw, "open", &json!({ "endpoints": ["chat"] })).await;
    assert_eq!(json_call(&open, "/v1/messages", &anthropic).await.0, 200);
    assert_eq!(fake.received().len(), 2);
}

/// Refusals on the native routes: each reaches no provider, is recorded, and comes in the
/// route's own error shape (Anthropic's on `/v1/messages`, OpenAI's on `/v1/responses`).
#[tokio::test]
async fn native_routes_refuse_what_the_grant_does_not_allow() {
    let (gw, fake) = providers::start(Backend::Sqlite, "").await;
    let app = pair_with(
        &gw,
        "narrow",
        &json!({
            "endpoints": ["chat"],
            "providers": ["anthropic", "openai"],
            "models": ["anthropic/claude-haiku-4-5", "openai/gpt-4o-mini", "anthropic/claude-new*"],
            "max_output_tokens": 100,
            "output_tokens_mode": "reject",
            "allow_streaming": false,
            "allow_tools": false,
            "allow_images": false,
            "cost_budget_micros": { "daily": 1_000_000 },
        }),
    )
    .await;
    let tool = json!([{ "name": "f", "input_schema": { "type": "object" } }]);
    let image = json!([{ "role": "user", "content": [{ "type": "image", "source": { "type": "base64", "media_type": "image/png", "data": "AAAA" } }] }]);
    let refusals: Vec<(&str, Value, u16, &str)> = vec![
        (
            "/v1/messages",
            json!({ "model": "claude-opus-4-1", "max_tokens": 10, "messages": [] }),
            403,
            "model_not_allowed",
        ),
        (
            "/v1/messages",
            json!({ "model": "claude-haiku-4-5", "max_tokens": 10, "stream": true, "messages": [] }),
            403,
            "streaming_not_allowed",
        ),
        (
            "/v1/messages",
            json!({ "model": "claude-haiku-4-5", "max_tokens": 10, "tools": tool, "messages": [] }),
            403,
            "tools_not_allowed",
        ),
        (
            "/v1/messages",
            json!({ "model": "claude-haiku-4-5", "max_tokens": 10, "messages": image }),
            403,
            "images_not_allowed",
        ),
        (
            "/v1/messages",
            json!({ "model": "claude-haiku-4-5", "max_tokens": 5_000, "messages": [] }),
            400,
            "max_tokens_exceeded",
        ),
        (
            "/v1/messages",
            json!({ "model": "claude-new-unpriced", "max_tokens": 10, "messages": [] }),
            403,
            "model_not_priced",
        ),
        (
            "/v1/messages",
            json!({ "model": "openai/gpt-4o-mini", "max_tokens": 10, "messages": [] }),
            400,
            "model_not_found",
        ),
        (
            "/v1/messages",
            json!({ "max_tokens": 10, "messages": [] }),
            400,
            "invalid_request_error",
        ),
        (
            "/v1/messages/count_tokens",
            json!({ "model": "claude-opus-4-1", "messages": [] }),
            403,
            "model_not_allowed",
        ),
        (
            "/v1/responses",
            json!({ "model": "o3", "input": "hi" }),
            403,
            "model_not_allowed",
        ),
        (
            "/v1/responses",
            json!({ "model": "gpt-4o-mini", "input": "hi", "stream": true }),
            403,
            "streaming_not_allowed",
        ),
        (
            "/v1/responses",
            json!({ "model": "anthropic/claude-haiku-4-5", "input": "hi" }),
            400,
            "model_not_found",
        ),
        (
            "/v1/responses",
            json!({ "model": "gpt-4o-mini", "input": "hi", "max_output_tokens": 101 }),
            400,
            "max_tokens_exceeded",
        ),
    ];
    for (path, body, want_status, want_code) in &refusals {
        let (status, got) = json_call(&app, path, body).await;
        assert_eq!(status, *want_status, "{path} {body}: {got}");
        if path.starts_with("/v1/messages") {
            assert_eq!(got["type"], "error", "Anthropic's shape: {got}");
            assert!(
                got["error"]["type"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("_error")),
                "{got}"
            );
            assert_eq!(got["error"]["code"], *want_code, "{path} {body}: {got}");
        } else {
            assert_eq!(got["error"]["code"], *want_code, "{path} {body}: {got}");
        }
    }
    assert!(
        fake.received().is_empty(),
        "no refusal reached the provider: {:?}",
        fake.received()
            .iter()
            .map(|r| r.path.clone())
            .collect::<Vec<_>>()
    );
    let b = books_with(&gw, &app.grant_id(), refusals.len()).await;
    assert_eq!(b.ledger.len(), refusals.len(), "every refusal is recorded");
    assert!(
        b.ledger
            .iter()
            .all(|r| r.tokens() == 0 && r.cost_micros == 0)
    );

    // A grant without the chat endpoint reaches neither native API; nor does a stranger.
    let embed_only = pair_with(&gw, "embed", &json!({ "endpoints": ["embeddings"] })).await;
    for (path, body) in [
        ("/v1/messages", message("claude-haiku-4-5", false)),
        ("/v1/responses", response("gpt-4o-mini", false)),
    ] {
        let (status, got) = json_call(&embed_only, path, &body).await;
        assert_eq!(status, 403, "{got}");
        assert_eq!(got["error"]["code"], "endpoint_not_allowed", "{got}");
    }
    let stranger = reqwest::Client::new();
    let res = stranger
        .post(gw.url("/v1/messages"))
        .header("x-api-key", "sk-ant-anything")
        .json(&message("claude-haiku-4-5", false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let got: Value = res.json().await.unwrap();
    assert_eq!(
        (&got["type"], &got["error"]["type"]),
        (&json!("error"), &json!("authentication_error")),
        "{got}"
    );
    // The old unmetered doors to the same APIs are closed.
    let passthrough = pair_with(&gw, "pt", &json!({ "endpoints": ["chat", "resource:openai/passthrough", "resource:anthropic/passthrough"] })).await;
    for path in ["/r/openai/v1/responses", "/r/anthropic/v1/messages"] {
        let (status, got) = json_call(&passthrough, path, &response("gpt-4o-mini", false)).await;
        assert_eq!(
            (status, &got["error"]["code"]),
            (403, &json!("endpoint_not_allowed")),
            "{path}: {got}"
        );
    }
    assert!(fake.received().is_empty());
}

/// Appended to the README's snippet: a refusal raises the SDK's usual exception.
const PY_REFUSAL: &str = r#"
try:
    claude.messages.create(model="openai/gpt-4o-mini", max_tokens=10, messages=msgs)
except anthropic.BadRequestError as e:
    print("refused", e.status_code, e.body["error"]["code"])
"#;

/// The official `anthropic` package (Messages, its streaming helper, count_tokens, its error
/// classes) and the official `openai` package's Responses client, unmodified, through
/// `pairgate connect serve`, running the README's snippet as written: the tools hold only the
/// connector's caller token; the provider gets the owner's key; the ledger has a row for every call.
#[tokio::test]
async fn the_official_anthropic_and_openai_packages_work_through_connect() {
    use crate::connect::exports;
    use pairgate_tests::gateway::{command, run};
    use tokio::io::AsyncBufReadExt;

    let (gw, fake) = providers::start(Backend::Sqlite, "").await;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("connect");
    let connect = |args: &[&str]| {
        let mut cmd = command(home.path());
        cmd.arg("connect").arg("--state-dir").arg(&dir).args(args);
        cmd
    };
    let grant = crate::connect::pair_connector(&gw, &connect).await;
    let mut serve = connect(&["serve", "--listen", "127.0.0.1:0"]);
    serve.stdout(std::process::Stdio::piped());
    let mut server = serve.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(server.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    assert!(first.starts_with("listening on "), "{first}");
    let mut env = Vec::new();
    for tool in ["anthropic", "openai"] {
        let (code, out, err) = run(connect(&["env", tool]), None).await;
        assert_eq!(code, 0, "{err}");
        env.extend(exports(&out));
    }
    let script = home.path().join("native.py");
    let readme = crate::readme_snippets::snippet(
        "#### The Anthropic and OpenAI SDKs on the native routes",
        "python",
    );
    std::fs::write(&script, readme + PY_REFUSAL).unwrap();
    let stdout = crate::connect::run_python(&script, &env).await;
    assert_eq!(
        stdout,
        format!(
            "{REPLY} 11 7\ntok0 tok1 tok2 \n3\n11\n{REPLY} 18\ntok0 tok1 tok2 \nrefused 400 model_not_found\n"
        )
    );
    let sent: Vec<_> = fake.received();
    assert_eq!(
        sent.len(),
        5,
        "every call but the refused one reached the provider"
    );
    for r in &sent {
        let key = if r.path.starts_with("/v1/messages") {
            r.header("x-api-key").map(str::to_string)
        } else {
            r.header("authorization")
                .map(|v| v.trim_start_matches("Bearer ").to_string())
        };
        let owner = test_key(if r.path.starts_with("/v1/messages") {
            "anthropic"
        } else {
            "openai"
        });
        assert_eq!(key.as_deref(), Some(owner.as_str()), "{}", r.path);
    }
    let b = books_with(&gw, &grant, 6).await;
    let endpoints: Vec<&str> = b.ledger.iter().map(|r| r.endpoint.as_str()).collect();
    assert_eq!(
        endpoints,
        [
            "messages",
            "messages",
            "messages/count_tokens",
            "responses",
            "responses",
            "messages"
        ]
    );
    assert_eq!(b.ledger.iter().filter(|r| r.estimated == 1).count(), 0);
    let _ = server.kill().await;
}
