//! The benchmark's report: the machine it ran on, every phase's figures, the added latency and
//! throughput against the direct path, the targets met or missed, as Markdown and JSON.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use super::BenchConfig;
use super::load::{Phase, StreamPhase};
use crate::Gateway;

/// Where the benchmark ran.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory: String,
    pub kernel: String,
    pub load_before: String,
    pub load_after: String,
    pub date: String,
}

fn proc_text(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn loadavg() -> String {
    proc_text("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = proc_text("/proc/cpuinfo");
        let field = |text: &str, name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_else(|| "unknown".into())
        };
        let date = std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: field(&cpuinfo, "model name"),
            memory: field(&proc_text("/proc/meminfo"), "MemTotal"),
            kernel: proc_text("/proc/sys/kernel/osrelease").trim().to_string(),
            load_before: loadavg(),
            load_after: String::new(),
            date,
        }
    }

    /// Notes the load average at the end of the run.
    pub fn finish(mut self) -> Machine {
        self.load_after = loadavg();
        self
    }
}

/// Process spawn to `/readyz` answering 200.
#[derive(Debug, Clone, Copy)]
pub struct Startup {
    /// New data dir, empty plugin cache (every built-in plugin compiled); not measured in smoke mode.
    pub cold: Option<Duration>,
    /// Restart on the same data dir with the plugin cache filled.
    pub warm: Duration,
}

/// The nginx one-hop baseline's phases, run beside the direct and gateway ones.
#[derive(Debug)]
pub struct NginxPhases {
    /// One per fixed rate, in the order of `Report::fixed`.
    pub fixed: Vec<Phase>,
    pub max: Phase,
}

/// Everything one run measured.
#[derive(Debug)]
pub struct Report {
    pub smoke: bool,
    pub config: BenchConfig,
    pub machine: Machine,
    pub binary: String,
    pub startup: Startup,
    /// (VmRSS, VmHWM) in KiB at each point.
    pub rss_idle: (u64, u64),
    pub rss_load: (u64, u64),
    pub rss_grants_idle: (u64, u64),
    pub rss_grants_load: (u64, u64),
    pub grants: usize,
    pub pairing_time: Duration,
    pub grants_phase: Phase,
    /// (direct, gateway) per fixed rate.
    pub fixed: Vec<(Phase, Phase)>,
    pub max: (Phase, Phase),
    /// The first fixed rate's phase through a gateway on PostgreSQL + Redis.
    pub replica_fixed: Option<Phase>,
    /// The same maximum-throughput phase through a gateway on PostgreSQL + Redis.
    pub replica_max: Phase,
    pub nginx: NginxPhases,
    pub stream: (StreamPhase, StreamPhase),
    /// Rows in the gateway's usage ledger at the end (`None` if it could not be read).
    pub ledger_rows: Option<u64>,
    /// Mean server-side timings from `/metrics` over the whole run.
    pub server_timings: Vec<super::setup::ServerTiming>,
}

