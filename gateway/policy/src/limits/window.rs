//! UTC calendar windows for budgets and quotas: the counter key of the window containing an instant, and when it ends.
//!
//! Calendar math is done by hand on the proleptic Gregorian calendar (Howard Hinnant's
//! `civil_from_days` / `days_from_civil`), valid for every `i64` millisecond instant.

/// Milliseconds per day.
const MS_PER_DAY: i64 = 86_400_000;

/// A budget window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    /// The UTC clock minute (plugin-declared quotas only).
    Minute,
    /// The UTC clock hour (plugin-declared quotas only).
    Hour,
    /// The UTC calendar day.
    Day,
    /// The UTC calendar month.
    Month,
    /// The grant's whole life.
    Lifetime,
}

/// `(year, month 1..=12, day 1..=31)` of the day `days` after 1970-01-01 (negative before).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // month and day are in range by construction
    (year, month as u32, day as u32)
}

/// Days from 1970-01-01 to `year-month-day` (`month` 1..=12, `day` 1..=31).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let (month, day) = (i64::from(month), i64::from(day));
    let y = year - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn year_str(year: i64) -> String {
    if year < 0 {
        format!("{year:05}")
    } else {
        format!("{year:04}")
    }
}

/// Milliseconds per hour.
const MS_PER_HOUR: i64 = 3_600_000;
/// Milliseconds per minute.
const MS_PER_MINUTE: i64 = 60_000;

/// The counter key of the window containing `now_ms`: `d:2026-11-20`, `m:2026-11`, `life`,
/// and for quotas `h:2026-11-20T13` or `min:2026-11-20T13:05`. Years before 0 are written
/// with a sign (`d:-0001-12-31`).
pub fn window_key(window: Window, now_ms: i64) -> String {
    let (year, month, day) = civil_from_days(now_ms.div_euclid(MS_PER_DAY));
    let in_day = now_ms.rem_euclid(MS_PER_DAY);
    let (hour, minute) = (in_day / MS_PER_HOUR, (in_day % MS_PER_HOUR) / MS_PER_MINUTE);
    match window {
        Window::Minute => format!(
            "min:{}-{month:02}-{day:02}T{hour:02}:{minute:02}",
            year_str(year)
        ),
        Window::Hour => format!("h:{}-{month:02}-{day:02}T{hour:02}", year_str(year)),
        Window::Day => format!("d:{}-{month:02}-{day:02}", year_str(year)),
        Window::Month => format!("m:{}-{month:02}", year_str(year)),
        Window::Lifetime => "life".to_owned(),
    }
}

/// The first instant (unix ms) after the window containing `now_ms`; `None` for
/// [`Window::Lifetime`]. Saturates at `i64::MAX`. Useful as a key expiry and for
/// "resets at" headers.
pub fn window_ends_at(window: Window, now_ms: i64) -> Option<i64> {
    let days = now_ms.div_euclid(MS_PER_DAY);
    let next_day = match window {
        Window::Lifetime => return None,
        Window::Minute | Window::Hour => {
            let unit = if window == Window::Minute {
                MS_PER_MINUTE
            } else {
                MS_PER_HOUR
            };
            let next = now_ms.div_euclid(unit).saturating_add(1);
            return Some(next.checked_mul(unit).unwrap_or(i64::MAX));
        }
        Window::Day => days + 1,
        Window::Month => {
            let (year, month, _) = civil_from_days(days);
            if month == 12 {
                days_from_civil(year + 1, 1, 1)
            } else {
                days_from_civil(year, month + 1, 1)
            }
        }
    };
    Some(next_day.checked_mul(MS_PER_DAY).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let cases: &[(i64, &str, &str)] = &[
            (0, "d:1970-01-01", "m:1970-01"),
            (-1, "d:1969-12-31", "m:1969-12"),
            (-86_400_000, "d:1969-12-31", "m:1969-12"),
            (-86_400_001, "d:1969-12-30", "m:1969-12"),
            (1_709_164_800_000, "d:2024-02-29", "m:2024-02"),
            (1_709_251_199_999, "d:2024-02-29", "m:2024-02"),
            (1_709_251_200_000, "d:2024-03-01", "m:2024-03"),
            (1_798_675_200_000, "d:2026-12-31", "m:2026-12"),
            (1_798_761_599_999, "d:2026-12-31", "m:2026-12"),
            (1_798_761_600_000, "d:2027-01-01", "m:2027-01"),
            (1_795_132_800_000, "d:2026-11-20", "m:2026-11"),
            (951_782_400_000, "d:2000-02-29", "m:2000-02"),
            (-2_203_891_200_000, "d:1900-03-01", "m:1900-03"),
            (4_107_456_000_000, "d:2100-02-28", "m:2100-02"),
            (4_107_542_400_000, "d:2100-03-01", "m:2100-03"),
            (-62_135_596_800_000, "d:0001-01-01", "m:0001-01"),
            (-62_135_596_800_001, "d:0000-12-31", "m:0000-12"),
            (-62_167_219_200_001, "d:-0001-12-31", "m:-0001-12"),
        ];
        for &(ms, day, month) in cases {
            assert_eq!(window_key(Window::Day, ms), day, "{ms}");
            assert_eq!(window_key(Window::Month, ms), month, "{ms}");
            assert_eq!(window_key(Window::Lifetime, ms), "life");
        }
    }

    #[test]
    fn quota_windows_are_clock_minutes_and_hours() {
        // 2026-11-20T13:05:30Z
        let t = 1_795_132_800_000 + 13 * 3_600_000 + 5 * 60_000 + 30_000;
        assert_eq!(window_key(Window::Hour, t), "h:2026-11-20T13");
        assert_eq!(window_key(Window::Minute, t), "min:2026-11-20T13:05");
        assert_eq!(
            window_ends_at(Window::Hour, t),
            Some(1_795_132_800_000 + 14 * 3_600_000)
        );
        assert_eq!(window_ends_at(Window::Minute, t), Some(t - 30_000 + 60_000));
        assert_eq!(window_key(Window::Minute, -1), "min:1969-12-31T23:59");
        assert!(window_ends_at(Window::Minute, i64::MAX).is_some());
    }

    #[test]
    fn extremes_do_not_panic() {
        for ms in [i64::MIN, i64::MAX] {
            assert!(window_key(Window::Day, ms).starts_with("d:"));
            assert!(window_key(Window::Month, ms).starts_with("m:"));
            assert!(window_ends_at(Window::Month, ms).is_some());
        }
        assert_eq!(window_key(Window::Day, i64::MAX), "d:292278994-08-17");
    }

    #[test]
    fn window_ends() {
        let cases: &[(Window, i64, Option<i64>)] = &[
            (Window::Day, 0, Some(86_400_000)),
            (Window::Day, -1, Some(0)),
            (Window::Month, 1_709_164_800_000, Some(1_709_251_200_000)),
            (Window::Month, 1_798_675_200_000, Some(1_798_761_600_000)),
            (Window::Month, -1, Some(0)),
            (Window::Lifetime, 5, None),
        ];
        for &(w, ms, want) in cases {
            assert_eq!(window_ends_at(w, ms), want, "{w:?} {ms}");
        }
    }

    #[test]
    fn civil_roundtrip_over_centuries() {
        for days in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            assert!((1..=12).contains(&m) && (1..=31).contains(&d));
        }
    }
}
