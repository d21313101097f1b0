//! Sandbox tests with the hostile test plugins (`plugins/test-plugins/`): a plugin that loops,
//! hoards memory, panics, aims at other hosts or sets credentials fails alone, and the host
//! stays usable.

use crate::builtin::{HOSTILE, WASI_IMPORT};
use crate::host::sha256_hex;
use crate::{
    HostConfig, PluginError, PluginHost, PluginLimits, PrepareRequest, UpstreamDenied,
    check_upstream,
};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Generous for a loaded CI machine (the deadline is wall-clock), still quick for a loop.
const DEADLINE: Duration = Duration::from_millis(500);
const MEMORY: usize = 32 << 20;

/// One host for these tests: the hostile plugin installed under tight third-party limits, the
/// built-ins loaded. Compiled code is cached in the system temp dir across runs.
fn host() -> &'static PluginHost {
    static HOST: OnceLock<PluginHost> = OnceLock::new();
    HOST.get_or_init(|| {
        let config = HostConfig {
            cache_dir: Some(std::env::temp_dir().join("pairgate-plugin-host-test-cache")),
            third_party: PluginLimits {
                cpu_deadline: DEADLINE,
                memory_limit_bytes: MEMORY,
                ..PluginLimits::third_party()
            },
            ..HostConfig::default()
        };
        let host = PluginHost::new(config).expect("host starts");
        host.load_builtin().expect("built-ins load");
        host.install(HOSTILE, &sha256_hex(HOSTILE))
            .expect("hostile plugin installs");
        host
    })
}

fn hostile(action: &str) -> Result<Result<crate::UpstreamCall, crate::Rejection>, PluginError> {
    hostile_on(host(), action)
}

/// The hostile plugin's `action` on `host`.
fn hostile_on(
    host: &PluginHost,
    action: &str,
) -> Result<Result<crate::UpstreamCall, crate::Rejection>, PluginError> {
    host.prepare(
        "hostile",
        PrepareRequest {
            action: action.into(),
            grant: "{}".into(),
            config: "{}".into(),
            method: "POST".into(),
            ..PrepareRequest::default()
        },
    )
}

/// The host still answers: the hostile plugin's harmless action and a built-in both work.
fn assert_host_usable() {
    let call = hostile("ok").expect("call works").expect("accepted");
    assert_eq!(call.url, "https://api.hostile.test/x");
    let models = host()
        .prepare(
            "openai",
            PrepareRequest {
                action: "models".into(),
                method: "GET".into(),
                ..PrepareRequest::default()
            },
        )
        .expect("openai works")
        .expect("accepted");
    assert_eq!(models.url, "https://api.openai.com/v1/models");
}

#[test]
fn an_infinite_loop_times_out_quickly_and_the_host_stays_usable() {
    let started = Instant::now();
    let err = hostile("loop").expect_err("must time out");
    let took = started.elapsed();
    assert!(
        matches!(&err, PluginError::Timeout { plugin, deadline } if plugin == "hostile" && *deadline == DEADLINE),
        "{err}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(err.to_string().contains("hostile"), "{err}");
    assert_host_usable();
}

#[test]
fn a_memory_bomb_runs_out_of_memory_and_the_host_stays_usable() {
    let err = hostile("oom").expect_err("must run out of memory");
    assert!(
        matches!(&err, PluginError::OutOfMemory { plugin, limit } if plugin == "hostile" && *limit == MEMORY),
        "{err}"
    );
    assert_host_usable();
    // Again: the pool slot was recycled cleanly.
    assert!(matches!(
        hostile("oom"),
        Err(PluginError::OutOfMemory { .. })
    ));
    assert_host_usable();
}

#[test]
fn a_panic_is_a_trap_carrying_the_panic_message() {
    let err = hostile("panic").expect_err("must trap");
    match &err {
        PluginError::Trap { plugin, detail } => {
            assert_eq!(plugin, "hostile");
            assert!(detail.contains("panicked on purpose"), "{detail}");
        }
        other => panic!("expected a trap, got {other}"),
    }
    assert_host_usable();
}

#[test]
fn an_undeclared_host_is_refused_by_check_upstream() {
    let call = hostile("undeclared-host")
        .expect("call works")
        .expect("accepted");
    let declared = host().describe("hostile").expect("described").hosts;
    let approved = ["evil.example.com"];
    assert_eq!(
        check_upstream(&call.url, &declared, &approved, false),
        Err(UpstreamDenied::NotDeclared("evil.example.com".into()))
    );
}

#[test]
fn a_declared_private_address_is_refused_by_check_upstream() {
    let call = hostile("private-host")
        .expect("call works")
        .expect("accepted");
    let declared = host().describe("hostile").expect("described").hosts;
    assert!(declared.iter().any(|h| h == "169.254.169.254"));
    // Declared and even approved, it is still refused unless private hosts are allowed.
    let denied = check_upstream(&call.url, &declared, &declared, false);
    assert!(
        matches!(
            denied,
            Err(UpstreamDenied::Scheme(_) | UpstreamDenied::PrivateAddress(_))
        ),
        "{denied:?}"
    );
    let https = call.url.replace("http://", "https://");
    assert_eq!(
        check_upstream(&https, &declared, &declared, false),
        Err(UpstreamDenied::PrivateAddress("169.254.169.254".into()))
    );
}

#[test]
fn credential_headers_set_by_a_plugin_are_stripped() {
    let call = hostile("auth-header")
        .expect("call works")
        .expect("accepted");
    assert_eq!(
        call.headers,
        vec![("x-trace".to_owned(), "kept".to_owned())]
    );
}

#[test]
fn built_ins_cannot_be_uninstalled_nor_shadowed() {
    assert!(!host().uninstall("openai"));
    assert!(host().info("openai").is_ok());
    assert!(!host().uninstall("no-such-plugin"));
}

#[test]
fn oversized_state_is_a_bad_output() {
    let err = hostile("huge-state").expect_err("must be refused");
    assert!(matches!(err, PluginError::BadOutput { .. }), "{err}");
}

#[test]
fn a_plugin_importing_the_filesystem_is_refused_before_compiling() {
    let err = host()
        .install(WASI_IMPORT, &sha256_hex(WASI_IMPORT))
        .expect_err("must be refused");
    match &err {
        PluginError::ForbiddenImport { import, .. } => {
            assert!(
                import.starts_with("wasi:clocks") || import.starts_with("wasi:filesystem"),
                "{import}"
            );
        }
        other => panic!("expected a forbidden import, got {other}"),
    }
    assert!(host().info("wasi-import").is_err());
}

#[test]
fn concurrent_calls_each_get_their_own_instance() {
    let handles: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let action = if i % 4 == 0 { "oom" } else { "ok" };
                (action, hostile(action))
            })
        })
        .collect();
    for h in handles {
        let (action, result) = h.join().expect("thread");
        match action {
            "oom" => assert!(
                matches!(result, Err(PluginError::OutOfMemory { .. })),
                "{result:?}"
            ),
            _ => assert!(matches!(result, Ok(Ok(_))), "{result:?}"),
        }
    }
}

