//! Foundation: start-up, configuration through the real binary, both database backends,
//! readiness, exit codes for bad input, graceful shutdown.

use pairgate_tests::gateway::{command, run};
use pairgate_tests::{Backend, Gateway};

async fn get(url: &str) -> reqwest::Response {
    reqwest::get(url).await.unwrap()
}

async fn table_names(gw: &Gateway) -> Vec<String> {
    use sqlx::Connection;
    match gw.db.backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}", gw.data_dir().join("pairgate.db").display());
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                .fetch_all(&mut c)
                .await
                .unwrap()
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(gw.db.url.as_ref().unwrap())
                .await
                .unwrap();
            sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() ORDER BY table_name",
            )
            .fetch_all(&mut c)
            .await
            .unwrap()
        }
    }
}

#[tokio::test]
async fn serves_health_and_readiness_and_migrates_on_both_backends() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let mut gw = Gateway::start(backend).await;
        let res = get(&gw.url("/healthz")).await;
        assert_eq!(res.status(), 200);
        let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
        assert!(id.starts_with("req_") && id.len() == 36, "{id}");
        assert_eq!(get(&gw.url("/readyz")).await.status(), 200, "{backend:?}");
        let tables = table_names(&gw).await;
        for t in [
            "audit_log",
            "credentials",
            "device_requests",
            "grants",
            "host_approvals",
            "meta",
            "owner_sessions",
            "owners",
            "pairings",
            "refresh_tokens",
            "usage_ledger",
        ] {
            assert!(
                tables.iter().any(|n| n == t),
                "{backend:?}: missing table {t} in {tables:?}"
            );
        }
        // A second start on the same database applies nothing twice and is ready again.
        gw.restart().await;
        assert_eq!(
            get(&gw.url("/readyz")).await.status(),
            200,
            "{backend:?} after restart"
        );
        assert_eq!(gw.stop().await, Some(0));
    }
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone_but_liveness_stays_up() {
    let gw = Gateway::start(Backend::Postgres).await;
    assert_eq!(get(&gw.url("/readyz")).await.status(), 200);
    {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(pairgate_tests::db::POSTGRES_BASE)
            .await
            .unwrap();
        let url = gw.db.url.as_ref().unwrap();
        let schema = url.rsplit("search_path%3D").next().unwrap();
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&mut c)
            .await
            .unwrap();
    }
    let res = get(&gw.url("/readyz")).await;
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(get(&gw.url("/healthz")).await.status(), 200);
}

#[tokio::test]
async fn bad_configuration_exits_64_listing_every_problem_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "listen = 5\nno_such_key = true\n[dpop]\nmax_age = \"soon\"\n",
    )
    .unwrap();
    let mut cmd = command(dir.path());
    cmd.args(["serve", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(&data)
        .env("PAIRGATE_LOG_FORMAT", "yaml");
    let (code, _out, err) = run(cmd, None).await;
    assert_eq!(code, 64, "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    for needle in [
        "4 problems",
        "`listen` expected a string",
        "unknown key `no_such_key`",
        "`dpop.max_age`",
        "PAIRGATE_LOG_FORMAT",
    ] {
        assert!(err.contains(needle), "missing {needle}: {err}");
    }
    assert!(!data.exists(), "nothing is created on a config error");
}

#[tokio::test]
async fn start_failures_give_one_line_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    // A data dir that cannot be created.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let mut cmd = command(dir.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(blocker.join("data"));
    let (code, _, err) = run(cmd, None).await;
    assert_eq!(code, 73, "{err}");
    assert!(
        err.starts_with("pairgate: data directory") && err.trim().lines().count() == 1,
        "{err}"
    );

    // A database that cannot be reached: exit 69, the fresh data dir is removed again.
    let data = dir.path().join("fresh").join("data");
    let mut cmd = command(dir.path());
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        "postgres://postgres:pw-not-shown@127.0.0.1:1/none",
        "--data-dir",
    ])
    .arg(&data);
    let (code, _, err) = run(cmd, None).await;
    assert_eq!(code, 69, "{err}");
    assert!(err.contains("database unreachable"), "{err}");
    assert!(!err.contains("pw-not-shown"), "{err}");
    assert!(
        !dir.path().join("fresh").exists(),
        "a failed start leaves no data dir"
    );

    // A port in use: exit 69 before any state is created.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let data = dir.path().join("busy");
    let mut cmd = command(dir.path());
    cmd.args([
        "serve",
        "--listen",
        &busy.local_addr().unwrap().to_string(),
        "--data-dir",
    ])
    .arg(&data);
    let (code, _, err) = run(cmd, None).await;
    assert_eq!(code, 69, "{err}");
    assert!(
        err.contains("cannot listen on") && err.contains("in use"),
        "{err}"
    );
    assert!(!data.exists());
}

#[tokio::test]
async fn file_env_and_flag_layers_reach_the_running_binary() {
    let gw = Gateway::builder(Backend::Sqlite)
        .config("public_url = \"https://from-file.example\"\nlog_format = \"json\"\n")
        .env("PAIRGATE_PUBLIC_URL", "https://from-env.example")
        .arg("--log-format")
        .arg("human")
        .start()
        .await;
    let logs = gw.logs();
    assert!(
        logs.contains("public_url=https://from-env.example/"),
        "env beats file: {logs}"
    );
    assert!(
        !logs.trim_start().starts_with('{'),
        "flag beats file: {logs}"
    );
}

#[tokio::test]
async fn json_logs_carry_the_request_id() {
    let gw = Gateway::builder(Backend::Sqlite)
        .arg("--log-format")
        .arg("json")
        .start()
        .await;
    let res = get(&gw.url("/healthz")).await;
    let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let logs = gw.logs();
    let line = logs
        .lines()
        .find(|l| l.contains(&id))
        .unwrap_or_else(|| panic!("{logs}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["span"]["request_id"], id.as_str(), "{line}");
}

#[tokio::test]
async fn sigterm_and_sigint_stop_the_gateway_cleanly() {
    for sig in ["TERM", "INT"] {
        let mut gw = Gateway::start(Backend::Sqlite).await;
        gw.signal(sig);
        assert_eq!(gw.wait().await, Some(0), "{sig}: {}", gw.logs());
        assert!(gw.logs().contains("pairgate stopped"));
    }
}

#[tokio::test]
async fn graceful_shutdown_finishes_an_in_flight_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut gw = Gateway::start(Backend::Sqlite).await;
    let body = "grant_type=refresh_token&refresh_token=pgrt_x";
    let mut conn = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let head = format!(
        "POST /oauth/token HTTP/1.1\r\nhost: {}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        gw.addr,
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body.as_bytes()[..10]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    gw.signal("TERM");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // The request is still being served: finish it and read the whole answer.
    conn.write_all(&body.as_bytes()[10..]).await.unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 400"),
        "the in-flight request got its answer: {answer}"
    );
    assert!(answer.contains("invalid_dpop_proof"), "{answer}");
    assert_eq!(gw.wait().await, Some(0));
    // New connections are refused once draining began.
    assert!(tokio::net::TcpStream::connect(gw.addr).await.is_err());
}
