//! Tests for configuration precedence and rejection.

use std::path::PathBuf;

use super::*;

fn sources(
    file_text: Option<&str>,
    env: &[(&str, &str)],
    flags: FlagValues,
) -> (Sources, Option<tempfile::NamedTempFile>) {
    let file = file_text.map(|text| {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f
    });
    let s = Sources {
        file: file.as_ref().map(|f| f.path().to_path_buf()),
        default_file: None,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        flags,
        default_data_dir: Some(PathBuf::from("/var/lib/pairgate-default")),
    };
    (s, file)
}

#[test]
fn defaults_apply_when_nothing_is_set() {
    let (s, _f) = sources(None, &[], FlagValues::default());
    let c = load(&s).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8787");
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/pairgate-default"));
    assert!(c.uses_embedded_sqlite());
    assert_eq!(c.public_url.as_str(), "http://127.0.0.1:8787/");
    assert_eq!(c.pairing_ttl.as_secs(), 600);
    assert_eq!(c.log_format, LogFormat::Human);
}

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let file = "listen = \"127.0.0.1:1001\"\nlog_level = \"debug\"\nshutdown_grace = 5\n";
    let env = [
        ("PAIRGATE_LISTEN", "127.0.0.1:1002"),
        ("PAIRGATE_SHUTDOWN_GRACE", "7s"),
    ];
    let flags = FlagValues {
        listen: Some("127.0.0.1:1003".into()),
        ..Default::default()
    };
    let (s, _f) = sources(Some(file), &env, flags);
    let c = load(&s).unwrap();
    assert_eq!(c.listen.port(), 1003, "flag wins");
    assert_eq!(c.shutdown_grace.as_secs(), 7, "env beats file");
    assert_eq!(c.log_level, "debug", "file beats default");

    let (s, _f) = sources(Some(file), &env, FlagValues::default());
    assert_eq!(load(&s).unwrap().listen.port(), 1002, "env beats file");
    let (s, _f) = sources(Some(file), &[], FlagValues::default());
    assert_eq!(load(&s).unwrap().listen.port(), 1001, "file beats default");
}

#[test]
fn nested_sections_map_to_double_underscore_env_names() {
    let (s, _f) = sources(
        Some("[pairing]\nttl = \"5m\"\n[master_key]\nsource = \"env\"\n"),
        &[("PAIRGATE_TOKENS__ACCESS_TTL", "2m")],
        FlagValues::default(),
    );
    let c = load(&s).unwrap();
    assert_eq!(c.pairing_ttl.as_secs(), 300);
    assert_eq!(c.access_token_ttl.as_secs(), 120);
    assert_eq!(c.master_key.source, MasterKeySourceKind::Env);
}

#[test]
fn every_problem_is_listed_in_one_error() {
    let file = "listen = \"nonsense\"\nbogus_key = 1\n[pairing]\nttl = \"forever\"\n";
    let env = [("PAIRGATE_LOG_FORMAT", "xml"), ("PAIRGATE_NOT_A_KEY", "1")];
    let flags = FlagValues {
        database_url: Some("mysql://x".into()),
        ..Default::default()
    };
    let (s, _f) = sources(Some(file), &env, flags);
    let err = load(&s).unwrap_err();
    let text = err.to_string();
    assert_eq!(err.0.len(), 6, "{text}");
    for needle in [
        "`listen` `nonsense` is not an address",
        "unknown key `bogus_key`",
        "`pairing.ttl` `forever` is not a duration",
        "environment variable PAIRGATE_LOG_FORMAT: `log_format` `xml` is not one of: human, json",
        "unknown environment variable PAIRGATE_NOT_A_KEY",
        "flag --database-url: `database_url` is not valid (value not shown)",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in {text}");
    }
}

#[test]
fn secret_values_are_never_echoed() {
    let flags = FlagValues {
        database_url: Some("redis://user:s3cr3t-value@host".into()),
        ..Default::default()
    };
    let (s, _f) = sources(None, &[], flags);
    let text = load(&s).unwrap_err().to_string();
    assert!(!text.contains("s3cr3t-value"), "{text}");
}

#[test]
fn malformed_toml_names_the_line() {
    let (s, _f) = sources(
        Some("listen = \"127.0.0.1:1\"\n[oops\n"),
        &[],
        FlagValues::default(),
    );
    let text = load(&s).unwrap_err().to_string();
    assert!(text.contains("is not valid TOML at line 2"), "{text}");
}

