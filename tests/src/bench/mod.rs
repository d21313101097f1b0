//! The end-to-end benchmark (docs/benchmarks.md): a fake provider, a real `pairgate serve` with a
//! grant whose policy has every check on, and a load generator that signs each request like an
//! app; every figure is set against the same load sent straight to the fake, and through an nginx
//! reverse proxy (one hop, the key injected), at the same moment.
//!
//! Run it with `cargo xtask bench` (release build, full run, report in `target/bench/`) or
//! `cargo xtask bench --smoke` (debug build, seconds). The e2e test `bench` runs the smoke mode.

pub mod load;
pub mod nginx;
pub mod replica;
pub mod report;
pub mod setup;

use std::time::Duration;

use anyhow::{Context, Result};

use crate::fake::Behaviour;
use load::{Phase, Route, Signer, StreamPhase};
use report::{Report, Startup};
use setup::{FakeHost, chat_body, every_check_policy};

/// How much load, and for how long.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub smoke: bool,
    /// Open-loop rates of the fixed-rate phases (requests per second).
    pub rates: Vec<u32>,
    /// Length of each fixed-rate phase, per route.
    pub phase: Duration,
    /// Requests per route before measuring (connections, caches).
    pub warmup: usize,
    /// Workers of the maximum-throughput phase, and its length.
    pub max_concurrency: usize,
    pub max_duration: Duration,
    /// Streamed requests per route, their rate, and the fake's chunks and interval.
    pub stream_requests: usize,
    pub stream_rate: u32,
    pub stream_chunks: usize,
    pub stream_interval: Duration,
    /// Paired grants for the memory reading (each sends one request).
    pub grants: usize,
    /// The gateway's `log_level` (`info` logs a line per request).
    pub log_level: String,
    /// Measure a cold start (empty plugin cache: every plugin compiled). The smoke mode uses the
    /// test suite's warm cache instead: a debug build compiles plugins too slowly for a test.
    pub cold_start: bool,
    /// Record a `perf` profile of the gateway during its maximum-throughput phase into this file.
    pub perf: Option<std::path::PathBuf>,
    /// Record it during the gateway's fixed-rate phase at this rate instead.
    pub perf_rate: Option<u32>,
}

impl BenchConfig {
    /// The documented full run (a few minutes on two cores).
    pub fn full() -> BenchConfig {
        BenchConfig {
            smoke: false,
            rates: vec![500, 1000, 2000],
            phase: Duration::from_secs(10),
            warmup: 1000,
            max_concurrency: 32,
            max_duration: Duration::from_secs(10),
            stream_requests: 100,
            stream_rate: 10,
            stream_chunks: 20,
            stream_interval: Duration::from_millis(20),
            grants: 10_000,
            log_level: "warn,pairgate::http::serve=info".into(),
            cold_start: true,
            perf: None,
            perf_rate: None,
        }
    }

    /// Seconds: checks every phase works, measures nothing worth quoting.
    pub fn smoke() -> BenchConfig {
        BenchConfig {
            smoke: true,
            rates: vec![100],
            phase: Duration::from_millis(1000),
            warmup: 20,
            max_concurrency: 4,
            max_duration: Duration::from_millis(1000),
            stream_requests: 5,
            stream_rate: 10,
            stream_chunks: 5,
            stream_interval: Duration::from_millis(5),
            grants: 20,
            log_level: "warn,pairgate::http::serve=info".into(),
            cold_start: false,
            perf: None,
            perf_rate: None,
        }
    }
}

