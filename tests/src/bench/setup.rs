//! The benchmark's scene: the fake provider on a runtime of its own, a `pairgate serve` timed to
//! `/readyz`, the owner, apps paired through the admin API and `/oauth/token` (the same path a
//! real app takes) under a policy with every check on, and RSS readings from `/proc`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use pairgate_protocol::keys::{KeyKind, SigningKey};
use serde_json::{Value, json};

use super::load;
use crate::fake::FakeProvider;
use crate::gateway::run_cli;
use crate::owner::OwnerSession;
use crate::{Backend, Gateway};

/// The model every benchmark request names.
pub const MODEL: &str = "gpt-4o-mini";

/// The fake provider, served by a one-worker runtime on its own thread so the load generator's
/// runtime does not also serve it.
#[derive(Debug)]
pub struct FakeHost {
    pub fake: FakeProvider,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeHost {
    pub fn start() -> Result<FakeHost> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fake-provider".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                };
                rt.block_on(async move {
                    let fake = FakeProvider::start().await;
                    fake.stop_recording();
                    let _ = tx.send(Ok(fake));
                    let _ = stopped.await;
                });
            })
            .context("spawning the fake provider's thread")?;
        let fake = rx
            .recv()
            .context("the fake provider's thread ended")?
            .map_err(anyhow::Error::msg)?;
        Ok(FakeHost {
            fake,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for FakeHost {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A policy with every check the gateway has switched on, each set far above what the benchmark
/// sends so none refuses a request: provider, model and endpoint lists, output cap, streaming,
/// validity window, source addresses, body digest in every proof, request and token rates,
/// concurrency, token and cost budgets in every window.
pub fn every_check_policy(now_ms: i64) -> Value {
    let big = 1_000_000_000_000_u64;
    json!({
        "providers": ["openai"],
        "models": [format!("openai/{MODEL}")],
        "endpoints": ["chat"],
        "max_output_tokens": 1024,
        "output_tokens_mode": "clamp",
        "allow_streaming": true,
        "requests_per_minute": 6_000_000,
        "requests_per_day": 2_000_000_000,
        "tokens_per_minute": big,
        "max_concurrent": 100_000,
        "token_budget": { "daily": big, "monthly": big, "lifetime": big },
        "cost_budget_micros": { "daily": big, "monthly": big, "lifetime": big },
        "not_before": now_ms - 86_400_000,
        "expires_at": now_ms + 7 * 86_400_000,
        "source_ips": ["127.0.0.0/8", "::1"],
        "require_body_hash": true
    })
}

/// The chat body both paths send (the gateway's names the provider).
pub fn chat_body(via_gateway: bool, stream: bool) -> Vec<u8> {
    let model = if via_gateway {
        format!("openai/{MODEL}")
    } else {
        MODEL.to_string()
    };
    let mut body = json!({
        "model": model,
        "max_tokens": 64,
        "messages": [
            { "role": "system", "content": "You are a terse assistant." },
            { "role": "user", "content": "Say hello to the benchmark." }
        ]
    });
    if stream {
        body["stream"] = json!(true);
    }
    body.to_string().into_bytes()
}

/// Polls `/readyz` until it answers 200.
pub async fn wait_ready(http: &reqwest::Client, gw: &Gateway) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(res) = http.get(gw.url("/readyz")).send().await
            && res.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the gateway was not ready within 120 s; logs:\n{}",
                gw.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Starts a gateway wired to the fake with `cache_dir` as its plugin cache; returns it and the
/// time from spawning the process to `/readyz` answering 200.
pub async fn start_gateway(
    http: &reqwest::Client,
    fake: &FakeProvider,
    cache_dir: &std::path::Path,
    log_level: &str,
) -> Result<(Gateway, Duration)> {
    start_gateway_on(http, fake, cache_dir, log_level, Backend::Sqlite, "").await
}

/// [`start_gateway`] on `backend`, with `extra_config` (TOML tables) added.
pub async fn start_gateway_on(
    http: &reqwest::Client,
    fake: &FakeProvider,
    cache_dir: &std::path::Path,
    log_level: &str,
    backend: Backend,
    extra_config: &str,
) -> Result<(Gateway, Duration)> {
    let builder = Gateway::builder(backend)
        .config(crate::providers::fake_config(fake, extra_config))
        .env(
            "PAIRGATE_PLUGINS__CACHE_DIR",
            cache_dir.display().to_string(),
        )
        .env("PAIRGATE_LOG_LEVEL", log_level)
        // Every app is paired from this one address, thousands a minute: far beyond what the
        // per-address limit of the open OAuth endpoints allows a real client.
        .env("PAIRGATE_OAUTH__CLIENT_REQUESTS_PER_MINUTE", "100000000");
    // The gateway's runtime size, when the benchmark is asked to compare them (tokio reads
    // `TOKIO_WORKER_THREADS`; the benchmark's own runtime keeps its default).
    let builder = match std::env::var("PAIRGATE_BENCH_GATEWAY_WORKERS") {
        Ok(n) => builder.env("TOKIO_WORKER_THREADS", n),
        Err(_) => builder,
    };
    let started = Instant::now();
    let gw = builder.start().await;
    wait_ready(http, &gw).await?;
    let elapsed = started.elapsed();
    let (code, _, err) = run_cli(
        &gw,
        &["credential", "add", "openai"],
        Some(&format!("{}\n", crate::providers::test_key("openai"))),
    )
    .await;
    if code != 0 {
        bail!("credential add openai failed: {err}");
    }
    Ok((gw, elapsed))
}

/// Restarts the gateway (same data dir, now warm plugin cache); returns the time to ready.
pub async fn restart_timed(http: &reqwest::Client, gw: &mut Gateway) -> Result<Duration> {
    gw.stop().await;
    let started = Instant::now();
    gw.restart().await;
    wait_ready(http, gw).await?;
    Ok(started.elapsed())
}

/// Resident memory of a process from `/proc/<pid>/status`: (VmRSS, VmHWM) in KiB.
pub fn rss_kib(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU time (user + system, all threads) process `pid` has used so far: `/proc/PID/stat`, in
/// clock ticks of 10 ms.
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // the fields after the command name, which is in parentheses and may hold spaces
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime, fields 14 and 15 of the line: the 12th and 13th after `comm`
    let ticks = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no field {i} in /proc/{pid}/stat"))
    };
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

/// Context switches (voluntary and not) of the threads process `pid` has now: a thread that
/// ended takes its count with it.
pub fn context_switches(pid: u32) -> load::Switches {
    let mut total = load::Switches::default();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return total;
    };
    for status in tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
    {
        let name = status
            .lines()
            .find_map(|l| l.strip_prefix("Name:"))
            .map_or("", str::trim);
        let n: u64 = status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum();
        // thread names are cut to 15 bytes: `tokio-rt-worker`, `sqlx-sqlite-wor(ker)`
        if name.starts_with("tokio-rt-worker") || name.starts_with("pairgate-http") {
            total.workers += n;
        } else if name.starts_with("sqlx-sqlite") {
            total.sqlite += n;
        } else {
            total.other += n;
        }
    }
    total
}

/// Runs a load phase against `gw` and records the CPU time and the context switches the gateway
/// had meanwhile.
pub async fn cpu_during(
    gw: &Gateway,
    phase: impl std::future::Future<Output = load::Phase>,
) -> Result<load::Phase> {
    let pid = gw.pid().context("the gateway is not running")?;
    let before = cpu_time(pid)?;
    let switches = context_switches(pid);
    let mut p = phase.await;
    p.gateway_cpu = Some(cpu_time(pid)?.saturating_sub(before));
    p.gateway_switches = Some(context_switches(pid).since(switches));
    Ok(p)
}

/// The gateway's (VmRSS, VmHWM) in KiB.
pub fn gateway_rss(gw: &Gateway) -> Result<(u64, u64)> {
    rss_kib(gw.pid().context("the gateway is not running")?)
}

/// A paired app as the benchmark holds it.
#[derive(Debug)]
pub struct PairedApp {
    pub key: SigningKey,
    pub token: String,
}

/// The owner's session over the admin API (created with the CLI, password on stdin).
pub async fn owner(gw: &Gateway) -> OwnerSession {
    crate::owner::create_owner(gw).await;
    crate::owner::login(gw).await
}

/// Pairs one app: the owner creates a pairing with `policy` over the admin API, and the app
/// redeems it at `/oauth/token` with a DPoP proof from a key it just generated.
pub async fn pair_app(
    http: &reqwest::Client,
    gw: &Gateway,
    owner: &OwnerSession,
    policy: &Value,
) -> Result<PairedApp> {
    pair_app_at(http, &gw.base_url, owner, policy).await
}

/// Pairs `n` apps, `concurrency` at a time; returns them and how long it took.
pub async fn pair_many(
    http: &reqwest::Client,
    gw: &Gateway,
    owner: &OwnerSession,
    policy: &Value,
    n: usize,
    concurrency: usize,
) -> Result<(Vec<PairedApp>, Duration)> {
    let started = Instant::now();
    let mut apps = Vec::with_capacity(n);
    let mut set = tokio::task::JoinSet::new();
    let mut next = 0;
    // Each task pairs a contiguous share of the apps.
    let per = n.div_ceil(concurrency.max(1));
    while next < n {
        let count = per.min(n - next);
        next += count;
        let (http, owner, policy) = (http.clone(), owner.clone(), policy.clone());
        let base = gw.base_url.clone();
        set.spawn(async move {
            let mut out = Vec::with_capacity(count);
            for _ in 0..count {
                out.push(pair_app_at(&http, &base, &owner, &policy).await?);
            }
            Ok::<_, anyhow::Error>(out)
        });
    }
    while let Some(done) = set.join_next().await {
        apps.extend(done.context("a pairing task panicked")??);
    }
    Ok((apps, started.elapsed()))
}

/// [`pair_app`] against a base URL (tasks pairing in bulk do not hold the `Gateway`).
async fn pair_app_at(
    http: &reqwest::Client,
    base: &str,
    owner: &OwnerSession,
    policy: &Value,
) -> Result<PairedApp> {
    let res = http
        .post(format!("{base}/admin/api/pairings"))
        .header("cookie", &owner.cookie)
        .header("x-csrf-token", &owner.csrf)
        .json(&json!({ "app_name": "bench app", "ttl_secs": 600, "policy": policy }))
        .send()
        .await
        .context("creating a pairing")?;
    let status = res.status();
    let created: Value = res.json().await.context("reading the pairing")?;
    let Some(code) = created["pairing_string"].as_str() else {
        bail!("creating a pairing answered {status}: {created}");
    };
    let key = SigningKey::generate(KeyKind::Ed25519, &mut rand_core::OsRng);
    let url = format!("{base}/oauth/token");
    let proof = crate::app::proof(&key, "POST", &url, None, None);
    let res = http
        .post(&url)
        .header("dpop", proof)
        .form(&[
            ("grant_type", pairgate_protocol::oauth::GRANT_TYPE_PAIRING),
            ("pairing_code", code),
        ])
        .send()
        .await
        .context("redeeming a pairing")?;
    let status = res.status();
    let body: Value = res.json().await.context("reading the token response")?;
    let Some(token) = body["access_token"].as_str() else {
        bail!("redeeming a pairing answered {status}: {body}");
    };
    Ok(PairedApp {
        key,
        token: token.to_string(),
    })
}

/// Starts `perf record` (call graphs, 999 Hz) on the gateway for `duration`.
pub fn perf_record(
    gw: &Gateway,
    file: &std::path::Path,
    duration: Duration,
) -> Result<tokio::process::Child> {
    let pid = gw.pid().context("the gateway is not running")?;
    let custom = std::env::var("PAIRGATE_BENCH_PERF_ARGS").ok();
    tokio::process::Command::new("perf")
        .args(
            match (&custom, std::env::var("PAIRGATE_BENCH_PERF_SWITCHES")) {
                (Some(a), _) => a.split_whitespace().chain(["-p"]).collect(),
                (None, Ok(_)) => vec!["record", "-e", "sched:sched_switch", "-g", "-p"],
                (None, Err(_)) => vec!["record", "-F", "999", "-g", "-p"],
            },
        )
        .args([pid.to_string().as_str(), "-o"])
        .arg(file)
        .args(["--", "sleep", &format!("{:.1}", duration.as_secs_f64())])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("running perf (install it with: apt-get install linux-perf)")
}

/// One server-side timing from the gateway's `/metrics`: its series, how many observations,
/// and their mean.
#[derive(Debug, Clone)]
pub struct ServerTiming {
    pub series: String,
    pub count: u64,
    pub mean: Duration,
}

/// The means of the gateway's request, upstream and plugin timings (Prometheus `_sum` over
/// `_count`), for the report's "where the time goes".
pub async fn server_timings(http: &reqwest::Client, gw: &Gateway) -> Result<Vec<ServerTiming>> {
    let text = http
        .get(gw.url("/metrics"))
        .bearer_auth(crate::gateway::METRICS_TOKEN)
        .send()
        .await
        .context("scraping /metrics")?
        .text()
        .await
        .context("reading /metrics")?;
    let mut sums = std::collections::BTreeMap::<String, f64>::new();
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let labels = labels.trim_end_matches('}');
        let key = |base: &str| format!("{base}{{{labels}}}");
        if let Some(base) = name.strip_suffix("_sum") {
            sums.insert(key(base), value.parse().unwrap_or(0.0));
        } else if let Some(base) = name.strip_suffix("_count") {
            counts.insert(key(base), value.parse().unwrap_or(0));
        }
    }
    Ok(sums
        .into_iter()
        .filter(|(k, _)| k.starts_with("pairgate_"))
        .filter_map(|(series, sum)| {
            let count = *counts.get(&series)?;
            (count > 0).then(|| ServerTiming {
                mean: Duration::from_secs_f64(sum / count as f64),
                series,
                count,
            })
        })
        .collect())
}
