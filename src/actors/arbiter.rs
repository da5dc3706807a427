//! The database as the arbiter between replicas (PostgreSQL only). A BudgetActor is exact for
//! one process; with several replicas on one database each reservation the actor grants is
//! also recorded as a hold in the database, which checks it against every replica's holds and
//! settled spend (`db::models::hold`). The replica keeps its heartbeat there, so that the holds
//! of a replica that died stop counting. SQLite is one process: no arbiter.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::budget::{Defaults, Denied, NotFree};
use super::budgets::Ticket;
use crate::db::models::api_key::ApiKey;
use crate::db::models::hold::{self, Ask, Verdict};
use crate::db::models::pin;
use crate::db::{self, DbError, Pool};
use crate::money::Window;
use crate::time;

/// How often a replica says it is alive (well inside `hold::ALIVE`).
const HEARTBEAT: Duration = Duration::from_secs(5);
/// Every this many heartbeats (a minute), the sweep.
const SWEEP_EVERY: u64 = 12;

/// One turn per account at a time on this replica (see [`ReplicaArbiter::hold`]).
type Gates = Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>;
/// Above this many accounts, gates nobody waits on are dropped.
const GATES_SWEEP_AT: usize = 10_000;

#[derive(Clone)]
pub struct ReplicaArbiter {
    pool: Pool,
    replica_id: String,
    gates: Gates,
}

impl ReplicaArbiter {
    /// The arbiter for `pool` when it is PostgreSQL: it says this replica is alive before
    /// returning (so its first holds count), then keeps saying so on a thread of its own,
    /// which also sweeps what dead replicas left.
    pub fn start(pool: &Pool, replica_id: &str) -> Result<Option<ReplicaArbiter>, DbError> {
        let mut conn = pool.get()?;
        if !matches!(*conn, db::DbConn::Pg(_)) {
            return Ok(None);
        }
        hold::heartbeat(&mut conn, replica_id, time::now())?;
        let arbiter = ReplicaArbiter {
            pool: pool.clone(),
            replica_id: replica_id.to_owned(),
            gates: Gates::default(),
        };
        let beat = arbiter.clone();
        let spawned = std::thread::Builder::new()
            .name("replica-heartbeat".into())
            .spawn(move || {
                for beats in 1u64.. {
                    std::thread::sleep(HEARTBEAT);
                    beat.beat(beats % SWEEP_EVERY == 0);
                }
            });
        if let Err(e) = spawned {
            log::error!("cannot start the replica heartbeat: {e}");
        }
        Ok(Some(arbiter))
    }

    /// Says this replica is alive; with `sweep`, also deletes what dead replicas left.
    fn beat(&self, sweep: bool) {
        let done = self.pool.get().map_err(DbError::from).and_then(|mut c| {
            let now = time::now();
            hold::heartbeat(&mut c, &self.replica_id, now)?;
            if !sweep {
                return Ok(0);
            }
            // Pins expire on read after hours; rows a day old are only clutter.
            pin::sweep(&mut c, now - chrono::Duration::days(1))?;
            hold::sweep(&mut c, now)
        });
        match done {
            Ok(0) => {}
            Ok(n) => log::warn!("swept {n} holds of replicas that stopped"),
            Err(e) => log::warn!("replica heartbeat failed: {e}"),
        }
    }

    /// Records the actor's reservation as a hold, or says why the deployment refuses it.
    pub async fn hold(
        &self,
        key: &ApiKey,
        ticket: &Ticket,
        defaults: Defaults,
    ) -> Result<(String, Verdict), DbError> {
        let r = &ticket.reservation;
        let ask = Ask {
            id: crate::ids::ordered_id("hld_"),
            replica_id: self.replica_id.clone(),
            account_id: key.account_id.clone(),
            key_id: key.id.clone(),
            estimate_micros: r.estimate_micros,
            free: r.free,
            day_start: r.day,
            month_start: Window::Month.start(r.day),
            daily_budget_micros: key
                .daily_budget_micros
                .unwrap_or(defaults.daily_budget_micros),
            monthly_budget_micros: key
                .monthly_budget_micros
                .unwrap_or(defaults.monthly_budget_micros),
            rpm: key.rpm_limit.map_or(defaults.rpm, |l| l.max(0) as u32),
            now: time::now(),
        };
        let id = ask.id.clone();
        // The database orders an account's reservations with its row lock; queueing them here
        // first keeps a busy account to one pooled connection on this replica, instead of
        // every connection waiting on that lock while other accounts' requests wait for one.
        let gate = self.gate(&key.account_id);
        let _turn = gate.lock().await;
        let verdict = db::run(&self.pool, move |conn| hold::take(conn, &ask)).await?;
        Ok((id, verdict))
    }

    fn gate(&self, account_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        if gates.len() >= GATES_SWEEP_AT {
            gates.retain(|_, g| Arc::strong_count(g) > 1);
        }
        gates.entry(account_id.to_owned()).or_default().clone()
    }

    /// The request served nothing: its hold goes (awaited, so the money is free again when
    /// the error answer leaves).
    pub async fn release(&self, id: &str) {
        let id = id.to_owned();
        if let Err(e) = db::run(&self.pool, move |conn| hold::release(conn, &id)).await {
            // The hold stops counting when this replica stops; until then it is the safe side.
            log::warn!("hold not released: {e}");
        }
    }
}

/// The refusal a verdict of the database means, in the actor's terms.
pub fn denial(verdict: Verdict, ticket: &Ticket, rpm: u32, not_free: NotFree) -> Denied {
    let r = &ticket.reservation;
    match verdict {
        Verdict::RateLimited { retry_after_secs } => Denied::RateLimited {
            limit: rpm,
            retry_after: Duration::from_secs(retry_after_secs),
        },
        Verdict::OverBudget { window } => {
            let w = if window == "daily" {
                Window::Day
            } else {
                Window::Month
            };
            Denied::Budget {
                window,
                retry_after: time::until(w.end(w.start(r.day))),
            }
        }
        Verdict::NoMoney { available_micros } => Denied::Payment {
            balance_micros: available_micros,
            needed_micros: r.estimate_micros,
            reason: not_free,
        },
        // Only a free reservation is told this, and it is retried from the balance first.
        Verdict::NoFree | Verdict::Held => Denied::Payment {
            balance_micros: 0,
            needed_micros: r.estimate_micros,
            reason: NotFree::UsedUp,
        },
    }
}
