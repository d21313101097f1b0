//! `pairgate grant list|show|edit|revoke|suspend|resume`: the owner's control over paired apps.

use pairgate_protocol::jwk::fingerprint_of;

use super::policy_args::PolicyArgs;
use super::{CLI_ACTOR, CommandError, print_table};
use crate::base::clock::now_ms;
use crate::base::clock::rfc3339 as time;
use crate::domain::pairing::{GrantAction, OwnerActionError};
use crate::state::AppState;

#[derive(Debug, clap::Subcommand)]
pub enum GrantCommand {
    /// List grants (paired apps).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one grant with its policy.
    Show { id: String },
    /// Change a grant's policy: the flags are applied over its current policy (or over
    /// `--policy FILE`, which replaces it); the app's next request is checked against it.
    Edit {
        id: String,
        #[command(flatten)]
        policy: Box<PolicyArgs>,
    },
    /// Revoke a grant: its next request is refused, on every replica.
    Revoke { id: String },
    /// Suspend a grant until resumed.
    Suspend { id: String },
    /// Resume a suspended grant.
    Resume { id: String },
    /// Issue the optional bearer key (weaker: no proof of possession); printed once.
    BearerIssue {
        id: String,
        /// How long the key works.
        #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
        valid_for: std::time::Duration,
    },
    /// Revoke the grant's bearer key.
    BearerRevoke { id: String },
}

pub async fn run(state: &AppState, cmd: GrantCommand) -> Result<(), CommandError> {
    let now = now_ms();
    let (id, action) = match cmd {
        GrantCommand::List { json } => {
            let grants = state.store.list_grants().await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&grants).unwrap_or_default()
                );
            } else {
                let rows: Vec<Vec<String>> = grants
                    .iter()
                    .map(|g| {
                        vec![
                            g.id.clone(),
                            g.app_name.clone(),
                            g.status.clone(),
                            g.origin.clone(),
                            fingerprint_of(&g.jkt),
                            time(g.created_at),
                            g.last_used_at.map(time).unwrap_or_else(|| "never".into()),
                        ]
                    })
                    .collect();
                print_table(
                    &[
                        "ID",
                        "APP",
                        "STATUS",
                        "ORIGIN",
                        "KEY",
                        "CREATED",
                        "LAST USED",
                    ],
                    &rows,
                );
            }
            return Ok(());
        }
        GrantCommand::Show { id } => {
            let g = grant(state, &id).await?;
            let policy: serde_json::Value = serde_json::from_str(&g.policy).unwrap_or_default();
            let mut v = serde_json::to_value(&g).unwrap_or_default();
            v["policy"] = policy;
            v["key_fingerprint"] = fingerprint_of(&g.jkt).into();
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            return Ok(());
        }
        GrantCommand::Edit { id, policy } => {
            let g = grant(state, &id).await?;
            let current = serde_json::from_str(&g.policy).unwrap_or_else(|_| serde_json::json!({}));
            let new = policy.to_policy_over(current, now)?;
            let g = crate::domain::grant_policy::replace(state, &id, &new, CLI_ACTOR, now).await?;
            let shown: serde_json::Value = serde_json::from_str(&g.policy).unwrap_or_default();
            println!(
                "{}",
                serde_json::to_string_pretty(&shown).unwrap_or_default()
            );
            eprintln!("grant {id}: policy changed; it applies from the app's next request");
            return Ok(());
        }
        GrantCommand::BearerIssue { id, valid_for } => {
            let (key, expires) =
                crate::domain::pairing::issue_bearer(state, &id, valid_for, CLI_ACTOR, now)
                    .await
                    .map_err(|e| match e {
                        OwnerActionError::UnknownGrant(_) => {
                            CommandError::not_found(&format!("active grant {id}"), LIST_GRANTS)
                        }
                        other => other.into(),
                    })?;
            println!("{key}");
            eprintln!(
                "bearer key for {id}, valid until {}. WEAKER than pairing: it works without the app's key, so anyone who copies it can use this grant. All of the grant's policy still applies.",
                time(expires)
            );
            return Ok(());
        }
        GrantCommand::BearerRevoke { id } => {
            crate::domain::pairing::revoke_bearer(state, &id, CLI_ACTOR, now).await?;
            eprintln!("bearer key of {id} revoked");
            return Ok(());
        }
        GrantCommand::Revoke { id } => (id, GrantAction::Revoke),
        GrantCommand::Suspend { id } => (id, GrantAction::Suspend),
        GrantCommand::Resume { id } => (id, GrantAction::Resume),
    };
    crate::domain::pairing::set_status(state, &id, action, CLI_ACTOR, now).await?;
    eprintln!("{}", done(&id, action));
    Ok(())
}

/// The command that lists grants, named when one is not found.
pub const LIST_GRANTS: &str = "pairgate grant list";

/// What a status change did, for the owner.
fn done(id: &str, action: GrantAction) -> String {
    match action {
        GrantAction::Revoke => {
            format!("grant {id} revoked: the app's next request is refused, for good")
        }
        GrantAction::Suspend => format!(
            "grant {id} suspended: the app's requests are refused until `pairgate grant resume {id}`"
        ),
        GrantAction::Resume => format!("grant {id} resumed: the app's requests work again"),
    }
}

async fn grant(state: &AppState, id: &str) -> Result<pairgate_store::GrantRow, CommandError> {
    state
        .store
        .get_grant(id)
        .await?
        .ok_or_else(|| CommandError::not_found(&format!("grant {id}"), LIST_GRANTS))
}
