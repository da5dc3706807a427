//! The ledger: every credit and debit of an account's prepaid balance, in integer
//! micro-dollars, with the key that caused it. Each entry updates `accounts.balance_micros` in
//! the same transaction, and `(kind, reference)` is unique, so a request is debited at most once
//! and an invoice credited at most once.

use chrono::NaiveDateTime;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::super::schema::{api_keys, ledger};
use super::super::{DbConn, DbError};
use super::account;

pub const DEBIT: &str = "debit";
pub const ADMIN_CREDIT: &str = "admin_credit";
pub const LIGHTNING_CREDIT: &str = "lightning_credit";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ledger, treat_none_as_default_value = false)]
pub struct Entry {
    pub id: String,
    pub key_id: String,
    pub kind: String,
    pub reference: String,
    pub amount_micros: i64,
    pub memo: Option<String>,
    pub created_at: NaiveDateTime,
    pub account_id: String,
}

/// Records an entry and moves the cached balance, inside the caller's transaction. Returns
/// false (and changes nothing) when an entry of the same kind and reference already exists.
pub fn record(conn: &mut DbConn, entry: &Entry) -> Result<bool, diesel::result::Error> {
    let exists = ledger::table
        .filter(ledger::kind.eq(&entry.kind))
        .filter(ledger::reference.eq(&entry.reference))
        .count()
        .get_result::<i64>(conn)?
        > 0;
    if exists {
        return Ok(false);
    }
    diesel::insert_into(ledger::table)
        .values(entry)
        .execute(conn)?;
    account::move_balance(conn, &entry.account_id, entry.amount_micros)?;
    Ok(true)
}

/// Records fresh debits (each for a new request id, so no existing entry to check) with one
/// insert, and moves each account's cached balance once, inside the caller's transaction.
pub fn record_debits(conn: &mut DbConn, entries: &[Entry]) -> Result<(), diesel::result::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    match conn {
        // Two cached statements of fixed size on SQLite (see `usage::insert_many`).
        DbConn::Sqlite(c) => {
            let refs: Vec<&Entry> = entries.iter().collect();
            crate::db::cached::insert_ledger(c, &refs)?;
        }
        DbConn::Pg(c) => {
            diesel::insert_into(ledger::table)
                .values(entries)
                .execute(c)?;
        }
    };
    let mut per_account: std::collections::BTreeMap<&str, i64> = Default::default();
    for e in entries {
        *per_account.entry(e.account_id.as_str()).or_default() += e.amount_micros;
    }
    for (id, amount) in per_account {
        account::move_balance(conn, id, amount)?;
    }
    Ok(())
}

/// Records one entry in its own transaction (admin credits).
pub fn record_one(conn: &mut DbConn, entry: &Entry) -> Result<bool, DbError> {
    Ok(crate::db::write(conn, |conn| record(conn, entry))?)
}

/// The balance as the ledger says it is (the cached column must always agree).
pub fn sum_for_account(conn: &mut DbConn, account_id: &str) -> Result<i64, DbError> {
    Ok(ledger::table
        .filter(ledger::account_id.eq(account_id))
        .select(sql::<BigInt>(
            "CAST(COALESCE(SUM(amount_micros), 0) AS BIGINT)",
        ))
        .first(conn)?)
}

pub fn for_account(conn: &mut DbConn, account_id: &str) -> Result<Vec<Entry>, DbError> {
    Ok(ledger::table
        .filter(ledger::account_id.eq(account_id))
        .order(ledger::created_at.asc())
        .select(Entry::as_select())
        .load(conn)?)
}

/// The entries a key caused (its debits, the invoices it asked for, credits naming it). Read
/// through the key's account (`ledger_account`): the ledger has no index by key, which every
/// debit would pay for and only this reader (tests) would use.
pub fn for_key(conn: &mut DbConn, key: &str) -> Result<Vec<Entry>, DbError> {
    let account = api_keys::table
        .filter(api_keys::id.eq(key.to_owned()))
        .select(api_keys::account_id);
    Ok(ledger::table
        .filter(ledger::account_id.eq_any(account))
        .filter(ledger::key_id.eq(key))
        .order(ledger::created_at.asc())
        .select(Entry::as_select())
        .load(conn)?)
}

/// The newest `limit` entries of an account (or of one of its keys), newest first: the
/// console's money history.
pub fn recent(
    conn: &mut DbConn,
    account_id: &str,
    key: Option<&str>,
    limit: i64,
) -> Result<Vec<Entry>, DbError> {
    let mut query = ledger::table
        .filter(ledger::account_id.eq(account_id))
        .into_boxed();
    if let Some(key) = key {
        query = query.filter(ledger::key_id.eq(key.to_owned()));
    }
    Ok(query
        .order((ledger::created_at.desc(), ledger::id.desc()))
        .limit(limit)
        .select(Entry::as_select())
        .load(conn)?)
}