#[test]
fn a_named_config_file_must_exist() {
    let s = Sources {
        file: Some(PathBuf::from("/nonexistent/pairgate.toml")),
        default_data_dir: Some(PathBuf::from("/tmp")),
        ..Default::default()
    };
    let text = load(&s).unwrap_err().to_string();
    assert!(
        text.contains("cannot read config file /nonexistent/pairgate.toml"),
        "{text}"
    );
}

#[test]
fn cross_key_rules_are_checked() {
    let (s, _f) = sources(
        Some("[pairing]\nttl = \"2d\"\nmax_ttl = \"1d\"\n[master_key]\nsource = \"command\"\n"),
        &[],
        FlagValues::default(),
    );
    let err = load(&s).unwrap_err();
    assert_eq!(err.0.len(), 2, "{err}");
}

#[test]
fn values_have_typed_forms_in_toml_and_text() {
    let (s, _f) = sources(
        Some(
            "max_body_bytes = \"2MiB\"\n[master_key]\nsource = \"command\"\ncommand = [\"op\", \"read\", \"op://v/i/f\"]\n",
        ),
        &[("PAIRGATE_DPOP__REQUIRE_NONCE", "true")],
        FlagValues::default(),
    );
    let c = load(&s).unwrap();
    assert_eq!(c.max_body_bytes, 2 << 20);
    assert_eq!(c.master_key.command, vec!["op", "read", "op://v/i/f"]);
    assert!(c.dpop_require_nonce);
}

#[test]
fn every_key_has_a_unique_env_name() {
    let mut names: Vec<String> = KEYS.iter().map(|k| k.env_name()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), KEYS.len());
}

#[test]
fn provider_sections_come_from_file_and_env() {
    let file = "default_provider = \"groq\"\n[providers.groq]\nplugin = \"openai-compatible\"\nallow_private = false\n[providers.groq.config]\nbase_url = \"https://api.groq.com/openai/v1\"\nmodels = [\"llama-3.1-8b-instant\"]\n";
    let env = [(
        "PAIRGATE_PROVIDERS__OPENAI__ORIGIN_OVERRIDE",
        "http://127.0.0.1:9",
    )];
    let (s, _f) = sources(Some(file), &env, FlagValues::default());
    let c = load(&s).unwrap();
    assert_eq!(c.default_provider, "groq");
    let groq = &c.providers["groq"];
    assert_eq!(groq.plugin, "openai-compatible");
    assert_eq!(groq.config["base_url"], "https://api.groq.com/openai/v1");
    assert_eq!(groq.config["models"][0], "llama-3.1-8b-instant");
    assert_eq!(
        c.providers["openai"]
            .origin_override
            .as_ref()
            .unwrap()
            .as_str(),
        "http://127.0.0.1:9/"
    );
}

#[test]
fn owner_prices_come_from_file_and_env_and_bad_ones_are_named() {
    let file = "[[providers.openai.prices]]\nmodel = \"gpt-4.1*\"\ninput = 2.5\noutput = 10\n\
                max_output_tokens = 4096\n[providers.openai.fallback_price]\ninput = 1.0\noutput = 3.0\n";
    let env = [(
        "PAIRGATE_PROVIDERS__GROQ__FALLBACK_PRICE",
        r#"{"input": 0.5, "output": 0.75}"#,
    )];
    let (s, _f) = sources(Some(file), &env, FlagValues::default());
    let c = load(&s).unwrap();
    let openai = &c.providers["openai"];
    let e = openai.prices[0].entry().unwrap();
    assert_eq!(e.model, "gpt-4.1*", "a model id with dots stays whole");
    assert_eq!(
        (
            e.prices.input_per_million_micros,
            e.prices.output_per_million_micros,
            e.max_output_tokens
        ),
        (2_500_000, 10_000_000, Some(4096))
    );
    let f = openai.fallback_price.as_ref().unwrap().entry().unwrap();
    assert_eq!(f.prices.output_per_million_micros, 3_000_000);
    let g = c.providers["groq"]
        .fallback_price
        .as_ref()
        .unwrap()
        .entry()
        .unwrap();
    assert_eq!(g.prices.input_per_million_micros, 500_000);

    for bad in [
        "[[providers.openai.prices]]\ninput = 1\noutput = 1\n",
        "[[providers.openai.prices]]\nmodel = \"x\"\ninput = -1\noutput = 1\n",
        "[[providers.openai.prices]]\nmodel = \"x\"\ninput = 1\n",
        "[providers.openai.prices]\nmodel = \"x\"\n",
        "[providers.openai.fallback_price]\ninput = 1\ncolour = 2\n",
    ] {
        let (s, _f) = sources(Some(bad), &[], FlagValues::default());
        let err = load(&s).unwrap_err();
        assert!(err.to_string().contains("providers.openai"), "{bad}: {err}");
    }
}

