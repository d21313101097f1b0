//! The request path's round trips, counted (not timed): database statements and Redis commands
//! issued while a paired app sends 100 requests with every check on, after a warm-up. On SQLite
//! (local limits) and on PostgreSQL + Redis (the replica configuration), nothing is read or
//! written before the answer: no grant, no budget counter, no reservation (on Redis, one round trip
//! before the answer: admission; the settlement is not waited for); the only statements
//! are the usage ledger's batched commits, after the answers (each answered request's row, and on
//! the local backend the spend that goes with it, is in the ledger journal first): on SQLite,
//! proven with the database's write lock held by another connection. And what is kept in memory instead is never used past a change: a credential
//! rotated by the CLI (another process) or on another replica is the one the next request
//! carries.

use std::time::Duration;

use pairgate_protocol::keys::KeyKind;
use pairgate_sdk::Client;
use pairgate_tests::app::pair;
use pairgate_tests::probe::{books, metric};
use pairgate_tests::providers;
use pairgate_tests::{Backend, Gateway};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

const REQUESTS: usize = 100;

/// Every check the benchmark turns on that a flag can set.
const POLICY: &[&str] = &[
    "--model",
    "openai/*",
    "--max-output-tokens",
    "1000",
    "--rpm",
    "100000",
    "--rpd",
    "1000000",
    "--tpm",
    "100000000",
    "--concurrent",
    "64",
    "--daily-tokens",
    "100000000",
    "--monthly-tokens",
    "100000000",
    "--lifetime-tokens",
    "100000000",
    "--daily-usd",
    "1000",
    "--monthly-usd",
    "1000",
    "--lifetime-usd",
    "1000",
    "--valid-for",
    "1d",
    "--require-body-hash",
];

fn chat() -> Value {
    json!({ "model": "openai/gpt-4o-mini", "max_tokens": 20, "messages": [{ "role": "user", "content": "hello" }] })
}

async fn send(client: &Client, n: usize) {
    for i in 0..n {
        let res = client
            .post("/v1/chat/completions")
            .json(&chat())
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            200,
            "request {i}: {}",
            res.text().await.unwrap()
        );
        res.bytes().await.unwrap();
    }
}

/// The SQL of every statement the gateway logged (`sqlx::query` events) after `from` log lines
/// (the whole JSON line where an event carries no SQL text).
fn statements(gw: &Gateway, from: usize) -> Vec<String> {
    gw.logs()
        .lines()
        .skip(from)
        .filter_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .map(|v| (l.to_string(), v))
        })
        .filter(|(_, v)| v["target"] == "sqlx::query")
        .map(|(line, f)| {
            // (JSON lines carry the event's fields at the top level) the whole SQL, or for a
            // statement short enough to be its own summary, the summary
            let sql = f["db.statement"]
                .as_str()
                .filter(|s| !s.trim().is_empty())
                .or(f["summary"].as_str())
                .unwrap_or_default()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            if sql.is_empty() { line } else { sql }
        })
        .collect()
}

/// Statements that are not a request's: the background tasks', which run on timers whatever the
/// traffic (credential grace clean-up, the limits janitor, the console settings' refresh ahead
/// of their expiry: a request past half a snapshot's age starts it and goes on without waiting),
/// and the set-up of a new pooled connection (the pool opens one when it needs it).
fn background(sql: &str) -> bool {
    sql.starts_with("SET client_min_messages")
        || sql.starts_with("PRAGMA")
        || sql.contains("UPDATE credentials")
        || sql.starts_with("DELETE FROM budget_counters")
        || sql.contains("FROM host_approvals")
        || sql.contains("FROM model_prices")
}

/// The request path's statements during [`REQUESTS`] requests (after a warm-up: the warm-up's
/// ledger commits are done once its answers are), background tasks' left out.
struct Counted {
    sql: Vec<String>,
    /// How long the requests took: a cached grant or credential row is read again at most
    /// every 10 s (the bound on staleness), which a slow run may cross.
    elapsed: Duration,
}

async fn counted(gw: &Gateway, client: &Client) -> Counted {
    let from = gw.logs().lines().count();
    let started = std::time::Instant::now();
    send(client, REQUESTS).await;
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sql = statements(gw, from)
        .into_iter()
        .filter(|s| !background(s))
        .collect();
    Counted { sql, elapsed }
}

