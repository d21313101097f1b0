//! Integration tests of the plugin host: the data-driven cases of every built-in plugin
//! (`plugins/cases/<plugin>/<case>/`), install validation, instance descriptors and the disk cache.
//!
//! A case folder holds `prepare.json` (the request) and then either `rejection.json`, or
//! `upstream.json` (the expected call) optionally followed by `response.json` with
//! `finished.json`/`failure.json`, and/or `events.json` with `chunks.json`.

use pairgate_plugin_host::{
    FailureKind, HostConfig, PluginError, PluginHost, PrepareRequest, ResponseMode, StreamEvent,
    UpstreamResponse, Usage, example_component,
};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn shared_cache() -> PathBuf {
    std::env::temp_dir().join("pairgate-plugin-host-test-cache")
}

fn host() -> &'static PluginHost {
    static HOST: OnceLock<PluginHost> = OnceLock::new();
    HOST.get_or_init(|| {
        let host = PluginHost::new(HostConfig {
            cache_dir: Some(shared_cache()),
            ..HostConfig::default()
        })
        .expect("host starts");
        host.load_builtin().expect("built-ins load");
        let example = example_component();
        host.install(example, &sha256(example))
            .expect("example installs");
        host
    })
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn cases_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/cases")
}

fn read(dir: &Path, name: &str) -> Result<Option<Value>, String> {
    let path = dir.join(name);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_owned)
}

fn headers(v: Option<&Value>) -> Vec<(String, String)> {
    let mut list: Vec<(String, String)> = v
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    list.sort();
    list
}

/// `body` (JSON, serialised) or `body_text` (raw); nothing when neither is given.
fn body_of(spec: &Value) -> Vec<u8> {
    match (spec.get("body"), spec.get("body_text")) {
        (Some(v), _) => v.to_string().into_bytes(),
        (None, Some(Value::String(t))) => t.clone().into_bytes(),
        _ => Vec::new(),
    }
}

/// Parses bytes as JSON for comparison (empty is null; non-JSON is a string).
fn as_json(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn usage_json(u: Option<Usage>) -> Value {
    u.map_or(
        Value::Null,
        |u| json!({"input": u.input_tokens, "output": u.output_tokens, "cached": u.cached_tokens}),
    )
}

fn kind_name(k: FailureKind) -> &'static str {
    match k {
        FailureKind::InvalidRequest => "invalid-request",
        FailureKind::Authentication => "authentication",
        FailureKind::Permission => "permission",
        FailureKind::NotFound => "not-found",
        FailureKind::RateLimited => "rate-limited",
        FailureKind::Overloaded => "overloaded",
        FailureKind::Upstream => "upstream",
        FailureKind::BadResponse => "bad-response",
    }
}

/// Checks the fields `expected` names (a `message_contains` checks part of `message`).
fn expect_fields(what: &str, expected: &Value, actual: &Value) -> Result<(), String> {
    let Some(expected) = expected.as_object() else {
        return Err(format!("{what}: expectation must be an object"));
    };
    for (key, want) in expected {
        if key == "message_contains" {
            let got = actual
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let want = want.as_str().unwrap_or_default();
            if !got.contains(want) {
                return Err(format!("{what}: message {got:?} does not contain {want:?}"));
            }
            continue;
        }
        let got = actual.get(key).unwrap_or(&Value::Null);
        if got != want {
            return Err(format!("{what}.{key}: expected {want}, got {got}"));
        }
    }
    Ok(())
}

fn same(what: &str, expected: &Value, actual: &Value) -> Result<(), String> {
    if expected == actual {
        return Ok(());
    }
    Err(format!(
        "{what} differs\n--- expected\n{}\n--- actual\n{}",
        serde_json::to_string_pretty(expected).unwrap_or_default(),
        serde_json::to_string_pretty(actual).unwrap_or_default()
    ))
}

fn prepare_request(spec: &Value) -> PrepareRequest {
    let json_text = |key: &str| {
        spec.get(key)
            .map_or_else(|| "{}".to_owned(), Value::to_string)
    };
    PrepareRequest {
        action: text(spec.get("action")).unwrap_or_default(),
        grant: json_text("grant"),
        config: json_text("config"),
        model: text(spec.get("model")),
        body: body_of(spec),
        method: text(spec.get("method")).unwrap_or_else(|| "POST".into()),
        headers: headers(spec.get("headers")),
        path: text(spec.get("path")),
        timestamp: spec
            .get("timestamp")
            .and_then(Value::as_u64)
            .unwrap_or(1_700_000_000),
    }
}

