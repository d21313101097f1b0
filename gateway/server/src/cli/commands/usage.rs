//! `pairgate usage [--from DATE] [--to DATE] [--grant ID] [--json]`: usage per UTC day, grant and model, from the ledger.

use serde_json::json;

use super::{CommandError, print_table};
use crate::domain::usage::{DAY_MS, day, totals};
use crate::state::AppState;

/// Days shown when `--from` is not given (today included).
const DEFAULT_DAYS: i64 = 30;

#[derive(Debug, Clone, clap::Args)]
pub struct UsageArgs {
    /// First day (UTC), YYYY-MM-DD, or an RFC 3339 instant. Default: 30 days ago.
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// Last day (UTC, included), YYYY-MM-DD, or an RFC 3339 instant (excluded). Default: now.
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
    /// Only this grant.
    #[arg(long, value_name = "ID")]
    pub grant: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Micro-USD as dollars with six decimals.
pub fn usd(micros: u64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// The `[from, to)` range of the arguments at `now_ms`.
pub fn range(args: &UsageArgs, now_ms: i64) -> Result<(i64, i64), CommandError> {
    let to = match &args.to {
        Some(s) => {
            crate::domain::usage::parse_date(s, true).map_err(|e| CommandError::Usage(e.0))?
        }
        None => now_ms + 1,
    };
    let from = match &args.from {
        Some(s) => {
            crate::domain::usage::parse_date(s, false).map_err(|e| CommandError::Usage(e.0))?
        }
        None => (now_ms.div_euclid(DAY_MS) - (DEFAULT_DAYS - 1)) * DAY_MS,
    };
    if from >= to {
        return Err(CommandError::Usage(
            "--from must be earlier than --to".to_owned(),
        ));
    }
    Ok((from, to))
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "-".to_owned())
}

pub async fn run(state: &AppState, args: UsageArgs) -> Result<(), CommandError> {
    let (from, to) = range(&args, crate::base::clock::now_ms())?;
    let rows = state
        .store
        .usage_rollup(from, to, args.grant.as_deref())
        .await?;
    let total = totals(&rows);
    if args.json {
        let days: Vec<_> = rows
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                v["day"] = json!(day(r.day_ms));
                v
            })
            .collect();
        let out = json!({
            "from": crate::base::clock::rfc3339(from),
            "to": crate::base::clock::rfc3339(to),
            "grant": args.grant,
            "rows": days,
            "totals": {
                "requests": total.requests,
                "errors": total.errors,
                "input_tokens": total.input_tokens,
                "output_tokens": total.output_tokens,
                "cached_tokens": total.cached_tokens,
                "cost_micros": total.cost_micros,
            },
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(());
    }
    let mut table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                day(r.day_ms),
                opt(&r.grant_id),
                opt(&r.app_name),
                opt(&r.provider),
                opt(&r.model),
                r.requests.to_string(),
                r.errors.to_string(),
                r.input_tokens.to_string(),
                r.output_tokens.to_string(),
                r.cached_tokens.to_string(),
                usd(r.cost_micros),
            ]
        })
        .collect();
    table.push(vec![
        "TOTAL".to_owned(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        total.requests.to_string(),
        total.errors.to_string(),
        total.input_tokens.to_string(),
        total.output_tokens.to_string(),
        total.cached_tokens.to_string(),
        usd(total.cost_micros),
    ]);
    print_table(
        &[
            "DAY", "GRANT", "APP", "PROVIDER", "MODEL", "REQUESTS", "ERRORS", "INPUT", "OUTPUT",
            "CACHED", "COST_USD",
        ],
        &table,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_have_six_decimals() {
        assert_eq!(usd(1_234_567), "1.234567");
    }

    #[test]
    fn default_range_is_thirty_days_up_to_now() {
        let args = UsageArgs {
            from: None,
            to: None,
            grant: None,
            json: false,
        };
        let now = 1_795_132_800_000 + 1000;
        let (from, to) = range(&args, now).unwrap();
        assert_eq!(to, now + 1);
        assert_eq!(from, 1_795_132_800_000 - 29 * DAY_MS);
        let bad = UsageArgs {
            from: Some("2026-11-21".into()),
            to: Some("2026-11-20".into()),
            ..args
        };
        assert!(range(&bad, now).is_err());
    }
}