/// Runs the whole benchmark and returns its figures.
pub async fn run(cfg: &BenchConfig) -> Result<Report> {
    let host = FakeHost::start()?;
    let fake = &host.fake;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    let machine = report::Machine::read();
    let proxy = nginx::Nginx::start(
        fake.url().trim_start_matches("http://"),
        &crate::providers::test_key("openai"),
    )
    .await?;

    // Start-up: cold (new data dir, empty plugin cache: every plugin is compiled), then warm
    // (restart on the same data dir, plugins loaded from the cache).
    let cache = tempfile::tempdir().context("plugin cache dir")?;
    let cache_dir = if cfg.cold_start {
        cache.path().to_path_buf()
    } else {
        crate::gateway::shared_plugin_cache()
    };
    let (mut gw, first) = setup::start_gateway(&http, fake, &cache_dir, &cfg.log_level).await?;
    let warm = setup::restart_timed(&http, &mut gw).await?;
    let startup = Startup {
        cold: cfg.cold_start.then_some(first),
        warm,
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = setup::gateway_rss(&gw)?;

    let owner = setup::owner(&gw).await;
    let policy = every_check_policy(crate::app::now() * 1000);
    let app = setup::pair_app(&http, &gw, &owner, &policy).await?;
    let gateway_url = gw.url("/v1/chat/completions");
    let signer = Signer {
        key: app.key,
        token: app.token,
        htu: gateway_url.clone(),
    };
    let via = Route::gateway(http.clone(), gateway_url, &chat_body(true, false), signer);
    let direct = Route::direct(
        http.clone(),
        format!("{}/v1/chat/completions", fake.url()),
        &chat_body(false, false),
        &crate::providers::test_key("openai"),
    );

    let hop = Route::nginx(
        http.clone(),
        format!("{}/v1/chat/completions", proxy.url),
        &chat_body(false, false),
    );

    // Warm-up: connections, the grant's limiter state, allocator pools.
    for route in [&direct, &hop, &via] {
        let p = load::closed_loop_count(route, 8, cfg.warmup).await;
        anyhow::ensure!(
            p.errors == 0,
            "warm-up through {} failed: {:?}",
            route.name,
            p.sample_errors
        );
    }

    let mut fixed: Vec<(Phase, Phase)> = Vec::new();
    let mut nginx_fixed: Vec<Phase> = Vec::new();
    for &rate in &cfg.rates {
        let d = load::open_loop(&direct, rate, cfg.phase).await;
        settle().await;
        nginx_fixed.push(load::open_loop(&hop, rate, cfg.phase).await);
        settle().await;
        let profiler = match (&cfg.perf, cfg.perf_rate) {
            (Some(file), Some(r)) if r == rate => Some(setup::perf_record(&gw, file, cfg.phase)?),
            _ => None,
        };
        let g = setup::cpu_during(&gw, load::open_loop(&via, rate, cfg.phase)).await?;
        if let Some(p) = profiler {
            perf_done(p).await?;
        }
        settle().await;
        fixed.push((d, g));
    }
    let max_direct = load::closed_loop(&direct, cfg.max_concurrency, cfg.max_duration).await;
    settle().await;
    let nginx_max = load::closed_loop(&hop, cfg.max_concurrency, cfg.max_duration).await;
    settle().await;
    proxy.stop().await;
    let profiler = match (&cfg.perf, cfg.perf_rate) {
        (Some(file), None) => Some(setup::perf_record(&gw, file, cfg.max_duration)?),
        _ => None,
    };
    let max_gateway = setup::cpu_during(
        &gw,
        load::closed_loop(&via, cfg.max_concurrency, cfg.max_duration),
    )
    .await?;
    if let Some(p) = profiler {
        perf_done(p).await?;
    }
    settle().await;
    let (replica_fixed, replica_max) =
        replica::phases(&http, fake, &cache_dir, cfg, &policy).await?;
    settle().await;

    fake.set(Behaviour {
        chunks: cfg.stream_chunks,
        chunk_interval: cfg.stream_interval,
        ..Behaviour::default()
    });
    let stream_direct = direct.with_body(&chat_body(false, true));
    let stream_via = via.with_body(&chat_body(true, true));
    let sd: StreamPhase = load::stream(&stream_direct, cfg.stream_requests, cfg.stream_rate).await;
    let sg: StreamPhase = load::stream(&stream_via, cfg.stream_requests, cfg.stream_rate).await;
    fake.set(Behaviour::default());
    let rss_load = setup::gateway_rss(&gw)?;

    // Many grants: pair them all (admin API + /oauth/token), then each sends one request.
    let (apps, pairing_time) = setup::pair_many(&http, &gw, &owner, &policy, cfg.grants, 8).await?;
    let rss_grants_idle = setup::gateway_rss(&gw)?;
    let signers = apps
        .into_iter()
        .map(|a| Signer {
            key: a.key,
            token: a.token,
            htu: via.url.clone(),
        })
        .collect();
    let grants_phase = load::each_app_once(&via, signers, 16).await;
    let rss_grants_load = setup::gateway_rss(&gw)?;
    let ledger_rows = report::ledger_rows(&gw).await;
    let server_timings = setup::server_timings(&http, &gw).await?;
    gw.stop().await;

    Ok(Report {
        smoke: cfg.smoke,
        config: cfg.clone(),
        machine: machine.finish(),
        binary: crate::gateway::binary().display().to_string(),
        startup,
        rss_idle,
        rss_load,
        rss_grants_idle,
        rss_grants_load,
        grants: cfg.grants,
        pairing_time,
        grants_phase,
        fixed,
        max: (max_direct, max_gateway),
        replica_fixed,
        replica_max,
        nginx: report::NginxPhases {
            fixed: nginx_fixed,
            max: nginx_max,
        },
        stream: (sd, sg),
        ledger_rows,
        server_timings,
    })
}

/// Waits for `perf record` to end and fails if it did.
async fn perf_done(p: tokio::process::Child) -> Result<()> {
    let status = p.wait_with_output().await.context("waiting for perf")?;
    anyhow::ensure!(
        status.status.success(),
        "perf record failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    Ok(())
}

/// A pause between phases so one phase's tail does not land in the next.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}
