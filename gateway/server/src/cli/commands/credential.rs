//! `pairgate credential add|list|remove|rotate|check`: the owner's provider keys. A value is
//! read from standard input only (never from an argument, which would land in shell history and
//! `ps`): typed at a terminal without echo, or piped. No command ever prints one: only
//! fingerprints and the last characters.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::time::Duration;

use pairgate_custody::{CredentialRef, DEFAULT_COMMAND_TIMEOUT, SecretString};

use super::{CLI_ACTOR, CommandError, print_table};
use crate::base::clock::rfc3339 as time;
use crate::domain::credentials::{self, CredentialError, CredentialInfo, DEFAULT_NAME, Selector};
use crate::state::AppState;

/// Largest value accepted on standard input.
const STDIN_LIMIT: usize = 64 * 1024;

#[derive(Debug, clap::Subcommand)]
pub enum CredentialCommand {
    /// Add a provider key: its value is typed (not shown) or piped on standard input, or give a
    /// reference to where it lives (--from-env, --from-file, --from-keychain, --from-command).
    /// Creates the data dir and database if needed (a headless set-up).
    #[command(group(clap::ArgGroup::new("from").multiple(false).args(["from_env", "from_file", "from_keychain", "from_command"])))]
    Add {
        /// Provider id, e.g. openai (lowercase a-z, 0-9, -).
        provider: String,
        /// Name, to keep several keys for one provider.
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
        /// Read the key from this environment variable of the gateway whenever it is needed.
        #[arg(long, value_name = "VAR")]
        from_env: Option<String>,
        /// Read the key from this file whenever it is needed.
        #[arg(long, value_name = "PATH")]
        from_file: Option<PathBuf>,
        /// Read the key from this OS keychain entry whenever it is needed.
        #[arg(long, value_name = "SERVICE/USER")]
        from_keychain: Option<String>,
        /// Run this program (no shell) and use its output, whenever the key is needed; its
        /// arguments are given with --arg, or after `--`: `--from-command pass -- show openai`.
        #[arg(long, value_name = "PROG")]
        from_command: Option<String>,
        /// An argument of the --from-command program (repeatable; before any after `--`).
        #[arg(
            long = "arg",
            value_name = "ARG",
            allow_hyphen_values = true,
            requires = "from_command"
        )]
        arg: Vec<String>,
        /// How long --from-command may run before it is killed.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, requires = "from_command")]
        timeout: Option<Duration>,
        /// Arguments of the --from-command program.
        #[arg(last = true, value_name = "ARGS", requires = "from_command")]
        args: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List credentials: provider, name, kind, fingerprint, last characters; never a value.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a credential.
    Remove {
        /// Provider id (or give --id).
        #[arg(required_unless_present = "id", conflicts_with = "id")]
        provider: Option<String>,
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
        /// The credential's id (cr_...).
        #[arg(long, value_name = "ID")]
        id: Option<String>,
    },
    /// Replace a stored key with a new value typed (not shown) or piped on standard input; the
    /// old value stays usable until the grace period ends.
    Rotate {
        provider: String,
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
        /// How long the old value stays usable, e.g. 1h (default: not at all).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "0s")]
        grace: Duration,
        #[arg(long)]
        json: bool,
    },
    /// Decrypt (or fetch) a credential now and report whether it is usable, with its fingerprint.
    Check {
        provider: String,
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
        #[arg(long)]
        json: bool,
    },
}

impl From<CredentialError> for CommandError {
    fn from(e: CredentialError) -> Self {
        if e.is_usage() {
            CommandError::Usage(e.to_string())
        } else {
            CommandError::Api(e.to_string())
        }
    }
}

