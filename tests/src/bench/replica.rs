//! The replica configuration under the same load: a gateway on PostgreSQL with its limits in Redis.
//!
//! Several replicas share a grant's state only this way, so it is the configuration whose cost per
//! request matters once one process is not enough. Same policy (every check on), same request,
//! same closed loop as the SQLite gateway's maximum-throughput phase; Redis at 127.0.0.1:6379
//! (as the test suite's), under a namespace of its own.

use anyhow::{Result, ensure};

use super::BenchConfig;
use super::load::{self, Phase, Route, Signer};
use super::setup::{self, chat_body};
use crate::Backend;
use crate::fake::FakeProvider;

/// Through a PostgreSQL + Redis gateway (started and stopped here): an open loop at the first
/// fixed rate (its added latency, against the run's direct phase at that rate, shows what the
/// Redis round trips add before an answer), then maximum throughput.
pub async fn phases(
    http: &reqwest::Client,
    fake: &FakeProvider,
    cache_dir: &std::path::Path,
    cfg: &BenchConfig,
    policy: &serde_json::Value,
) -> Result<(Option<Phase>, Phase)> {
    let namespace = format!("bench-{}-{}", std::process::id(), crate::app::now());
    let limits = format!(
        "[limits]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\n\
         redis_namespace = \"{namespace}\"\n"
    );
    let (mut gw, _) = setup::start_gateway_on(
        http,
        fake,
        cache_dir,
        &cfg.log_level,
        Backend::Postgres,
        &limits,
    )
    .await?;
    let owner = setup::owner(&gw).await;
    let app = setup::pair_app(http, &gw, &owner, policy).await?;
    let url = gw.url("/v1/chat/completions");
    let signer = Signer {
        key: app.key,
        token: app.token,
        htu: url.clone(),
    };
    let mut via = Route::gateway(http.clone(), url, &chat_body(true, false), signer);
    via.name = "gateway (PostgreSQL + Redis)";
    let warm = load::closed_loop_count(&via, 8, cfg.warmup).await;
    ensure!(
        warm.errors == 0,
        "warm-up through the PostgreSQL + Redis gateway failed: {:?}",
        warm.sample_errors
    );
    // the gateway's own CPU only: PostgreSQL's and Redis's are not counted
    let fixed = match cfg.rates.first() {
        Some(&rate) => {
            let p = setup::cpu_during(&gw, load::open_loop(&via, rate, cfg.phase)).await?;
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            Some(p)
        }
        None => None,
    };
    let max = setup::cpu_during(
        &gw,
        load::closed_loop(&via, cfg.max_concurrency, cfg.max_duration),
    )
    .await?;
    gw.stop().await;
    Ok((fixed, max))
}
