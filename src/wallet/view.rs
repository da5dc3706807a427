//! What a client sees of an invoice: the fund view (also a 402's `invoice`) and the status.

use crate::api::views::{InvoiceStatusView, InvoiceView};
use crate::db::models::invoice::{self, Invoice};

/// The status a client sees: a pending invoice past its expiry is expired, even before the
/// watcher has written so.
pub fn visible_status(inv: &Invoice) -> &str {
    if inv.status == invoice::PENDING && inv.expires_at <= crate::time::now() {
        invoice::EXPIRED
    } else {
        &inv.status
    }
}

/// The fields of `POST /api/wallet/fund`'s answer; `base_url` is this gateway's, for the
/// invoice page when the backend has no checkout page of its own.
pub fn invoice(inv: &Invoice, base_url: &str) -> InvoiceView {
    let invoice_url = inv
        .checkout_url
        .clone()
        .unwrap_or_else(|| format!("{base_url}/invoice/{}", inv.id));
    InvoiceView {
        invoice_id: inv.id.clone(),
        amount_sats: inv.amount_sats,
        payment_request: inv.bolt11.clone(),
        lightning_url: format!("lightning:{}", inv.bolt11),
        invoice_url,
        status: visible_status(inv).to_owned(),
        expires_at: crate::time::rfc3339(inv.expires_at),
    }
}

pub fn status(inv: &Invoice) -> InvoiceStatusView {
    InvoiceStatusView {
        invoice_id: inv.id.clone(),
        status: visible_status(inv).to_owned(),
        amount_sats: inv.amount_sats,
        paid_at: inv.paid_at.map(crate::time::rfc3339),
    }
}

/// For the transitional `lightning::invoices::view` that `routes/chat.rs` still calls.
impl crate::lightning::invoices::FundView for Invoice {
    fn fund_view(&self, base_url: &str) -> InvoiceView {
        invoice(self, base_url)
    }
}
