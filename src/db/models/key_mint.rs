//! The `key_mints` table: keys minted without the admin token, counted per source address and
//! clock hour, so `server.key_mint_per_ip_per_hour` holds across restarts and replicas.
//! One conditional `UPDATE … WHERE mints < limit` per mint; the first mint of an address in
//! an hour also creates its row and clears rows of past hours.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::super::schema::key_mints;
use super::super::{DbConn, DbError};

/// Counts one mint from `ip` in the hour opened at `window_start`; false (nothing counted)
/// when `limit` mints were already counted there.
pub fn record(
    conn: &mut DbConn,
    ip: &str,
    window_start: NaiveDateTime,
    limit: i64,
) -> Result<bool, DbError> {
    if count_below(conn, ip, window_start, limit)? {
        return Ok(true);
    }
    let inserted = diesel::insert_into(key_mints::table)
        .values((
            key_mints::ip.eq(ip),
            key_mints::window_start.eq(window_start),
            key_mints::mints.eq(0),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => {
            // A new hour for this address: rows of past hours count for nothing any more.
            diesel::delete(key_mints::table.filter(key_mints::window_start.lt(window_start)))
                .execute(conn)?;
        }
        // The row exists (the limit is reached, or another replica just created it).
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => {}
        Err(e) => return Err(e.into()),
    }
    count_below(conn, ip, window_start, limit)
}

fn count_below(
    conn: &mut DbConn,
    ip: &str,
    window_start: NaiveDateTime,
    limit: i64,
) -> Result<bool, DbError> {
    let n = diesel::update(
        key_mints::table
            .find((ip, window_start))
            .filter(key_mints::mints.lt(limit)),
    )
    .set(key_mints::mints.eq(key_mints::mints + 1))
    .execute(conn)?;
    Ok(n == 1)
}
