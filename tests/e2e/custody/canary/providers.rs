//! The canary test's provider paths: success, streaming, every upstream error and a client that
//! hangs up, all through the fake provider (split from `canary.rs` to keep files small).

use super::*;

/// The provider paths.
impl Ctx<'_> {
    /// Pairs the app that calls providers: every chat endpoint, and email through Resend.
    pub(super) async fn relay_app(&mut self) -> Client {
        let policy = json!({
            "endpoints": ["chat", "embeddings", "models", "resource:resend/send-email"],
            "resources": { "resend": { "sender_domains": ["example.com"], "recipient_domains": ["example.org"], "max_recipients": 2 } }
        });
        let file = self.dir.join("relay-policy.json");
        std::fs::write(&file, policy.to_string()).unwrap();
        let path = file.display().to_string();
        let s = self
            .cli_ok(
                &["pair", "create", "--app", "relay app", "--policy", &path],
                None,
            )
            .await;
        self.plant(Canary::pairing(
            "pairing string (relay)",
            s.trim(),
            &["cli: pair create"],
        ));
        Client::pair(s.trim(), PairOptions::default(), MemoryStorage::new())
            .await
            .unwrap()
    }

    pub(super) fn app(&self) -> Client {
        self.app.clone().expect("ProviderCalls paired the app")
    }

    /// What the fake received: each keyed provider's key went out, in its header, in full; no
    /// key is anywhere else in any outbound request (URL, other headers, body: what the plugins
    /// built never held one).
    pub(super) fn check_outbound(&self) {
        let received = self.fake.received();
        let mut carried: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &received {
            // Anthropic's model listing shares OpenAI's path; its header tells them apart.
            let expected = if r.header("x-api-key").is_some() {
                Some(("anthropic", "x-api-key", ""))
            } else {
                upstream_of(&r.path)
            };
            for (provider, key) in &self.keys {
                let place = format!("{} {} (provider key {provider})", r.method, r.path);
                assert!(!r.path.contains(key.as_str()), "in the URL: {place}");
                assert!(!contains(&r.body, key.as_bytes()), "in the body: {place}");
                for (name, value) in &r.headers {
                    if !value.contains(key.as_str()) {
                        continue;
                    }
                    let Some((p, header, prefix)) = expected else {
                        panic!("a key went to a provider that takes none: {place}");
                    };
                    assert!(
                        p == *provider && name == header && *value == format!("{prefix}{key}"),
                        "header {name} carries it: {place}"
                    );
                    *carried.entry(p).or_default() += 1;
                }
            }
        }
        for p in self.keys.keys() {
            assert!(
                carried.get(p).copied().unwrap_or(0) > 0,
                "{p}: the key never went out ({} requests received)",
                received.len()
            );
        }
    }

    pub(super) async fn provider_calls(&mut self) {
        for p in ["gemini", "resend"] {
            let k = self.provider_key(&format!("provider key ({p})"));
            self.cli_ok(&["credential", "add", p], Some(&format!("{k}\n")))
                .await;
            self.keys.insert(p, k);
        }
        let client = self.relay_app().await;
        self.app = Some(client.clone());
        for model in CHAT_MODELS {
            for stream in [false, true] {
                let res = client
                    .post("/v1/chat/completions")
                    .json(&chat(model, stream))
                    .send()
                    .await
                    .unwrap();
                let place = format!("chat {model} stream={stream}");
                let (status, body) = self.record(&place, res).await;
                assert_eq!(status, 200, "{place}: {body}");
                if stream {
                    assert!(
                        body.contains("tok2") && body.trim_end().ends_with("data: [DONE]"),
                        "{place}: {body}"
                    );
                } else {
                    assert!(body.contains(REPLY), "{place}: {body}");
                }
            }
        }
        let res = client
            .post("/v1/embeddings")
            .json(&json!({ "model": "openai/text-embedding-3-small", "input": "hi" }))
            .send()
            .await
            .unwrap();
        let (status, body) = self.record("embeddings", res).await;
        assert_eq!(status, 200, "{body}");
        for path in ["/v1/models", "/v1/grant"] {
            let res = client.get(path).send().await.unwrap();
            let (status, body) = self.record(&format!("GET {path}"), res).await;
            assert_eq!(status, 200, "{path}: {body}");
        }
        let mail = json!({ "from": "app@example.com", "to": ["a@example.org"], "subject": "hi", "text": "hello" });
        let res = client
            .post("/r/resend/send-email")
            .json(&mail)
            .send()
            .await
            .unwrap();
        let (status, body) = self.record("resend send-email", res).await;
        assert_eq!(status, 200, "{body}");
        self.check_outbound();
    }

    pub(super) async fn provider_errors(&mut self) {
        let client = self.app();
        // (fault, model or `r:` resource, streamed, expected status, expected error code)
        let cases: Vec<(Fault, &str, bool, u16, &str)> = vec![
            (
                Fault::Unauthorized,
                "openai/gpt-4o-mini",
                false,
                502,
                "provider_auth_failed",
            ),
            (
                Fault::Unauthorized,
                "openai/gpt-4o-mini",
                true,
                502,
                "provider_auth_failed",
            ),
            (
                Fault::Unauthorized,
                "anthropic/claude-sonnet-4-5",
                true,
                502,
                "provider_auth_failed",
            ),
            (
                Fault::Unauthorized,
                "gemini/gemini-2.5-flash",
                false,
                502,
                "provider_auth_failed",
            ),
            (
                Fault::Unauthorized,
                "r:resend/send-email",
                false,
                502,
                "provider_auth_failed",
            ),
            (Fault::EchoKey(400), "openai/gpt-4o-mini", false, 400, ""),
            (
                Fault::EchoKey(400),
                "anthropic/claude-sonnet-4-5",
                false,
                400,
                "",
            ),
            (
                Fault::EchoKey(400),
                "gemini/gemini-2.5-flash",
                true,
                400,
                "",
            ),
            (Fault::EchoKey(400), "r:resend/send-email", false, 400, ""),
            (
                Fault::RateLimit,
                "openai/gpt-4o-mini",
                false,
                429,
                "provider_rate_limit",
            ),
            (
                Fault::Status(503),
                "anthropic/claude-sonnet-4-5",
                false,
                502,
                "provider_unavailable",
            ),
            (
                Fault::DelayHeaders(Duration::from_secs(3)),
                "gemini/gemini-2.5-flash",
                false,
                504,
                "provider_unavailable",
            ),
            (
                Fault::CutJson,
                "openai/gpt-4o-mini",
                false,
                502,
                "provider_unavailable",
            ),
            (
                Fault::CutStream,
                "anthropic/claude-sonnet-4-5",
                true,
                200,
                "provider_unavailable",
            ),
            (
                Fault::Stall,
                "openai/gpt-4o-mini",
                true,
                200,
                "provider_unavailable",
            ),
            (
                Fault::None,
                "unapproved/gpt-4o-mini",
                false,
                502,
                "plugin_failed",
            ),
        ];
        for (fault, target, stream, want_status, want_code) in cases {
            self.fake.fault(fault.clone());
            let res = match target.strip_prefix("r:") {
                Some(resource) => {
                    let mail = json!({ "from": "app@example.com", "to": ["a@example.org"], "subject": "hi", "text": "hello" });
                    client.post(&format!("/r/{resource}")).json(&mail).send()
                }
                None => client
                    .post("/v1/chat/completions")
                    .json(&chat(target, stream))
                    .send(),
            }
            .await
            .unwrap();
            let place = format!("{fault:?} {target} stream={stream}");
            let (status, body) = self.record(&place, res).await;
            assert_eq!(status, want_status, "{place}: {body}");
            if status == 200 {
                // A stream that fails after it started ends with an error event and [DONE].
                assert!(
                    body.contains(&format!("\"code\":\"{want_code}\""))
                        && body.trim_end().ends_with("data: [DONE]"),
                    "{place}: {body}"
                );
            } else if fault == Fault::EchoKey(400) {
                // The provider's message reaches the app, with the key cut out by the gateway
                // before the plugin read it.
                assert!(body.contains("API key not valid: "), "{place}: {body}");
                assert!(body.contains("[redacted]"), "{place}: {body}");
            } else {
                let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                assert_eq!(v["error"]["code"], want_code, "{place}: {body}");
            }
        }
        self.fake.set(Behaviour::default());
        self.check_outbound();
    }

    pub(super) async fn client_disconnect(&mut self) {
        let client = self.app();
        // A long stream (about ten seconds), of which the app reads one chunk.
        self.fake.set(Behaviour {
            chunks: 500,
            chunk_interval: Duration::from_millis(20),
            ..Behaviour::default()
        });
        let before = self.ledger_codes("client_disconnected").await;
        let mut res = client
            .post("/v1/chat/completions")
            .json(&chat("anthropic/claude-sonnet-4-5", true))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let mut text = format!("{}\n{:?}\n", res.status(), res.headers());
        let first = tokio::time::timeout(Duration::from_secs(5), res.chunk())
            .await
            .expect("a first chunk")
            .unwrap()
            .expect("a first chunk");
        text.push_str(&String::from_utf8_lossy(&first));
        self.seen.add("http: stream dropped by the app", text);
        drop(res);
        // The gateway notices, stops the upstream call and writes the ledger row.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.ledger_codes("client_disconnected").await == before {
            assert!(
                Instant::now() < deadline,
                "no client_disconnected ledger row"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.fake.set(Behaviour::default());
    }

    /// How many ledger rows carry this error code.
    pub(super) async fn ledger_codes(&self, code: &str) -> usize {
        dump_rows(self.gw)
            .await
            .iter()
            .filter(|r| r.table == "usage_ledger" && r.get("error_code") == code.as_bytes())
            .count()
    }

    pub(super) async fn metrics_and_usage(&mut self) {
        let res = reqwest::Client::new()
            .get(self.gw.url("/metrics"))
            .bearer_auth(pairgate_tests::gateway::METRICS_TOKEN)
            .send()
            .await
            .unwrap();
        let (status, body) = self.record("GET /metrics", res).await;
        assert_eq!(status, 200);
        for name in [
            "pairgate_requests_total",
            "pairgate_plugin_call_seconds",
            "pairgate_upstream_seconds",
            "pairgate_errors_total",
        ] {
            assert!(body.contains(name), "{name}: {body}");
        }
        let out = self.cli_ok(&["usage", "--json"], None).await;
        let usage: Value = serde_json::from_str(&out).unwrap();
        assert!(
            usage["totals"]["requests"].as_u64().unwrap_or(0) >= 20,
            "{usage}"
        );
        assert!(
            usage["totals"]["errors"].as_u64().unwrap_or(0) >= 10,
            "{usage}"
        );
        self.cli_ok(&["usage"], None).await;
    }
}
