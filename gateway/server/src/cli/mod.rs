//! The command line: `pairgate serve` and the owner's management commands.

pub mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use self::commands::{Access, CommandError};
use crate::boot::StartError;
use crate::config::{self, FlagValues, Sources};
use crate::http::serve;

/// pairgate: a self-hosted proof-of-possession (DPoP) pairing gateway for AI-provider keys.
#[derive(Debug, Parser)]
#[command(name = "pairgate", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command that opens the gateway's state shares.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// TOML config file (default: the platform's config dir, pairgate/pairgate.toml, if present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for the embedded database and the master key file.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database: sqlite://PATH or postgres://... (default: SQLite in the data dir).
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Log format: human or json.
    #[arg(long, global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        #[command(flatten)]
        common: CommonArgs,
        /// Address to listen on (default 127.0.0.1:8787).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Pairing strings: create, list, cancel.
    Pair {
        #[command(flatten)]
        common: CommonArgs,
        #[command(subcommand)]
        command: commands::pair::PairCommand,
    },
    /// Paired apps: list, show, edit, revoke, suspend, resume, bearer-issue, bearer-revoke.
    Grant {
        #[command(flatten)]
        common: CommonArgs,
        #[command(subcommand)]
        command: commands::grant::GrantCommand,
    },
    /// Third-party plugins: install (pinned by SHA-256), list.
    Plugin {
        #[command(flatten)]
        common: CommonArgs,
        #[command(subcommand)]
        command: commands::plugin::PluginCommand,
    },
    /// The owner account: create, sign-out-everywhere, password-only.
    Owner {
        #[command(flatten)]
        common: CommonArgs,
        #[command(subcommand)]
        command: commands::owner::OwnerCommand,
    },
    /// Apps' consent requests: list, approve, deny.
    Consent {
        #[command(flatten)]
        common: CommonArgs,
        #[command(subcommand)]
        command: commands::consent::ConsentCommand,
    },
    /// Usage per day, grant and model from the usage ledger.
    Usage {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        command: commands::usage::UsageArgs,
    },
    /// Provider keys: add (typed without echo, piped, or a reference), list, remove, rotate,
    /// check.
    Credential {
        #[command(flatten)]
        common: CommonArgs,
        #[command(subcommand)]
        command: commands::credential::CredentialCommand,
    },
    /// The master key: rotate.
    MasterKey {
        #[command(flatten)]
        common: CommonArgs,
        #[command(subcommand)]
        command: commands::master_key::MasterKeyCommand,
    },
    /// Check configuration, data dir, database, public URL, the running gateway, master key,
    /// credentials, plugins and clocks; print what to fix. Exits 1 when a check fails.
    Doctor {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        args: commands::doctor::DoctorArgs,
    },
    /// Write a consistent copy of the database while the gateway runs (SQLite: VACUUM INTO;
    /// PostgreSQL: pg_dump).
    Backup {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        args: commands::backup::BackupArgs,
    },
    /// Put a backup back, with the gateway stopped (refused while a gateway uses the database;
    /// SQLite: checks the master key opens it and keeps the replaced file; PostgreSQL:
    /// pg_restore).
    Restore {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        args: commands::backup::RestoreArgs,
    },
    /// The app side for tools that cannot sign (coding agents, bearer-only SDKs): pair, then
    /// serve a loopback endpoint that signs each request; env, run, status, forget.
    Connect(commands::connect::ConnectArgs),
}

impl CommonArgs {
    fn sources(&self, listen: Option<String>) -> Sources {
        Sources::from_process(
            self.config.clone(),
            FlagValues {
                listen,
                data_dir: self.data_dir.clone(),
                database_url: self.database_url.clone(),
                log_format: self.log_format.clone(),
            },
        )
    }
}

