//! `pairgate consent list|approve|deny`: deciding apps' consent requests from the CLI.

use serde_json::Value;

use super::policy_args::PolicyArgs;
use super::{CLI_ACTOR, CommandError, print_table};
use crate::base::clock::now_ms;
use crate::base::clock::rfc3339 as time;
use crate::domain::consent::DecisionError;
use crate::domain::consent::{Decision, PendingView};
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
            let rows = state.store.pending_device_requests(now).await?;
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
            let granted = crate::domain::consent::decide(
                state,
                &user_code,
                Decision::Approve(edits.clone()),
                CLI_ACTOR,
                now,
            )
            .await
            .map_err(|e| not_found(e, &user_code))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&granted).unwrap_or_default()
            );
            let kept = edits
                .map(|edits| narrowed(&edits, &granted))
                .unwrap_or_default();
            if kept.is_empty() {
                eprintln!("approved {user_code}");
            } else {
                eprintln!(
                    "approved {user_code}, narrower than the flags: an approval never widens what \
                     the app asked for, so the request's own values were kept:"
                );
                for line in kept {
                    eprintln!("  {line}");
                }
            }
        }
        ConsentCommand::Deny { user_code } => {
            crate::domain::consent::decide(state, &user_code, Decision::Deny, CLI_ACTOR, now)
                .await
                .map_err(|e| not_found(e, &user_code))?;
            eprintln!("denied {user_code}");
        }
    }
    Ok(())
}

/// A decision's failure as the command says it: an unknown code names the command that lists
/// the pending requests.
fn not_found(e: DecisionError, user_code: &str) -> CommandError {
    match e {
        DecisionError::UnknownCode => CommandError::not_found(
            &format!("pending consent request {user_code}"),
            "pairgate consent list",
        ),
        other => CommandError::failed(other),
    }
}

/// Each value of the owner's flags that the approval did not keep, with the value in effect:
/// `--rpm 500 -> 100`. Fields the flags did not set are not mentioned.
fn narrowed(flags: &Value, granted: &Value) -> Vec<String> {
    let Some(flags) = flags.as_object() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, given) in flags {
        let got = granted.get(key).unwrap_or(&Value::Null);
        match key.as_str() {
            "token_budget" | "cost_budget_micros" => {
                for period in ["daily", "monthly", "lifetime"] {
                    let (g, v) = (&given[period], &got[period]);
                    if !g.is_null() && g != v {
                        let flag = format!("--{period}-{}", budget_unit(key));
                        out.push(format!("{flag} {} -> {}", show(key, g), show(key, v)));
                    }
                }
            }
            _ if given != got => {
                out.push(format!(
                    "{} {} -> {}",
                    flag_of(key),
                    show(key, given),
                    show(key, got)
                ));
            }
            _ => {}
        }
    }
    out
}

fn budget_unit(key: &str) -> &'static str {
    if key == "cost_budget_micros" {
        "usd"
    } else {
        "tokens"
    }
}

/// The flag that sets a policy field (or the field's name, for one from `--policy FILE`).
fn flag_of(key: &str) -> String {
    match key {
        "providers" => "--provider",
        "models" => "--model",
        "endpoints" => "--endpoint",
        "max_output_tokens" => "--max-output-tokens",
        "requests_per_minute" => "--rpm",
        "requests_per_day" => "--rpd",
        "tokens_per_minute" => "--tpm",
        "max_concurrent" => "--concurrent",
        "expires_at" => "--valid-for",
        "require_body_hash" => "--require-body-hash",
        other => return format!("{other} (policy file)"),
    }
    .to_string()
}

/// A policy value as the owner wrote it: dollars, times, lists; "none" for an empty list.
fn show(key: &str, v: &Value) -> String {
    match (key, v) {
        (_, Value::Null) => "unlimited".into(),
        ("cost_budget_micros", Value::Number(n)) => {
            format!("${:.2}", n.as_f64().unwrap_or_default() / 1_000_000.0)
        }
        ("expires_at" | "not_before", Value::Number(n)) => {
            format!("until {}", time(n.as_i64().unwrap_or_default()))
        }
        (_, Value::Array(items)) if items.is_empty() => "none".into(),
        (_, Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| i.to_string())
            })
            .collect::<Vec<_>>()
            .join(","),
        (_, other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_flags_the_approval_did_not_keep_are_named() {
        let flags = json!({
            "requests_per_minute": 500,
            "requests_per_day": 50,
            "cost_budget_micros": { "daily": 5_000_000, "monthly": null, "lifetime": null },
            "models": ["*"],
        });
        let granted = json!({
            "requests_per_minute": 100,
            "requests_per_day": 50,
            "cost_budget_micros": { "daily": 1_000_000 },
            "models": ["openai/gpt-4o-mini"],
        });
        let mut lines = narrowed(&flags, &granted);
        lines.sort();
        assert_eq!(
            lines,
            [
                "--daily-usd $5.00 -> $1.00",
                "--model * -> openai/gpt-4o-mini",
                "--rpm 500 -> 100"
            ]
        );
        assert!(narrowed(&json!({ "requests_per_day": 50 }), &granted).is_empty());
    }
}
