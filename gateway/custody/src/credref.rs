//! Credential references: a provider credential kept outside the gateway's database
//! (environment variable, file, OS keychain, helper program) and fetched when needed.
//!
//! Serialized with a `kind` tag, e.g. `{"kind":"env","var":"OPENAI_API_KEY"}`,
//! `{"kind":"file","path":"/run/keys/openai"}`,
//! `{"kind":"keyring","service":"pairgate","user":"openai"}`,
//! `{"kind":"command","program":"pass","args":["show","openai"],"timeout_ms":10000}`
//! (`args` and `timeout_ms` are optional).

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{CustodyError, Result};
use crate::fetch;
use crate::keychain;

/// Timeout used when a serialized command reference omits `timeout_ms`.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a credential value lives when it is not stored (sealed) in the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CredentialRef {
    /// An environment variable of the gateway process.
    Env {
        /// Variable name.
        var: String,
    },
    /// A file (its whole content).
    File {
        /// Path to the file.
        path: PathBuf,
    },
    /// An OS keychain entry.
    Keyring {
        /// Keychain service name.
        service: String,
        /// Keychain user/account name.
        user: String,
    },
    /// The stdout of a program run without a shell.
    Command {
        /// Program path or name (looked up in `PATH`).
        program: String,
        /// Arguments, passed as-is.
        #[serde(default)]
        args: Vec<String>,
        /// Hard limit; the program is killed when it expires.
        #[serde(rename = "timeout_ms", with = "millis", default = "default_timeout")]
        timeout: Duration,
    },
}

