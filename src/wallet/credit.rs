//! Crediting: a paid invoice exactly once (the conditional pending → paid update and the
//! ledger entry, unique per invoice, in one transaction), or a manual credit by the admin.
//! Either is announced to the other replicas once committed. Telling this replica's
//! BudgetActor is the caller's part (for a paid invoice, by committing it in the actor's turn).

use super::Wallet;
use crate::db::events::{self, Event};
use crate::db::models::account::{self, Account};
use crate::db::models::invoice::{self, Invoice};
use crate::db::models::ledger;
use crate::db::{self, DbError};
use crate::error::ApiError;
use crate::money::{micros_to_sats, sats_to_micros, Micros};

impl Wallet {
    /// What `sats` credit at the configured rate.
    pub fn micros_for(&self, sats: i64) -> Micros {
        sats_to_micros(sats, self.config.usd_per_sat)
    }

    /// A balance in whole sats (rounded down).
    pub fn sats_for(&self, micros: Micros) -> i64 {
        micros_to_sats(micros, self.config.usd_per_sat)
    }

    /// Credits a paid invoice once. `commit` runs the crediting transaction (the watcher runs
    /// it in the turn of the account's BudgetActor, so the balance it serves never lags the
    /// invoice's status). `Some(micros)` when this call credited it, `None` when it was already
    /// credited (here or by another replica's watcher).
    pub async fn credit_paid<F, Fut>(
        &self,
        inv: &Invoice,
        commit: F,
    ) -> Result<Option<Micros>, DbError>
    where
        F: FnOnce(db::Retryable<Option<i64>>) -> Fut,
        Fut: std::future::Future<Output = Result<Option<i64>, DbError>>,
    {
        let micros = self.micros_for(inv.amount_sats);
        let row = inv.clone();
        let credited = commit(std::sync::Arc::new(move |conn: &mut db::DbConn| {
            invoice::credit_paid(conn, &row, micros.get(), crate::time::now())
        }))
        .await?;
        let Some(m) = credited else {
            return Ok(None);
        };
        crate::metrics::invoices("paid", 1);
        if inv.status == invoice::EXPIRED {
            log::warn!(
                "invoice {} was paid after it expired; credited anyway ({} sats)",
                inv.id,
                inv.amount_sats
            );
        }
        log::info!(
            "invoice {} paid: credited {} sats to account {} (key {})",
            inv.id,
            inv.amount_sats,
            inv.account_id,
            inv.key_id
        );
        let event = Event::Credit {
            account: inv.account_id.clone(),
            micros: m,
            xid: None,
        };
        events::announce(&self.pool, &self.replica_id, event).await;
        Ok(Some(Micros(m)))
    }

    /// A manual credit of `sats` to the account of a key, recorded in the ledger. Returns the
    /// account as it is afterwards and the micro-dollars credited; 404 for an unknown key.
    pub async fn credit_by_hand(
        &self,
        key_id: &str,
        sats: i64,
        memo: Option<String>,
    ) -> Result<(Account, Micros), ApiError> {
        let micros = self.micros_for(sats);
        let lookup = key_id.to_owned();
        let account = db::run(&self.pool, move |conn| {
            let Some(owner) = account::of_key(conn, &lookup)? else {
                return Ok(None);
            };
            let entry = ledger::Entry {
                id: crate::ids::ordered_id("led_"),
                key_id: lookup,
                kind: ledger::ADMIN_CREDIT.to_owned(),
                reference: format!("adm_{}", crate::ids::random_alnum(20)),
                amount_micros: micros.get(),
                memo,
                created_at: crate::time::now(),
                account_id: owner.id.clone(),
            };
            ledger::record_one(conn, &entry)?;
            account::find(conn, &owner.id)
        })
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("No key with id `{key_id}`.")))?;
        let event = Event::Credit {
            account: account.id.clone(),
            micros: micros.get(),
            xid: None,
        };
        events::announce(&self.pool, &self.replica_id, event).await;
        Ok((account, micros))
    }
}
