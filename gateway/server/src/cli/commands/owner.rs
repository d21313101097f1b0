//! `pairgate owner create|sign-out-everywhere|password-only`: the owner account from the command line (for headless
//! installs; the setup link printed at first start does the same in a browser).

use std::io::IsTerminal;

use super::CommandError;
use crate::base::clock::now_ms;
use crate::base::clock::rfc3339 as time;
use crate::state::AppState;

#[derive(Debug, clap::Subcommand)]
pub enum OwnerCommand {
    /// Create the owner account USERNAME; the password is typed (not shown) or read from
    /// standard input. Creates the data dir and database if needed (a headless set-up).
    Create {
        /// The owner's user name, used to sign in.
        username: String,
    },
    /// Sign the owner out everywhere (ends every session).
    SignOutEverywhere {
        /// The owner's user name.
        username: String,
    },
    /// Stop requiring a passkey at sign-in, so the password alone signs in again (for an owner
    /// who lost every passkey). Registered passkeys stay.
    PasswordOnly {
        /// The owner's user name.
        username: String,
    },
}

/// The password: typed at a terminal without echo, or the first line of standard input.
fn read_password() -> Result<String, CommandError> {
    if std::io::stdin().is_terminal() {
        return super::credential::read_hidden("password (at least 12 characters, not shown): ")
            .map_err(|e| CommandError::Usage(format!("cannot read the password: {e}")));
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| CommandError::Usage(format!("cannot read the password: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub async fn run(state: &AppState, cmd: OwnerCommand) -> Result<(), CommandError> {
    match cmd {
        OwnerCommand::Create { username } => {
            let password = read_password()?;
            let owner =
                crate::domain::owner::create_owner(state, None, &username, &password, now_ms())
                    .await?;
            eprintln!(
                "owner {} created at {}",
                owner.username,
                time(owner.created_at)
            );
        }
        OwnerCommand::SignOutEverywhere { username } => {
            let owner = owner_named(state, &username).await?;
            let n = state.store.delete_owner_sessions(&owner.id).await?;
            eprintln!("{n} session(s) ended");
        }
        OwnerCommand::PasswordOnly { username } => {
            let owner = owner_named(state, &username).await?;
            state.store.set_require_passkey(&owner.id, false).await?;
            state
                .store
                .audit("cli", "passkey.not_required", Some(&owner.id), None)
                .await?;
            eprintln!("{username} can sign in with the password alone again");
        }
    }
    Ok(())
}

async fn owner_named(
    state: &AppState,
    username: &str,
) -> Result<pairgate_store::OwnerRow, CommandError> {
    state
        .store
        .owner_by_username(username)
        .await?
        .ok_or_else(|| {
            CommandError::Api(format!(
                "owner {username} not found; check the user name (the one given to `pairgate owner create`)"
            ))
        })
}
