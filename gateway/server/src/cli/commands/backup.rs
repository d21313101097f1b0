//! `pairgate backup` and `pairgate restore`: a consistent copy of the database taken while the
//! gateway serves (SQLite `VACUUM INTO`, PostgreSQL `pg_dump`), and putting one back with the
//! gateway stopped.
//!
//! A backup holds sealed credentials and digests, never a provider key, master key or token in
//! clear, and it does not hold the master key: keep that separately (a key replaced by
//! `master-key rotate` is kept as `KEY.retired-ID` for exactly this). A SQLite restore first
//! proves the configured master key opens the backup, and keeps the database it replaces. A
//! restore refuses while any gateway (or command) uses the database: see
//! `pairgate_store::DatabaseLock`.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use pairgate_store::{Backend, DatabaseLock, LockError, LockMode, Store, StoreOptions, sqlite_url};

use super::CommandError;
use crate::boot::StartError;
use crate::config::Config;
use crate::state::AppState;

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The file to write (must not exist): a SQLite database, or a pg_dump archive.
    #[arg(value_name = "FILE")]
    to: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// A file written by `pairgate backup`.
    #[arg(value_name = "FILE")]
    from: PathBuf,
}

fn failed(what: impl std::fmt::Display) -> CommandError {
    CommandError::Api(what.to_string())
}

/// Creates `path` empty with mode 0600; refuses an existing file.
fn create_private(path: &Path) -> Result<(), CommandError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(|e| failed(format!("cannot create {}: {e}", path.display())))
}

pub async fn backup(state: &AppState, args: BackupArgs) -> Result<(), CommandError> {
    let to =
        std::path::absolute(&args.to).map_err(|e| failed(format!("{}: {e}", args.to.display())))?;
    match state.store.backend() {
        Backend::Sqlite => {
            create_private(&to)?;
            if let Err(e) = state.store.sqlite_copy_into(&to).await {
                let _ = std::fs::remove_file(&to);
                return Err(failed(format!("backup failed: {e}")));
            }
            let check = Store::connect(&sqlite_url(&to), &StoreOptions::default())
                .await
                .map_err(failed)?;
            let integrity = check.sqlite_integrity().await;
            check.close().await;
            match integrity {
                Ok(Ok(())) => {}
                other => {
                    let _ = std::fs::remove_file(&to);
                    return Err(failed(format!(
                        "the copy failed its integrity check: {other:?}"
                    )));
                }
            }
        }
        Backend::Postgres => {
            create_private(&to)?;
            let (url, password, schema) = pg_target(&state.config.effective_database_url())?;
            let mut cmd = tokio::process::Command::new("pg_dump");
            cmd.args(["--format=custom", "--no-owner", "--file"])
                .arg(&to)
                .arg(format!("--dbname={url}"));
            if let Some(schema) = &schema {
                cmd.arg(format!("--schema={schema}"));
            }
            if let Err(e) = run_pg(cmd, password).await {
                let _ = std::fs::remove_file(&to);
                return Err(e);
            }
        }
    }
    let size = std::fs::metadata(&to).map(|m| m.len()).unwrap_or(0);
    println!(
        "backup written to {} ({size} bytes). It holds sealed credentials but not the master key \
         (key id {}): keep that key as long as you keep this file.",
        to.display(),
        state.keys.master().key_id()
    );
    Ok(())
}

/// The URL without its password (given to the tool in `PGPASSWORD`, never on a command line),
/// the password, and the schema named by a `search_path` option, if any.
fn pg_target(url: &str) -> Result<(String, Option<String>, Option<String>), CommandError> {
    let mut parsed = url::Url::parse(url).map_err(|_| failed("database_url is not a valid URL"))?;
    let password = parsed.password().map(str::to_string);
    let _ = parsed.set_password(None);
    let schema = parsed.query_pairs().find_map(|(k, v)| {
        (k == "options")
            .then(|| {
                v.split("search_path=")
                    .nth(1)
                    .map(|s| s.split([' ', ',']).next().unwrap_or("").to_string())
            })
            .flatten()
            .filter(|s| !s.is_empty())
    });
    Ok((parsed.to_string(), password, schema))
}