/// Rows in the usage ledger of a SQLite-backed gateway.
pub async fn ledger_rows(gw: &Gateway) -> Option<u64> {
    use sqlx::Connection;
    gw.ledger_settled().await;
    let path = gw.data_dir().join("pairgate.db");
    let url = format!("sqlite://{}?mode=ro", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.ok()?;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_ledger")
        .fetch_one(&mut conn)
        .await
        .ok()?;
    u64::try_from(n).ok()
}

const QUANTILES: [(f64, &str); 4] = [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p99.9")];

fn q(h: &hdrhistogram::Histogram<u64>, quantile: f64) -> i64 {
    i64::try_from(h.value_at_quantile(quantile)).unwrap_or(i64::MAX)
}

/// Microseconds, shown as µs or ms.
fn us(v: i64) -> String {
    if v.abs() >= 10_000 {
        format!("{:.1} ms", v as f64 / 1000.0)
    } else {
        format!("{v} µs")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

impl Report {
    /// Gateway minus direct at each quantile, in µs, for one fixed-rate pair.
    pub fn added(direct: &Phase, gateway: &Phase) -> Vec<i64> {
        QUANTILES
            .iter()
            .map(|(quantile, _)| q(&gateway.latency, *quantile) - q(&direct.latency, *quantile))
            .collect()
    }

    /// Gateway throughput over direct throughput at maximum load.
    pub fn throughput_fraction(&self) -> f64 {
        self.max.1.throughput() / self.max.0.throughput().max(1e-9)
    }

    /// PostgreSQL + Redis throughput over SQLite's at maximum load.
    pub fn replica_fraction(&self) -> f64 {
        self.replica_max.throughput() / self.max.1.throughput().max(1e-9)
    }

    /// Gateway throughput over the nginx hop's at maximum load.
    pub fn nginx_fraction(&self) -> f64 {
        self.max.1.throughput() / self.nginx.max.throughput().max(1e-9)
    }

    /// The nginx phase at the same rate as `direct`.
    fn nginx_at(&self, direct: &Phase) -> Option<&Phase> {
        self.nginx.fixed.iter().find(|n| n.rate == direct.rate)
    }

    /// Added time to first chunk at p50 and p99 (µs).
    pub fn added_first_chunk(&self) -> (i64, i64) {
        let (d, g) = &self.stream;
        (
            q(&g.first_chunk, 0.5) - q(&d.first_chunk, 0.5),
            q(&g.first_chunk, 0.99) - q(&d.first_chunk, 0.99),
        )
    }

    /// Chunk timing is preserved when the gateway's median gap between events is within 1 ms of
    /// the direct path's and it merges no more events into one read than the direct path does.
    pub fn timing_preserved(&self) -> bool {
        let (d, g) = &self.stream;
        (q(&g.gaps, 0.5) - q(&d.gaps, 0.5)).abs() <= 1000 && g.coalesced <= d.coalesced + 0.05
    }

    /// Every error of every phase.
    pub fn errors(&self) -> u64 {
        let fixed: u64 = self.fixed.iter().map(|(d, g)| d.errors + g.errors).sum();
        let nginx: u64 = self.nginx.fixed.iter().map(|n| n.errors).sum();
        fixed
            + nginx
            + self.nginx.max.errors
            + self.max.0.errors
            + self.max.1.errors
            + self.replica_max.errors
            + self.replica_fixed.as_ref().map_or(0, |p| p.errors)
            + self.stream.0.errors
            + self.stream.1.errors
            + self.grants_phase.errors
    }

    /// The fixed-rate pair at `rate`, or the first one.
    fn at_rate(&self, rate: u32) -> Option<&(Phase, Phase)> {
        self.fixed
            .iter()
            .find(|(_, g)| g.rate == Some(rate))
            .or(self.fixed.first())
    }

    fn latency_row(out: &mut String, p: &Phase) {
        let _ = write!(
            out,
            "| {} | {} | {} | {} | {} | {:.0} |",
            p.rate.map_or("max".into(), |r| r.to_string()),
            p.route,
            p.sent,
            p.ok,
            p.errors,
            p.throughput()
        );
        for (quantile, _) in QUANTILES {
            let _ = write!(out, " {} |", us(q(&p.latency, quantile)));
        }
        let _ = writeln!(out, " {} |", us(q(&p.latency, 1.0)));
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let m = &self.machine;
        let _ = writeln!(
            o,
            "# pairgate end-to-end benchmark{}\n",
            if self.smoke {
                " (smoke mode: figures not meaningful)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            o,
            "- When: {}\n- Machine: {} CPUs ({}), {} RAM, Linux {}; load average {} before, {} after \
             (load generator, fake provider and gateway share these CPUs)\n- Gateway binary: `{}`, \
             SQLite, log level `{}`\n- Policy: every check on (providers, models, endpoints, output cap, \
             validity window, source addresses, body digest in each proof, request and token rates, \
             concurrency, token and cost budgets per day/month/lifetime), the openai plugin, the ledger\n",
            m.date,
            m.cpus,
            m.cpu_model,
            m.memory,
            m.kernel,
            m.load_before,
            m.load_after,
            self.binary,
            self.config.log_level
        );
        let _ = writeln!(
            o,
            "## Non-streamed chat, open loop ({} s per route and rate)\n",
            self.config.phase.as_secs_f64()
        );
        let _ = writeln!(
            o,
            "Latency from each request's scheduled send time to its last body byte.\n\n\
             | rate (req/s) | route | sent | ok | errors | achieved req/s | p50 | p90 | p99 | p99.9 | max |\n\
             |---|---|---|---|---|---|---|---|---|---|---|"
        );
        for (d, g) in &self.fixed {
            Self::latency_row(&mut o, d);
            if let Some(n) = self.nginx_at(d) {
                Self::latency_row(&mut o, n);
            }
            Self::latency_row(&mut o, g);
        }
        let _ = writeln!(
            o,
            "\nAdded latency (route minus direct, same quantile):\n\n\
             | rate (req/s) | route | p50 | p90 | p99 | p99.9 |\n|---|---|---|---|---|---|"
        );
        for (d, g) in &self.fixed {
            let rows = self
                .nginx_at(d)
                .map(|n| ("nginx", Self::added(d, n)))
                .into_iter()
                .chain([("gateway", Self::added(d, g))]);
            for (route, added) in rows {
                let _ = writeln!(
                    o,
                    "| {} | {route} | {} |",
                    d.rate.unwrap_or(0),
                    added.iter().map(|v| us(*v)).collect::<Vec<_>>().join(" | ")
                );
            }
        }
        let (md, mg) = &self.max;
        let _ = writeln!(
            o,
            "\n## Maximum throughput (closed loop, {} workers, {} s per route)\n\n\
             | rate | route | sent | ok | errors | req/s | p50 | p90 | p99 | p99.9 | max |\n\
             |---|---|---|---|---|---|---|---|---|---|---|",
            self.config.max_concurrency,
            self.config.max_duration.as_secs_f64()
        );
        Self::latency_row(&mut o, md);
        Self::latency_row(&mut o, &self.nginx.max);
        Self::latency_row(&mut o, mg);
        Self::latency_row(&mut o, &self.replica_max);
        let _ = writeln!(
            o,
            "\nGateway throughput: {:.1} % of direct and {:.1} % of the nginx hop (nginx: {:.1} % of \
             direct). Each gateway request carried a fresh proof signed before the phase (mean {:.1} \
             µs per proof, Ed25519), so the app's signing did not take the CPUs the routes share (requests signed inline \
             after those ran out: {}).\n",
            self.throughput_fraction() * 100.0,
            self.nginx_fraction() * 100.0,
            self.nginx.max.throughput() / md.throughput().max(1e-9) * 100.0,
            mg.sign_mean.as_secs_f64() * 1e6,
            mg.signed_inline
        );
        let _ = writeln!(
            o,
            "On PostgreSQL + Redis (the replica configuration): {:.0} req/s, {:.1} % of the SQLite \
             gateway's.\n",
            self.replica_max.throughput(),
            self.replica_fraction() * 100.0
        );
        if let Some(rf) = &self.replica_fixed
            && let Some((d, _)) = self.fixed.iter().find(|(d, _)| d.rate == rf.rate)
        {
            let added = Self::added(d, rf);
            let _ = writeln!(
                o,
                "PostgreSQL + Redis at {} req/s (open loop, {} of {} answered): added p50 {}, \
                 p99 {} (against the direct phase at that rate).\n",
                rf.rate.unwrap_or(0),
                rf.ok,
                rf.sent,
                us(added[0]),
                us(added[2])
            );
        }
        let _ = writeln!(
            o,
            "Gateway CPU per request (user + system time of the gateway process, every thread, \
             from `/proc/PID/stat` around the phase, over the requests answered; less noisy than \
             latency on a shared machine) and its threads' context switches per request \
             (`/proc/PID/task/*/status`), in all and by thread (tokio workers / sqlx's SQLite \
             threads / the rest):\n\n| phase | CPU per request | context switches per request | by thread |\n|---|---|---|---|"
        );
        for p in self
            .fixed
            .iter()
            .map(|(_, g)| g)
            .chain(self.replica_fixed.iter())
            .chain([mg, &self.replica_max])
        {
            if let Some(cpu) = p.cpu_per_request_us() {
                let rate = p.rate.map_or("max".to_string(), |r| format!("{r} req/s"));
                let switches = p
                    .switches_per_request()
                    .map_or("-".to_string(), |n| format!("{n:.1}"));
                let by = p
                    .switches_per_request_by_thread()
                    .map_or("-".to_string(), |[w, s, r]| {
                        format!("{w:.1} / {s:.1} / {r:.1}")
                    });
                let _ = writeln!(
                    o,
                    "| {}, {rate} | {cpu:.0} µs | {switches} | {by} |",
                    p.route
                );
            }
        }
        let _ = writeln!(o);
        let (sd, sg) = &self.stream;
        let _ = writeln!(
            o,
            "## Streaming ({} requests per route at {} req/s; the fake sends {} content chunks {} ms apart)\n\n\
             | route | ok / sent | first chunk p50 | p99 | events per answer | gap p50 | gap p99 | events merged into one read |\n\
             |---|---|---|---|---|---|---|---|",
            self.config.stream_requests,
            self.config.stream_rate,
            self.config.stream_chunks,
            self.config.stream_interval.as_millis()
        );
        for s in [sd, sg] {
            let _ = writeln!(
                o,
                "| {} | {} / {} | {} | {} | {:.1} | {} | {} | {:.1} % |",
                s.route,
                s.ok,
                s.sent,
                us(q(&s.first_chunk, 0.5)),
                us(q(&s.first_chunk, 0.99)),
                s.events_mean,
                us(q(&s.gaps, 0.5)),
                us(q(&s.gaps, 0.99)),
                s.coalesced * 100.0
            );
        }
        let (ttfc50, ttfc99) = self.added_first_chunk();
        let _ = writeln!(
            o,
            "\nAdded time to first chunk: p50 {}, p99 {}. Chunk timing preserved: {}.\n",
            us(ttfc50),
            us(ttfc99),
            if self.timing_preserved() { "yes" } else { "no" }
        );
        let _ = writeln!(
            o,
            "## Gateway memory (RSS)\n\n| when | VmRSS | VmHWM (peak so far) |\n|---|---|---|\n\
             | idle after start, all built-in plugins loaded | {} | {} |\n\
             | after every load phase above | {} | {} |\n\
             | after pairing {} more grants ({:.1} s, admin API + /oauth/token) | {} | {} |\n\
             | after each of those grants sent one request ({} ok, {} errors) | {} | {} |\n",
            mib(self.rss_idle.0),
            mib(self.rss_idle.1),
            mib(self.rss_load.0),
            mib(self.rss_load.1),
            self.grants,
            self.pairing_time.as_secs_f64(),
            mib(self.rss_grants_idle.0),
            mib(self.rss_grants_idle.1),
            self.grants_phase.ok,
            self.grants_phase.errors,
            mib(self.rss_grants_load.0),
            mib(self.rss_grants_load.1),
        );
        let _ = writeln!(
            o,
            "## Start-up to /readyz\n\n| case | time |\n|---|---|\n\
             | cold: new data dir, empty plugin cache (compiles every plugin) | {} |\n\
             | warm: restart, plugin cache filled | {:.0} ms |\n",
            self.startup.cold.map_or("not measured".into(), |d| format!(
                "{:.0} ms",
                d.as_secs_f64() * 1000.0
            )),
            self.startup.warm.as_secs_f64() * 1000.0
        );
        let _ = writeln!(
            o,
            "## Targets (issue 18; every check on)\n\n| target | measured | |\n|---|---|---|"
        );
        let nf = self.nginx_fraction();
        let _ = writeln!(
            o,
            "| maximum throughput ≥ 20 % of the nginx hop's | {:.1} % | {} |",
            nf * 100.0,
            verdict(nf >= 0.2)
        );
        if let Some((d, g)) = self.at_rate(2000) {
            let added = Self::added(d, g);
            let rate = d.rate.unwrap_or(0);
            let all = g.errors == 0 && g.ok == g.sent;
            let _ = writeln!(
                o,
                "| 2000 req/s: every request answered, added p50 ≤ 150 µs, p99 ≤ 500 µs | at {rate} req/s: {} of {} answered, p50 {}, p99 {} | {} |",
                g.ok,
                g.sent,
                us(added[0]),
                us(added[2]),
                verdict(all && added[0] <= 150 && added[2] <= 500)
            );
        }
        if let Some((d, g)) = self.at_rate(500) {
            let added = Self::added(d, g);
            let _ = writeln!(
                o,
                "| 500 req/s: added p99 ≤ 300 µs | at {} req/s: {} | {} |",
                d.rate.unwrap_or(0),
                us(added[2]),
                verdict(added[2] <= 300)
            );
        }
        let _ = writeln!(
            o,
            "| streamed: added time to first chunk p50 ≤ 300 µs, chunk timing preserved | p50 {} | {} |",
            us(ttfc50),
            verdict(ttfc50 <= 300 && self.timing_preserved())
        );
        let _ = writeln!(
            o,
            "| RSS ≤ 60 MB idle; ≤ 150 MB after the load phases and {} more grants | {} idle; {} after | {} |",
            self.grants,
            mib(self.rss_idle.0),
            mib(self.rss_grants_load.0),
            verdict(
                self.rss_idle.0 * 1024 <= 60_000_000
                    && self.rss_grants_load.0 * 1024 <= 150_000_000
            )
        );
        let rf = self.replica_fraction();
        let _ = writeln!(
            o,
            "| PostgreSQL + Redis: maximum throughput ≥ half of SQLite's | {:.1} % ({:.0} req/s) | {} |",
            rf * 100.0,
            self.replica_max.throughput(),
            verdict(rf >= 0.5)
        );
        let _ = writeln!(
            o,
            "\n## Server-side timings (means over the whole run, from the gateway's /metrics)\n\n\
             | series | observations | mean |\n|---|---|---|"
        );
        for t in &self.server_timings {
            let _ = writeln!(
                o,
                "| `{}` | {} | {} |",
                t.series,
                t.count,
                us(i64::try_from(t.mean.as_micros()).unwrap_or(i64::MAX))
            );
        }
        let answered: u64 = self.fixed.iter().map(|(_, g)| g.ok + g.errors).sum::<u64>()
            + mg.ok
            + mg.errors
            + sg.ok
            + self.grants_phase.ok;
        let _ = writeln!(
            o,
            "\nErrors in all phases: {}. Ledger rows at the end: {} (measured gateway requests alone: {}, plus warm-up).",
            self.errors(),
            self.ledger_rows
                .map_or("unreadable".into(), |n| n.to_string()),
            answered
        );
        for p in self
            .fixed
            .iter()
            .flat_map(|(d, g)| [d, g])
            .chain(self.nginx.fixed.iter())
            .chain([
                md,
                &self.nginx.max,
                mg,
                &self.replica_max,
                &self.grants_phase,
            ])
            .chain(self.replica_fixed.iter())
        {
            for e in &p.sample_errors {
                let _ = writeln!(o, "- {} error: {e}", p.route);
            }
        }
        for s in [sd, sg] {
            for e in &s.sample_errors {
                let _ = writeln!(o, "- {} stream error: {e}", s.route);
            }
        }
        o
    }

    fn phase_json(p: &Phase) -> Value {
        json!({
            "route": p.route, "rate": p.rate, "sent": p.sent, "ok": p.ok, "errors": p.errors,
            "throughput": p.throughput(), "signed_inline": p.signed_inline,
            "gateway_cpu_us_per_request": p.cpu_per_request_us(),
            "gateway_context_switches_per_request": p.switches_per_request(),
            "gateway_context_switches_per_request_by_thread": p.switches_per_request_by_thread().map(|[w, s, r]| json!({"tokio_workers": w, "sqlite": s, "other": r})),
            "latency_us": QUANTILES.iter().map(|(quantile, name)| (name.to_string(), json!(q(&p.latency, *quantile)))).collect::<serde_json::Map<_, _>>(),
        })
    }

    /// The figures as JSON (for comparisons between runs).
    pub fn json(&self) -> Value {
        let (sd, sg) = &self.stream;
        json!({
            "smoke": self.smoke,
            "machine": { "cpus": self.machine.cpus, "cpu": self.machine.cpu_model, "load_before": self.machine.load_before, "load_after": self.machine.load_after, "date": self.machine.date },
            "fixed": self.fixed.iter().map(|(d, g)| json!({ "direct": Self::phase_json(d), "gateway": Self::phase_json(g), "added_us": Self::added(d, g) })).collect::<Vec<_>>(),
            "max": { "direct": Self::phase_json(&self.max.0), "nginx": Self::phase_json(&self.nginx.max), "gateway": Self::phase_json(&self.max.1), "fraction": self.throughput_fraction(), "fraction_of_nginx": self.nginx_fraction(), "postgres_redis": Self::phase_json(&self.replica_max), "postgres_redis_fixed": self.replica_fixed.as_ref().map(Self::phase_json), "postgres_redis_fraction_of_sqlite": self.replica_fraction() },
            "nginx_fixed": self.nginx.fixed.iter().map(|n| json!({ "nginx": Self::phase_json(n) })).collect::<Vec<_>>(),
            "stream": {
                "first_chunk_p50_us": [q(&sd.first_chunk, 0.5), q(&sg.first_chunk, 0.5)],
                "first_chunk_p99_us": [q(&sd.first_chunk, 0.99), q(&sg.first_chunk, 0.99)],
                "gap_p50_us": [q(&sd.gaps, 0.5), q(&sg.gaps, 0.5)],
                "errors": [sd.errors, sg.errors],
                "timing_preserved": self.timing_preserved(),
            },
            "rss_kib": { "idle": self.rss_idle, "load": self.rss_load, "grants_idle": self.rss_grants_idle, "grants_load": self.rss_grants_load, "grants": self.grants },
            "startup_ms": { "cold": self.startup.cold.map(|d| d.as_millis() as u64), "warm": self.startup.warm.as_millis() as u64 },
            "errors": self.errors(),
            "ledger_rows": self.ledger_rows,
        })
    }
}
