//! `pairgate pair create|list|cancel`: owner-initiated pairing strings.

use std::time::Duration;

use super::policy_args::PolicyArgs;
use super::{CLI_ACTOR, CommandError, print_table};
use crate::base::clock::now_ms;
use crate::base::clock::rfc3339 as time;
use crate::state::AppState;

#[derive(Debug, clap::Subcommand)]
pub enum PairCommand {
    /// Create a single-use pairing string with the grant's policy.
    Create {
        /// The app's name, shown in the owner's lists.
        #[arg(long, value_name = "NAME")]
        app: Option<String>,
        /// How long the string can be redeemed (default pairing.ttl, 10m).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
        #[command(flatten)]
        policy: Box<PolicyArgs>,
        /// Print JSON instead of the bare string.
        #[arg(long)]
        json: bool,
    },
    /// List pairings that can still be redeemed.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Cancel an unused pairing.
    Cancel { id: String },
}

pub async fn run(state: &AppState, cmd: PairCommand) -> Result<(), CommandError> {
    let now = now_ms();
    match cmd {
        PairCommand::Create {
            app,
            ttl,
            policy,
            json,
        } => {
            let policy = policy.to_policy(now)?;
            let created =
                crate::domain::pairing::create(state, app, &policy, ttl, CLI_ACTOR, now).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&created).unwrap_or_default()
                );
            } else {
                println!("{}", created.pairing_string);
                eprintln!(
                    "pairing {} is valid once, until {}; give the string above to the app",
                    created.id,
                    time(created.expires_at)
                );
            }
        }
        PairCommand::List { json } => {
            let rows = state.store.list_open_pairings(now).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).unwrap_or_default()
                );
            } else {
                let table: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.id.clone(),
                            r.app_name.clone().unwrap_or_default(),
                            time(r.created_at),
                            time(r.expires_at),
                        ]
                    })
                    .collect();
                print_table(&["ID", "APP", "CREATED", "EXPIRES"], &table);
            }
        }
        PairCommand::Cancel { id } => {
            if !state.store.cancel_pairing(&id, now).await? {
                return Err(CommandError::Api(format!(
                    "unused pairing {id} not found; `pairgate pair list` lists them"
                )));
            }
            state
                .store
                .audit(CLI_ACTOR, "pairing.cancelled", Some(&id), None)
                .await?;
            eprintln!("pairing {id} cancelled");
        }
    }
    Ok(())
}
