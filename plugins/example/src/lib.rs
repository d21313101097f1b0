//! The `example` plugin: the smallest useful plugin, used by the docs and the host's tests.
//! It forwards an OpenAI-shaped chat request to a made-up OpenAI-compatible service.

use pairgate_plugin_sdk::oa::{self, Endpoint};
use pairgate_plugin_sdk::{
    Credential, Descriptor, Event, Failure, Finished, Level, Model, Plugin, PrepareRequest,
    Rejection, Translated, UpstreamCall, UpstreamResponse, log,
};

struct Example;

impl Plugin for Example {
    fn describe(_config: &str) -> Result<Descriptor, Rejection> {
        Ok(Descriptor {
            id: "example".into(),
            display_name: "Example".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            actions: vec!["chat".into()],
            models: vec![Model {
                id: "example-1".into(),
                context_window: 8_192,
                max_output_tokens: 1_024,
                input_price: 1_000_000,
                output_price: 2_000_000,
            }],
            hosts: vec!["api.example.com".into()],
            credential: Credential::Header("x-example-key".into()),
            passthrough: Vec::new(),
            quotas: Vec::new(),
        })
    }

    fn prepare(req: PrepareRequest) -> Result<UpstreamCall, Rejection> {
        log(Level::Debug, "example: preparing a chat call");
        oa::prepare(
            &req,
            &Endpoint {
                base_url: "https://api.example.com/v1",
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

pairgate_plugin_sdk::plugin!(Example);
