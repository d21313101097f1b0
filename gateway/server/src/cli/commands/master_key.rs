//! `pairgate master-key rotate`: moves everything sealed under the current master key (stored
//! credentials' data keys, the gateway secret, the verifier) to a new one, in one transaction,
//! and tells the owner what to change in the configuration.

use std::path::PathBuf;
use std::time::Duration;

use pairgate_custody::{self as custody, KdfParams, MasterKeySource, PassphraseFrom};

use super::{CLI_ACTOR, CommandError};
use crate::boot::StartError;
use crate::config::MasterKeySourceKind;
use crate::state::AppState;

#[derive(Debug, clap::Subcommand)]
pub enum MasterKeyCommand {
    /// Re-wrap every data key and the gateway secret under a new master key. Pairings, grants,
    /// tokens and credential values do not change. With no --to-* option the configured key
    /// file is rotated in place: running gateways pick the new key up without a restart.
    #[command(group(clap::ArgGroup::new("to").required(false).multiple(false).args(["to_file", "to_env", "to_command", "to_passphrase_env"])))]
    Rotate {
        /// With in-place rotation: delete the old key instead of keeping it as
        /// KEY.retired-ID (backups made before the rotation then cannot be opened).
        #[arg(long, conflicts_with = "to")]
        discard_old: bool,
        /// A key file (base64, 32 bytes); generated with mode 0600 if it does not exist.
        #[arg(long, value_name = "PATH")]
        to_file: Option<PathBuf>,
        /// An environment variable holding the new key (base64, 32 bytes).
        #[arg(long, value_name = "VAR")]
        to_env: Option<String>,
        /// A program printing the new key (no shell); its arguments are given with --arg, or
        /// after `--`.
        #[arg(long, value_name = "PROG")]
        to_command: Option<String>,
        /// An argument of the --to-command program (repeatable; before any after `--`).
        #[arg(
            long = "arg",
            value_name = "ARG",
            allow_hyphen_values = true,
            requires = "to_command"
        )]
        arg: Vec<String>,
        /// An environment variable holding a passphrase (Argon2id, fresh salt).
        #[arg(long, value_name = "VAR")]
        to_passphrase_env: Option<String>,
        /// How long --to-command may run.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "10s")]
        timeout: Duration,
        /// Arguments of the --to-command program.
        #[arg(last = true, value_name = "ARGS", requires = "to_command")]
        args: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

