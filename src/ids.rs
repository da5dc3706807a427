//! Identifiers the gateway mints: random tails, time-ordered row ids, OpenAI-style ids.

use rand::distributions::{Alphanumeric, DistString};

pub fn random_alnum(n: usize) -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), n)
}

/// An id that sorts by creation time (microseconds, hex) with a random tail. Usage and ledger
/// rows keyed by it are appended at the end of their B-tree instead of scattered through it,
/// which keeps each group commit to a few dirty pages.
pub fn ordered_id(prefix: &str) -> String {
    let micros = chrono::Utc::now().timestamp_micros().max(0);
    format!("{prefix}{micros:014x}{}", random_alnum(12))
}

/// A `chatcmpl-` id with 29 random alphanumerics, as OpenAI mints them.
pub fn completion_id() -> String {
    format!("chatcmpl-{}", random_alnum(29))
}

/// A `call_` id with 24 random alphanumerics, for dialects whose tool calls have none.
pub fn call_id() -> String {
    format!("call_{}", random_alnum(24))
}

pub fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}