async fn run_pg(
    mut cmd: tokio::process::Command,
    password: Option<String>,
) -> Result<(), CommandError> {
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    let out = cmd.stdin(Stdio::null()).output().await.map_err(|e| {
        failed(format!(
            "cannot run {program} (is the PostgreSQL client installed?): {e}"
        ))
    })?;
    if !out.status.success() {
        return Err(failed(format!(
            "{program} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Puts a backup back. The gateway must be stopped (a running one would keep writing to the
/// database being replaced): the database's in-use lock is taken exclusively first, which
/// fails while any gateway or command uses it, and is held until the restore is done.
pub async fn restore(config: &Config, args: RestoreArgs) -> Result<(), CommandError> {
    let from = &args.from;
    if !from.is_file() {
        return Err(CommandError::Usage(format!(
            "{} is not a file",
            from.display()
        )));
    }
    match config.sqlite_file() {
        Some(live) => {
            ensure_parent(&live)?;
            let lock = exclusive(|| async { DatabaseLock::sqlite(&live, LockMode::Exclusive) })
                .await
                .map_err(|e| in_use(e, &live.display().to_string()))?;
            let result = restore_sqlite(config, from, &live).await;
            lock.release().await;
            result
        }
        None if config.effective_database_url().starts_with("sqlite:") => Err(CommandError::Usage(
            "an in-memory database cannot be restored into".into(),
        )),
        None => {
            let url = config.effective_database_url();
            let lock = exclusive(|| DatabaseLock::postgres(&url, LockMode::Exclusive))
                .await
                .map_err(|e| in_use(e, "the configured PostgreSQL database"))?;
            let result = restore_postgres(config, from).await;
            lock.release().await;
            result
        }
    }
}

/// Takes the lock exclusively, trying for a few seconds: a gateway stopped a moment ago may
/// still be letting go of it (PostgreSQL ends its session after the process has gone).
async fn exclusive<F, Fut>(mut take: F) -> Result<DatabaseLock, LockError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<DatabaseLock, LockError>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        match take().await {
            Err(LockError::Busy) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

/// The refusal when the database is in use: which one, and how to stop what uses it.
fn in_use(e: LockError, what: &str) -> CommandError {
    match e {
        LockError::Busy => CommandError::Start(StartError::Busy(format!(
            "refusing to restore: a running gateway (or another pairgate command) is using {what}; \
             stop the gateway first (`systemctl stop pairgate`, or Ctrl-C / SIGTERM the `pairgate \
             serve` process; on PostgreSQL every replica), then run restore again. Nothing was \
             changed"
        ))),
        other => failed(other),
    }
}

/// A restore onto a new machine creates the data dir (0700).
fn ensure_parent(live: &Path) -> Result<(), CommandError> {
    let Some(dir) = live
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    else {
        return Ok(());
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))
}

async fn restore_sqlite(config: &Config, from: &Path, live: &Path) -> Result<(), CommandError> {
    let tmp = PathBuf::from(format!("{}.restore-tmp", live.display()));
    let _ = std::fs::remove_file(&tmp);
    create_private(&tmp)?;
    let copied = std::fs::read(from).and_then(|bytes| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&tmp)?
            .write_all(&bytes)
    });
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&tmp);
        return Err(failed(format!("cannot copy {}: {e}", from.display())));
    }
    if let Err(e) = verify_sqlite(config, &tmp).await {
        remove_sqlite(&tmp);
        return Err(e);
    }
    let kept = if live.exists() {
        let db = Store::connect(&sqlite_url(live), &StoreOptions::default())
            .await
            .map_err(failed)?;
        db.sqlite_checkpoint().await.map_err(failed)?;
        db.close().await;
        let kept = PathBuf::from(format!(
            "{}.before-restore-{}",
            live.display(),
            crate::base::clock::now_ms() / 1000
        ));
        std::fs::rename(live, &kept)
            .map_err(|e| failed(format!("cannot move the database aside: {e}")))?;
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", live.display()));
        }
        Some(kept)
    } else {
        None
    };
    std::fs::rename(&tmp, live)
        .map_err(|e| failed(format!("cannot put the backup in place: {e}")))?;
    match kept {
        Some(kept) => println!(
            "restored {} into {}; the database it replaced is kept as {}",
            from.display(),
            live.display(),
            kept.display()
        ),
        None => println!("restored {} into {}", from.display(), live.display()),
    }
    Ok(())
}

/// A backup is restorable when it is a sound pairgate database the configured master key opens.
async fn verify_sqlite(config: &Config, path: &Path) -> Result<(), CommandError> {
    let store = Store::connect(&sqlite_url(path), &StoreOptions::default())
        .await
        .map_err(|e| failed(format!("{}: {e}", path.display())))?;
    let result = async {
        match store.sqlite_integrity().await {
            Ok(Ok(())) => {}
            Ok(Err(found)) => return Err(failed(format!("the backup is damaged: {found}"))),
            Err(e) => return Err(failed(format!("not a SQLite database: {e}"))),
        }
        let verifier = store
            .meta_get(crate::engine::keys::VERIFIER)
            .await
            .map_err(|_| failed("not a pairgate database (no meta table)"))?;
        if verifier.is_none() {
            return Err(failed("not a pairgate backup: nothing in it is sealed"));
        }
        let kid = store
            .meta_get(pairgate_store::credentials::MASTER_KEY_ID)
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        crate::engine::keys::load_master_key(config, &store, false)
            .await
            .map_err(|e| {
                failed(format!(
                    "the configured master key does not open this backup ({e}); it is sealed under \
                     key {kid}: configure that key (a rotated-away key file is kept as \
                     KEY.retired-{kid}), restore, then rotate"
                ))
            })?;
        Ok(())
    }
    .await;
    store.close().await;
    result
}

fn remove_sqlite(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

async fn restore_postgres(config: &Config, from: &Path) -> Result<(), CommandError> {
    let (url, password, _) = pg_target(&config.effective_database_url())?;
    let mut cmd = tokio::process::Command::new("pg_restore");
    cmd.args([
        "--clean",
        "--if-exists",
        "--no-owner",
        "--single-transaction",
    ])
    .arg(format!("--dbname={url}"))
    .arg(from);
    run_pg(cmd, password).await?;
    let store = Store::connect(&config.effective_database_url(), &StoreOptions::default())
        .await
        .map_err(failed)?;
    let opened = crate::engine::keys::load_master_key(config, &store, false).await;
    store.close().await;
    match opened {
        Ok(_) => {
            println!(
                "restored {} into the configured PostgreSQL database",
                from.display()
            );
            Ok(())
        }
        Err(e) => Err(failed(format!(
            "restored, but the configured master key does not open the restored data ({e}): \
             configure the key the backup was sealed under"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_reaches_the_command_line_and_the_schema_is_found() {
        let (url, password, schema) =
            pg_target("postgres://u:s3cret@127.0.0.1:5432/test?options=-c%20search_path%3Dt_abc")
                .unwrap();
        assert!(!url.contains("s3cret"), "{url}");
        assert_eq!(password.as_deref(), Some("s3cret"));
        assert_eq!(schema.as_deref(), Some("t_abc"));
        let (_, password, schema) = pg_target("postgres://127.0.0.1/test").unwrap();
        assert_eq!((password, schema), (None, None));
    }
}
