//! Prometheus metrics: requests, latencies, upstream latencies, errors by code, limit rejections,
//! plugin time, ledger lag. Labels are routes, providers, plugins, codes and status classes only:
//! never a token, key, grant id or anything a client controls freely.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Whether the recorder is installed: before that, `metrics`' macros hand out handles that
/// record nothing, which must not be kept.
fn installed() -> bool {
    HANDLE.get().is_some_and(Option::is_some)
}

/// This thread's handles of the series a request touches. A `metrics::histogram!` with labels
/// builds its key (the label values copied into new strings) and looks it up in the registry on
/// every call, several times per request; a kept handle records straight away. The labels are
/// bounded sets (route templates, plugins, providers), so these maps are too.
#[derive(Default)]
struct Handles {
    plugin: HashMap<Box<str>, Histogram>,
    upstream: HashMap<Box<str>, Histogram>,
    routes: HashMap<Box<str>, RouteHandles>,
    in_flight: Option<Gauge>,
}

/// A route's latency histogram and its request counters by status class (`0xx` to `9xx`).
struct RouteHandles {
    seconds: Histogram,
    by_class: [Option<Counter>; 10],
}

thread_local! {
    static HANDLES: RefCell<Handles> = RefCell::default();
}

/// The status classes as label values.
const CLASSES: [&str; 10] = [
    "0xx", "1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "7xx", "8xx", "9xx",
];

/// `label`'s handle in `map`, made by `make` the first time (kept only once the recorder is
/// installed).
fn kept<T: Clone>(
    map: impl FnOnce(&mut Handles) -> &mut HashMap<Box<str>, T>,
    label: &str,
    make: impl FnOnce() -> T,
) -> T {
    if !installed() {
        return make();
    }
    HANDLES.with_borrow_mut(|h| {
        let map = map(h);
        match map.get(label) {
            Some(handle) => handle.clone(),
            None => map.entry(label.into()).or_insert_with(make).clone(),
        }
    })
}

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
    kept(
        |h| &mut h.plugin,
        plugin,
        || metrics::histogram!("pairgate_plugin_call_seconds", "plugin" => plugin.to_string()),
    )
    .record(d.as_secs_f64());
}

/// One finished request on a route.
pub fn request(route: &str, status: u16, d: Duration) {
    let index = usize::from(status / 100).min(9);
    let counter = || {
        metrics::counter!(
            "pairgate_requests_total", "route" => route.to_string(), "status" => CLASSES[index]
        )
    };
    let seconds = || metrics::histogram!("pairgate_request_seconds", "route" => route.to_string());
    if !installed() {
        counter().increment(1);
        seconds().record(d.as_secs_f64());
        return;
    }
    HANDLES.with_borrow_mut(|h| {
        let handles = match h.routes.get_mut(route) {
            Some(handles) => handles,
            None => h
                .routes
                .entry(route.into())
                .or_insert_with(|| RouteHandles {
                    seconds: seconds(),
                    by_class: Default::default(),
                }),
        };
        handles.by_class[index]
            .get_or_insert_with(counter)
            .increment(1);
        handles.seconds.record(d.as_secs_f64());
    });
}

/// One refused or failed request, by error code.
pub fn error(code: &str) {
    metrics::counter!("pairgate_errors_total", "code" => code.to_string()).increment(1);
}

/// The upstream part of a relayed request.
pub fn upstream(provider: &str, d: Duration) {
    kept(
        |h| &mut h.upstream,
        provider,
        || metrics::histogram!("pairgate_upstream_seconds", "provider" => provider.to_string()),
    )
    .record(d.as_secs_f64());
}

/// The in-flight gauge's handle.
fn in_flight() -> Gauge {
    if !installed() {
        return metrics::gauge!("pairgate_relay_in_flight");
    }
    HANDLES.with_borrow_mut(|h| {
        h.in_flight
            .get_or_insert_with(|| metrics::gauge!("pairgate_relay_in_flight"))
            .clone()
    })
}

/// Counts one relayed request as in flight (`pairgate_relay_in_flight`) from the moment the
/// relay takes it until its last handle drops (after its ledger row, streams included), so a
/// request or stream task that never finishes shows as a gauge that does not return to 0.
#[derive(Debug)]
pub struct InFlight(());

impl InFlight {
    pub fn start() -> InFlight {
        in_flight().increment(1.0);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        in_flight().decrement(1.0);
    }
}

/// The usage ledger's rows: recorded, finished with (written, or given up on and logged), and
/// the difference, waiting to be written.
pub fn ledger(recorded: u64, finished: u64) {
    metrics::counter!("pairgate_ledger_rows_recorded_total").absolute(recorded);
    metrics::counter!("pairgate_ledger_rows_finished_total").absolute(finished);
    metrics::gauge!("pairgate_ledger_lag_rows").set(recorded.saturating_sub(finished) as f64);
}
