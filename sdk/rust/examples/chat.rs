//! Pair once with a pairing string, then call the gateway's OpenAI-compatible API through a
//! `reqwest-middleware` client that signs every request.
//!
//! ```sh
//! pairgate pair create --app example --model 'openai/gpt-4o-mini'      # on the gateway
//! PAIRING='pgpair1.…' cargo run -p pairgate-sdk --example chat -- "Say hello"
//! ```
//! The session (key + tokens) is kept in `pairgate-example-session.json` (mode 0600), so later
//! runs need no pairing string.
#![allow(clippy::print_stdout)]

use pairgate_sdk::{Client, FileStorage, PairOptions};
use serde_json::json;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let prompt = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "Say hello".into());
    let storage = FileStorage::new("pairgate-example-session.json");
    let client = match Client::from_storage(storage.clone(), PairOptions::default())? {
        Some(c) => c,
        None => {
            let pairing = std::env::var("PAIRING")
                .map_err(|_| anyhow::anyhow!("set PAIRING to a pgpair1 string"))?;
            let opts = PairOptions {
                app_name: Some("pairgate-sdk example".into()),
                ..PairOptions::default()
            };
            Client::pair(&pairing, opts, storage).await?
        }
    };
    println!(
        "paired as grant {} (key {})",
        client.grant_id(),
        client.key_fingerprint()
    );

    // Any code built on reqwest-middleware signs through the middleware:
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(client.middleware())
        .build();
    let body = json!({ "model": "openai/gpt-4o-mini", "messages": [{ "role": "user", "content": prompt }] });
    let res = http
        .post(format!("{}/v1/chat/completions", client.gateway_url()))
        .json(&body)
        .send()
        .await?;
    let status = res.status();
    let answer: serde_json::Value = res.json().await?;
    if !status.is_success() {
        anyhow::bail!("{status}: {}", answer["error"]["message"]);
    }
    println!(
        "{}",
        answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
    );
    Ok(())
}