fn run_case(plugin: &str, dir: &Path) -> Result<(), String> {
    let host = host();
    let spec = read(dir, "prepare.json")?.ok_or("prepare.json is missing")?;
    let prepared = host
        .prepare(plugin, prepare_request(&spec))
        .map_err(|e| format!("prepare failed: {e}"))?;
    let call = match (prepared, read(dir, "rejection.json")?) {
        (Err(r), Some(want)) => {
            let got = json!({
                "status": r.status, "code": r.code, "message": r.message,
                "details": r.details.as_deref().map(|d| as_json(d.as_bytes())),
            });
            return expect_fields("rejection", &want, &got);
        }
        (Err(r), None) => return Err(format!("unexpected rejection: {r:?}")),
        (Ok(call), Some(_)) => return Err(format!("expected a rejection, got {call:?}")),
        (Ok(call), None) => call,
    };
    let want = read(dir, "upstream.json")?.ok_or("upstream.json is missing")?;
    let mut got_headers = call.headers.clone();
    got_headers.sort();
    let mode = match call.response_mode {
        ResponseMode::Json => "json",
        ResponseMode::Sse => "sse",
        ResponseMode::Ndjson => "ndjson",
        ResponseMode::Raw => "raw",
    };
    let got = json!({
        "method": call.method, "url": call.url,
        "headers": got_headers.iter().map(|(n, v)| (n.clone(), json!(v))).collect::<Map<_, _>>(),
        "body": as_json(&call.body), "response_mode": mode,
        "charges": call.charges.iter().map(|c| json!({"quota": c.quota, "amount": c.amount})).collect::<Vec<_>>(),
    });
    let mut want = want;
    if let Some(o) = want.as_object_mut() {
        o.entry("charges").or_insert_with(|| json!([]));
        o.entry("headers").or_insert_with(|| json!({}));
        o.entry("body").or_insert(Value::Null);
    }
    same("upstream call", &want, &got)?;

    if let Some(resp) = read(dir, "response.json")? {
        let finished = host
            .finish(
                plugin,
                UpstreamResponse {
                    status: resp.get("status").and_then(Value::as_u64).unwrap_or(200) as u16,
                    headers: headers(resp.get("headers")),
                    body: body_of(&resp),
                    state: call.state.clone(),
                },
            )
            .map_err(|e| format!("finish failed: {e}"))?;
        match (
            finished,
            read(dir, "finished.json")?,
            read(dir, "failure.json")?,
        ) {
            (Ok(f), Some(want), None) => {
                let got = json!({"status": f.status, "body": as_json(&f.body), "usage": usage_json(f.usage)});
                same("finished", &want, &got)?;
            }
            (Err(f), None, Some(want)) => {
                let got = json!({
                    "status": f.status, "kind": kind_name(f.kind), "code": f.code,
                    "message": f.message, "retry_after_seconds": f.retry_after_seconds,
                });
                expect_fields("failure", &want, &got)?;
            }
            (got, _, _) => {
                return Err(format!(
                    "finish gave {got:?}, which no expectation file matches"
                ));
            }
        }
    }

    if let Some(events) = read(dir, "events.json")? {
        let want = read(dir, "chunks.json")?.ok_or("chunks.json is missing")?;
        let batch = events
            .get("batch")
            .and_then(Value::as_u64)
            .unwrap_or(2)
            .max(1) as usize;
        let list: Vec<StreamEvent> = events
            .get("events")
            .and_then(Value::as_array)
            .ok_or("events.json needs events")?
            .iter()
            .map(|e| StreamEvent {
                event: text(e.get("event")),
                data: match e.get("data") {
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => String::new(),
                },
            })
            .collect();
        let (mut state, mut chunks, mut usage, mut done) =
            (call.state.clone(), Vec::new(), None, false);
        for group in list.chunks(batch) {
            let out = host
                .translate_events(plugin, &state, group.to_vec())
                .map_err(|e| format!("translate failed: {e}"))?;
            match out {
                Ok(t) => {
                    state = t.state;
                    chunks.extend(t.chunks.iter().map(|c| as_json(c.as_bytes())));
                    usage = t.usage.or(usage);
                    done = t.done;
                    if done {
                        break;
                    }
                }
                Err(f) => {
                    let got = json!({"status": f.status, "kind": kind_name(f.kind), "code": f.code, "message": f.message});
                    let want_failure = want
                        .get("failure")
                        .ok_or(format!("unexpected stream failure {f:?}"))?;
                    return expect_fields("stream failure", want_failure, &got);
                }
            }
        }
        let got = json!({"chunks": chunks, "usage": usage_json(usage), "done": done});
        same("stream", &want, &got)?;
    }
    Ok(())
}