/// The hostile plugin's `count` on `host`: the calls its instance has served, this one included.
fn count(host: &PluginHost) -> u32 {
    let call = hostile_on(host, "count")
        .expect("call works")
        .expect("accepted");
    call.url
        .rsplit('/')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("count in {}", call.url))
}

#[test]
fn an_installed_plugin_gets_a_fresh_instance_every_call() {
    assert_eq!(PluginLimits::third_party().keep_warm, 0);
    assert!(PluginLimits::builtin().keep_warm >= 1);
    for _ in 0..3 {
        assert_eq!(count(host()), 1, "nothing survives between calls");
    }
}

/// A host of its own with the hostile plugin installed under the tight limits, keeping up to
/// `keep_warm` of its instances.
fn hostile_host(keep_warm: usize) -> PluginHost {
    let host = PluginHost::new(HostConfig {
        cache_dir: Some(std::env::temp_dir().join("pairgate-plugin-host-test-cache")),
        third_party: PluginLimits {
            cpu_deadline: DEADLINE,
            memory_limit_bytes: MEMORY,
            keep_warm,
            ..PluginLimits::third_party()
        },
        ..HostConfig::default()
    })
    .expect("host starts");
    host.install(HOSTILE, &sha256_hex(HOSTILE))
        .expect("hostile plugin installs");
    host
}

#[test]
fn a_kept_instance_serves_the_next_call_under_the_same_limits_and_is_dropped_after_a_failure() {
    let host = hostile_host(1);
    let call = |action: &str| hostile_on(&host, action);
    let created = host.instantiations();
    assert_eq!([count(&host), count(&host), count(&host)], [1, 2, 3]);
    assert_eq!(
        host.instantiations() - created,
        1,
        "one instance served the three calls"
    );

    // Each failure happens in the kept instance, under the call's own deadline and memory cap,
    // and the instance is not used again.
    let started = Instant::now();
    assert!(matches!(call("loop"), Err(PluginError::Timeout { .. })));
    assert!(started.elapsed() < DEADLINE * 10, "{:?}", started.elapsed());
    assert_eq!(count(&host), 1);
    assert!(matches!(call("oom"), Err(PluginError::OutOfMemory { .. })));
    assert_eq!(count(&host), 1);
    assert!(matches!(call("panic"), Err(PluginError::Trap { .. })));
    assert_eq!(count(&host), 1);
    // A call that succeeds but leaves the instance large: it is not kept either.
    assert!(matches!(call("grow"), Ok(Ok(_))));
    assert_eq!([count(&host), count(&host)], [1, 2]);
}

#[test]
fn an_idle_host_stops_ticking_and_the_next_call_still_gets_its_deadline() {
    let host = hostile_host(PluginLimits::third_party().keep_warm);
    let ticker = host.ticker();
    let waited = Instant::now();
    while !ticker.parked() {
        assert!(
            waited.elapsed() < crate::ticker::IDLE_BEFORE_PARKING * 10,
            "the ticker never parked"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let ticks = ticker.ticks();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(ticker.ticks(), ticks, "a parked ticker does not tick");

    // The first call after the pause is still stopped at its deadline, and its ticks resume.
    let started = Instant::now();
    assert!(matches!(
        hostile_on(&host, "loop"),
        Err(PluginError::Timeout { .. })
    ));
    let took = started.elapsed();
    assert!(took >= DEADLINE && took < DEADLINE * 10, "{took:?}");
    assert!(
        ticker.ticks() > ticks + 5,
        "the ticker ticked during the call"
    );
    assert!(!ticker.parked());
    assert!(matches!(hostile_on(&host, "ok"), Ok(Ok(_))));
}
