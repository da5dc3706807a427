//! The `invoices` table and the one transaction that turns a paid invoice into a ledger credit
//! exactly once. The wallet (`src/wallet/`) is its caller.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::super::schema::invoices;
use super::super::{DbConn, DbError};
use super::ledger;

pub const PENDING: &str = "pending";
pub const PAID: &str = "paid";
pub const EXPIRED: &str = "expired";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = invoices)]
pub struct Invoice {
    pub id: String,
    pub key_id: String,
    pub backend: String,
    pub payment_hash: String,
    pub bolt11: String,
    pub amount_sats: i64,
    pub status: String,
    pub checkout_url: Option<String>,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub paid_at: Option<NaiveDateTime>,
    /// The account the payment funds (any of its keys may ask for an invoice).
    pub account_id: String,
}

pub fn insert(conn: &mut DbConn, invoice: &Invoice) -> Result<(), DbError> {
    diesel::insert_into(invoices::table)
        .values(invoice)
        .execute(conn)?;
    Ok(())
}

/// The account's own invoice with this id (another account's is as good as unknown).
pub fn find_for_account(
    conn: &mut DbConn,
    id: &str,
    account_id: &str,
) -> Result<Option<Invoice>, DbError> {
    Ok(invoices::table
        .find(id)
        .filter(invoices::account_id.eq(account_id))
        .select(Invoice::as_select())
        .first(conn)
        .optional()?)
}

pub fn find(conn: &mut DbConn, id: &str) -> Result<Option<Invoice>, DbError> {
    Ok(invoices::table
        .find(id)
        .select(Invoice::as_select())
        .first(conn)
        .optional()?)
}

/// A pending invoice of `amount_sats` for the account that is still good until `good_until`.
pub fn reusable(
    conn: &mut DbConn,
    account_id: &str,
    amount_sats: i64,
    good_until: NaiveDateTime,
) -> Result<Option<Invoice>, DbError> {
    Ok(invoices::table
        .filter(invoices::account_id.eq(account_id))
        .filter(invoices::status.eq(PENDING))
        .filter(invoices::amount_sats.eq(amount_sats))
        .filter(invoices::expires_at.gt(good_until))
        .order(invoices::created_at.desc())
        .select(Invoice::as_select())
        .first(conn)
        .optional()?)
}

/// Invoices worth asking the backend about: pending ones, and expired ones within `grace`
/// of their expiry (a late payment is still credited).
pub fn watchable(
    conn: &mut DbConn,
    now: NaiveDateTime,
    grace: chrono::Duration,
) -> Result<Vec<Invoice>, DbError> {
    Ok(invoices::table
        .filter(
            invoices::status.eq(PENDING).or(invoices::status
                .eq(EXPIRED)
                .and(invoices::expires_at.gt(now - grace))),
        )
        .order(invoices::created_at.asc())
        .select(Invoice::as_select())
        .load(conn)?)
}

/// Marks pending invoices past their expiry as expired; returns how many.
pub fn expire_due(conn: &mut DbConn, now: NaiveDateTime) -> Result<usize, DbError> {
    Ok(diesel::update(
        invoices::table
            .filter(invoices::status.eq(PENDING))
            .filter(invoices::expires_at.le(now)),
    )
    .set(invoices::status.eq(EXPIRED))
    .execute(conn)?)
}

/// Credits a paid invoice exactly once: the status change is conditional (only from pending or
/// expired), and the ledger entry is unique per invoice, both in one transaction. Returns the
/// credited micro-dollars, or None when the invoice was already paid (nothing happens).
pub fn credit_paid(
    conn: &mut DbConn,
    invoice: &Invoice,
    micros: i64,
    now: NaiveDateTime,
) -> Result<Option<i64>, DbError> {
    let credited = crate::db::write(conn, |conn| {
        let changed = diesel::update(
            invoices::table.find(&invoice.id).filter(
                invoices::status
                    .eq(PENDING)
                    .or(invoices::status.eq(EXPIRED)),
            ),
        )
        .set((invoices::status.eq(PAID), invoices::paid_at.eq(now)))
        .execute(conn)?;
        if changed == 0 {
            return Ok::<_, diesel::result::Error>(None);
        }
        let entry = ledger::Entry {
            id: crate::ids::ordered_id("led_"),
            key_id: invoice.key_id.clone(),
            kind: ledger::LIGHTNING_CREDIT.to_owned(),
            reference: invoice.id.clone(),
            amount_micros: micros,
            memo: Some(format!(
                "{} sats, payment hash {}",
                invoice.amount_sats, invoice.payment_hash
            )),
            created_at: now,
            account_id: invoice.account_id.clone(),
        };
        if !ledger::record(conn, &entry)? {
            return Err(diesel::result::Error::RollbackTransaction);
        }
        Ok(Some(micros))
    });
    match credited {
        Ok(c) => Ok(c),
        // Another watcher committed first: its conditional update won, ours must not credit.
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        ))
        | Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::SerializationFailure,
            _,
        ))
        | Err(diesel::result::Error::RollbackTransaction) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The newest `limit` invoices of an account (or of one of its keys), newest first.
pub fn recent(
    conn: &mut DbConn,
    account_id: &str,
    key: Option<&str>,
    limit: i64,
) -> Result<Vec<Invoice>, DbError> {
    let mut query = invoices::table
        .filter(invoices::account_id.eq(account_id))
        .into_boxed();
    if let Some(key) = key {
        query = query.filter(invoices::key_id.eq(key.to_owned()));
    }
    Ok(query
        .order(invoices::created_at.desc())
        .limit(limit)
        .select(Invoice::as_select())
        .load(conn)?)
}