/// The new key's source and the configuration lines that select it.
struct Target {
    source: MasterKeySource,
    salt: Option<Vec<u8>>,
    config: Vec<(&'static str, toml::Value)>,
}

fn target(
    to_file: Option<PathBuf>,
    to_env: Option<String>,
    to_command: Option<String>,
    to_passphrase_env: Option<String>,
    timeout: Duration,
    args: Vec<String>,
) -> Result<Target, CommandError> {
    let text = |s: &str| toml::Value::String(s.to_string());
    Ok(match (to_file, to_env, to_command, to_passphrase_env) {
        (Some(path), ..) => {
            let path = std::path::absolute(&path)
                .map_err(|e| CommandError::Usage(format!("--to-file {}: {e}", path.display())))?;
            Target {
                config: vec![
                    ("source", text("file")),
                    ("path", text(&path.display().to_string())),
                ],
                source: MasterKeySource::File {
                    path,
                    create_if_missing: true,
                },
                salt: None,
            }
        }
        (_, Some(var), ..) => Target {
            config: vec![("source", text("env")), ("var", text(&var))],
            source: MasterKeySource::Env { var },
            salt: None,
        },
        (_, _, Some(program), _) => {
            let mut command = vec![text(&program)];
            command.extend(args.iter().map(|a| text(a)));
            let mut config = vec![
                ("source", text("command")),
                ("command", toml::Value::Array(command)),
            ];
            if timeout != Duration::from_secs(10) {
                config.push((
                    "command_timeout",
                    text(&humantime::format_duration(timeout).to_string()),
                ));
            }
            Target {
                config,
                source: MasterKeySource::Command {
                    program,
                    args,
                    timeout,
                },
                salt: None,
            }
        }
        (_, _, _, Some(var)) => {
            let salt = custody::new_salt().to_vec();
            Target {
                config: vec![("source", text("passphrase-env")), ("var", text(&var))],
                source: MasterKeySource::Passphrase {
                    from: PassphraseFrom::Env(var),
                    salt: salt.clone(),
                    params: KdfParams::default(),
                },
                salt: Some(salt),
            }
        }
        _ => {
            return Err(CommandError::Usage(
                "give the new key's source: --to-file, --to-env, --to-command or \
                 --to-passphrase-env (or none, to rotate a key file in place)"
                    .into(),
            ));
        }
    })
}

/// `master-key rotate` with no `--to-*`: a new key replaces the configured key file (see
/// `crate::domain::master_key` for the steps and what a crash in between leaves).
async fn rotate_in_place(
    state: &AppState,
    discard_old: bool,
    json: bool,
) -> Result<(), CommandError> {
    let mk = &state.config.master_key;
    if mk.source != MasterKeySourceKind::File {
        return Err(CommandError::Usage(
            "in-place rotation needs the key-file master key source; give the new key's source \
             with --to-file, --to-env, --to-command or --to-passphrase-env"
                .into(),
        ));
    }
    let key_file = mk
        .path
        .clone()
        .unwrap_or_else(|| state.config.data_dir.join("master.key"));
    let next = crate::engine::master_key_files::next_path(&key_file);
    // Start-up (of this very command) completed any committed rotation, so a KEY.next still
    // here is from one that never committed.
    if next.exists() {
        std::fs::remove_file(&next)
            .map_err(|e| CommandError::Api(format!("removing stale {}: {e}", next.display())))?;
    }
    let source = MasterKeySource::File {
        path: next.clone(),
        create_if_missing: true,
    };
    let loaded = custody::load(&source, &custody::process_env)
        .await
        .map_err(|e| StartError::MasterKey(format!("new master key: {e}")))?;
    let rotation =
        match crate::domain::credentials::rotate_master_key(state, &loaded.key, None, CLI_ACTOR)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_file(&next);
                return Err(e.into());
            }
        };
    crate::engine::master_key_files::finish_file_rotation(&key_file, &rotation.old_key_id)
        .map_err(|e| {
            CommandError::Api(format!(
                "the database is under the new key, but moving {} over {} failed: {e}; the next \
             start completes it",
                next.display(),
                key_file.display()
            ))
        })?;
    let retired = crate::engine::master_key_files::retired_path(&key_file, &rotation.old_key_id);
    if discard_old {
        std::fs::remove_file(&retired).map_err(|e| {
            CommandError::Api(format!("removing the old key {}: {e}", retired.display()))
        })?;
    }
    if json {
        let v = serde_json::json!({
            "old_key_id": rotation.old_key_id,
            "new_key_id": rotation.new_key_id,
            "credentials": rotation.credentials,
            "key_file": key_file,
            "old_key_file": (!discard_old).then_some(&retired),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        let kept = if discard_old {
            "The old key was deleted.".to_string()
        } else {
            format!(
                "The old key is kept in {} for database backups made before now: delete it \
                 when you no longer keep them.",
                retired.display()
            )
        };
        println!(
            "master key rotated in place: {} -> {} ({} stored credential{} re-wrapped, gateway \
             secret re-sealed); {} now holds the new key.\n\
             Running gateways reading this file pick the new key up on their next use of a \
             stored credential (or on SIGHUP): no restart and no configuration change.\n{kept}",
            rotation.old_key_id,
            rotation.new_key_id,
            rotation.credentials,
            if rotation.credentials == 1 { "" } else { "s" },
            key_file.display(),
        );
    }
    Ok(())
}

pub async fn run(state: &AppState, cmd: MasterKeyCommand) -> Result<(), CommandError> {
    let MasterKeyCommand::Rotate {
        discard_old,
        to_file,
        to_env,
        to_command,
        to_passphrase_env,
        timeout,
        arg,
        args,
        json,
    } = cmd;
    if to_file.is_none() && to_env.is_none() && to_command.is_none() && to_passphrase_env.is_none()
    {
        return rotate_in_place(state, discard_old, json).await;
    }
    let args = arg.into_iter().chain(args).collect();
    let target = target(
        to_file,
        to_env,
        to_command,
        to_passphrase_env,
        timeout,
        args,
    )?;
    let loaded = custody::load(&target.source, &custody::process_env)
        .await
        .map_err(|e| StartError::MasterKey(format!("new master key: {e}")))?;
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    let rotation = crate::domain::credentials::rotate_master_key(
        state,
        &loaded.key,
        target.salt.as_deref(),
        CLI_ACTOR,
    )
    .await?;
    let config: toml::Table = target
        .config
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    if json {
        let v = serde_json::json!({
            "old_key_id": rotation.old_key_id,
            "new_key_id": rotation.new_key_id,
            "credentials": rotation.credentials,
            "master_key_config": config,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        let mut section = toml::Table::new();
        section.insert("master_key".into(), toml::Value::Table(config));
        let env: Vec<String> = target
            .config
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    toml::Value::String(s) => s.clone(),
                    other => serde_json::to_string(other).unwrap_or_default(),
                };
                format!(
                    "PAIRGATE_MASTER_KEY__{}={}",
                    k.to_uppercase(),
                    shell_quote(&value)
                )
            })
            .collect();
        println!(
            "master key rotated: {} -> {} ({} stored credential{} re-wrapped, gateway secret \
             re-sealed)\n\n\
             Now point every gateway and CLI that uses this database at the new key, in the \
             config file:\n\n{}\nor in the environment:\n\n  {}\n\n\
             and reload running gateways: a gateway whose configured source now returns the \
             new key (a command or keychain entry updated in place) picks it up by itself on \
             its next use of a stored credential, or on SIGHUP; one whose configuration must \
             change (another file, an environment variable, a systemd credential) needs a \
             restart. Until then it keeps serving apps (pairings, grants and tokens are \
             unchanged) but cannot decrypt stored credentials.\n\
             Keep the old key only as long as you keep database backups made before now.",
            rotation.old_key_id,
            rotation.new_key_id,
            rotation.credentials,
            if rotation.credentials == 1 { "" } else { "s" },
            toml::to_string(&section).unwrap_or_default(),
            env.join("\n  "),
        );
    }
    Ok(())
}

