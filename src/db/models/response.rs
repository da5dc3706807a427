//! The `responses` table: stored Responses-API answers, per key, for `previous_response_id`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::super::schema::responses;
use super::super::{DbConn, DbError};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = responses)]
pub struct StoredResponse {
    pub id: String,
    pub key_id: String,
    pub created_at: NaiveDateTime,
    /// JSON array: the conversation's input items followed by this response's output items.
    pub items: String,
    /// JSON: the response object.
    pub response: String,
}

/// Stores a response and drops the key's responses older than `cutoff` (the retention).
pub fn insert(
    conn: &mut DbConn,
    row: &StoredResponse,
    cutoff: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::insert_into(responses::table)
        .values(row)
        .execute(conn)?;
    diesel::delete(
        responses::table
            .filter(responses::key_id.eq(&row.key_id))
            .filter(responses::created_at.lt(cutoff)),
    )
    .execute(conn)?;
    Ok(())
}

/// A key's own stored response; another key's id is as unknown as a missing one.
pub fn find(conn: &mut DbConn, id: &str, key_id: &str) -> Result<Option<StoredResponse>, DbError> {
    Ok(responses::table
        .filter(responses::id.eq(id))
        .filter(responses::key_id.eq(key_id))
        .select(StoredResponse::as_select())
        .first(conn)
        .optional()?)
}