fn default_timeout() -> Duration {
    DEFAULT_COMMAND_TIMEOUT
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

impl CredentialRef {
    /// A non-secret description for errors and UIs, e.g. `environment variable OPENAI_KEY`.
    pub fn describe(&self) -> String {
        match self {
            Self::Env { var } => format!("environment variable {var}"),
            Self::File { path } => format!("file {}", path.display()),
            Self::Keyring { service, user } => keychain::entry_desc(service, user),
            Self::Command { program, .. } => format!("output of command `{program}`"),
        }
    }
}

/// Fetches a referenced credential. Trailing `\r`/`\n` are removed; an empty value is an
/// error. Commands follow the same rules as master-key commands (no shell, timeout, stderr
/// discarded).
pub async fn resolve(
    r: &CredentialRef,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<SecretString> {
    let mut text = fetch_text(r, env).await?;
    let keep = fetch::trim_newlines(&text).len();
    text.truncate(keep);
    if text.is_empty() {
        return Err(CustodyError::BadSecret {
            source_desc: r.describe(),
            reason: "it is empty",
        });
    }
    Ok(SecretString::from(std::mem::take(&mut *text)))
}

/// The raw text behind a reference (nothing trimmed).
pub(crate) async fn fetch_text(
    r: &CredentialRef,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Zeroizing<String>> {
    match r {
        CredentialRef::Env { var } => {
            let value = env(var).ok_or_else(|| CustodyError::NotFound { what: r.describe() })?;
            Ok(Zeroizing::new(value))
        }
        CredentialRef::File { path } => {
            let file = fetch::read_file(path).await?;
            fetch::into_text(file.bytes, || r.describe())
        }
        CredentialRef::Keyring { service, user } => keychain::get(service, user).await,
        CredentialRef::Command {
            program,
            args,
            timeout,
        } => {
            let out = fetch::run_command(program, args, *timeout).await?;
            fetch::into_text(out, || r.describe())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn env(var: &str) -> Option<String> {
        match var {
            "OPENAI_KEY" => Some("sk-env-value\n".into()),
            "EMPTY" => Some("\r\n".into()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn resolves_env_with_injected_lookup() {
        let r = CredentialRef::Env {
            var: "OPENAI_KEY".into(),
        };
        assert_eq!(
            resolve(&r, &env).await.unwrap().expose_secret(),
            "sk-env-value"
        );
        let missing = CredentialRef::Env { var: "NOPE".into() };
        let err = resolve(&missing, &env).await.unwrap_err();
        assert_eq!(err.to_string(), "environment variable NOPE not found");
        let empty = CredentialRef::Env {
            var: "EMPTY".into(),
        };
        let err = resolve(&empty, &env).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "unusable secret from environment variable EMPTY: it is empty"
        );
    }

    #[tokio::test]
    async fn resolves_file_and_reports_missing_or_binary_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anthropic");
        std::fs::write(&path, "sk-ant-file-value\r\n").unwrap();
        let r = CredentialRef::File { path: path.clone() };
        assert_eq!(
            resolve(&r, &env).await.unwrap().expose_secret(),
            "sk-ant-file-value"
        );
        std::fs::write(&path, [0xffu8, 0x00, 0x41]).unwrap();
        let err = resolve(&r, &env).await.unwrap_err();
        assert!(
            matches!(
                err,
                CustodyError::BadSecret {
                    reason: "not valid UTF-8",
                    ..
                }
            ),
            "{err}"
        );
        let gone = CredentialRef::File {
            path: dir.path().join("gone"),
        };
        let err = resolve(&gone, &env).await.unwrap_err();
        assert!(matches!(err, CustodyError::NotFound { .. }));
        assert!(err.to_string().contains("gone"), "{err}");
    }

    #[tokio::test]
    async fn resolves_command_output() {
        let r = CredentialRef::Command {
            program: "/bin/echo".into(),
            args: vec!["sk-cmd-value".into()],
            timeout: Duration::from_secs(5),
        };
        assert_eq!(
            resolve(&r, &env).await.unwrap().expose_secret(),
            "sk-cmd-value"
        );
        let fails = CredentialRef::Command {
            program: "/bin/false".into(),
            args: vec![],
            timeout: Duration::from_secs(5),
        };
        assert!(matches!(
            resolve(&fails, &env).await,
            Err(CustodyError::CommandFailed { .. })
        ));
        let silent = CredentialRef::Command {
            program: "/bin/true".into(),
            args: vec![],
            timeout: Duration::from_secs(5),
        };
        assert!(matches!(
            resolve(&silent, &env).await,
            Err(CustodyError::BadSecret {
                reason: "it is empty",
                ..
            })
        ));
    }

    #[test]
    fn serde_uses_kind_tag() {
        let r: CredentialRef =
            serde_json::from_str(r#"{"kind":"env","var":"OPENAI_API_KEY"}"#).unwrap();
        assert_eq!(
            r,
            CredentialRef::Env {
                var: "OPENAI_API_KEY".into()
            }
        );
        let c: CredentialRef =
            serde_json::from_str(r#"{"kind":"command","program":"pass","args":["show","x"]}"#)
                .unwrap();
        assert_eq!(
            c,
            CredentialRef::Command {
                program: "pass".into(),
                args: vec!["show".into(), "x".into()],
                timeout: DEFAULT_COMMAND_TIMEOUT,
            }
        );
        let json = serde_json::to_value(&CredentialRef::Command {
            program: "p".into(),
            args: vec![],
            timeout: Duration::from_millis(1500),
        })
        .unwrap();
        assert_eq!(json["kind"], "command");
        assert_eq!(json["timeout_ms"], 1500);
        for r in [
            CredentialRef::File {
                path: "/run/keys/openai".into(),
            },
            CredentialRef::Keyring {
                service: "pairgate".into(),
                user: "openai".into(),
            },
        ] {
            let text = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<CredentialRef>(&text).unwrap(), r);
        }
        assert!(
            serde_json::from_str::<CredentialRef>(r#"{"kind":"env","var":"A","x":1}"#).is_err()
        );
        assert!(serde_json::from_str::<CredentialRef>(r#"{"kind":"shell","cmd":"x"}"#).is_err());
    }
}
