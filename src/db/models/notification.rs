//! Budget notifications sent, so each threshold of each window is announced once.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::super::schema::notifications;
use super::super::{DbConn, DbError};

/// Claims the right to send this notification; false when it was already sent.
pub fn claim(
    conn: &mut DbConn,
    key_id: &str,
    window: &str,
    window_start: NaiveDateTime,
    threshold: i32,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let already = notifications::table
        .filter(notifications::key_id.eq(key_id))
        .filter(notifications::budget_window.eq(window))
        .filter(notifications::window_start.eq(window_start))
        .filter(notifications::threshold.eq(threshold))
        .count()
        .get_result::<i64>(conn)?
        > 0;
    if already {
        return Ok(false);
    }
    let inserted = diesel::insert_into(notifications::table)
        .values((
            notifications::key_id.eq(key_id),
            notifications::budget_window.eq(window),
            notifications::window_start.eq(window_start),
            notifications::threshold.eq(threshold),
            notifications::created_at.eq(now),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(true),
        // Another replica claimed it between the check and the insert.
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