#[test]
fn every_plugin_case_passes() {
    let root = cases_root();
    let mut failures = Vec::new();
    let mut count = 0;
    let mut plugins: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("plugins/cases exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    plugins.sort();
    for plugin_dir in &plugins {
        let plugin = plugin_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let mut cases: Vec<PathBuf> = std::fs::read_dir(plugin_dir)
            .expect("plugin cases")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        cases.sort();
        for case in cases {
            count += 1;
            if let Err(e) = run_case(plugin, &case) {
                let name = case
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                failures.push(format!("{plugin}/{name}: {e}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    for id in pairgate_plugin_host::builtin_ids() {
        assert!(
            root.join(id).is_dir(),
            "the built-in plugin {id} has no cases"
        );
    }
    assert!(count >= 30, "only {count} cases");
}

#[test]
fn builtins_describe_themselves() {
    let host = host();
    let ids: Vec<String> = host.plugins().iter().map(|p| p.id.to_string()).collect();
    assert_eq!(
        ids,
        [
            "anthropic",
            "example",
            "gemini",
            "ollama",
            "openai",
            "openai-compatible",
            "resend"
        ]
    );
    let openai = host.describe("openai").expect("openai");
    assert_eq!(openai.hosts, ["api.openai.com"]);
    assert!(
        openai
            .models
            .iter()
            .any(|m| m.id == "gpt-4o" && m.input_price == 2_500_000)
    );
    let gemini = host.describe("gemini").expect("gemini");
    assert_eq!(
        gemini.credential,
        pairgate_plugin_host::Credential::Header("x-goog-api-key".into())
    );
    let resend = host.describe("resend").expect("resend");
    assert_eq!(
        resend.quotas[0].grant_field,
        "/resources/resend/messages_per_day"
    );
}

#[test]
fn instance_descriptors_come_from_the_configuration() {
    let host = host();
    let groq = host
        .describe_instance(
            "openai-compatible",
            r#"{"base_url": "https://api.groq.com:443/openai/v1/", "display_name": "Groq",
                "models": ["llama-3.3-70b-versatile", {"id": "mixtral", "input_price": 240000}]}"#,
        )
        .expect("valid configuration");
    assert_eq!(groq.hosts, ["api.groq.com"]);
    assert_eq!(groq.display_name, "Groq");
    assert_eq!(groq.models.len(), 2);
    assert_eq!(groq.models[1].input_price, 240_000);
    let local = host.describe_instance("ollama", "{}").expect("default");
    assert_eq!(local.hosts, ["localhost:11434"]);
    assert_eq!(local.credential, pairgate_plugin_host::Credential::None);
    let err = host
        .describe_instance("openai-compatible", r#"{"base_url": "ftp://x"}"#)
        .expect_err("refused");
    assert!(
        matches!(&err, PluginError::Rejected { rejection, .. } if rejection.code == "invalid_config"),
        "{err}"
    );
}

#[test]
fn install_refuses_a_wrong_hash() {
    let example = example_component();
    let err = host()
        .install(example, &"0".repeat(64))
        .expect_err("refused");
    assert!(matches!(err, PluginError::HashMismatch { .. }), "{err}");
}

#[test]
fn install_refuses_an_oversized_component() {
    let big = vec![0u8; HostConfig::default().third_party.max_component_bytes + 1];
    let err = host().install(&big, &sha256(&big)).expect_err("refused");
    assert!(matches!(err, PluginError::TooLarge { .. }), "{err}");
}

#[test]
fn install_refuses_what_is_not_a_component() {
    for bytes in [&b"\0asm\x01\0\0\0"[..], b"not wasm at all"] {
        let err = host().install(bytes, &sha256(bytes)).expect_err("refused");
        assert!(matches!(err, PluginError::Invalid { .. }), "{err}");
    }
}

#[test]
fn install_refuses_an_unsupported_contract_version() {
    // The example plugin, relabelled as built against a contract this host does not know.
    let from = b"pairgate:provider/plugin@0.1.0";
    let to = b"pairgate:provider/plugin@0.9.0";
    let mut bytes = example_component().to_vec();
    let mut patched = 0;
    for i in 0..bytes.len().saturating_sub(from.len()) {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
            patched += 1;
        }
    }
    assert!(patched > 0);
    let err = host()
        .install(&bytes, &sha256(&bytes))
        .expect_err("refused");
    match &err {
        PluginError::UnsupportedContract { detail, .. } => {
            assert!(detail.contains("0.9.0"), "{detail}")
        }
        other => panic!("expected an unsupported contract, got {other}"),
    }
}

#[test]
fn the_second_start_reads_compiled_code_from_the_disk_cache() {
    let dir = tempfile::tempdir().expect("temp dir");
    let example = example_component();
    let start = || {
        let host = PluginHost::new(HostConfig {
            cache_dir: Some(dir.path().to_owned()),
            ..HostConfig::default()
        })
        .expect("host starts");
        let id = host.install(example, &sha256(example)).expect("installs");
        host.info(id.as_str()).expect("info")
    };
    let first = start();
    assert!(!first.compiled_from_cache, "nothing was cached yet");
    let files = walk(dir.path());
    assert!(files > 0, "the first start wrote the cache");
    let second = start();
    assert!(
        second.compiled_from_cache,
        "the second start must hit the cache"
    );
    assert_eq!(second.sha256, sha256(example));
}

#[test]
fn an_installed_plugin_can_be_uninstalled() {
    let host = PluginHost::new(HostConfig {
        cache_dir: Some(shared_cache()),
        ..HostConfig::default()
    })
    .expect("host starts");
    let example = example_component();
    let id = host.install(example, &sha256(example)).expect("installs");
    assert_eq!(host.plugins().len(), 1);
    assert!(host.uninstall(id.as_str()));
    assert!(matches!(
        host.describe("example"),
        Err(PluginError::NotFound(_))
    ));
    assert!(host.plugins().is_empty());
}

fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
