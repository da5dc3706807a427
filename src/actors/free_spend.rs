//! The deployment's free spend of the day, held under `free_tier.daily_budget_usd`.
//!
//! With several replicas the count lives in the database alone (a conditional update per
//! free request, [`free_spend::take`]), since any replica may serve. One process (SQLite, or
//! PostgreSQL without arbitration) is the only one that serves, so it keeps the count in
//! memory: committed spend plus open estimates, read from the database once per day. A
//! reservation then costs a lock instead of a database write; the database learns the actual
//! cost in the settlement's own transaction, so after a restart it holds exactly what was
//! served (the estimates of requests in flight at a crash served nothing billable).

use std::sync::{Arc, Mutex};

use chrono::NaiveDateTime;

use crate::db::models::free_spend;
use crate::db::{self, Pool};
use crate::error::ApiError;

/// The count of one process, shared by its requests and its BudgetActors.
#[derive(Default)]
pub struct LocalFreeSpend {
    /// The day counted, and its spend: committed plus open estimates.
    day: Mutex<Option<(NaiveDateTime, i64)>>,
    /// One reader of a new day's committed spend at a time.
    loading: tokio::sync::Mutex<()>,
}

impl LocalFreeSpend {
    pub fn shared() -> Arc<LocalFreeSpend> {
        Arc::new(LocalFreeSpend::default())
    }

    /// Adds `estimate` to `day`'s spend unless that would pass `cap`; false when refused.
    pub async fn take(
        &self,
        pool: &Pool,
        day: NaiveDateTime,
        estimate: i64,
        cap: i64,
    ) -> Result<bool, ApiError> {
        loop {
            if let Some(taken) = self.take_loaded(day, estimate, cap) {
                return Ok(taken);
            }
            let _one = self.loading.lock().await;
            if let Some(taken) = self.take_loaded(day, estimate, cap) {
                return Ok(taken); // loaded while this one waited
            }
            let spent = db::run(pool, move |conn| free_spend::spent(conn, day)).await?;
            *self.lock() = Some((day, spent));
        }
    }

    /// None when `day` is not counted yet. A reservation dated the day before the one counted
    /// (midnight passed between its clock reading and this lock) counts against the new day:
    /// its settlement then goes to the database only, and the new day keeps its estimate,
    /// which errs on the safe side.
    fn take_loaded(&self, day: NaiveDateTime, estimate: i64, cap: i64) -> Option<bool> {
        let mut counted = self.lock();
        let (d, spent) = counted.as_mut()?;
        if *d < day {
            return None;
        }
        let fits = *spent + estimate <= cap;
        if fits {
            *spent += estimate;
        }
        Some(fits)
    }

    /// Moves `day`'s spend by `delta` (a refund, or a settlement's cost replacing its estimate);
    /// nothing when another day is counted by now (the database has that day's settlements).
    pub fn adjust(&self, day: NaiveDateTime, delta: i64) {
        if let Some((d, spent)) = self.lock().as_mut() {
            if *d == day {
                *spent += delta;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(NaiveDateTime, i64)>> {
        self.day.lock().unwrap_or_else(|e| e.into_inner())
    }
}