/// Quotes a value for a POSIX shell when it needs it.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b':' | b'-'));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_maps_to_config_lines() {
        let t = target(
            None,
            None,
            Some("op".into()),
            None,
            Duration::from_secs(3),
            vec!["read".into(), "op://v/k".into()],
        )
        .unwrap();
        let keys: Vec<&str> = t.config.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["source", "command", "command_timeout"]);
        assert_eq!(t.config[1].1.to_string(), r#"["op", "read", "op://v/k"]"#);
        let t = target(
            None,
            None,
            None,
            Some("PASS".into()),
            Duration::ZERO,
            vec![],
        )
        .unwrap();
        assert!(t.salt.as_ref().is_some_and(|s| s.len() == 16));
        assert!(matches!(t.source, MasterKeySource::Passphrase { .. }));
        let t = target(
            Some("k.key".into()),
            None,
            None,
            None,
            Duration::ZERO,
            vec![],
        )
        .unwrap();
        let MasterKeySource::File {
            path,
            create_if_missing,
        } = &t.source
        else {
            panic!("file source expected");
        };
        assert!(path.is_absolute() && *create_if_missing);
        assert!(target(None, None, None, None, Duration::ZERO, vec![]).is_err());
        assert_eq!(shell_quote("/a/b.key"), "/a/b.key");
        assert_eq!(shell_quote(r#"["a b"]"#), r#"'["a b"]'"#);
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
