//! The `accounts` table: who owns the money. An account's prepaid balance (the cached sum of
//! its ledger entries, moved only by `ledger`) and its free requests are shared by all of its
//! keys; each key keeps its own budgets and limits in `api_keys`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::super::cached::{MoveBalance, UseFreeRequests};
use super::super::schema::{accounts, api_keys};
use super::super::{DbConn, DbError};
use super::api_key::ApiKey;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = accounts)]
pub struct Account {
    pub id: String,
    pub created_at: NaiveDateTime,
    pub balance_micros: i64,
    pub free_requests_remaining: i64,
}

/// Creates an account with its first key, in one transaction.
pub fn create_with_key(conn: &mut DbConn, account: &Account, key: &ApiKey) -> Result<(), DbError> {
    crate::db::write(conn, |conn| {
        diesel::insert_into(accounts::table)
            .values(account)
            .execute(conn)?;
        diesel::insert_into(api_keys::table)
            .values(key)
            .execute(conn)?;
        Ok::<_, diesel::result::Error>(())
    })?;
    Ok(())
}

pub fn find(conn: &mut DbConn, id: &str) -> Result<Option<Account>, DbError> {
    Ok(accounts::table
        .find(id)
        .select(Account::as_select())
        .first(conn)
        .optional()?)
}

/// The account a key belongs to.
pub fn of_key(conn: &mut DbConn, key_id: &str) -> Result<Option<Account>, DbError> {
    Ok(api_keys::table
        .find(key_id)
        .inner_join(accounts::table)
        .select(Account::as_select())
        .first(conn)
        .optional()?)
}

/// Moves the cached balance by `delta` (only `ledger` calls this, beside its entry).
pub fn move_balance(conn: &mut DbConn, id: &str, delta: i64) -> Result<(), diesel::result::Error> {
    conn.execute_cached(MoveBalance {
        account: id.to_owned(),
        delta,
    })?;
    Ok(())
}

/// Uses `n` free requests (never going below zero: the BudgetActor already checked, and a
/// race with another replica at worst serves the last few free).
pub fn use_free_requests(conn: &mut DbConn, id: &str, n: i64) -> Result<(), diesel::result::Error> {
    let used = conn.execute_cached(UseFreeRequests {
        account: id.to_owned(),
        n,
    })?;
    if used == 0 {
        diesel::update(accounts::table.find(id))
            .set(accounts::free_requests_remaining.eq(0))
            .execute(conn)?;
    }
    Ok(())
}
