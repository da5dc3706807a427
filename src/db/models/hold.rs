//! Reservations arbitrated by PostgreSQL, so that several replicas never spend the same money.
//! Each replica's BudgetActor decides first from what it knows; then [`take`] checks the same
//! limits against the database in one transaction under the account row's lock (which orders
//! the reservations of all of an account's keys, on every replica) and records a hold. The
//! settlement writer deletes the hold in the commit that debits the request ([`settled`]), and
//! a request that served nothing deletes it at once ([`release`]).
//!
//! What counts: the account's balance minus the paid holds in flight, its free requests minus
//! the free holds, the key's spend in the day and month windows (`key_spend`) plus its holds,
//! and the key's requests of the last 60 one-second buckets (`rpm_buckets`). Holds of a replica not seen for
//! [`ALIVE`] are ignored (it died with them), then swept.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use diesel::sql_types::{Text, Timestamp};

use super::super::schema::{holds, key_spend, replicas, rpm_buckets};
use super::super::{DbConn, DbError};
use super::usage;

/// A replica whose heartbeat is older than this is dead: its holds no longer count.
pub const ALIVE: Duration = Duration::seconds(30);
/// Dead replicas' holds and RPM entries are deleted after this long.
const SWEEP_AFTER: Duration = Duration::seconds(120);
const MINUTE: Duration = Duration::seconds(60);

pub const DAY: &str = "day";
pub const MONTH: &str = "month";

/// One reservation to arbitrate: the BudgetActor's decision and the key's limits.
#[derive(Debug, Clone)]
pub struct Ask {
    pub id: String,
    pub replica_id: String,
    pub account_id: String,
    pub key_id: String,
    pub estimate_micros: i64,
    pub free: bool,
    pub day_start: NaiveDateTime,
    pub month_start: NaiveDateTime,
    pub daily_budget_micros: i64,
    pub monthly_budget_micros: i64,
    pub rpm: u32,
    pub now: NaiveDateTime,
}

/// What the database says.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Held,
    /// The account's free requests are all used or held elsewhere.
    NoFree,
    /// The balance left after the other holds does not cover the estimate.
    NoMoney {
        available_micros: i64,
    },
    /// `window` is "daily" or "monthly".
    OverBudget {
        window: &'static str,
    },
    /// The key's RPM is reached; retry after this many seconds.
    RateLimited {
        retry_after_secs: u64,
    },
}

#[derive(Debug, QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    balance_micros: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    free_requests_remaining: i64,
}

/// Checks and records a hold, in one transaction under the account row's lock.
pub fn take(conn: &mut DbConn, ask: &Ask) -> Result<Verdict, DbError> {
    Ok(conn.transaction(|conn| {
        // A hold need not survive a crash of the database (the settlement, which is durable,
        // replaces it), so its commit does not wait for the WAL flush: the account row's lock
        // is held for the statements only, not for a disk write.
        diesel::sql_query("SET LOCAL synchronous_commit = off").execute(conn)?;
        // FOR UPDATE is PostgreSQL's (this module only runs there): every reservation of the
        // account waits here for the one before it to commit.
        let locked: Option<Locked> = diesel::sql_query(
            "SELECT balance_micros, free_requests_remaining FROM accounts WHERE id = $1 FOR UPDATE",
        )
        .bind::<Text, _>(&ask.account_id)
        .get_result(conn)
        .optional()?;
        let Some(account) = locked else {
            return Err(diesel::result::Error::NotFound);
        };
        let verdict = check(conn, ask, &account)?;
        if verdict == Verdict::Held {
            diesel::insert_into(holds::table)
                .values((
                    holds::id.eq(&ask.id),
                    holds::replica_id.eq(&ask.replica_id),
                    holds::account_id.eq(&ask.account_id),
                    holds::key_id.eq(&ask.key_id),
                    holds::estimate_micros.eq(ask.estimate_micros),
                    holds::free.eq(ask.free),
                    holds::created_at.eq(ask.now),
                ))
                .execute(conn)?;
            diesel::sql_query(
                "INSERT INTO rpm_buckets (key_id, second, hits) VALUES ($1, $2, 1) \
                 ON CONFLICT (key_id, second) DO UPDATE SET hits = rpm_buckets.hits + 1",
            )
            .bind::<Text, _>(&ask.key_id)
            .bind::<Timestamp, _>(second(ask.now))
            .execute(conn)?;
        }
        Ok::<_, diesel::result::Error>(verdict)
    })?)
}

