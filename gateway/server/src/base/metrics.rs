//! Prometheus metrics: requests, latencies, upstream latencies, errors by code, limit rejections,
//! plugin time, ledger lag. Labels are routes, providers, plugins, codes and status classes only:
//! never a token, key, grant id or anything a client controls freely.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder once per process (the server calls it; CLI commands do not).
pub fn install() {
    HANDLE.get_or_init(|| PrometheusBuilder::new().install_recorder().ok());
}

/// Runs before each rendering: gauges read from state at scrape time.
static BEFORE_RENDER: OnceLock<Box<dyn Fn() + Send + Sync>> = OnceLock::new();

/// Sets what runs before each rendering (once per process; later calls are ignored).
pub fn before_render(f: impl Fn() + Send + Sync + 'static) {
    let _ = BEFORE_RENDER.set(Box::new(f));
}

/// The exposition text, or `None` when no recorder is installed.
pub fn render() -> Option<String> {
    if let Some(f) = BEFORE_RENDER.get() {
        f();
    }
    HANDLE
        .get()
        .and_then(|h| h.as_ref())
        .map(PrometheusHandle::render)
}

/// Time spent inside one plugin call.
pub fn plugin_time(plugin: &str, d: Duration) {
    metrics::histogram!("pairgate_plugin_call_seconds", "plugin" => plugin.to_string())
        .record(d.as_secs_f64());
}

/// One finished request on a route.
pub fn request(route: &str, status: u16, d: Duration) {
    let class = format!("{}xx", status / 100);
    metrics::counter!("pairgate_requests_total", "route" => route.to_string(), "status" => class)
        .increment(1);
    metrics::histogram!("pairgate_request_seconds", "route" => route.to_string())
        .record(d.as_secs_f64());
}

/// One refused or failed request, by error code.
pub fn error(code: &str) {
    metrics::counter!("pairgate_errors_total", "code" => code.to_string()).increment(1);
}

/// The upstream part of a relayed request.
pub fn upstream(provider: &str, d: Duration) {
    metrics::histogram!("pairgate_upstream_seconds", "provider" => provider.to_string())
        .record(d.as_secs_f64());
}

/// Counts one relayed request as in flight (`pairgate_relay_in_flight`) from the moment the
/// relay takes it until its last handle drops (after its ledger row, streams included), so a
/// request or stream task that never finishes shows as a gauge that does not return to 0.
#[derive(Debug)]
pub struct InFlight(());

impl InFlight {
    pub fn start() -> InFlight {
        metrics::gauge!("pairgate_relay_in_flight").increment(1.0);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!("pairgate_relay_in_flight").decrement(1.0);
    }
}

/// The usage ledger's rows: recorded, finished with (written, or given up on and logged), and
/// the difference, waiting to be written.
pub fn ledger(recorded: u64, finished: u64) {
    metrics::counter!("pairgate_ledger_rows_recorded_total").absolute(recorded);
    metrics::counter!("pairgate_ledger_rows_finished_total").absolute(finished);
    metrics::gauge!("pairgate_ledger_lag_rows").set(recorded.saturating_sub(finished) as f64);
}