/// Runs the command line and maps failures to one line on stderr and a sysexits code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        // Talks to a gateway as an app; opens no gateway state, and `run` exits with its
        // child's code.
        Command::Connect(args) => return commands::connect::main(args),
        Command::Serve { common, listen } => {
            run_serve(common.sources(listen)).map_err(CommandError::from)
        }
        Command::Pair { common, command } => run_command(&common, Access::Existing, |state| {
            Box::pin(async move { commands::pair::run(&state, command).await })
        }),
        Command::Grant { common, command } => run_command(&common, Access::Existing, |state| {
            Box::pin(async move { commands::grant::run(&state, command).await })
        }),
        Command::Plugin { common, command } => {
            let access = match command {
                commands::plugin::PluginCommand::Install { .. } => Access::Create,
                _ => Access::Existing,
            };
            run_command(&common, access, |state| {
                Box::pin(async move { commands::plugin::run(&state, command).await })
            })
        }
        Command::Owner { common, command } => {
            let access = match command {
                commands::owner::OwnerCommand::Create { .. } => Access::Create,
                _ => Access::Existing,
            };
            run_command(&common, access, |state| {
                Box::pin(async move { commands::owner::run(&state, command).await })
            })
        }
        Command::Consent { common, command } => run_command(&common, Access::Existing, |state| {
            Box::pin(async move { commands::consent::run(&state, command).await })
        }),
        Command::Usage { common, command } => run_command(&common, Access::Existing, |state| {
            Box::pin(async move { commands::usage::run(&state, command).await })
        }),
        Command::Credential { common, command } => {
            let access = match command {
                commands::credential::CredentialCommand::Add { .. } => Access::Create,
                _ => Access::Existing,
            };
            run_command(&common, access, |state| {
                Box::pin(async move { commands::credential::run(&state, command).await })
            })
        }
        Command::MasterKey { common, command } => run_command(&common, Access::Existing, |state| {
            Box::pin(async move { commands::master_key::run(&state, command).await })
        }),
        Command::Doctor { common, args } => run_plain(|| {
            Box::pin(async move { commands::doctor::run(&common.sources(None), args).await })
        }),
        Command::Backup { common, args } => run_command(&common, Access::Existing, |state| {
            Box::pin(async move { commands::backup::backup(&state, args).await })
        }),
        Command::Restore { common, args } => run_plain(|| {
            Box::pin(async move {
                let config = config::load(&common.sources(None)).map_err(StartError::Config)?;
                commands::backup::restore(&config, args).await
            })
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pairgate: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

type CommandFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), CommandError>>>>;

/// Opens the state and runs one management command on a small runtime; the database lock is
/// held until the command has finished.
fn run_command(
    common: &CommonArgs,
    access: Access,
    f: impl FnOnce(crate::state::AppState) -> CommandFuture,
) -> Result<(), CommandError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StartError::Runtime(e.to_string()))?;
    runtime.block_on(async {
        let opened = commands::open(&common.sources(None), access).await?;
        let result = f(opened.state.clone()).await;
        opened.state.shutdown().await;
        if let Some(lock) = opened.lock {
            lock.release().await;
        }
        result
    })
}

/// Runs a command that opens what it needs itself, on a small runtime.
fn run_plain(f: impl FnOnce() -> CommandFuture) -> Result<(), CommandError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StartError::Runtime(e.to_string()))?;
    runtime.block_on(f())
}

fn run_serve(sources: Sources) -> Result<(), StartError> {
    let config = config::load(&sources).map_err(StartError::Config)?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if config.connection_threads > 0 {
        // The connection threads serve every client connection (TLS handshakes included); the
        // shared runtime keeps the accept loop and the background tasks, which one thread
        // carries (a second one only wakes up to steal them: more thread switches per request,
        // measured).
        builder.worker_threads(1);
    }
    let runtime = builder
        .enable_all()
        .build()
        .map_err(|e| StartError::Runtime(e.to_string()))?;
    runtime.block_on(serve::run(config))
}
