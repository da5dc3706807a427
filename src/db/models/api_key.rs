//! The `api_keys` table. Only a SHA-256 hash of each key is stored. Each key belongs to an
//! account (which holds the money) and has a role: [`MANAGE`] or [`USE`].

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::super::schema::{api_keys, retired_keys};
use super::super::{DbConn, DbError};

/// May mint, change, rotate and disable the account's keys and read every key's usage.
pub const MANAGE: &str = "manage";
/// Spends, funds the account and reads its own usage.
pub const USE: &str = "use";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub struct ApiKey {
    pub id: String,
    pub key_hash: String,
    pub label: String,
    pub created_at: NaiveDateTime,
    pub disabled: bool,
    pub daily_budget_micros: Option<i64>,
    pub monthly_budget_micros: Option<i64>,
    pub rpm_limit: Option<i32>,
    pub notify_email: Option<String>,
    pub webhook_url: Option<String>,
    pub account_id: String,
    pub role: String,
}

impl ApiKey {
    pub fn manages(&self) -> bool {
        self.role == MANAGE
    }
}

/// The settings a key may change about itself (and an admin about any key).
/// `Some(None)` clears an optional setting back to the default.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = api_keys)]
pub struct KeySettings {
    pub label: Option<String>,
    pub daily_budget_micros: Option<Option<i64>>,
    pub monthly_budget_micros: Option<Option<i64>>,
    pub rpm_limit: Option<Option<i32>>,
    pub notify_email: Option<Option<String>>,
    pub webhook_url: Option<Option<String>>,
    pub disabled: Option<bool>,
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

pub fn find(conn: &mut DbConn, id: &str) -> Result<Option<ApiKey>, DbError> {
    Ok(api_keys::table
        .find(id)
        .select(ApiKey::as_select())
        .first(conn)
        .optional()?)
}

/// The keys of one account, oldest first.
pub fn in_account(conn: &mut DbConn, account_id: &str) -> Result<Vec<ApiKey>, DbError> {
    Ok(api_keys::table
        .filter(api_keys::account_id.eq(account_id))
        .order(api_keys::created_at.asc())
        .select(ApiKey::as_select())
        .load(conn)?)
}

pub fn all(conn: &mut DbConn) -> Result<Vec<ApiKey>, DbError> {
    Ok(api_keys::table
        .order(api_keys::created_at.asc())
        .select(ApiKey::as_select())
        .load(conn)?)
}

/// Applies settings; returns the updated row (None when the id is unknown).
pub fn update(
    conn: &mut DbConn,
    id: &str,
    settings: &KeySettings,
) -> Result<Option<ApiKey>, DbError> {
    let empty = settings.label.is_none()
        && settings.daily_budget_micros.is_none()
        && settings.monthly_budget_micros.is_none()
        && settings.rpm_limit.is_none()
        && settings.notify_email.is_none()
        && settings.webhook_url.is_none()
        && settings.disabled.is_none();
    if !empty {
        diesel::update(api_keys::table.find(id))
            .set(settings)
            .execute(conn)?;
    }
    find(conn, id)
}

/// Replaces the key's hash with a new one; the old hash is kept in `retired_keys`.
pub fn rotate(
    conn: &mut DbConn,
    id: &str,
    old_hash: &str,
    new_hash: &str,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    crate::db::write(conn, |conn| {
        diesel::insert_into(retired_keys::table)
            .values((
                retired_keys::key_hash.eq(old_hash),
                retired_keys::key_id.eq(id),
                retired_keys::retired_at.eq(now),
            ))
            .execute(conn)?;
        diesel::update(api_keys::table.find(id))
            .set(api_keys::key_hash.eq(new_hash))
            .execute(conn)?;
        Ok::<_, diesel::result::Error>(())
    })?;
    Ok(())
}
