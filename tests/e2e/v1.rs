//! The OpenAI-compatible surface end to end: the Rust SDK signs, the gateway checks and maps the
//! request through each built-in plugin to a local fake provider that records what it received.

use pairgate_protocol::keys::KeyKind;
use pairgate_tests::Backend;
use pairgate_tests::app::pair;
use pairgate_tests::fake::{Behaviour, Fault, REPLY};
use pairgate_tests::providers::{self, sse_data, streamed_text, test_key};
use serde_json::{Value, json};

fn chat(model: &str, stream: bool) -> Value {
    json!({ "model": model, "stream": stream, "messages": [
        { "role": "system", "content": "be brief" },
        { "role": "user", "content": "hello" }
    ]})
}

/// (model, where the fake must see it, the credential header, its expected value)
fn routes() -> Vec<(&'static str, &'static str, &'static str, String)> {
    vec![
        (
            "openai/gpt-4o-mini",
            "/v1/chat/completions",
            "authorization",
            format!("Bearer {}", test_key("openai")),
        ),
        (
            "anthropic/claude-sonnet-4-5",
            "/v1/messages",
            "x-api-key",
            test_key("anthropic"),
        ),
        (
            "gemini/gemini-2.5-flash",
            "/v1beta/models/gemini-2.5-flash:",
            "x-goog-api-key",
            test_key("gemini"),
        ),
        ("ollama/llama3.2", "/api/chat", "", String::new()),
    ]
}