/// Every statement logged, as JSON lines.
const LOGGING: &[(&str, &str)] = &[
    ("PAIRGATE_LOG_LEVEL", "info,sqlx::query=debug"),
    ("PAIRGATE_LOG_FORMAT", "json"),
];

/// A cached row read again once its 10 seconds are up (not a per-request statement).
fn reload(sql: &str) -> bool {
    sql.contains("FROM grants WHERE id = $1")
        || sql.contains("FROM credentials WHERE provider = $1")
}

/// The ledger's group commit: the rows' insert, alone or (with spends) as SQLite's one script
/// (`BEGIN IMMEDIATE`, the rows' insert, the counters' upsert, `COMMIT`: its first try, which
/// succeeds whenever no row of the batch is in the ledger yet, so a `ROLLBACK` and the careful
/// script, `BEGIN IMMEDIATE; WITH v ..`, would each count as a statement of their own) or
/// PostgreSQL's one statement (`WITH ins AS (INSERT INTO usage_ledger ..) INSERT INTO
/// budget_counters ..`).
fn ledger_commit(sql: &str, spends: bool) -> bool {
    sql.starts_with("INSERT INTO usage_ledger")
        || (spends
            && (sql.starts_with("BEGIN IMMEDIATE; INSERT INTO usage_ledger")
                || sql.starts_with("WITH ins AS"))
            && sql.contains("INSERT INTO budget_counters")
            && sql.contains("INSERT INTO usage_ledger"))
}

