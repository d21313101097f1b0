//! Criterion benchmark: the per-request policy work of a typical chat call (`check`, `estimate_request`, `cost_micros`).
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, criterion_group, criterion_main};
use pairgate_policy::{
    Budget, GrantPolicy, OutputMode, Prices, RequestFacts, check, cost_micros, estimate_request,
};
use serde_json::{Value, json};

const NOW: i64 = 1_767_225_600_000;

/// A policy with every kind of check set (the slowest path through `check`).
fn policy() -> GrantPolicy {
    GrantPolicy {
        providers: vec!["openai".into(), "anthropic".into()],
        models: vec![
            "openai/gpt-4o*".into(),
            "anthropic/claude-*".into(),
            "openai/text-embedding-3-*".into(),
        ],
        endpoints: vec!["chat".into(), "embeddings".into(), "models".into()],
        max_output_tokens: Some(1024),
        output_tokens_mode: OutputMode::Clamp,
        requests_per_minute: Some(60),
        token_budget: Budget {
            daily: Some(1_000_000),
            ..Default::default()
        },
        not_before: Some(NOW - 86_400_000),
        expires_at: Some(NOW + 86_400_000),
        source_ips: vec![
            "10.0.0.0/8".into(),
            "192.168.0.0/16".into(),
            "127.0.0.1".into(),
        ],
        ..GrantPolicy::default()
    }
}

/// A typical chat body: a system prompt, a short exchange and a question.
fn body() -> Value {
    json!({
        "model": "openai/gpt-4o-mini",
        "max_tokens": 4000,
        "temperature": 0.2,
        "messages": [
            { "role": "system", "content": "You are a concise assistant. Answer in at most three sentences and cite no sources." },
            { "role": "user", "content": "What is the capital of France?" },
            { "role": "assistant", "content": "Paris is the capital of France." },
            { "role": "user", "content": "And roughly how many people live there, city proper and metro area?" }
        ]
    })
}

fn facts() -> RequestFacts<'static> {
    RequestFacts {
        provider: "openai",
        model: Some("gpt-4o-mini"),
        endpoint: "chat",
        stream: true,
        has_tools: false,
        has_images: false,
        requested_max_tokens: Some(4000),
        source_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        now_ms: NOW,
    }
}

fn bench(c: &mut Criterion) {
    let policy = policy();
    let body = body();
    let facts = facts();
    let prices = Prices {
        input_per_million_micros: 150_000,
        output_per_million_micros: 600_000,
        cached_input_per_million_micros: Some(75_000),
    };
    c.bench_function("policy/check", |b| {
        b.iter(|| check(black_box(&policy), black_box(&facts)))
    });
    c.bench_function("policy/estimate_request", |b| {
        b.iter(|| estimate_request(black_box(&body), Some(1024), 4096))
    });
    let usage = estimate_request(&body, Some(1024), 4096);
    c.bench_function("policy/cost_micros", |b| {
        b.iter(|| cost_micros(black_box(&prices), black_box(&usage)))
    });
    c.bench_function("policy/per_request", |b| {
        b.iter(|| {
            let allowed = check(black_box(&policy), black_box(&facts)).ok();
            let max = allowed.and_then(|a| a.max_tokens);
            let usage = estimate_request(black_box(&body), max, 4096);
            cost_micros(black_box(&prices), &usage)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
