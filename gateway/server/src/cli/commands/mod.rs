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
            opened.state.config = std::sync::Arc::new(config);
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

    /// An API "not found" as a message naming what was looked for and how to list what
    /// exists; any other error unchanged.
    pub fn not_found(e: crate::base::error::ApiError, what: &str, list: &str) -> CommandError {
        match e {
            crate::base::error::ApiError::NotFound => {
                CommandError::Api(format!("{what} not found; `{list}` lists them"))
            }
            other => other.into(),
        }
    }
}

impl From<crate::base::error::ApiError> for CommandError {
    fn from(e: crate::base::error::ApiError) -> Self {
        CommandError::Api(e.to_string())
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
