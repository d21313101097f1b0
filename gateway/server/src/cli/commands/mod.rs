//! The owner's CLI commands. Each opens the gateway's state (database and master key) exactly as
//! `serve` does; whoever can run them on the gateway's machine with its master key is the owner.
#![allow(clippy::print_stdout)]

pub mod backup;
pub mod connect;
pub mod consent;
pub mod credential;
pub mod doctor;
pub mod grant;
pub mod master_key;
pub mod owner;
pub mod pair;
pub mod plugin;
pub mod policy_args;
pub mod usage;

pub use crate::boot::Access;
use crate::boot::Opened;
use crate::boot::StartError;
use crate::config::{self, Sources};

/// The actor recorded in the audit log for CLI actions.
pub const CLI_ACTOR: &str = "owner:cli";

/// Loads config and opens the state; quiet logging (warnings only) unless configured. Only
/// [`Access::Create`] commands create a missing data dir, database or master key.
pub async fn open(sources: &Sources, access: Access) -> Result<Opened, StartError> {
    let mut config = config::load(sources).map_err(StartError::Config)?;
    if config.log_level == "info" {
        config.log_level = "warn".into();
    }
    crate::http::telemetry::init(&config);
    let mut opened = crate::boot::open_for(&config, crate::boot::OpenFor::Command, access).await?;
    if !config.public_url_explicit {
        let served = opened
            .state
            .store
            .meta_get(crate::http::serve::SERVED_URL)
            .await
            .ok()
            .flatten();
        if let Some(url) = served.and_then(|u| url::Url::parse(&u).ok()) {
            config.public_url = url;
            opened.state = opened.state.with_config(config);
        }
    }
    Ok(opened)
}

/// A command's failure: the message for stderr and an exit code.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Start(#[from] StartError),
    #[error("{0}")]
    Api(String),
    #[error("{0}")]
    Usage(String),
}

impl CommandError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Start(e) => e.exit_code(),
            CommandError::Api(_) => 1,
            CommandError::Usage(_) => 64,
        }
    }

    /// "`what` not found", naming the command that lists what exists.
    pub fn not_found(what: &str, list: &str) -> CommandError {
        CommandError::Api(format!("{what} not found; `{list}` lists them"))
    }

    /// A domain error as the command prints it: its own message (the same words the console
    /// shows), exit 1.
    pub fn failed(e: impl std::fmt::Display) -> CommandError {
        CommandError::Api(e.to_string())
    }
}

impl From<pairgate_store::StoreError> for CommandError {
    fn from(e: pairgate_store::StoreError) -> Self {
        CommandError::failed(e)
    }
}

impl From<crate::domain::grant_policy::PolicyError> for CommandError {
    fn from(e: crate::domain::grant_policy::PolicyError) -> Self {
        match e {
            crate::domain::grant_policy::PolicyError::UnknownGrant(id) => {
                CommandError::not_found(&format!("grant {id}"), grant::LIST_GRANTS)
            }
            other => CommandError::failed(other),
        }
    }
}

impl From<crate::domain::pairing::OwnerActionError> for CommandError {
    fn from(e: crate::domain::pairing::OwnerActionError) -> Self {
        match e {
            crate::domain::pairing::OwnerActionError::UnknownGrant(id) => {
                CommandError::not_found(&format!("grant {id}"), grant::LIST_GRANTS)
            }
            other => CommandError::failed(other),
        }
    }
}

impl From<crate::domain::owner::OwnerError> for CommandError {
    fn from(e: crate::domain::owner::OwnerError) -> Self {
        CommandError::failed(e)
    }
}

/// Prints rows as aligned columns.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}
