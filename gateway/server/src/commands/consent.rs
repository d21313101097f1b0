//! `pairgate consent list|approve|deny`: deciding apps' consent requests from the CLI.

use super::policy_args::PolicyArgs;
use super::{CLI_ACTOR, CommandError, print_table, time};
use crate::auth::now_ms;
use crate::consent::{Decision, PendingView};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, clap::Subcommand)]
pub enum ConsentCommand {
    /// List pending consent requests with the app's key fingerprint.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Approve a request; policy flags narrow what the app asked for (never widen it).
    Approve {
        user_code: String,
        #[command(flatten)]
        policy: Box<PolicyArgs>,
    },
    /// Deny a request.
    Deny { user_code: String },
}

pub async fn run(state: &AppState, cmd: ConsentCommand) -> Result<(), CommandError> {
    let now = now_ms();
    match cmd {
        ConsentCommand::List { json } => {
            let rows = state
                .store
                .pending_device_requests(now)
                .await
                .map_err(ApiError::from)?;
            let views: Vec<PendingView> = rows.iter().map(PendingView::of).collect();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&views).unwrap_or_default()
                );
            } else {
                let table: Vec<Vec<String>> = views
                    .iter()
                    .map(|v| {
                        vec![
                            v.user_code.clone(),
                            v.app_name.clone(),
                            v.key_fingerprint.clone(),
                            time(v.expires_at),
                            v.requested_policy.to_string(),
                        ]
                    })
                    .collect();
                print_table(&["CODE", "APP", "KEY", "EXPIRES", "REQUESTED"], &table);
            }
        }
        ConsentCommand::Approve { user_code, policy } => {
            let edits = policy.to_policy(now)?;
            let edits = (edits.as_object().is_some_and(|m| !m.is_empty())).then_some(edits);
            let granted =
                crate::consent::decide(state, &user_code, Decision::Approve(edits), CLI_ACTOR, now)
                    .await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&granted).unwrap_or_default()
            );
            eprintln!("approved {user_code}");
        }
        ConsentCommand::Deny { user_code } => {
            crate::consent::decide(state, &user_code, Decision::Deny, CLI_ACTOR, now).await?;
            eprintln!("denied {user_code}");
        }
    }
    Ok(())
}
