//! The end-to-end benchmark in smoke mode: every phase runs (fixed rates and maximum throughput
//! through direct, the nginx hop and the gateway, streaming, many grants, start-up, RSS) and
//! answers without an error; timings are not judged.

use pairgate_tests::bench::{self, BenchConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_runs_every_phase_in_smoke_mode() {
    let cfg = BenchConfig::smoke();
    let report = bench::run(&cfg).await.unwrap();
    assert_eq!(report.errors(), 0, "{}", report.markdown());
    for (d, g) in &report.fixed {
        assert!(d.ok > 0 && g.ok > 0, "{}", report.markdown());
    }
    assert!(report.max.0.ok > 0 && report.max.1.ok > 0);
    assert_eq!(report.nginx.fixed.len(), report.fixed.len());
    assert!(
        report.nginx.fixed.iter().all(|n| n.ok > 0) && report.nginx.max.ok > 0,
        "the nginx baseline answers: {}",
        report.markdown()
    );
    let (sd, sg) = &report.stream;
    assert_eq!((sd.ok, sg.ok), (sd.sent, sg.sent), "{}", report.markdown());
    // The fake sends a role chunk, the content chunks and a finish chunk at least.
    assert!(
        sg.events_mean >= (cfg.stream_chunks + 2) as f64,
        "{}",
        report.markdown()
    );
    assert_eq!(report.grants_phase.ok, cfg.grants as u64);
    assert!(report.rss_idle.0 > 0 && report.rss_grants_load.1 >= report.rss_idle.0);
    // Every request the gateway answered is in its ledger.
    let answered: u64 = report.fixed.iter().map(|(_, g)| g.ok).sum::<u64>()
        + report.max.1.ok
        + sg.ok
        + report.grants_phase.ok;
    assert!(
        report.ledger_rows.unwrap() >= answered,
        "ledger {:?} < {answered} answered",
        report.ledger_rows
    );
    let md = report.markdown();
    assert!(
        md.contains("## Targets") && md.contains("Added latency"),
        "{md}"
    );
    assert!(report.json()["fixed"][0]["added_us"].is_array());
    assert!(md.contains("nginx hop"), "{md}");
    assert!(report.json()["max"]["fraction_of_nginx"].is_number());
}
