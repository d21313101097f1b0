//! Fuzz target: request JSON into each built-in plugin's `prepare`, through the real plugin host.
//!
//! Input: byte 0 picks the plugin, byte 1 the action and whether a model/grant is passed, the
//! rest is the request body. A plugin may accept or reject anything; it must not trap, time out,
//! run out of memory or produce output the host refuses (a host error other than "busy" is a bug
//! in the plugin or the host's checks).
//!
//! Coverage comes from the host only: the plugins run as WebAssembly compiled by Cranelift, which
//! libFuzzer's instrumentation does not reach, so mutations are guided by how the host lifts,
//! lowers and checks what goes in and out, and by the dictionary (`plugin_prepare.dict`).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use pairgate_plugin_host::{HostConfig, PluginError, PluginHost, PrepareRequest};

/// (plugin, instance config).
const PLUGINS: &[(&str, &str)] = &[
    ("openai", "{}"),
    ("anthropic", "{}"),
    ("gemini", "{}"),
    ("ollama", r#"{"base_url":"http://127.0.0.1:11434"}"#),
    (
        "openai-compatible",
        r#"{"base_url":"http://127.0.0.1:8000/v1","models":["llama-3.3-70b-versatile"]}"#,
    ),
    ("resend", "{}"),
];

const ACTIONS: &[&str] = &["chat", "embeddings", "models", "passthrough", "send-email"];

static HOST: LazyLock<PluginHost> = LazyLock::new(|| {
    // A generous deadline: a plugin that loops still fails, a busy fuzzing machine does not.
    let mut config = HostConfig::default();
    config.builtin.cpu_deadline = std::time::Duration::from_secs(5);
    let host = PluginHost::new(config).expect("the plugin host starts");
    host.load_builtin().expect("the built-in plugins load");
    host
});

// The engine starts (and compiles the six plugins) once, before the first input is timed.
fuzz_target!(init: { LazyLock::force(&HOST); }, |data: &[u8]| {
    let [pick, flags, body @ ..] = data else {
        return;
    };
    let (plugin, config) = PLUGINS[usize::from(*pick) % PLUGINS.len()];
    let action = ACTIONS[usize::from(flags & 7) % ACTIONS.len()];
    let req = PrepareRequest {
        action: action.to_owned(),
        grant: if flags & 8 == 0 {
            "{}".to_owned()
        } else {
            r#"{"max_output_tokens":1000}"#.to_owned()
        },
        config: config.to_owned(),
        model: (flags & 16 != 0).then(|| "gpt-4o-mini".to_owned()),
        body: body.to_vec(),
        method: if flags & 32 == 0 { "POST" } else { "GET" }.to_owned(),
        headers: Vec::new(),
        path: (flags & 64 != 0).then(|| "/v1/moderations".to_owned()),
        timestamp: 1_700_000_000,
    };
    match HOST.prepare(plugin, req) {
        Ok(_) | Err(PluginError::Busy { .. }) => {}
        Err(e) => panic!("{plugin} {action}: {e}"),
    }
});
