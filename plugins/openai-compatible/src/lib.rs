//! The `openai-compatible` plugin: any server speaking OpenAI's API (Groq, Mistral, OpenRouter,
//! Together, vLLM, LM Studio, ...), configured per instance:
//!
//! ```json
//! {"base_url": "https://api.groq.com/openai/v1", "display_name": "Groq",
//!  "models": [{"id": "llama-3.3-70b-versatile", "context_window": 131072,
//!              "input_price": 590000, "output_price": 790000}],
//!  "credential": "bearer", "stream_usage": true, "responses": false}
//! ```
//!
//! `"responses": true` says the server also speaks OpenAI's Responses API (`{base_url}/responses`),
//! which the gateway then serves natively on `/v1/responses` for this instance.

use pairgate_plugin_sdk::config::{base_url, credential, models};
use pairgate_plugin_sdk::json::parse_text;
use pairgate_plugin_sdk::oa::{self, Endpoint};
use pairgate_plugin_sdk::reply::bad_config;
use pairgate_plugin_sdk::{
    Credential, Descriptor, Event, Failure, Finished, Plugin, PrepareRequest, Rejection,
    Translated, UpstreamCall, UpstreamResponse,
};
use serde_json::Value;

struct OpenAiCompatible;

fn config(text: &str) -> Result<Value, Rejection> {
    parse_text(text).map_err(|e| bad_config(format!("the configuration is not JSON: {e}")))
}

impl Plugin for OpenAiCompatible {
    fn describe(config_text: &str) -> Result<Descriptor, Rejection> {
        let config = config(config_text)?;
        let mut descriptor = Descriptor {
            id: "openai-compatible".into(),
            display_name: "OpenAI-compatible".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            actions: ["chat", "embeddings", "models"].map(Into::into).into(),
            models: Vec::new(),
            hosts: Vec::new(),
            credential: Credential::Bearer,
            passthrough: Vec::new(),
            quotas: Vec::new(),
        };
        let Some(url) = config.get("base_url") else {
            // No instance: the generic description.
            return Ok(descriptor);
        };
        let url = base_url(
            url.as_str()
                .ok_or_else(|| bad_config("base_url must be a string"))?,
        )?;
        descriptor.hosts = vec![url.host];
        descriptor.models = models(&config)?;
        descriptor.credential = credential(&config)?;
        match config.get("responses") {
            None | Some(Value::Bool(false)) => {}
            Some(Value::Bool(true)) => descriptor.actions.push("responses".into()),
            Some(_) => return Err(bad_config("responses must be true or false")),
        }
        if let Some(name) = config.get("display_name").and_then(Value::as_str) {
            descriptor.display_name = name.to_owned();
        }
        Ok(descriptor)
    }

    fn prepare(req: PrepareRequest) -> Result<UpstreamCall, Rejection> {
        let config = config(&req.config)?;
        let url = config
            .get("base_url")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_config("base_url is required"))?;
        let url = base_url(url)?;
        if req.action == "responses" {
            let url = format!("{}/responses", url.url.trim_end_matches('/'));
            return Ok(pairgate_plugin_sdk::native::call(&req, url, &[], &[]));
        }
        let stream_usage = config
            .get("stream_usage")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        oa::prepare(
            &req,
            &Endpoint {
                base_url: &url.url,
                stream_usage,
            },
        )
    }

    fn finish(resp: UpstreamResponse) -> Result<Finished, Failure> {
        oa::finish(resp)
    }

    fn translate_events(state: Vec<u8>, events: Vec<Event>) -> Result<Translated, Failure> {
        oa::translate(state, events)
    }
}

pairgate_plugin_sdk::plugin!(OpenAiCompatible);