#[tokio::test]
async fn chat_goes_through_every_builtin_plugin_streamed_and_not() {
    let (gw, fake) = providers::start(Backend::Sqlite, "").await;
    let client = pair(&gw, KeyKind::Ed25519, &[]).await;
    for (model, path, cred_header, cred) in routes() {
        // not streamed
        let res = client
            .post("/v1/chat/completions")
            .json(&chat(model, false))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(body["object"], "chat.completion", "{model}: {body}");
        assert_eq!(
            body["choices"][0]["message"]["content"], REPLY,
            "{model}: {body}"
        );
        assert_eq!(body["usage"]["prompt_tokens"], 11, "{model}: {body}");
        let seen = fake.last();
        assert!(
            seen.path.starts_with(path),
            "{model}: upstream path {}",
            seen.path
        );
        if !cred_header.is_empty() {
            assert_eq!(
                seen.header(cred_header),
                Some(cred.as_str()),
                "{model}: the credential is injected"
            );
        }
        assert!(
            seen.header("dpop").is_none() && !seen.headers.iter().any(|(_, v)| v.contains("DPoP")),
            "{model}: app credentials never go upstream"
        );
        // streamed
        let res = client
            .post("/v1/chat/completions")
            .json(&chat(model, true))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{model}");
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        let text = res.text().await.unwrap();
        let data = sse_data(&text);
        assert_eq!(
            data.last().map(String::as_str),
            Some("[DONE]"),
            "{model}: {text}"
        );
        assert_eq!(streamed_text(&data), "tok0 tok1 tok2 ", "{model}: {text}");
        for d in data.iter().filter(|d| d.as_str() != "[DONE]") {
            let v: Value = serde_json::from_str(d).unwrap();
            assert_eq!(v["object"], "chat.completion.chunk", "{model}: {d}");
        }
    }
    // The openai plugin asked the provider for usage in streams, so streams are metered.
    let streamed = fake
        .received()
        .into_iter()
        .rfind(|r| r.path == "/v1/chat/completions" && r.json()["stream"] == true)
        .unwrap();
    assert_eq!(streamed.json()["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn embeddings_models_and_resources_work_within_the_grant() {
    let (gw, fake) = providers::start(Backend::Postgres, "").await;
    let client = pair(
        &gw,
        KeyKind::P256,
        &[
            "--model",
            "openai/gpt-4o-mini",
            "--model",
            "openai/text-embedding-3-small",
            "--endpoint",
            "chat",
            "--endpoint",
            "embeddings",
            "--endpoint",
            "models",
        ],
    )
    .await;
    let res = client
        .post("/v1/embeddings")
        .json(&json!({ "model": "openai/text-embedding-3-small", "input": "hi" }))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["data"][0]["embedding"],
        json!([0.1, 0.2, 0.3]),
        "{body}"
    );
    let list: Value = client
        .get("/v1/models")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(list["object"], "list");
    assert_eq!(
        ids,
        vec!["openai/gpt-4o-mini", "openai/text-embedding-3-small"],
        "only the models this grant may use"
    );
    let one = client
        .get("/v1/models/openai/gpt-4o-mini")
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let other = client.get("/v1/models/openai/gpt-4o").send().await.unwrap();
    assert_eq!(other.status(), 404);
    let denied = client
        .post("/v1/chat/completions")
        .json(&chat("openai/gpt-4o", false))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
    let body: Value = denied.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_allowed", "{body}");
    assert_eq!(
        fake.received()
            .iter()
            .filter(|r| r.path.contains("chat"))
            .count(),
        0,
        "a refused request never reaches the provider"
    );

    // A non-LLM resource: email through Resend, within the grant's resource limits.
    let policy = json!({ "endpoints": ["resource:resend/send-email"], "resources": { "resend": { "sender_domains": ["example.com"], "recipient_domains": ["example.org"], "max_recipients": 2 } } });
    let path = gw.dir.path().join("resend.json");
    std::fs::write(&path, policy.to_string()).unwrap();
    let mailer = pair(&gw, KeyKind::Ed25519, &["--policy", path.to_str().unwrap()]).await;
    let mail = json!({ "from": "app@example.com", "to": ["a@example.org"], "subject": "hi", "text": "hello" });
    let res = mailer
        .post("/r/resend/send-email")
        .json(&mail)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(fake.last().path, "/emails");
    assert_eq!(
        fake.last().header("authorization"),
        Some(format!("Bearer {}", test_key("resend")).as_str())
    );
    let bad =
        json!({ "from": "app@evil.com", "to": ["a@example.org"], "subject": "hi", "text": "x" });
    let res = mailer
        .post("/r/resend/send-email")
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status().as_u16() / 100,
        4,
        "a sender outside the allowed domains is refused"
    );
    let res = mailer
        .post("/v1/chat/completions")
        .json(&chat("openai/gpt-4o-mini", false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "the mail grant may not chat");
}

async fn error_of(res: reqwest::Response) -> (u16, Value, reqwest::header::HeaderMap) {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, res.json().await.unwrap_or(Value::Null), headers)
}