#[test]
fn bad_provider_settings_are_listed() {
    let file = "[providers.Bad_Id]\nplugin = \"x\"\n[providers.ok]\nnonsense = 1\nallow_private = \"maybe\"\n";
    let (s, _f) = sources(Some(file), &[], FlagValues::default());
    let err = load(&s).unwrap_err();
    assert_eq!(err.0.len(), 3, "{err}");
}

#[test]
fn connection_timeouts_have_defaults_and_come_from_file_and_env() {
    let (s, _f) = sources(None, &[], FlagValues::default());
    let c = load(&s).unwrap();
    assert_eq!(c.header_read_timeout.as_secs(), 10);
    assert_eq!(c.body_read_timeout.as_secs(), 30);

    let file = "header_read_timeout = 4\nbody_read_timeout = \"2m\"\n";
    let env = [("PAIRGATE_HEADER_READ_TIMEOUT", "1500ms")];
    let (s, _f) = sources(Some(file), &env, FlagValues::default());
    let c = load(&s).unwrap();
    assert_eq!(c.header_read_timeout.as_millis(), 1500, "env beats file");
    assert_eq!(c.body_read_timeout.as_secs(), 120);

    let env = [("PAIRGATE_BODY_READ_TIMEOUT", "0s")];
    let (s, _f) = sources(None, &env, FlagValues::default());
    let err = load(&s).unwrap_err();
    assert!(err.to_string().contains("body_read_timeout"), "{err}");
}

#[test]
fn connection_metrics_and_resolve_settings_load_and_are_checked() {
    let (s, _f) = sources(None, &[], FlagValues::default());
    let c = load(&s).unwrap();
    assert_eq!(c.max_connections, 4096);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(c.connection_threads, cpus);
    assert!(c.metrics_listen.is_none() && c.metrics_token.is_none());
    assert!(c.upstream_resolve.is_empty());

    let file = "max_connections = 8\nconnection_threads = 0\n[http2]\nidle_timeout = \"2s\"\nkeep_alive_interval = 3\n\
                [metrics]\nlisten = \"127.0.0.1:9464\"\n\
                [upstream]\nresolve = [\"llm.lan=10.0.0.5\", \"llm.lan=10.0.0.6\"]\n";
    let env = [("PAIRGATE_METRICS__TOKEN", "a-scraper-token-0123456789")];
    let (s, _f) = sources(Some(file), &env, FlagValues::default());
    let c = load(&s).unwrap();
    assert_eq!(c.max_connections, 8);
    assert_eq!(c.connection_threads, 0);
    assert_eq!(c.http2_idle_timeout.as_secs(), 2);
    assert_eq!(c.http2_keep_alive_interval.as_secs(), 3);
    assert_eq!(c.metrics_listen.map(|a| a.port()), Some(9464));
    assert!(c.metrics_token.is_some());
    assert_eq!(c.upstream_resolve["llm.lan"].len(), 2);
    assert!(
        !format!("{c:?}").contains("a-scraper-token"),
        "the token is not in Debug"
    );

    // A short token is refused without echoing it; a pin must be NAME=IP.
    let env = [
        ("PAIRGATE_METRICS__TOKEN", "short-secret"),
        ("PAIRGATE_UPSTREAM__RESOLVE", r#"["llm.lan:10.0.0.5"]"#),
    ];
    let (s, _f) = sources(None, &env, FlagValues::default());
    let text = load(&s).unwrap_err().to_string();
    assert!(
        text.contains("`metrics.token` is not valid (value not shown)"),
        "{text}"
    );
    assert!(!text.contains("short-secret"), "{text}");
    assert!(
        text.contains("`upstream.resolve`") && text.contains("api.example.com=203.0.113.7"),
        "{text}"
    );

    // Connection threads may be 0 (off), never negative.
    let env = [("PAIRGATE_CONNECTION_THREADS", "-1")];
    let (s, _f) = sources(None, &env, FlagValues::default());
    let text = load(&s).unwrap_err().to_string();
    assert!(
        text.contains("connection_threads") && text.contains("must not be negative"),
        "{text}"
    );
}

#[test]
fn a_relative_data_dir_is_taken_from_the_working_directory() {
    let (s, _f) = sources(
        Some("data_dir = \"rel/pairgate\"\n"),
        &[],
        FlagValues::default(),
    );
    let c = load(&s).unwrap();
    assert!(c.data_dir.is_absolute(), "{}", c.data_dir.display());
    assert_eq!(
        c.data_dir,
        std::env::current_dir().unwrap().join("rel/pairgate")
    );
}
