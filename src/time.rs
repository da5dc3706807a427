//! Time helpers: RFC 3339 UTC for JSON, UTC calendar boundaries for budgets.

use chrono::{DateTime, NaiveDateTime, Utc};

pub fn rfc3339(t: NaiveDateTime) -> String {
    DateTime::<Utc>::from_naive_utc_and_offset(t, Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc()
}

/// Midnight UTC of the current day.
pub fn start_of_day(t: NaiveDateTime) -> NaiveDateTime {
    t.date().and_hms_opt(0, 0, 0).unwrap_or(t)
}

/// Midnight UTC of the first day of the current month.
pub fn start_of_month(t: NaiveDateTime) -> NaiveDateTime {
    use chrono::Datelike;
    t.date()
        .with_day(1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or(t)
}

pub fn next_day(day_start: NaiveDateTime) -> NaiveDateTime {
    day_start + chrono::Duration::days(1)
}

pub fn next_month(month_start: NaiveDateTime) -> NaiveDateTime {
    month_start
        .date()
        .checked_add_months(chrono::Months::new(1))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or(month_start + chrono::Duration::days(31))
}

/// Time from now until `t` (zero when past).
pub fn until(t: NaiveDateTime) -> std::time::Duration {
    (t - now()).to_std().unwrap_or_default()
}