fn check(conn: &mut DbConn, ask: &Ask, account: &Locked) -> Result<Verdict, diesel::result::Error> {
    // The last 60 whole seconds, this one included.
    let buckets: Vec<(NaiveDateTime, i64)> = rpm_buckets::table
        .filter(rpm_buckets::key_id.eq(&ask.key_id))
        .filter(rpm_buckets::second.gt(second(ask.now) - MINUTE))
        .order(rpm_buckets::second.asc())
        .select((rpm_buckets::second, rpm_buckets::hits))
        .load(conn)?;
    let hits: i64 = buckets.iter().map(|(_, n)| n).sum();
    if hits >= i64::from(ask.rpm) {
        let oldest = buckets.first().map_or(ask.now, |(s, _)| *s);
        let wait = (oldest + MINUTE - ask.now).num_seconds().max(1) as u64;
        return Ok(Verdict::RateLimited {
            retry_after_secs: wait,
        });
    }
    let alive = replicas::table
        .filter(replicas::seen_at.gt(ask.now - ALIVE))
        .select(replicas::id);
    let held: Vec<(String, i64, bool)> = holds::table
        .filter(holds::account_id.eq(&ask.account_id))
        .filter(holds::replica_id.eq_any(alive))
        .select((holds::key_id, holds::estimate_micros, holds::free))
        .load(conn)?;
    let key_held: i64 = held
        .iter()
        .filter(|(k, _, _)| *k == ask.key_id)
        .map(|(_, e, _)| e)
        .sum();
    let windows = [
        (DAY, "daily", ask.day_start, ask.daily_budget_micros),
        (MONTH, "monthly", ask.month_start, ask.monthly_budget_micros),
    ];
    for (kind, window, start, budget) in windows {
        let spent = spend(conn, &ask.key_id, kind, start)?;
        if spent + key_held + ask.estimate_micros > budget {
            return Ok(Verdict::OverBudget { window });
        }
    }
    if ask.free {
        let free_held = held.iter().filter(|(_, _, f)| *f).count() as i64;
        if account.free_requests_remaining - free_held <= 0 {
            return Ok(Verdict::NoFree);
        }
    } else {
        let paid_held: i64 = held.iter().filter(|(_, _, f)| !f).map(|(_, e, _)| e).sum();
        let available = account.balance_micros - paid_held;
        if available < ask.estimate_micros {
            return Ok(Verdict::NoMoney {
                available_micros: available.max(0),
            });
        }
    }
    Ok(Verdict::Held)
}

/// The key's spend in a window, its row created from the usage rows on first use.
fn spend(
    conn: &mut DbConn,
    key_id: &str,
    kind: &str,
    start: NaiveDateTime,
) -> Result<i64, diesel::result::Error> {
    let row = key_spend::table
        .find((key_id, kind, start))
        .select(key_spend::spent_micros)
        .first::<i64>(conn)
        .optional()?;
    if let Some(spent) = row {
        return Ok(spent);
    }
    let spent = usage::spend_since(conn, key_id, start).map_err(|e| match e {
        DbError::Query(q) => q,
        other => diesel::result::Error::QueryBuilderError(other.to_string().into()),
    })?;
    diesel::insert_into(key_spend::table)
        .values((
            key_spend::key_id.eq(key_id),
            key_spend::budget_window.eq(kind),
            key_spend::window_start.eq(start),
            key_spend::spent_micros.eq(spent),
        ))
        .execute(conn)?;
    Ok(spent)
}

/// A request that served nothing: its hold goes (it still counts toward the RPM, as it does
/// in a BudgetActor).
pub fn release(conn: &mut DbConn, id: &str) -> Result<(), DbError> {
    conn.transaction(|conn| {
        diesel::sql_query("SET LOCAL synchronous_commit = off").execute(conn)?;
        diesel::delete(holds::table.find(id)).execute(conn)
    })?;
    Ok(())
}

/// The whole second `t` falls in.
fn second(t: NaiveDateTime) -> NaiveDateTime {
    use chrono::Timelike;
    t.with_nanosecond(0).unwrap_or(t)
}

/// Inside the settlement commit: the hold goes and its cost joins the key's windows.
pub fn settled(
    conn: &mut DbConn,
    id: &str,
    key_id: &str,
    day_start: NaiveDateTime,
    month_start: NaiveDateTime,
    cost_micros: i64,
) -> Result<(), diesel::result::Error> {
    diesel::delete(holds::table.find(id)).execute(conn)?;
    for (kind, start) in [(DAY, day_start), (MONTH, month_start)] {
        diesel::update(key_spend::table.find((key_id, kind, start)))
            .set(key_spend::spent_micros.eq(key_spend::spent_micros + cost_micros))
            .execute(conn)?;
    }
    Ok(())
}

/// This replica is alive (called every few seconds, and before it serves).
pub fn heartbeat(conn: &mut DbConn, replica_id: &str, now: NaiveDateTime) -> Result<(), DbError> {
    let updated = diesel::update(replicas::table.find(replica_id))
        .set(replicas::seen_at.eq(now))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(replicas::table)
            .values((replicas::id.eq(replica_id), replicas::seen_at.eq(now)))
            .execute(conn)?;
    }
    Ok(())
}

/// Deletes what dead replicas left and RPM entries out of every window. Returns the holds
/// deleted.
pub fn sweep(conn: &mut DbConn, now: NaiveDateTime) -> Result<usize, DbError> {
    let dead = replicas::table
        .filter(replicas::seen_at.lt(now - SWEEP_AFTER))
        .select(replicas::id);
    let gone = diesel::delete(holds::table.filter(holds::replica_id.eq_any(dead))).execute(conn)?;
    diesel::delete(rpm_buckets::table.filter(rpm_buckets::second.lt(now - SWEEP_AFTER)))
        .execute(conn)?;
    diesel::delete(replicas::table.filter(replicas::seen_at.lt(now - Duration::days(1))))
        .execute(conn)?;
    Ok(gone)
}
