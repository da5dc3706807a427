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
