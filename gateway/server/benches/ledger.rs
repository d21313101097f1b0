//! Per-request ledger cost on SQLite (the default store): one answered request's row committed
//! before its answer completes (`Ledger::record_committed`), 32 requests committing at once (they
//! share group commits), and the writer's 200-row batch insert (`Store::insert_usage`).

use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, Throughput, criterion_group};
use pairgate::engine::ledger::{Ledger, LedgerRow};
use pairgate_store::{Store, StoreOptions};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A typical answered chat request, under a request id never used before.
fn row() -> LedgerRow {
    let i = NEXT.fetch_add(1, Ordering::Relaxed);
    LedgerRow {
        request_id: format!("bench-{i:016x}"),
        grant_id: Some("gr_bench".into()),
        app_name: Some("bench app".into()),
        provider: Some("openai".into()),
        model: Some("gpt-4o-mini".into()),
        endpoint: "chat".into(),
        input_tokens: 11,
        output_tokens: 7,
        cached_tokens: 0,
        cost_micros: 6,
        estimated: false,
        status: 200,
        error_code: None,
        upstream_ms: Some(3),
        total_ms: 4,
        created_at: 1_795_132_800_000 + i as i64,
    }
}

fn ledger(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = pairgate_store::sqlite_url(&dir.path().join("ledger.db"));
    let store = rt.block_on(async {
        let store = Store::connect(&url, &StoreOptions::default())
            .await
            .expect("sqlite opens");
        store.migrate().await.expect("migrations apply");
        store
    });
    let ledger = {
        let _in_runtime = rt.enter();
        Ledger::start(store.clone())
    };

    let mut group = c.benchmark_group("ledger");
    group.throughput(Throughput::Elements(1));
    group.bench_function("record_committed, one request alone", |b| {
        b.iter(|| rt.block_on(ledger.record_committed(row())));
    });
    group.throughput(Throughput::Elements(32));
    group.bench_function("record_committed, 32 requests at once", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut set = tokio::task::JoinSet::new();
                for _ in 0..32 {
                    let l = ledger.clone();
                    set.spawn(async move { l.record_committed(row()).await });
                }
                while set.join_next().await.is_some() {}
            })
        });
    });
    group.throughput(Throughput::Elements(200));
    group.bench_function("insert_usage, batch of 200 rows", |b| {
        b.iter(|| {
            let rows: Vec<LedgerRow> = (0..200).map(|_| row()).collect();
            rt.block_on(store.insert_usage(&rows))
                .expect("batch inserts");
        });
    });
    group.finish();
    rt.block_on(ledger.close());
}

criterion_group!(benches, ledger);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