/// Fails listing the statements unless every one is the ledger's group commit (or one of the
/// rare reloads the staleness bound allows); returns how many are the request path's own.
fn only_the_ledger_commit(counted: &Counted, spends: bool) -> usize {
    let sql = &counted.sql;
    let unexpected: Vec<&String> = sql
        .iter()
        .filter(|s| {
            let touch = s.starts_with("UPDATE grants SET last_used_at");
            !(ledger_commit(s, spends) || touch || reload(s))
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "statements outside the ledger's commit on the request path: {unexpected:#?}"
    );
    let reloads = sql.iter().filter(|s| reload(s)).count();
    let periods = 1 + counted.elapsed.as_secs() as usize / 10;
    assert!(
        reloads <= 2 * periods,
        "{reloads} grant or credential reads in {:?}: more than the 10 s staleness bound allows",
        counted.elapsed
    );
    let commits = sql.iter().filter(|s| ledger_commit(s, spends)).count();
    assert!(
        (1..=REQUESTS).contains(&commits),
        "{commits} ledger commits for {REQUESTS} requests"
    );
    sql.len() - reloads
}

#[tokio::test]
async fn sqlite_answers_without_a_statement_but_the_ledger_commit() {
    let (gw, _fake) = providers::start_with(Backend::Sqlite, "", LOGGING).await;
    let client = pair(&gw, KeyKind::Ed25519, POLICY).await;
    send(&client, 5).await;
    let counted = counted(&gw, &client).await;
    let own = only_the_ledger_commit(&counted, true);
    println!(
        "SQLite, local limits: {own} statements for {REQUESTS} requests ({:.2} per request)",
        own as f64 / REQUESTS as f64
    );
    // At most one commit per request, each one round trip to the database (the script with
    // the rows and the spends of every budget window), after the answers: the rows of the
    // requests answered within a batch window share one (plus one `last_used_at` write a minute).
    assert!(
        own <= REQUESTS + 1,
        "{own} statements for {REQUESTS} requests"
    );
}

/// Nothing before the answer waits for the database: with SQLite's write lock held by another
/// connection, requests are answered (their rows and spends are in the ledger journal, not yet
/// in the database); once the lock goes, the rows follow with their spends, each once.
#[tokio::test]
async fn sqlite_answers_while_another_connection_holds_the_write_lock() {
    use sqlx::Connection;
    const LOCKED: usize = 20;
    let (gw, _fake) = providers::start(Backend::Sqlite, "").await;
    let client = pair(&gw, KeyKind::Ed25519, POLICY).await;
    send(&client, 5).await;
    let grant = client.grant_id();
    assert_eq!(books(&gw, &grant).await.ledger.len(), 5);
    let url = format!("sqlite://{}", gw.data_dir().join("pairgate.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut db)
        .await
        .unwrap();
    send(&client, LOCKED).await;
    // every one answered, and none of their rows written: they wait behind the lock
    let lag = metric(&gw, "pairgate_ledger_lag_rows").await;
    sqlx::query("ROLLBACK").execute(&mut db).await.unwrap();
    db.close().await.unwrap();
    assert!(
        lag >= LOCKED as f64,
        "{lag} rows waiting after {LOCKED} answers behind the lock"
    );
    let b = books(&gw, &grant).await;
    assert_eq!(b.ledger.len(), 5 + LOCKED, "the rows follow the lock");
    let (spent, reserved) = b.lifetime_tokens().expect("a lifetime counter");
    assert_eq!((spent, reserved), (b.ledger_tokens(), 0), "each spend once");
    assert_eq!(metric(&gw, "pairgate_ledger_lag_rows").await, 0.0);
}

/// A Redis server of this test's own, so its command count is this gateway's alone.
struct OwnRedis {
    child: tokio::process::Child,
    port: u16,
}

impl OwnRedis {
    async fn start() -> OwnRedis {
        let port = pairgate_tests::gateway::free_port();
        let child = tokio::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server (the test suite's Redis) is on PATH");
        let r = OwnRedis { child, port };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while r.commands().await.is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        r
    }

    /// Whether the server answers.
    async fn commands(&self) -> Option<u64> {
        self.info("stats")
            .await?
            .lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|n| n.trim().parse().ok())
    }

    /// Counts the commands clients send (round trips, or pipelined commands) and, apart, those
    /// the scripts run (`MONITOR` marks those `lua`), until the task is aborted.
    async fn monitor(&self) -> (Arc<[AtomicU64; 2]>, tokio::task::JoinHandle<()>) {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        s.write_all(b"MONITOR\r\n").await.unwrap();
        let mut reader = tokio::io::BufReader::new(s);
        let mut ok = String::new();
        reader.read_line(&mut ok).await.unwrap();
        assert_eq!(ok.trim(), "+OK");
        let count = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let counting = Arc::clone(&count);
        let task = tokio::spawn(async move {
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                // `+<time> [<db> <client address>|lua] "COMMAND" ...`
                if line.starts_with('+') {
                    let by_script = usize::from(line.contains(" lua] "));
                    counting[by_script].fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        (count, task)
    }

    /// One `INFO` section's text (a bulk string: `$<len>\r\n<text>\r\n`).
    async fn info(&self, section: &str) -> Option<String> {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .ok()?;
        s.write_all(format!("INFO {section}\r\n").as_bytes())
            .await
            .ok()?;
        let mut got = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = s.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            let (head, body) = text.split_once("\r\n")?;
            let len: usize = head.strip_prefix('$')?.parse().ok()?;
            if body.len() >= len {
                return Some(body[..len].to_string());
            }
        }
    }
}

impl OwnRedis {
    /// Loads a script (`SCRIPT LOAD`) and returns its SHA-1, as `EVALSHA` names it.
    async fn script_load(&self, script: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let cmd = format!(
            "*3\r\n$6\r\nSCRIPT\r\n$4\r\nLOAD\r\n${}\r\n{script}\r\n",
            script.len()
        );
        s.write_all(cmd.as_bytes()).await.unwrap();
        let mut reader = tokio::io::BufReader::new(s);
        let (mut head, mut sha) = (String::new(), String::new());
        reader.read_line(&mut head).await.unwrap();
        assert_eq!(head.trim(), "$40", "SCRIPT LOAD answered {head}");
        reader.read_line(&mut sha).await.unwrap();
        sha.trim().to_string()
    }
}

/// A TCP proxy in front of Redis that, once armed, holds Redis's replies on a connection for
/// [`HOLD`] after that connection sends a script named by its SHA-1: an answer that waited for
/// that script's reply would take at least as long.
struct HoldingProxy {
    port: u16,
    armed: Arc<std::sync::atomic::AtomicBool>,
    /// Times the script went through while armed.
    held: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

const HOLD: Duration = Duration::from_millis(1500);

impl HoldingProxy {
    async fn start(upstream: u16, sha: String) -> HoldingProxy {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let held = Arc::new(AtomicU64::new(0));
        let (is_armed, count) = (armed.clone(), held.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    continue;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let until = Arc::new(std::sync::Mutex::new(None::<tokio::time::Instant>));
                let (hold, armed, held, sha) =
                    (until.clone(), is_armed.clone(), count.clone(), sha.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = cr.read(&mut buf).await {
                        let chunk = &buf[..n];
                        if armed.load(Ordering::SeqCst)
                            && chunk.windows(sha.len()).any(|w| w == sha.as_bytes())
                        {
                            // set before the command goes on: its reply comes after
                            *hold.lock().unwrap() = Some(tokio::time::Instant::now() + HOLD);
                            held.fetch_add(1, Ordering::SeqCst);
                        }
                        if sw.write_all(chunk).await.is_err() {
                            return;
                        }
                    }
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = sr.read(&mut buf).await {
                        let wait = *until.lock().unwrap();
                        if let Some(t) = wait {
                            tokio::time::sleep_until(t).await;
                        }
                        if cw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        HoldingProxy {
            port,
            armed,
            held,
            task,
        }
    }
}

impl Drop for HoldingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[tokio::test]
async fn postgres_and_redis_answer_without_a_statement_but_the_ledger_commit() {
    let redis = OwnRedis::start().await;
    let config = format!(
        "[limits]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:{}\"\n",
        redis.port
    );
    let (gw, _fake) = providers::start_with(Backend::Postgres, &config, LOGGING).await;
    let client = pair(&gw, KeyKind::Ed25519, POLICY).await;
    send(&client, 5).await;
    let (commands, monitor) = redis.monitor().await;
    let counted = counted(&gw, &client).await;
    monitor.abort();
    let (commands, scripted) = (
        commands[0].load(Ordering::SeqCst),
        commands[1].load(Ordering::SeqCst),
    );
    let own = only_the_ledger_commit(&counted, false);
    println!(
        "PostgreSQL + Redis: {own} statements for {REQUESTS} requests; {:.2} Redis commands per request, {:.2} run by the scripts",
        commands as f64 / REQUESTS as f64,
        scripted as f64 / REQUESTS as f64
    );
    // the row alone, one statement (no spend: Redis holds the budgets), one `last_used_at` write
    assert!(
        own <= REQUESTS + 1,
        "{own} statements for {REQUESTS} requests"
    );
    // One round trip before the provider is called: admission, the proof's replay claim inside
    // its script. One command after the provider answers, not waited for: settlement, sent as
    // the answer goes out (its line in the ledger journal first, and the row's commit after it,
    // so a crash can over-charge a budget, never under-charge it;
    // `on_redis_the_answer_does_not_wait_for_the_settlement` proves the answer does not wait).
    // A few more from timers (the limits janitor's script every 30 s, the connection manager's
    // checks).
    assert!(
        commands <= 2 * REQUESTS as u64 + 5,
        "{commands} Redis commands for {REQUESTS} requests"
    );
    // Inside the two scripts, with POLICY's 6 budget windows and 3 rates: the claim, 3 for the
    // lease, per budget a read and the reservation, one read of every rate and a write of each,
    // one reservation member; then the lease, the member, and per budget the reservation's
    // release and the spend; 2 more when the answer used more tokens than the estimate (the
    // per-minute limit is charged the rest). An expiry only for a hash made new, one member per admission,
    // not per budget (62 per request when each budget had its own member and its expiry set
    // on every request).
    let (budgets, rates) = (6, 3);
    let per_request = (1 + 3 + 2 * budgets + 1 + rates + 1) + (1 + 1 + 2 * budgets);
    assert!(
        scripted <= (per_request + 2) * REQUESTS as u64,
        "{scripted} commands run by the scripts for {REQUESTS} requests (at most {} each)",
        per_request + 2
    );
}

/// On Redis, the one round trip the answer waits for is admission: the settlement (which frees
/// the concurrency lease and charges what was used) is sent as the answer goes out, its reply
/// awaited by nobody on the answer's path, and the row goes to the ledger once it has run.
/// Proven with Redis's reply to the settlement held back for [`HOLD`]: the answer comes long
/// before, the lease and the charge follow. A one-at-a-time app under `max_concurrent: 1` never
/// finds its own finished request's lease still held.
#[tokio::test]
async fn on_redis_the_answer_does_not_wait_for_the_settlement() {
    let redis = OwnRedis::start().await;
    let sha = redis
        .script_load(include_str!(
            "../../gateway/server/src/engine/limits/lua/settle.lua"
        ))
        .await;
    let proxy = HoldingProxy::start(redis.port, sha).await;
    let config = format!(
        "[limits]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:{}\"\n",
        proxy.port
    );
    let (gw, _fake) = providers::start(Backend::Sqlite, &config).await;
    let policy = ["--concurrent", "1", "--lifetime-tokens", "100000000"];
    let client = pair(&gw, KeyKind::Ed25519, &policy).await;
    let grant = client.grant_id();
    // warm-up: the connections are open and the scripts loaded; one at a time, never refused
    send(&client, 30).await;
    proxy.armed.store(true, Ordering::SeqCst);
    let started = std::time::Instant::now();
    send(&client, 1).await;
    let answered = started.elapsed();
    let lag = metric(&gw, "pairgate_ledger_lag_rows").await;
    proxy.armed.store(false, Ordering::SeqCst);
    assert_eq!(proxy.held.load(Ordering::SeqCst), 1, "one settlement held");
    assert!(
        answered < HOLD / 2,
        "answered in {answered:?}: the answer waited for its settlement's reply"
    );
    // (with it, the rows its batch took in the same 50 ms)
    assert!(lag >= 1.0, "the row waits for its settlement: lag {lag}");
    // once the reply comes: the row is written, the budget holds exactly the ledger's tokens,
    // and no reservation or lease is left
    let b = books(&gw, &grant).await;
    assert_eq!(b.ledger.len(), 31);
    let usage = pairgate_tests::probe::grant_usage(&client).await;
    assert_eq!(
        (usage.spent, usage.reserved, usage.in_flight),
        (b.ledger_tokens() as u64, 0, 0)
    );
    send(&client, 10).await;
}

/// The provider key the fake saw on its last chat request.
fn last_key(fake: &pairgate_tests::fake::FakeProvider) -> String {
    fake.received()
        .iter()
        .rev()
        .find(|r| r.path.contains("chat/completions"))
        .and_then(|r| r.header("authorization").map(str::to_string))
        .unwrap_or_default()
}

#[tokio::test]
async fn a_credential_rotated_by_another_process_is_used_on_the_next_request() {
    let (gw, fake) = providers::start(Backend::Sqlite, "").await;
    let client = pair(&gw, KeyKind::Ed25519, &[]).await;
    send(&client, 2).await;
    let first = providers::test_key("openai");
    assert_eq!(last_key(&fake), format!("Bearer {first}"));
    // The CLI is another process on the same database file.
    let rotated = "sk-rotated-by-the-cli-0123456789";
    let (code, _, err) = pairgate_tests::gateway::run_cli(
        &gw,
        &["credential", "rotate", "openai"],
        Some(&format!("{rotated}\n")),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    send(&client, 1).await;
    assert_eq!(
        last_key(&fake),
        format!("Bearer {rotated}"),
        "the very next request"
    );
}

#[tokio::test]
async fn a_credential_rotated_on_one_replica_is_used_by_the_other_at_once() {
    let fake = pairgate_tests::fake::FakeProvider::start().await;
    let (a, b) = crate::limits::two_replicas(&fake, "").await;
    let (_on_a, on_b) = crate::limits::pair_on_both(&a, &b, &[]).await;
    send(&on_b, 2).await;
    assert_eq!(
        last_key(&fake),
        format!("Bearer {}", providers::test_key("openai"))
    );
    let rotated = "sk-rotated-on-replica-a-0123456789";
    let (code, _, err) = pairgate_tests::gateway::run_cli(
        &a,
        &["credential", "rotate", "openai"],
        Some(&format!("{rotated}\n")),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    send(&on_b, 1).await;
    assert_eq!(
        last_key(&fake),
        format!("Bearer {rotated}"),
        "B's very next request"
    );
}
