//! The `openai` plugin: chat completions (streamed or not), embeddings and models on
//! api.openai.com; the Responses API (`responses`) passed through as it is, for the gateway's
//! native `/v1/responses`; plus pass-through to a few native endpoints.

use pairgate_plugin_sdk::oa::{self, Endpoint};
use pairgate_plugin_sdk::{
    Credential, Descriptor, Event, Failure, Finished, Model, Plugin, PrepareRequest, Rejection,
    Translated, UpstreamCall, UpstreamResponse, passthrough,
};

const ORIGIN: &str = "https://api.openai.com";
const PASSTHROUGH: &[&str] = &[
    "/v1/moderations",
    "/v1/images/*",
    "/v1/audio/*",
];

/// (id, context window, max output, input and output micro-USD per million tokens)
const MODELS: &[(&str, u32, u32, u64, u64)] = &[
    ("gpt-5", 400_000, 128_000, 1_250_000, 10_000_000),
    ("gpt-5-mini", 400_000, 128_000, 250_000, 2_000_000),
    ("gpt-5-nano", 400_000, 128_000, 50_000, 400_000),
    ("gpt-4.1", 1_047_576, 32_768, 2_000_000, 8_000_000),
    ("gpt-4.1-mini", 1_047_576, 32_768, 400_000, 1_600_000),
    ("gpt-4.1-nano", 1_047_576, 32_768, 100_000, 400_000),
    ("gpt-4o", 128_000, 16_384, 2_500_000, 10_000_000),
    ("gpt-4o-mini", 128_000, 16_384, 150_000, 600_000),
    ("o3", 200_000, 100_000, 2_000_000, 8_000_000),
    ("o4-mini", 200_000, 100_000, 1_100_000, 4_400_000),
    ("text-embedding-3-small", 8_191, 0, 20_000, 0),
    ("text-embedding-3-large", 8_191, 0, 130_000, 0),
];

struct OpenAi;

impl Plugin for OpenAi {
    fn describe(_config: &str) -> Result<Descriptor, Rejection> {
        Ok(Descriptor {
            id: "openai".into(),
            display_name: "OpenAI".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            actions: ["chat", "responses", "embeddings", "models", "passthrough"]
                .map(Into::into)
                .into(),
            models: MODELS
                .iter()
                .map(
                    |&(id, context_window, max_output_tokens, input_price, output_price)| Model {
                        id: id.into(),
                        context_window,
                        max_output_tokens,
                        input_price,
                        output_price,
                    },
                )
                .collect(),
            hosts: vec!["api.openai.com".into()],
            credential: Credential::Bearer,
            passthrough: PASSTHROUGH.iter().map(|p| (*p).into()).collect(),
            quotas: Vec::new(),
        })
    }

    fn prepare(req: PrepareRequest) -> Result<UpstreamCall, Rejection> {
        match req.action.as_str() {
            "passthrough" => return passthrough::call(&req, ORIGIN, PASSTHROUGH),
            "responses" => {
                return Ok(pairgate_plugin_sdk::native::call(
                    &req,
                    format!("{ORIGIN}/v1/responses"),
                    &[],
                    &["openai-beta"],
                ));
            }
            _ => {}
        }
        oa::prepare(
            &req,
            &Endpoint {
                base_url: "https://api.openai.com/v1",
                stream_usage: true,
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

pairgate_plugin_sdk::plugin!(OpenAi);
