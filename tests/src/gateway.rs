//! Runs the real `pairgate serve` binary for a test, capturing everything it logs.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::db::{Backend, TestDb};

/// Path of the binary under test: cargo puts it beside the `deps/` folder of the test binary
/// (the e2e target lives in the `pairgate` package, so cargo builds the binary first).
/// A program built beside it (the benchmark's `pairgate-bench`) finds it in its own folder.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let name = format!("pairgate{}", std::env::consts::EXE_SUFFIX);
    let sibling = exe.parent().unwrap().join(&name);
    if sibling.is_file() {
        return sibling;
    }
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} not found; run the tests with cargo",
        bin.display()
    );
    bin
}

/// One compiled-plugin cache for the whole suite (beside the binary), so each gateway start loads
/// the built-in plugins from disk instead of compiling them again.
pub fn shared_plugin_cache() -> PathBuf {
    let dir = binary().parent().unwrap().join("plugin-cache-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The `metrics.token` of every gateway under test (a test may set another).
pub const METRICS_TOKEN: &str = "test-metrics-token-0123456789";

/// A `pairgate` command with a clean environment (no stray `PAIRGATE_*` from the caller), and
/// [`METRICS_TOKEN`] as its metrics token.
pub fn command(data_dir: &Path) -> Command {
    let mut cmd = Command::new(binary());
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PAIRGATE_PLUGINS__CACHE_DIR", shared_plugin_cache())
        .env("PAIRGATE_METRICS__TOKEN", METRICS_TOKEN)
        .env("HOME", data_dir)
        .env("XDG_CONFIG_HOME", data_dir.join("config-home"))
        .kill_on_drop(true);
    cmd
}

/// Options for a gateway under test.
#[derive(Debug)]
pub struct GatewayBuilder {
    backend: Backend,
    args: Vec<String>,
    env: Vec<(String, String)>,
    removed: Vec<String>,
    config: Option<String>,
    shared: Option<TestDb>,
    listen: Option<String>,
}

impl GatewayBuilder {
    /// Listens on this address instead of `127.0.0.1:0` (a port picked beforehand with
    /// [`free_port`], so `public_url` can name it).
    pub fn listen(mut self, addr: impl Into<String>) -> Self {
        self.listen = Some(addr.into());
        self
    }
    /// Makes this gateway a replica of `other`: the same PostgreSQL schema and the same
    /// master key (`other`'s key file, through `master_key.path`). The schema is `other`'s to drop.
    pub fn share_db(mut self, other: &Gateway) -> Self {
        self.shared = Some(other.db.shared());
        let key = other.data_dir().join("master.key");
        self.env.push((
            "PAIRGATE_MASTER_KEY__PATH".into(),
            key.display().to_string(),
        ));
        self
    }
    /// Runs this gateway on a database the test prepared (e.g. a PostgreSQL schema reached
    /// through a proxy that can cut it off).
    pub fn with_db(mut self, db: TestDb) -> Self {
        self.shared = Some(db);
        self
    }
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }
    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
    /// Leaves out a variable [`command`] sets by default (e.g. `PAIRGATE_METRICS__TOKEN`).
    pub fn env_remove(mut self, k: impl Into<String>) -> Self {
        self.removed.push(k.into());
        self
    }
    /// TOML written to a config file passed with `--config`.
    pub fn config(mut self, toml: impl Into<String>) -> Self {
        self.config = Some(toml.into());
        self
    }

    pub async fn start(self) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let db = match self.shared {
            Some(db) => db,
            None => TestDb::new(self.backend).await,
        };
        let listen = self.listen.unwrap_or_else(|| "127.0.0.1:0".into());
        let env = Env {
            set: self.env,
            removed: self.removed,
        };
        Gateway::spawn(dir, db, self.args, env, self.config, &listen).await
    }
}