#[tokio::test]
async fn every_upstream_failure_has_its_openai_shaped_error_and_no_secret() {
    let extra = "[providers.deadai]\nplugin = \"openai\"\norigin_override = \"http://127.0.0.1:1\"\n[upstream]\ntimeout = \"1s\"\n";
    let (gw, fake) = providers::start_with(
        Backend::Sqlite,
        extra,
        &[("PAIRGATE_MAX_BODY_BYTES", "64KiB")],
    )
    .await;
    pairgate_tests::gateway::run_cli(&gw, &["credential", "add", "deadai"], Some("sk-dead-key\n"))
        .await;
    let client = pair(&gw, KeyKind::Ed25519, &[]).await;
    let send = |model: &'static str, stream: bool| {
        client
            .post("/v1/chat/completions")
            .json(&chat(model, stream))
            .send()
    };

    fake.fault(Fault::Unauthorized);
    let (s, body, _) = error_of(send("openai/gpt-4o-mini", false).await.unwrap()).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (502, Some("provider_auth_failed")),
        "{body}"
    );
    assert!(
        !body.to_string().contains("sk-test"),
        "the provider's text naming the key never reaches the app: {body}"
    );

    fake.fault(Fault::RateLimit);
    let (s, body, h) = error_of(send("openai/gpt-4o-mini", false).await.unwrap()).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (429, Some("provider_rate_limit")),
        "{body}"
    );
    assert_eq!(h["retry-after"], "7");

    fake.fault(Fault::Status(503));
    let (s, body, _) = error_of(send("anthropic/claude-sonnet-4-5", false).await.unwrap()).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (502, Some("provider_unavailable")),
        "{body}"
    );

    fake.fault(Fault::DelayHeaders(std::time::Duration::from_secs(3)));
    let (s, body, _) = error_of(send("openai/gpt-4o-mini", false).await.unwrap()).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (504, Some("provider_unavailable")),
        "{body}"
    );

    fake.fault(Fault::CutJson);
    let (s, body, _) = error_of(send("openai/gpt-4o-mini", false).await.unwrap()).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (502, Some("provider_unavailable")),
        "{body}"
    );

    fake.fault(Fault::None);
    let (s, body, _) = error_of(send("deadai/gpt-4o-mini", false).await.unwrap()).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (502, Some("provider_unavailable")),
        "{body}"
    );

    for fault in [Fault::CutStream, Fault::Stall] {
        fake.fault(fault.clone());
        let res = send("openai/gpt-4o-mini", true).await.unwrap();
        assert_eq!(res.status(), 200);
        let text = tokio::time::timeout(std::time::Duration::from_secs(10), res.text())
            .await
            .expect("no hang")
            .unwrap();
        let data = sse_data(&text);
        assert_eq!(
            data.last().map(String::as_str),
            Some("[DONE]"),
            "{fault:?}: {text}"
        );
        let err: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
        assert_eq!(
            err["error"]["code"], "provider_unavailable",
            "{fault:?}: a clean terminal error event: {text}"
        );
    }
    fake.set(Behaviour::default());

    let res = client
        .post("/v1/chat/completions")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (s, body, _) = error_of(res).await;
    assert_eq!(s, 400, "{body}");
    // Last: the gateway closes the connection after refusing an oversize body unread.
    let big = "x".repeat(100 << 10);
    let res = client.post("/v1/chat/completions").json(&json!({ "model": "openai/gpt-4o-mini", "messages": [{ "role": "user", "content": big }] })).send().await.unwrap();
    assert_eq!(res.status(), 413);
}

