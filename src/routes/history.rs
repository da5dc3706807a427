//! `GET /api/wallet/history`: whether and at what rate Lightning top-ups are taken, and the
//! newest ledger entries and invoices. A manage key sees its
//! account's; a use key the ones it caused (its debits, its invoices, credits naming it).

use actix_web::{web, HttpResponse};

use crate::api::history::{HistoryView, InvoiceLineView, LedgerEntryView};
use crate::auth::AuthedKey;
use crate::db;
use crate::db::models::{invoice, ledger};
use crate::error::ApiError;
use crate::routes::views::usd;
use crate::state::AppState;
use crate::wallet::visible_status;

/// Enough for the console's tables; older money is in the ledger, not lost.
const LEDGER_LINES: i64 = 50;
const INVOICE_LINES: i64 = 20;

pub async fn history(
    AuthedKey(key): AuthedKey,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let account = key.account_id.clone();
    let only = (!key.manages()).then(|| key.id.clone());
    // Usage and money as of every request answered so far (the journal folded in).
    super::settled(&state).await?;
    let (entries, invoices) = db::run(&state.pool, move |conn| {
        let only = only.as_deref();
        Ok((
            ledger::recent(conn, &account, only, LEDGER_LINES)?,
            invoice::recent(conn, &account, only, INVOICE_LINES)?,
        ))
    })
    .await?;
    let ledger = entries
        .into_iter()
        .map(|e| LedgerEntryView {
            time: crate::time::rfc3339(e.created_at),
            amount_usd: usd(e.amount_micros),
            id: e.id,
            kind: e.kind,
            key_id: e.key_id,
            memo: e.memo,
        })
        .collect();
    let invoices = invoices
        .iter()
        .map(|inv| InvoiceLineView {
            invoice_id: inv.id.clone(),
            key_id: inv.key_id.clone(),
            amount_sats: inv.amount_sats,
            status: visible_status(inv).to_owned(),
            created_at: crate::time::rfc3339(inv.created_at),
            expires_at: crate::time::rfc3339(inv.expires_at),
            paid_at: inv.paid_at.map(crate::time::rfc3339),
        })
        .collect();
    let ln = &state.config.lightning;
    Ok(HttpResponse::Ok().json(HistoryView {
        lightning: state.wallet.backend().is_ok(),
        usd_per_sat: ln.usd_per_sat,
        min_fund_sats: ln.min_fund_sats,
        max_fund_sats: ln.max_fund_sats,
        ledger,
        invoices,
    }))
}
