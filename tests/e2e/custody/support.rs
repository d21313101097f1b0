//! Helpers for the custody tests: CLI calls, and reading or changing the gateway's database
//! directly (bypassing the gateway), on SQLite and PostgreSQL.

use std::path::Path;

use pairgate_tests::gateway::run_cli;
use pairgate_tests::{Backend, Gateway};
use serde_json::Value;
use sqlx::{Column, Connection, Row};

/// Runs a CLI command; returns (exit code, stdout, stderr).
pub async fn cli(gw: &Gateway, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    run_cli(gw, args, stdin).await
}

/// Runs a CLI command that must succeed; returns its stdout.
pub async fn ok(gw: &Gateway, args: &[&str], stdin: Option<&str>) -> String {
    let (code, out, err) = cli(gw, args, stdin).await;
    assert_eq!(code, 0, "{args:?} failed: {err}");
    out
}

/// Runs a CLI command with `--json` that must succeed; returns the parsed output.
pub async fn ok_json(gw: &Gateway, args: &[&str], stdin: Option<&str>) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = ok(gw, &all, stdin).await;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// `credential add PROVIDER [extra...]` with `value` on stdin (plus a newline), as JSON.
pub async fn add(gw: &Gateway, provider: &str, extra: &[&str], value: &str) -> Value {
    let mut args = vec!["credential", "add", provider, "--json"];
    args.extend_from_slice(extra);
    let out = ok(gw, &args, Some(&format!("{value}\n"))).await;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// Runs a CLI command against the config file `cfg`; it must succeed. Returns stdout.
pub async fn ok_cfg(gw: &Gateway, cfg: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut all = args.to_vec();
    all.extend(["--config", cfg]);
    ok(gw, &all, stdin).await
}

/// A random hex string of `n` bytes.
pub fn random_hex(n: usize) -> String {
    use rand_core::RngCore;
    let mut b = vec![0u8; n];
    rand_core::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A random master key as the key file format (standard base64 of 32 bytes) and its bytes.
pub fn random_master_key() -> (String, [u8; 32]) {
    use base64::Engine;
    use rand_core::RngCore;
    let mut b = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut b);
    (base64::engine::general_purpose::STANDARD.encode(b), b)
}

fn sqlite_url(gw: &Gateway) -> String {
    format!("sqlite://{}", gw.data_dir().join("pairgate.db").display())
}

/// Executes a statement with text parameters; returns the number of rows changed.
pub async fn exec(gw: &Gateway, sql: &str, binds: &[&str]) -> u64 {
    match gw.db.backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&sqlite_url(gw))
                .await
                .unwrap();
            let mut q = sqlx::query(sql);
            for b in binds {
                q = q.bind(*b);
            }
            let n = q.execute(&mut c).await.unwrap().rows_affected();
            c.close().await.unwrap();
            n
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(gw.db.url.as_ref().unwrap())
                .await
                .unwrap();
            let mut q = sqlx::query(sql);
            for b in binds {
                q = q.bind(*b);
            }
            let n = q.execute(&mut c).await.unwrap().rows_affected();
            c.close().await.unwrap();
            n
        }
    }
}

/// One cell of the database: `table.column` and its value as bytes (text or blob; numbers are
/// rendered as text, NULL as `NULL`).
pub type Cell = (String, Vec<u8>);

/// One row: its table and its cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbRow {
    pub table: String,
    pub cells: Vec<Cell>,
}

impl DbRow {
    /// The value of a column.
    pub fn get(&self, column: &str) -> &[u8] {
        let name = format!("{}.{column}", self.table);
        &self
            .cells
            .iter()
            .find(|(c, _)| *c == name)
            .unwrap_or_else(|| panic!("no column {name}"))
            .1
    }
}

/// Decodes every column of a row as text, bytes, a number or a flag, whatever it is.
macro_rules! row_cells {
    ($table:expr, $row:expr) => {{
        let row = $row;
        row.columns()
            .iter()
            .enumerate()
            .map(|(i, col)| {
                let v = if let Ok(v) = row.try_get::<Option<String>, _>(i) {
                    v.map(String::into_bytes)
                } else if let Ok(v) = row.try_get::<Option<Vec<u8>>, _>(i) {
                    v
                } else if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
                    v.map(|n| n.to_string().into_bytes())
                } else if let Ok(v) = row.try_get::<Option<bool>, _>(i) {
                    v.map(|b| b.to_string().into_bytes())
                } else {
                    None
                };
                (
                    format!("{}.{}", $table, col.name()),
                    v.unwrap_or_else(|| b"NULL".to_vec()),
                )
            })
            .collect::<Vec<Cell>>()
    }};
}

/// Every row of every table, read straight from the database.
pub async fn dump_rows(gw: &Gateway) -> Vec<DbRow> {
    let mut out = Vec::new();
    match gw.db.backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&sqlite_url(gw))
                .await
                .unwrap();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
            )
            .fetch_all(&mut c)
            .await
            .unwrap();
            for t in tables {
                let rows = sqlx::query(&format!("SELECT * FROM \"{t}\""))
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
                for row in &rows {
                    out.push(DbRow {
                        cells: row_cells!(t, row),
                        table: t.clone(),
                    });
                }
            }
            c.close().await.unwrap();
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(gw.db.url.as_ref().unwrap())
                .await
                .unwrap();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() ORDER BY table_name",
            )
            .fetch_all(&mut c)
            .await
            .unwrap();
            for t in tables {
                let rows = sqlx::query(&format!("SELECT * FROM \"{t}\""))
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
                for row in &rows {
                    out.push(DbRow {
                        cells: row_cells!(t, row),
                        table: t.clone(),
                    });
                }
            }
            c.close().await.unwrap();
        }
    }
    out
}

/// Every cell of every table.
pub async fn dump(gw: &Gateway) -> Vec<Cell> {
    dump_rows(gw)
        .await
        .into_iter()
        .flat_map(|r| r.cells)
        .collect()
}

/// The `credentials` row with this id.
pub async fn credential_row(gw: &Gateway, id: &str) -> DbRow {
    dump_rows(gw)
        .await
        .into_iter()
        .find(|r| r.table == "credentials" && r.get("id") == id.as_bytes())
        .unwrap_or_else(|| panic!("no credential row {id}"))
}

/// The cells of one table.
pub fn table<'a>(cells: &'a [Cell], name: &str) -> Vec<&'a Cell> {
    let prefix = format!("{name}.");
    cells
        .iter()
        .filter(|(c, _)| c.starts_with(&prefix))
        .collect()
}

/// Every file in a directory and its folders (the ledger journal's): path below `dir` and bytes.
pub fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                // (a journal segment may be deleted between the listing and the read)
                let name = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((name, bytes));
            }
        }
    }
    out.sort();
    out
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
