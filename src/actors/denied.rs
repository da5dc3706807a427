//! The reason label of a refused reservation, for `pura_budget_denials_total`. Kept apart
//! from `budget.rs` so the metric's vocabulary does not crowd the actor.

use super::budget::Denied;

impl Denied {
    /// `payment` (free tier used up and the balance short), `daily`, `monthly`, `rpm`, or
    /// `unavailable` (the account could not be loaded).
    pub fn reason(&self) -> &'static str {
        match self {
            Denied::RateLimited { .. } => "rpm",
            Denied::Budget { window, .. } => window,
            Denied::Payment { .. } => "payment",
            Denied::Unavailable | Denied::UnknownKey => "unavailable",
        }
    }
}
