//! The `api_keys` table. Only a SHA-256 hash of each key is stored.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::super::schema::api_keys;
use super::super::{DbConn, DbError};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub struct ApiKey {
    pub id: String,
    pub key_hash: String,
    pub label: String,
    pub created_at: NaiveDateTime,
    pub disabled: bool,
    pub free_requests_remaining: i64,
    pub daily_budget_micros: Option<i64>,
    pub monthly_budget_micros: Option<i64>,
    pub rpm_limit: Option<i32>,
    pub notify_email: Option<String>,
    pub webhook_url: Option<String>,
}

pub fn insert(conn: &mut DbConn, key: &ApiKey) -> Result<(), DbError> {
    diesel::insert_into(api_keys::table)
        .values(key)
        .execute(conn)?;
    Ok(())
}

pub fn find_by_hash(conn: &mut DbConn, hash: &str) -> Result<Option<ApiKey>, DbError> {
    Ok(api_keys::table
        .filter(api_keys::key_hash.eq(hash))
        .select(ApiKey::as_select())
        .first(conn)
        .optional()?)
}
