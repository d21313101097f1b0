//! A gateway wired to a fake provider: every built-in plugin's traffic goes to the fake (via the
//! owner's `origin_override`, or Ollama's `base_url`), with a credential stored for each provider.

use serde_json::Value;

use crate::fake::FakeProvider;
use crate::gateway::run_cli;
use crate::{Backend, Gateway, GatewayBuilder};

/// The credential stored for a provider in these tests.
pub fn test_key(provider: &str) -> String {
    format!("sk-test-{provider}-0123456789")
}

/// Config routing every built-in provider to the fake.
pub fn fake_config(fake: &FakeProvider, extra: &str) -> String {
    let url = fake.url();
    format!(
        "[providers.openai]\norigin_override = \"{url}\"\n\
         [providers.anthropic]\norigin_override = \"{url}\"\n\
         [providers.gemini]\norigin_override = \"{url}\"\n\
         [providers.resend]\norigin_override = \"{url}\"\n\
         [providers.ollama.config]\nbase_url = \"{url}\"\nmodels = [\"llama3.2\"]\n{extra}"
    )
}

/// Starts a fake and a gateway using it, with credentials for every provider that needs one.
pub async fn start(backend: Backend, extra_config: &str) -> (Gateway, FakeProvider) {
    start_with(backend, extra_config, &[]).await
}

/// Same, with extra environment variables for the gateway.
pub async fn start_with(
    backend: Backend,
    extra_config: &str,
    env: &[(&str, &str)],
) -> (Gateway, FakeProvider) {
    start_custom(backend, extra_config, |mut b| {
        for (k, v) in env {
            b = b.env(*k, *v);
        }
        b
    })
    .await
}

/// Same, with the gateway's builder adjusted by `customize` (environment, listen address).
pub async fn start_custom(
    backend: Backend,
    extra_config: &str,
    customize: impl FnOnce(GatewayBuilder) -> GatewayBuilder,
) -> (Gateway, FakeProvider) {
    let fake = FakeProvider::start().await;
    let b = Gateway::builder(backend).config(fake_config(&fake, extra_config));
    let gw = customize(b).start().await;
    add_credentials(&gw).await;
    (gw, fake)
}

/// Stores the test credential of every built-in provider that needs one.
pub async fn add_credentials(gw: &Gateway) {
    for p in ["openai", "anthropic", "gemini", "resend"] {
        let (code, _, err) = run_cli(
            gw,
            &["credential", "add", p],
            Some(&format!("{}\n", test_key(p))),
        )
        .await;
        assert_eq!(code, 0, "credential add {p}: {err}");
    }
}

/// Parses an SSE body into its data payloads.
pub fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|block| {
            let lines: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            (!lines.is_empty()).then(|| lines.join("\n"))
        })
        .collect()
}

/// The concatenated `delta.content` of streamed chat chunks.
pub fn streamed_text(data: &[String]) -> String {
    data.iter()
        .filter(|d| d.as_str() != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

/// A small non-streamed chat with `model` through the gateway; returns the status (the answer
/// is read and dropped).
pub async fn chat_status(client: &pairgate_sdk::Client, model: &str) -> u16 {
    let res = client
        .post("/v1/chat/completions")
        .json(&serde_json::json!({
            "model": model,
            "messages": [{"role": "user", "content": "hi"}],
        }))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let _ = res.bytes().await;
    status
}
