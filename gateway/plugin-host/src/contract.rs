//! Reading a component before compiling it: which contract version it exports, and whether every
//! import is on the allow-list.

use crate::error::PluginError;
use crate::types::ContractVersion;
use crate::v0_1_0;
use wasmtime::wasmparser::{Parser, Payload};

/// Interfaces Rust's standard library links into every wasm32-wasip2 component (for printing
/// panics, the environment, exit). The host defines each of their functions as a trap: a plugin
/// gets no capability from them, and a plugin that uses them fails that call. Any other WASI
/// interface (filesystem, sockets, clocks, random, http, ...) is refused at install.
const STD_WASI_INTERFACES: &[&str] = &[
    "wasi:io/poll",
    "wasi:io/error",
    "wasi:io/streams",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
];

/// What the scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scan {
    pub(crate) version: ContractVersion,
    pub(crate) imports: Vec<String>,
}

/// Checks that `bytes` is a component exporting a supported `pairgate:provider/plugin` and
/// importing nothing beyond the allow-list. `label` names the plugin in errors.
pub(crate) fn scan(bytes: &[u8], label: &str) -> Result<Scan, PluginError> {
    let invalid = |reason: String| PluginError::Invalid {
        plugin: label.to_owned(),
        reason,
    };
    if !Parser::is_component(bytes) {
        return Err(invalid(
            "not a WebAssembly component (build it for wasm32-wasip2)".to_owned(),
        ));
    }
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| invalid(format!("malformed component: {e}")))?;
        match payload {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|e| invalid(format!("malformed import: {e}")))?;
                    imports.push(import.name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.map_err(|e| invalid(format!("malformed export: {e}")))?;
                    exports.push(export.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    let version = contract_version(&exports, label)?;
    if let Some(bad) = imports.iter().find(|i| !import_allowed(version, i)) {
        return Err(PluginError::ForbiddenImport {
            plugin: label.to_owned(),
            import: bad.clone(),
        });
    }
    Ok(Scan { version, imports })
}

fn contract_version(exports: &[String], label: &str) -> Result<ContractVersion, PluginError> {
    let found: Vec<&str> = exports
        .iter()
        .filter_map(|e| e.strip_prefix("pairgate:provider/plugin@"))
        .collect();
    let supported = ContractVersion::ALL
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    match found.as_slice() {
        [] => Err(PluginError::UnsupportedContract {
            plugin: label.to_owned(),
            detail: format!(
                "it exports no pairgate:provider/plugin interface (supported: {supported})"
            ),
        }),
        [one] => ContractVersion::ALL
            .iter()
            .copied()
            .find(|v| export_name(*v).strip_prefix("pairgate:provider/plugin@") == Some(*one))
            .ok_or_else(|| PluginError::UnsupportedContract {
                plugin: label.to_owned(),
                detail: format!("pairgate:provider@{one} (supported: {supported})"),
            }),
        _ => Err(PluginError::UnsupportedContract {
            plugin: label.to_owned(),
            detail: "it exports more than one pairgate:provider/plugin interface".to_owned(),
        }),
    }
}

/// The interface a component built against `version` exports.
fn export_name(version: ContractVersion) -> &'static str {
    match version {
        ContractVersion::V0_1_0 => v0_1_0::EXPORT,
    }
}

fn import_allowed(version: ContractVersion, name: &str) -> bool {
    let own = match version {
        ContractVersion::V0_1_0 => v0_1_0::LOG_IMPORT,
    };
    if name == own {
        return true;
    }
    let Some((interface, wasi_version)) = name.split_once('@') else {
        return false;
    };
    wasi_version.starts_with("0.2.") && STD_WASI_INTERFACES.contains(&interface)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_log_import_and_std_wasi_interfaces_are_allowed() {
        let v = ContractVersion::V0_1_0;
        assert!(import_allowed(v, "pairgate:provider/log@0.1.0"));
        assert!(import_allowed(v, "wasi:cli/stderr@0.2.6"));
        assert!(import_allowed(v, "wasi:io/streams@0.2.0"));
        assert!(!import_allowed(v, "pairgate:provider/log@0.2.0"));
        assert!(!import_allowed(v, "wasi:filesystem/preopens@0.2.6"));
        assert!(!import_allowed(v, "wasi:sockets/tcp@0.2.6"));
        assert!(!import_allowed(v, "wasi:random/random@0.2.6"));
        assert!(!import_allowed(v, "wasi:cli/stderr@0.3.0"));
        assert!(!import_allowed(v, "wasi:cli/stderr"));
    }

    #[test]
    fn a_core_module_or_garbage_is_not_a_component() {
        let core_module = b"\0asm\x01\0\0\0";
        for bytes in [&core_module[..], b"hello", b""] {
            let err = scan(bytes, "x").expect_err("must be refused");
            assert!(matches!(err, PluginError::Invalid { .. }), "{err}");
        }
    }
}
