//! `session_pins`: the tier each conversation used, shared by the replicas on one PostgreSQL
//! (one process keeps its pins in memory; see `routing::policy::Pins`).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text, Timestamp};

use super::super::schema::session_pins;
use super::super::{DbConn, DbError};

/// The conversation's tier (its rank: 0 cheap, 1 mid, 2 premium) if it was seen since `since`.
pub fn get(
    conn: &mut DbConn,
    key_id: &str,
    session: &str,
    since: NaiveDateTime,
) -> Result<Option<i32>, DbError> {
    Ok(session_pins::table
        .find((key_id, session))
        .filter(session_pins::seen_at.ge(since))
        .select(session_pins::tier)
        .first(conn)
        .optional()?)
}

/// Records that the conversation used `tier`, keeping the highest unless the pin had expired
/// (seen before `since`). PostgreSQL's upsert: one statement, however many replicas race.
pub fn record(
    conn: &mut DbConn,
    key_id: &str,
    session: &str,
    tier: i32,
    now: NaiveDateTime,
    since: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::sql_query(
        "INSERT INTO session_pins (key_id, session, tier, seen_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (key_id, session) DO UPDATE SET \
         tier = CASE WHEN session_pins.seen_at < $5 THEN EXCLUDED.tier \
                     ELSE GREATEST(session_pins.tier, EXCLUDED.tier) END, \
         seen_at = EXCLUDED.seen_at",
    )
    .bind::<Text, _>(key_id)
    .bind::<Text, _>(session)
    .bind::<Integer, _>(tier)
    .bind::<Timestamp, _>(now)
    .bind::<Timestamp, _>(since)
    .execute(conn)?;
    Ok(())
}

/// Forgets pins not seen since `before`; returns how many.
pub fn sweep(conn: &mut DbConn, before: NaiveDateTime) -> Result<usize, DbError> {
    Ok(
        diesel::delete(session_pins::table.filter(session_pins::seen_at.lt(before)))
            .execute(conn)?,
    )
}
