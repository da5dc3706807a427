//! Time helpers: now, RFC 3339 UTC for JSON. Budget windows live in `money`.

use chrono::{DateTime, NaiveDateTime, Utc};

pub fn rfc3339(t: NaiveDateTime) -> String {
    DateTime::<Utc>::from_naive_utc_and_offset(t, Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc()
}

/// Time from now until `t` (zero when past).
pub fn until(t: NaiveDateTime) -> std::time::Duration {
    (t - now()).to_std().unwrap_or_default()
}
