//! Per-request plugin cost: a fresh instance for `prepare` and one for `finish` (the whole
//! non-streamed request), and `translate_events` per streamed chunk, for the openai plugin
//! (plus anthropic, which translates rather than passes through).

use criterion::{Criterion, Throughput, criterion_group};
use pairgate_plugin_host::{HostConfig, PluginHost, PrepareRequest, StreamEvent, UpstreamResponse};
use std::hint::black_box;
use std::time::Duration;

fn host() -> PluginHost {
    let host = PluginHost::new(HostConfig {
        cache_dir: Some(
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-bench-cache"),
        ),
        ..HostConfig::default()
    })
    .expect("host starts");
    host.load_builtin().expect("built-ins load");
    host
}

fn chat_request(model: &str, stream: bool) -> PrepareRequest {
    let body = serde_json::json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Write a haiku about WebAssembly sandboxes and keys."},
        ],
        "temperature": 0.7,
        "max_tokens": 256,
        "stream": stream,
    });
    PrepareRequest {
        action: "chat".into(),
        grant: r#"{"max_output_tokens": 1024}"#.into(),
        config: "{}".into(),
        model: Some(model.into()),
        body: body.to_string().into_bytes(),
        method: "POST".into(),
        timestamp: 1_700_000_000,
        ..PrepareRequest::default()
    }
}

const OPENAI_RESPONSE: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Walls of linear\nmemory hold the borrowed key\nnever in its hands","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":31,"completion_tokens":17,"total_tokens":48,"prompt_tokens_details":{"cached_tokens":0}}}"#;

const ANTHROPIC_RESPONSE: &str = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[{"type":"text","text":"Walls of linear\nmemory hold the borrowed key\nnever in its hands"}],"stop_reason":"end_turn","usage":{"input_tokens":31,"output_tokens":17}}"#;

fn openai_chunk(text: &str) -> StreamEvent {
    StreamEvent {
        event: None,
        data: format!(
            r#"{{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{{"index":0,"delta":{{"content":"{text}"}},"logprobs":null,"finish_reason":null}}],"usage":null}}"#
        ),
    }
}

fn anthropic_delta(text: &str) -> StreamEvent {
    StreamEvent {
        event: Some("content_block_delta".into()),
        data: format!(
            r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{text}"}}}}"#
        ),
    }
}

fn request(c: &mut Criterion, host: &PluginHost, plugin: &str, model: &str, response: &str) {
    let state = host
        .prepare(plugin, chat_request(model, false))
        .expect("prepare runs")
        .expect("accepted")
        .state;
    c.bench_function(&format!("{plugin}/prepare"), |b| {
        b.iter(|| host.prepare(plugin, black_box(chat_request(model, false))))
    });
    c.bench_function(&format!("{plugin}/finish"), |b| {
        b.iter(|| {
            host.finish(
                plugin,
                UpstreamResponse {
                    status: 200,
                    headers: Vec::new(),
                    body: black_box(response.as_bytes().to_vec()),
                    state: state.clone(),
                },
            )
        })
    });
    c.bench_function(&format!("{plugin}/request (prepare + finish)"), |b| {
        b.iter(|| {
            let call = host
                .prepare(plugin, black_box(chat_request(model, false)))
                .expect("prepare runs")
                .expect("accepted");
            host.finish(
                plugin,
                UpstreamResponse {
                    status: 200,
                    headers: Vec::new(),
                    body: response.as_bytes().to_vec(),
                    state: call.state,
                },
            )
        })
    });
}

fn translate(
    c: &mut Criterion,
    host: &PluginHost,
    plugin: &str,
    model: &str,
    event: fn(&str) -> StreamEvent,
) {
    let mut state = host
        .prepare(plugin, chat_request(model, true))
        .expect("prepare runs")
        .expect("accepted")
        .state;
    if plugin == "anthropic" {
        let start = StreamEvent {
            event: Some("message_start".into()),
            data: r#"{"type":"message_start","message":{"id":"msg_1","model":"claude-haiku-4-5","usage":{"input_tokens":31,"output_tokens":1}}}"#.into(),
        };
        state = host
            .translate_events(plugin, &state, vec![start])
            .expect("translate runs")
            .expect("translated")
            .state;
    }
    let mut group = c.benchmark_group(format!("{plugin}/translate"));
    for batch in [1usize, 16] {
        let events: Vec<StreamEvent> = (0..batch).map(|i| event(&format!("word{i} "))).collect();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("batch of {batch}"), |b| {
            b.iter(|| host.translate_events(plugin, &state, black_box(events.clone())))
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    let host = host();
    request(c, &host, "openai", "gpt-4o-mini", OPENAI_RESPONSE);
    translate(c, &host, "openai", "gpt-4o-mini", openai_chunk);
    request(
        c,
        &host,
        "anthropic",
        "claude-haiku-4-5",
        ANTHROPIC_RESPONSE,
    );
    translate(c, &host, "anthropic", "claude-haiku-4-5", anthropic_delta);
}

criterion_group! {
    name = plugin;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}
/// Start-up cost, printed once: compiling every built-in, then loading them from the disk cache.
fn startup() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-bench-startup");
    let _ = std::fs::remove_dir_all(&dir);
    for label in ["cold (compile)", "warm (disk cache)"] {
        let started = std::time::Instant::now();
        let host = PluginHost::new(HostConfig {
            cache_dir: Some(dir.clone()),
            ..HostConfig::default()
        })
        .expect("host starts");
        let ids = host.load_builtin().expect("built-ins load");
        eprintln!(
            "start-up, {label}: {} built-ins in {:?}",
            ids.len(),
            started.elapsed()
        );
    }
}

fn main() {
    startup();
    plugin();
    Criterion::default().configure_from_args().final_summary();
}
