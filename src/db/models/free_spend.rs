//! The `free_spend` table: the catalogue cost of free-tier requests per UTC day, across all
//! keys and replicas, held under `free_tier.daily_budget_usd`.
//!
//! Why a counter row and not a sum over usage rows: a sum would cost a scan of the day's
//! usage on every free request and could not hold a reservation, so two replicas could both
//! pass the cap. The row costs one conditional `UPDATE … WHERE spent + estimate <= cap` per
//! free request (two more statements for the first one of a day, or when the cap is reached),
//! and its settlement corrects it to the actual cost inside the settlement's own transaction.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::super::schema::free_spend;
use super::super::{DbConn, DbError};

/// Adds `micros` to `day`'s free spend unless that would pass `cap`; false when refused.
pub fn take(conn: &mut DbConn, day: NaiveDateTime, micros: i64, cap: i64) -> Result<bool, DbError> {
    if add_within(conn, day, micros, cap)? {
        return Ok(true);
    }
    // Either the day has no row yet, or the cap is reached: create the row (a no-op when it
    // exists, another replica may have just created it) and try once more.
    let inserted = diesel::insert_into(free_spend::table)
        .values((free_spend::day.eq(day), free_spend::spent_micros.eq(0)))
        .execute(conn);
    match inserted {
        Ok(_) => {}
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => {}
        Err(e) => return Err(e.into()),
    }
    add_within(conn, day, micros, cap)
}

fn add_within(
    conn: &mut DbConn,
    day: NaiveDateTime,
    micros: i64,
    cap: i64,
) -> Result<bool, DbError> {
    let n = conn.execute_cached(
        diesel::update(
            free_spend::table
                .find(day)
                .filter((free_spend::spent_micros + micros).le(cap)),
        )
        .set(free_spend::spent_micros.eq(free_spend::spent_micros + micros)),
    )?;
    Ok(n == 1)
}

/// Moves `day`'s free spend by `delta` (negative: a refund of an estimate that was not spent),
/// creating the day's row when it has none (a process that counts in memory writes only here).
pub fn adjust(
    conn: &mut DbConn,
    day: NaiveDateTime,
    delta: i64,
) -> Result<(), diesel::result::Error> {
    if delta == 0 {
        return Ok(());
    }
    let add = || {
        diesel::update(free_spend::table.find(day))
            .set(free_spend::spent_micros.eq(free_spend::spent_micros + delta))
    };
    if conn.execute_cached(add())? == 1 {
        return Ok(());
    }
    // No row for the day yet (the multi-backend connection has no upsert): create it, or add
    // to the one another writer created meanwhile.
    let inserted = diesel::insert_into(free_spend::table)
        .values((free_spend::day.eq(day), free_spend::spent_micros.eq(delta)))
        .execute(conn);
    match inserted {
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => conn.execute_cached(add()).map(drop),
        other => other.map(drop),
    }
}

/// `day`'s free spend so far (0 when nothing was served free that day).
pub fn spent(conn: &mut DbConn, day: NaiveDateTime) -> Result<i64, DbError> {
    Ok(free_spend::table
        .find(day)
        .select(free_spend::spent_micros)
        .first(conn)
        .optional()?
        .unwrap_or(0))
}
