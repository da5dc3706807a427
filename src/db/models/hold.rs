//! Reservations arbitrated by PostgreSQL, so that several replicas never spend the same money.
//! Each replica's BudgetActor decides first from what it knows; then [`take`] checks the same
//! limits against the database in one transaction that takes the account's turn (an advisory
//! lock, which orders the reservations of all of an account's keys, on every replica) and
//! records a hold. The
//! settlement writer deletes the hold in the commit that debits the request ([`settled`]), and
//! a request that served nothing deletes it at once ([`release`]).
//!
//! What counts: the account's balance minus the paid holds in flight, its free requests minus
//! the free holds, the key's spend in the day and month windows (`key_spend`) plus its holds,
//! and the key's requests of the last 60 one-second buckets (`rpm_buckets`). Holds of a replica not seen for
//! [`ALIVE`] are ignored (it died with them), then swept.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};

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

/// Everything a hold is checked against, read by [`STANDING`] in one statement, so in one
/// snapshot: a settlement that commits meanwhile (debit, hold deleted, spend added, all in one
/// transaction) is seen whole or not at all.
#[derive(Debug, QueryableByName)]
struct Standing {
    #[diesel(sql_type = BigInt)]
    balance_micros: i64,
    #[diesel(sql_type = BigInt)]
    free_requests_remaining: i64,
    #[diesel(sql_type = BigInt)]
    paid_held: i64,
    #[diesel(sql_type = BigInt)]
    free_held: i64,
    #[diesel(sql_type = BigInt)]
    key_held: i64,
    #[diesel(sql_type = BigInt)]
    day_spent: i64,
    #[diesel(sql_type = BigInt)]
    month_spent: i64,
    #[diesel(sql_type = BigInt)]
    hits: i64,
    #[diesel(sql_type = Nullable<Timestamp>)]
    oldest: Option<NaiveDateTime>,
}

/// $1 account, $2 key, $3 day start, $4 month start, $5 alive since, $6 RPM window start.
const STANDING: &str = "SELECT a.balance_micros, a.free_requests_remaining, \
    COALESCE(h.paid, 0)::bigint AS paid_held, COALESCE(h.free_n, 0)::bigint AS free_held, \
    COALESCE(h.key_held, 0)::bigint AS key_held, \
    COALESCE((SELECT spent_micros FROM key_spend WHERE key_id = $2 AND budget_window = 'day' \
              AND window_start = $3), 0)::bigint AS day_spent, \
    COALESCE((SELECT spent_micros FROM key_spend WHERE key_id = $2 AND budget_window = 'month' \
              AND window_start = $4), 0)::bigint AS month_spent, \
    COALESCE(r.hits, 0)::bigint AS hits, r.oldest \
    FROM accounts a \
    CROSS JOIN (SELECT SUM(estimate_micros) FILTER (WHERE NOT free) AS paid, \
                       COUNT(*) FILTER (WHERE free) AS free_n, \
                       SUM(estimate_micros) FILTER (WHERE key_id = $2) AS key_held \
                FROM holds WHERE account_id = $1 \
                AND replica_id IN (SELECT id FROM replicas WHERE seen_at > $5)) h \
    CROSS JOIN (SELECT SUM(hits) AS hits, MIN(second) AS oldest FROM rpm_buckets \
                WHERE key_id = $2 AND second > $6) r \
    WHERE a.id = $1";

/// Checks and records a hold, in one transaction that takes the account's turn.
pub fn take(conn: &mut DbConn, ask: &Ask) -> Result<Verdict, DbError> {
    Ok(conn.transaction(|conn| {
        // A hold need not survive a crash of the database (the settlement, which is durable,
        // replaces it), so its commit does not wait for the WAL flush.
        diesel::sql_query("SET LOCAL synchronous_commit = off").execute(conn)?;
        // The account's turn: every hold of the account, on every replica, waits here for the
        // one before it to commit. An advisory lock rather than the account row's, which each
        // settlement keeps locked through its (durable) commit.
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))")
            .bind::<Text, _>(&ask.account_id)
            .execute(conn)?;
        for (kind, start) in [(DAY, ask.day_start), (MONTH, ask.month_start)] {
            ensure_spend(conn, &ask.key_id, kind, start)?;
        }
        let standing: Option<Standing> = diesel::sql_query(STANDING)
            .bind::<Text, _>(&ask.account_id)
            .bind::<Text, _>(&ask.key_id)
            .bind::<Timestamp, _>(ask.day_start)
            .bind::<Timestamp, _>(ask.month_start)
            .bind::<Timestamp, _>(ask.now - ALIVE)
            .bind::<Timestamp, _>(second(ask.now) - MINUTE)
            .get_result(conn)
            .optional()?;
        let Some(standing) = standing else {
            return Err(diesel::result::Error::NotFound);
        };
        let verdict = check(ask, &standing);
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

fn check(ask: &Ask, s: &Standing) -> Verdict {
    if s.hits >= i64::from(ask.rpm) {
        let oldest = s.oldest.unwrap_or(ask.now);
        let wait = (oldest + MINUTE - ask.now).num_seconds().max(1) as u64;
        return Verdict::RateLimited {
            retry_after_secs: wait,
        };
    }
    let windows = [
        ("daily", s.day_spent, ask.daily_budget_micros),
        ("monthly", s.month_spent, ask.monthly_budget_micros),
    ];
    for (window, spent, budget) in windows {
        if spent + s.key_held + ask.estimate_micros > budget {
            return Verdict::OverBudget { window };
        }
    }
    if ask.free {
        if s.free_requests_remaining - s.free_held <= 0 {
            return Verdict::NoFree;
        }
    } else {
        let available = s.balance_micros - s.paid_held;
        if available < ask.estimate_micros {
            return Verdict::NoMoney {
                available_micros: available.max(0),
            };
        }
    }
    Verdict::Held
}

/// Makes sure the key's row for a window exists, created from the usage rows on first use (the
/// settlement writer only adds to existing rows; holds are taken before their settlements).
fn ensure_spend(
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

/// Inside the settlement commit, for a request that withdrew its settlement (the database was
/// away when it was served): its hold goes, as [`release`] would, but durably with the commit.
pub fn withdrawn(conn: &mut DbConn, id: &str) -> Result<(), diesel::result::Error> {
    diesel::delete(holds::table.find(id)).execute(conn)?;
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