#[tokio::test]
async fn openai_compatible_instances_other_embeddings_and_native_pass_through() {
    let fake_url_marker = "FAKE";
    let extra = format!(
        "[providers.groq]\nplugin = \"openai-compatible\"\nallow_private = true\n[providers.groq.config]\nbase_url = \"{fake_url_marker}/openai/v1\"\nmodels = [\"llama-3.1-8b-instant\"]\n"
    );
    // The fake's URL is only known once it runs: start it through the helper, then patch.
    let (gw0, fake) = providers::start(Backend::Sqlite, "").await;
    drop(gw0);
    let config = providers::fake_config(&fake, &extra.replace(fake_url_marker, &fake.url()));
    let gw = pairgate_tests::Gateway::builder(Backend::Sqlite)
        .config(config)
        .start()
        .await;
    for p in ["groq", "gemini", "anthropic"] {
        let (code, _, err) = pairgate_tests::gateway::run_cli(
            &gw,
            &["credential", "add", p],
            Some(&format!("{}\n", test_key(p))),
        )
        .await;
        assert_eq!(code, 0, "{err}");
    }
    let client = pair(
        &gw,
        KeyKind::Ed25519,
        &[
            "--endpoint",
            "chat",
            "--endpoint",
            "embeddings",
            "--endpoint",
            "models",
            "--endpoint",
            "resource:anthropic/passthrough",
        ],
    )
    .await;

    let res = client
        .post("/v1/chat/completions")
        .json(&chat("groq/llama-3.1-8b-instant", false))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], REPLY, "{body}");
    let seen = fake.last();
    assert_eq!(seen.path, "/openai/v1/chat/completions");
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {}", test_key("groq")).as_str())
    );

    for model in ["gemini/gemini-embedding-001", "ollama/llama3.2"] {
        let res = client
            .post("/v1/embeddings")
            .json(&json!({ "model": model, "input": "hi" }))
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(
            body["data"][0]["embedding"],
            json!([0.1, 0.2, 0.3]),
            "{model}: {body}"
        );
    }

    // A provider-native path the plugin declares, allowed by the grant.
    let res = client.post("/r/anthropic/v1/messages/count_tokens").json(&json!({ "model": "claude-sonnet-4-5", "messages": [{ "role": "user", "content": "hi" }] })).send().await.unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["input_tokens"], 11);
    assert_eq!(
        fake.last().header("x-api-key"),
        Some(test_key("anthropic").as_str())
    );
    // A path the plugin does not declare is refused before anything is sent.
    let before = fake.received().len();
    let res = client
        .post("/r/anthropic/v1/files")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16() / 100, 4);
    assert_eq!(fake.received().len(), before);
    // A grant without the pass-through endpoint may not use it.
    let plain = pair(&gw, KeyKind::Ed25519, &[]).await;
    let res = plain
        .post("/r/anthropic/v1/messages/count_tokens")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn every_answered_request_is_in_the_ledger_even_after_a_hard_kill() {
    use sqlx::Connection;
    let (mut gw, _fake) = providers::start(Backend::Sqlite, "").await;
    let client = pair(&gw, KeyKind::Ed25519, &[]).await;
    let calls = (0..24).map(|i| {
        let client = client.clone();
        async move {
            let res = client
                .post("/v1/chat/completions")
                .json(&chat("openai/gpt-4o-mini", i % 3 == 0))
                .send()
                .await
                .unwrap();
            let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
            let status = res.status();
            let _ = res.text().await.unwrap();
            (status, id)
        }
    });
    let answered: Vec<String> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .filter(|(s, _)| s.is_success())
        .map(|(_, id)| id)
        .collect();
    assert_eq!(answered.len(), 24);
    // No graceful shutdown: the process dies at once.
    gw.signal("KILL");
    assert_eq!(gw.wait().await, None, "killed by a signal");
    gw.restart().await;
    let url = format!("sqlite://{}", gw.data_dir().join("pairgate.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let ids: Vec<String> = sqlx::query_scalar("SELECT request_id FROM usage_ledger")
        .fetch_all(&mut db)
        .await
        .unwrap();
    let missing: Vec<&String> = answered.iter().filter(|id| !ids.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "answered but missing from the ledger after kill -9: {missing:?}"
    );
}

#[tokio::test]
async fn an_unmodified_openai_client_works_through_the_local_signing_proxy() {
    let (gw, _fake) = providers::start(Backend::Sqlite, "").await;
    let client = pair(&gw, KeyKind::Ed25519, &[]).await;
    let proxy = client.serve_local_proxy(0).await.unwrap();
    // What an OpenAI SDK does with base_url = proxy and api_key = "unused": no signing at all.
    let plain = reqwest::Client::new();
    let res = plain
        .post(format!("{}/chat/completions", proxy.base_url()))
        .bearer_auth("unused")
        .json(&chat("openai/gpt-4o-mini", false))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], REPLY);
    let res = plain
        .post(format!("{}/chat/completions", proxy.base_url()))
        .bearer_auth("unused")
        .json(&chat("openai/gpt-4o-mini", true))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let data = sse_data(&res.text().await.unwrap());
    assert_eq!(streamed_text(&data), "tok0 tok1 tok2 ");
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let models: Value = plain
        .get(format!("{}/models", proxy.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    // Straight to the gateway, the same unsigned request is refused.
    let res = plain
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("unused")
        .json(&chat("openai/gpt-4o-mini", false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}