/// A running gateway process.
#[derive(Debug)]
pub struct Gateway {
    pub base_url: String,
    pub addr: std::net::SocketAddr,
    pub dir: tempfile::TempDir,
    pub db: TestDb,
    child: Option<Child>,
    logs: Arc<Mutex<Vec<String>>>,
    /// The tasks copying the process's output into `logs` (done at its exit).
    readers: Vec<tokio::task::JoinHandle<()>>,
    args: Vec<String>,
    env: Env,
}

/// The environment a gateway runs with, on top of [`command`]'s.
#[derive(Debug, Default)]
struct Env {
    set: Vec<(String, String)>,
    removed: Vec<String>,
}

impl Gateway {
    pub fn builder(backend: Backend) -> GatewayBuilder {
        GatewayBuilder {
            backend,
            args: Vec::new(),
            env: Vec::new(),
            removed: Vec::new(),
            config: None,
            shared: None,
            listen: None,
        }
    }

    /// A gateway on SQLite with default settings.
    pub async fn start(backend: Backend) -> Gateway {
        Gateway::builder(backend).start().await
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    async fn spawn(
        dir: tempfile::TempDir,
        db: TestDb,
        args: Vec<String>,
        env: Env,
        config: Option<String>,
        listen: &str,
    ) -> Gateway {
        if let Some(toml) = config {
            // Written beside the data dir; `state_args` passes it to serve and CLI commands alike.
            std::fs::write(dir.path().join("pairgate.toml"), toml).unwrap();
        }
        let mut gw = Gateway {
            base_url: String::new(),
            addr: "127.0.0.1:0".parse().unwrap(),
            dir,
            db,
            child: None,
            logs: Arc::new(Mutex::new(Vec::new())),
            readers: Vec::new(),
            args,
            env,
        };
        gw.launch(listen).await;
        gw
    }

    /// Common arguments: data dir and database of this gateway.
    pub fn state_args(&self) -> Vec<String> {
        let mut a = vec![
            "--data-dir".to_string(),
            self.data_dir().display().to_string(),
        ];
        if let Some(url) = &self.db.url {
            a.push("--database-url".into());
            a.push(url.clone());
        }
        a
    }

    /// `--config <file>` when the gateway was built with a config, for callers that pass none.
    pub fn config_args(&self, caller_args: &[&str]) -> Vec<String> {
        let config = self.dir.path().join("pairgate.toml");
        if config.exists() && !caller_args.contains(&"--config") {
            vec!["--config".into(), config.display().to_string()]
        } else {
            Vec::new()
        }
    }

    async fn launch(&mut self, listen: &str) {
        let mut cmd = command(self.dir.path());
        cmd.arg("serve")
            .arg("--listen")
            .arg(listen)
            .args(self.state_args())
            .args(&self.args);
        let own: Vec<&str> = self.args.iter().map(String::as_str).collect();
        cmd.args(self.config_args(&own));
        for k in &self.env.removed {
            cmd.env_remove(k);
        }
        for (k, v) in &self.env.set {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<(String, bool)>();
        let mut tx = Some(tx);
        let logs = self.logs.clone();
        let stderr = child.stderr.take().unwrap();
        let stderr_reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // "listening on http://ADDR" or, when serving TLS, "https://ADDR".
                if let Some(pos) = line.find("listening on http") {
                    let rest = &line[pos + "listening on http".len()..];
                    let tls = rest.starts_with("s://");
                    let rest = rest.trim_start_matches("s://").trim_start_matches("://");
                    let addr: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | ':' | '[' | ']'))
                        .collect();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send((addr, tls));
                    }
                }
                logs.lock().unwrap().push(line);
            }
        });
        let stdout = child.stdout.take().unwrap();
        let logs = self.logs.clone();
        let stdout_reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                logs.lock().unwrap().push(line);
            }
        });
        self.readers = vec![stderr_reader, stdout_reader];
        let addr = match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(found)) => found,
            _ => {
                let status = child.try_wait().ok().flatten();
                panic!(
                    "gateway did not start (exit {status:?}); logs:\n{}",
                    self.logs()
                )
            }
        };
        let (addr, tls) = addr;
        self.addr = addr.parse().unwrap();
        let scheme = if tls { "https" } else { "http" };
        self.base_url = format!("{scheme}://{addr}");
        self.child = Some(child);
    }

    /// Runs one SQL statement on this gateway's database (to set up what HTTP cannot, such as
    /// time having passed).
    pub async fn execute_sql(&self, sql: &str) {
        use sqlx::Connection;
        match self.db.backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", self.data_dir().join("pairgate.db").display());
                let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::query(sql).execute(&mut c).await.unwrap();
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(self.db.url.as_ref().unwrap())
                    .await
                    .unwrap();
                sqlx::query(sql).execute(&mut c).await.unwrap();
            }
        }
    }

    /// Everything the process wrote so far, one line each.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// `GET /metrics` with [`METRICS_TOKEN`]: the Prometheus text.
    pub async fn metrics_text(&self) -> String {
        let res = reqwest::Client::new()
            .get(self.url("/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "GET /metrics with the token");
        res.text().await.unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// Waits until every usage-ledger row this gateway recorded before the call is finished
    /// with (in the database, or given up on), as its `/metrics` counts them: an answer no longer
    /// waits for its row's commit (the row is in the ledger journal first). Returns at once for
    /// a gateway that is not running or serves no metrics, and after 30 s in any case (the
    /// caller's checks then say what is missing).
    pub async fn ledger_settled(&self) {
        if self.child.is_none() {
            return;
        }
        let Some(recorded) = self.try_metric("pairgate_ledger_rows_recorded_total").await else {
            return;
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            match self.try_metric("pairgate_ledger_rows_finished_total").await {
                Some(finished) if finished < recorded => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                _ => return,
            }
        }
    }

    /// One unlabelled value from `/metrics`, or `None` if the gateway does not answer with it.
    async fn try_metric(&self, name: &str) -> Option<f64> {
        let res = reqwest::Client::new()
            .get(self.url("/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        if !res.status().is_success() {
            return None;
        }
        let text = res.text().await.ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// The process id while the gateway runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// Sends a signal with the system `kill` (no unsafe code in tests).
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().and_then(|c| c.id()).expect("running");
        let ok = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit and returns its exit code.
    pub async fn wait(&mut self) -> Option<i32> {
        let child = self.child.as_mut()?;
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .ok()?
            .ok()?;
        self.child = None;
        // Everything it wrote before exiting is in `logs` once this returns.
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
        }
        status.code()
    }

    /// Graceful stop (SIGTERM) and wait.
    pub async fn stop(&mut self) -> Option<i32> {
        self.signal("TERM");
        self.wait().await
    }

    /// Starts the same gateway again (same data dir and database) on the same port.
    pub async fn restart(&mut self) {
        if self.child.is_some() {
            self.stop().await;
        }
        let listen = self.addr.to_string();
        self.launch(&listen).await;
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for a gateway whose `public_url` must
/// name its port before it starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a one-shot `pairgate` CLI command against a gateway's state; returns (code, stdout, stderr).
pub async fn run_cli(gw: &Gateway, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut cmd = command(gw.dir.path());
    cmd.args(args)
        .args(gw.state_args())
        .args(gw.config_args(args));
    for k in &gw.env.removed {
        cmd.env_remove(k);
    }
    for (k, v) in &gw.env.set {
        cmd.env(k, v);
    }
    run(cmd, stdin).await
}

/// Runs a prepared command, feeding stdin.
pub async fn run(mut cmd: Command, stdin: Option<&str>) -> (i32, String, String) {
    use tokio::io::AsyncWriteExt;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(input) = stdin {
        pipe.write_all(input.as_bytes()).await.unwrap();
    }
    drop(pipe);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
