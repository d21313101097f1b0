//! `pairgate-bench`: runs the end-to-end benchmark and writes its report (Markdown and JSON).
//!
//! `cargo xtask bench` builds it and the gateway in release mode and runs it; `--smoke` runs a
//! few seconds of each phase (CI checks the benchmark works that way, through the e2e suite).
#![allow(
    clippy::print_stdout,
    reason = "a command-line edge: the report goes to stdout"
)]

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use pairgate_tests::bench::{self, BenchConfig};

#[tokio::main]
async fn main() -> Result<()> {
    let mut cfg = BenchConfig::full();
    let mut out = PathBuf::from("target/bench");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--smoke" => {
                cfg = BenchConfig {
                    log_level: cfg.log_level,
                    ..BenchConfig::smoke()
                }
            }
            "--out" => out = args.next().context("--out needs a directory")?.into(),
            "--log-level" => cfg.log_level = args.next().context("--log-level needs a filter")?,
            "--perf" => cfg.perf = Some(args.next().context("--perf needs a file")?.into()),
            "--perf-rate" => {
                cfg.perf_rate = Some(
                    args.next()
                        .context("--perf-rate needs a rate of --rates")?
                        .parse()?,
                )
            }
            "--rates" => {
                cfg.rates = args
                    .next()
                    .context("--rates needs a list such as 500,1000,2000")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            "--phase-secs" => {
                let secs: f64 = args
                    .next()
                    .context("--phase-secs needs a number")?
                    .parse()?;
                cfg.phase = std::time::Duration::from_secs_f64(secs);
                cfg.max_duration = cfg.phase;
            }
            "--grants" => {
                cfg.grants = args.next().context("--grants needs a number")?.parse()?;
            }
            other => bail!(
                "unknown argument {other}; usage: pairgate-bench [--smoke] [--out DIR] [--log-level FILTER] [--grants N] [--rates R1,R2,..] [--phase-secs S] [--perf FILE [--perf-rate R]]"
            ),
        }
    }
    let report = bench::run(&cfg).await?;
    let markdown = report.markdown();
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let name = if cfg.smoke { "smoke" } else { "report" };
    let md = out.join(format!("{name}.md"));
    let json = out.join(format!("{name}.json"));
    std::fs::write(&md, &markdown).with_context(|| format!("writing {}", md.display()))?;
    std::fs::write(&json, serde_json::to_string_pretty(&report.json())?)
        .with_context(|| format!("writing {}", json.display()))?;
    println!("{markdown}");
    println!("report written to {} and {}", md.display(), json.display());
    Ok(())
}