pub async fn run(state: &AppState, cmd: CredentialCommand) -> Result<(), CommandError> {
    match cmd {
        CredentialCommand::Add {
            provider,
            name,
            from_env,
            from_file,
            from_keychain,
            from_command,
            timeout,
            arg,
            args,
            json,
        } => {
            let args: Vec<String> = arg.into_iter().chain(args).collect();
            let reference = match (from_env, from_file, from_keychain, from_command) {
                (Some(var), ..) => Some(CredentialRef::Env { var }),
                (_, Some(path), ..) => Some(CredentialRef::File { path }),
                (_, _, Some(entry), _) => {
                    let Some((service, user)) = entry
                        .split_once('/')
                        .filter(|(s, u)| !s.is_empty() && !u.is_empty())
                    else {
                        return Err(CommandError::Usage(
                            "--from-keychain takes SERVICE/USER".into(),
                        ));
                    };
                    Some(CredentialRef::Keyring {
                        service: service.into(),
                        user: user.into(),
                    })
                }
                (_, _, _, Some(program)) => Some(CredentialRef::Command {
                    program,
                    args,
                    timeout: timeout.unwrap_or(DEFAULT_COMMAND_TIMEOUT),
                }),
                _ => None,
            };
            // Check the names before asking for a value.
            credentials::validate_provider(&provider)?;
            credentials::validate_name(&name)?;
            let info = match reference {
                Some(r) => {
                    credentials::add_reference(state, &provider, &name, r, CLI_ACTOR).await?
                }
                None => {
                    let value = read_value(&format!("key for {provider}/{name}"))?;
                    credentials::add_stored(state, &provider, &name, value, CLI_ACTOR).await?
                }
            };
            print_one(&info, json);
            eprintln!("added credential {}", info.label());
            if let Err(e) = credentials::known_provider(state, &provider) {
                eprintln!(
                    "warning: {e}; the credential is stored, but no request can use it until then"
                );
            }
        }
        CredentialCommand::List { json } => {
            let all = credentials::list(state).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|c| {
                        vec![
                            c.id.clone(),
                            c.provider.clone(),
                            c.name.clone(),
                            c.kind.clone(),
                            c.fingerprint.clone(),
                            c.last4.clone(),
                            time(c.created_at),
                            c.rotated_at.map(time).unwrap_or_else(|| "-".into()),
                            c.grace_until.map(time).unwrap_or_else(|| "-".into()),
                            c.source.clone().unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                print_table(
                    &[
                        "ID",
                        "PROVIDER",
                        "NAME",
                        "KIND",
                        "FINGERPRINT",
                        "LAST4",
                        "CREATED",
                        "ROTATED",
                        "GRACE UNTIL",
                        "SOURCE",
                    ],
                    &rows,
                );
            }
        }
        CredentialCommand::Remove { provider, name, id } => {
            let sel = match (&provider, &id) {
                (_, Some(id)) => Selector::Id(id),
                (Some(provider), None) => Selector::Name {
                    provider,
                    name: &name,
                },
                (None, None) => {
                    return Err(CommandError::Usage("name a provider or give --id".into()));
                }
            };
            let info = credentials::remove(state, sel, CLI_ACTOR).await?;
            eprintln!("removed credential {} ({})", info.label(), info.id);
        }
        CredentialCommand::Rotate {
            provider,
            name,
            grace,
            json,
        } => {
            credentials::validate_provider(&provider)?;
            credentials::validate_name(&name)?;
            let value = read_value(&format!("new key for {provider}/{name}"))?;
            let sel = Selector::Name {
                provider: &provider,
                name: &name,
            };
            let info = credentials::rotate(state, sel, value, grace, CLI_ACTOR).await?;
            print_one(&info, json);
            match info.grace_until {
                Some(until) => eprintln!(
                    "rotated {}; the previous value stays usable until {}",
                    info.label(),
                    time(until)
                ),
                None => eprintln!(
                    "rotated {}; the previous value is no longer used",
                    info.label()
                ),
            }
        }
        CredentialCommand::Check {
            provider,
            name,
            json,
        } => {
            let sel = Selector::Name {
                provider: &provider,
                name: &name,
            };
            let report = credentials::check(state, sel, CLI_ACTOR).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                let info = &report.info;
                println!(
                    "ok {} {} {} fingerprint={} last4={}",
                    info.label(),
                    info.id,
                    info.kind,
                    report.resolved_fingerprint,
                    report.resolved_last4
                );
                if let Some(p) = &report.previous {
                    println!(
                        "ok {} previous fingerprint={} last4={} until={}",
                        info.label(),
                        p.fingerprint,
                        p.last4,
                        time(p.until)
                    );
                }
            }
        }
    }
    Ok(())
}

fn print_one(info: &CredentialInfo, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(info).unwrap_or_default());
    } else {
        println!(
            "{} {} {} fingerprint={} last4={}",
            info.id, info.provider, info.name, info.fingerprint, info.last4
        );
    }
}

/// Reads a secret value from standard input: one line typed at a terminal, not echoed (with a
/// hint on stderr), or everything piped in. One trailing newline is removed; an empty value is
/// refused.
pub fn read_value(what: &str) -> Result<SecretString, CommandError> {
    if std::io::stdin().is_terminal() {
        let typed = read_hidden(&format!(
            "paste the {what} and press Enter (it is not shown): "
        ))
        .map_err(|e| {
            CommandError::Usage(format!("cannot read the {what} from the terminal: {e}"))
        })?;
        return checked(what, typed);
    }
    // Room for the whole value up front, so reading never reallocates (no stray copies).
    let mut text = String::with_capacity(STDIN_LIMIT + 2);
    let read = std::io::stdin()
        .lock()
        .take(STDIN_LIMIT as u64 + 1)
        .read_to_string(&mut text);
    let value = text
        .strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s))
        .unwrap_or(&text);
    let problem = match read {
        Err(e) => Some(format!("cannot read the {what} from stdin: {e}")),
        Ok(_) => None,
    };
    // An exact-size copy becomes the secret without another reallocation; the read buffer is
    // overwritten before it is freed.
    let mut exact = String::with_capacity(value.len());
    if problem.is_none() {
        exact.push_str(value);
    }
    let capacity = text.capacity();
    text.clear();
    text.extend(std::iter::repeat_n('\0', capacity));
    drop(text);
    match problem {
        Some(p) => Err(CommandError::Usage(p)),
        None => checked(what, exact),
    }
}

/// Prompts on the terminal and reads one line with echo off (the terminal is restored after,
/// also on Ctrl-C).
pub fn read_hidden(prompt: &str) -> std::io::Result<String> {
    rpassword::prompt_password(prompt)
}

/// Refuses an empty or oversized value; the value becomes a secret without another copy.
fn checked(what: &str, value: String) -> Result<SecretString, CommandError> {
    let problem = if value.len() > STDIN_LIMIT {
        Some(format!("the {what} is longer than {STDIN_LIMIT} bytes"))
    } else if value.trim().is_empty() {
        Some(format!(
            "the {what} is empty: type or paste it, or pipe it on standard input, e.g. \
             `pass show openai | pairgate credential add openai`"
        ))
    } else {
        None
    };
    let secret = SecretString::from(value);
    match problem {
        Some(p) => Err(CommandError::Usage(p)),
        None => Ok(secret),
    }
}
