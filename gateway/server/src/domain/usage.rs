//! Usage reports: the dates they span and the totals of their rows, for the console and the
//! `usage` command.

use pairgate_policy::limits::civil_from_days;
use pairgate_store::RollupRow;

/// One day in unix milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// A date that could not be read; the message says what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadDate(pub String);

/// Parses `YYYY-MM-DD` (midnight UTC; with `end`, the next midnight) or an RFC 3339 instant.
pub fn parse_date(s: &str, end: bool) -> Result<i64, BadDate> {
    let bad = || {
        BadDate(format!(
            "invalid date {s:?}: expected YYYY-MM-DD or an RFC 3339 time such as 2026-11-20T12:00:00Z"
        ))
    };
    let date_only = s.len() == 10 && s.as_bytes().get(4) == Some(&b'-');
    let text = if date_only {
        format!("{s}T00:00:00Z")
    } else {
        s.to_owned()
    };
    let t = humantime::parse_rfc3339_weak(&text).map_err(|_| bad())?;
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| bad())?
        .as_millis();
    let ms = i64::try_from(ms).map_err(|_| bad())?;
    Ok(if date_only && end { ms + DAY_MS } else { ms })
}

/// `YYYY-MM-DD` of a day start.
pub fn day(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(DAY_MS));
    format!("{y:04}-{m:02}-{d:02}")
}

/// The sum of every row (day, grant, provider and model left empty).
pub fn totals(rows: &[RollupRow]) -> RollupRow {
    rows.iter().fold(RollupRow::default(), |mut t, r| {
        t.requests += r.requests;
        t.errors += r.errors;
        t.input_tokens += r.input_tokens;
        t.output_tokens += r.output_tokens;
        t.cached_tokens += r.cached_tokens;
        t.cost_micros += r.cost_micros;
        t
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_as_utc_days_or_instants() {
        assert_eq!(parse_date("1970-01-02", false).unwrap(), DAY_MS);
        assert_eq!(parse_date("1970-01-02", true).unwrap(), 2 * DAY_MS);
        assert_eq!(
            parse_date("2026-11-20T12:00:00Z", true).unwrap(),
            1_795_132_800_000 + 12 * 3_600_000
        );
        assert!(parse_date("20-11-2026", false).is_err());
        assert_eq!(day(1_795_132_800_000 + 5), "2026-11-20");
    }
}
