//! `GET /api/wallet/history`: the money that came in and went out, for the console.

use serde::Serialize;

/// One ledger entry: a credit (a paid invoice, an admin credit) or a request's debit.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntryView {
    pub id: String,
    /// `lightning_credit`, `admin_credit` or `debit`.
    pub kind: String,
    pub key_id: String,
    /// Positive for a credit, negative for a debit.
    pub amount_usd: f64,
    pub memo: Option<String>,
    /// RFC 3339, UTC.
    pub time: String,
}

/// One Lightning invoice and its state.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceLineView {
    pub invoice_id: String,
    pub key_id: String,
    pub amount_sats: i64,
    /// `pending`, `paid` or `expired` (a pending one past its expiry reads expired).
    pub status: String,
    pub created_at: String,
    pub expires_at: String,
    pub paid_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryView {
    /// Whether this gateway takes Lightning top-ups (`lightning.backend` is not `none`).
    pub lightning: bool,
    /// The rate a top-up is credited at, so a USD amount can be shown in sats before paying.
    pub usd_per_sat: f64,
    pub min_fund_sats: i64,
    pub max_fund_sats: i64,
    pub ledger: Vec<LedgerEntryView>,
    pub invoices: Vec<InvoiceLineView>,
}
