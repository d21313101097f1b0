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

/// The exposition text, or `None` when no recorder is installed.
pub fn render() -> Option<String> {
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

/// Rows waiting to be written to the usage ledger.
pub fn ledger_lag(rows: usize) {
    metrics::gauge!("pairgate_ledger_lag_rows").set(rows as f64);
}
