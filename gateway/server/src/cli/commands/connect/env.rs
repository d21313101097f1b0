//! What a tool needs to use the connector: the environment variables (and Codex's provider
//! block) that `connect env` prints and `connect run` sets for the child alone.

use std::net::SocketAddr;

use secrecy::{ExposeSecret, SecretString};

/// The tools `connect env` and `connect run` know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Tool {
    /// Claude Code (`ANTHROPIC_BASE_URL`, `ANTHROPIC_AUTH_TOKEN`).
    Claude,
    /// Codex CLI (a `[model_providers.pairgate]` block with `wire_api = "responses"`).
    Codex,
    /// The OpenAI SDKs and compatible tools (`OPENAI_BASE_URL`, `OPENAI_API_KEY`).
    Openai,
    /// The Anthropic SDKs (`ANTHROPIC_BASE_URL`, `ANTHROPIC_API_KEY`).
    Anthropic,
}

/// The variable Codex's provider block names as its `env_key`.
pub const CODEX_ENV_KEY: &str = "PAIRGATE_API_KEY";

/// The variables for `tool` (every tool's when `None`), for a connector at `addr`.
pub fn vars(tool: Option<Tool>, addr: SocketAddr, token: &SecretString) -> Vec<(String, String)> {
    let origin = format!("http://{addr}");
    let token = token.expose_secret().to_string();
    let openai = [
        ("OPENAI_BASE_URL", format!("{origin}/v1")),
        ("OPENAI_API_KEY", token.clone()),
    ];
    let vars: Vec<(&str, String)> = match tool {
        Some(Tool::Openai) => openai.to_vec(),
        Some(Tool::Anthropic) => vec![("ANTHROPIC_BASE_URL", origin), ("ANTHROPIC_API_KEY", token)],
        Some(Tool::Claude) => vec![
            ("ANTHROPIC_BASE_URL", origin),
            ("ANTHROPIC_AUTH_TOKEN", token),
        ],
        // Codex reads its provider's URL from the `pairgate` block of its config file (see
        // `render`), and the key from CODEX_ENV_KEY; the OpenAI variables serve the rest.
        Some(Tool::Codex) => {
            let mut v = openai.to_vec();
            v.push((CODEX_ENV_KEY, token));
            v
        }
        None => {
            let mut v = openai.to_vec();
            v.push(("ANTHROPIC_BASE_URL", origin));
            v.push(("ANTHROPIC_API_KEY", token.clone()));
            v.push((CODEX_ENV_KEY, token));
            v
        }
    };
    vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The text `connect env` prints: shell lines to paste, and Codex's config block.
pub fn render(tool: Tool, addr: SocketAddr, token: &SecretString) -> String {
    let mut out = String::new();
    if tool == Tool::Codex {
        out.push_str(&format!(
            "# ~/.codex/config.toml\n\
             model_provider = \"pairgate\"\n\
             [model_providers.pairgate]\n\
             name = \"pairgate\"\n\
             base_url = \"http://{addr}/v1\"\n\
             env_key = \"{CODEX_ENV_KEY}\"\n\
             wire_api = \"responses\"\n\
             \n# your shell\n\
             export {CODEX_ENV_KEY}={}\n",
            token.expose_secret()
        ));
        return out;
    }
    for (k, v) in vars(Some(tool), addr, token) {
        out.push_str(&format!("export {k}={v}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tool_gets_its_variables() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let token = SecretString::from("pgc_t");
        let names = |tool| {
            vars(tool, addr, &token)
                .into_iter()
                .map(|(k, _)| k)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(Some(Tool::Claude)),
            ["ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN"]
        );
        assert_eq!(
            names(Some(Tool::Openai)),
            ["OPENAI_BASE_URL", "OPENAI_API_KEY"]
        );
        assert_eq!(names(None).len(), 5);
        let codex = render(Tool::Codex, addr, &token);
        assert!(
            codex.contains("base_url = \"http://127.0.0.1:9/v1\""),
            "{codex}"
        );
        assert!(codex.contains("wire_api = \"responses\""), "{codex}");
        assert!(codex.contains("export PAIRGATE_API_KEY=pgc_t"), "{codex}");
        assert_eq!(
            render(Tool::Anthropic, addr, &token),
            "export ANTHROPIC_BASE_URL=http://127.0.0.1:9\nexport ANTHROPIC_API_KEY=pgc_t\n"
        );
    }
}
