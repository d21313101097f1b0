//! `pairgate plugin install|list`: third-party plugins. `install` validates a component against
//! its pinned SHA-256 (contract version, imports, size, compiled under the tighter third-party
//! limits), keeps a copy in the data dir, and prints the configuration that loads it; the owner
//! then approves the hosts it declares per provider.

use std::path::PathBuf;

use pairgate_plugin_host::{HostConfig, Origin, PluginHost};

use super::{CommandError, print_table};
use crate::state::AppState;

#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// Validate a plugin component and keep a copy; prints the config that loads it.
    Install {
        file: PathBuf,
        /// The SHA-256 the component must have (pins exactly what you reviewed).
        #[arg(long)]
        sha256: String,
    },
    /// List built-in and installed plugins with their hashes and declared hosts.
    List {
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(state: &AppState, cmd: PluginCommand) -> Result<(), CommandError> {
    match cmd {
        PluginCommand::Install { file, sha256 } => {
            let bytes = std::fs::read(&file)
                .map_err(|e| CommandError::Usage(format!("cannot read {}: {e}", file.display())))?;
            let host = PluginHost::new(HostConfig::default())
                .map_err(|e| CommandError::Api(e.to_string()))?;
            let id = host
                .install(&bytes, &sha256.to_ascii_lowercase())
                .map_err(|e| CommandError::Api(e.to_string()))?;
            let info = host
                .info(id.as_str())
                .map_err(|e| CommandError::Api(e.to_string()))?;
            let dir = state.config.data_dir.join("plugins");
            std::fs::create_dir_all(&dir)
                .map_err(|e| CommandError::Api(format!("cannot create {}: {e}", dir.display())))?;
            let dest = dir.join(format!("{}-{}.wasm", id, &info.sha256[..12]));
            std::fs::write(&dest, &bytes)
                .map_err(|e| CommandError::Api(format!("cannot write {}: {e}", dest.display())))?;
            state
                .store
                .audit(super::CLI_ACTOR, "plugin.installed", Some(id.as_str()), Some(&serde_json::json!({ "sha256": info.sha256, "hosts": info.descriptor.hosts })))
                .await?;
            eprintln!(
                "plugin {} {} (contract {}) is valid; it declares the hosts {:?}. Add to the config (without approved_hosts, approve them on the console's Plugins page instead):",
                id,
                info.descriptor.version,
                info.contract.as_str(),
                info.descriptor.hosts
            );
            println!(
                "[plugins]\ninstall = [\"{}@sha256:{}\"]\n",
                dest.display(),
                info.sha256
            );
            println!(
                "[providers.{id}]\nplugin = \"{id}\"\napproved_hosts = {:?}",
                info.descriptor.hosts
            );
        }
        PluginCommand::List { json } => {
            let relay = crate::engine::providers::ProviderRegistry::start(&state.config)
                .map_err(|e| CommandError::Api(e.to_string()))?;
            let mut infos = relay.host.plugins();
            infos.sort_by(|a, b| a.id.cmp(&b.id));
            let rows: Vec<Vec<String>> = infos
                .iter()
                .map(|i| {
                    vec![
                        i.id.to_string(),
                        if i.origin == Origin::Builtin {
                            "built-in".into()
                        } else {
                            "installed".into()
                        },
                        i.descriptor.version.clone(),
                        i.sha256[..16].to_string(),
                        i.descriptor.hosts.join(","),
                    ]
                })
                .collect();
            if json {
                let v: Vec<serde_json::Value> = infos
                    .iter()
                    .map(|i| serde_json::json!({ "id": i.id.as_str(), "builtin": i.origin == Origin::Builtin, "version": i.descriptor.version, "sha256": i.sha256, "contract": i.contract.as_str(), "hosts": i.descriptor.hosts, "actions": i.descriptor.actions }))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                print_table(&["ID", "ORIGIN", "VERSION", "SHA256", "HOSTS"], &rows);
            }
        }
    }
    Ok(())
}
