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

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(expires_in: chrono::Duration) -> Invoice {
        let now = crate::time::now();
        Invoice {
            id: "inv_1".into(),
            key_id: "key_1".into(),
            backend: "lnbits".into(),
            payment_hash: "ab".repeat(32),
            bolt11: "lnbc1x".into(),
            amount_sats: 1000,
            status: invoice::PENDING.into(),
            checkout_url: None,
            created_at: now,
            expires_at: now + expires_in,
            paid_at: None,
            account_id: "acct_1".into(),
        }
    }

    #[test]
    fn a_pending_invoice_past_its_expiry_is_shown_expired() {
        assert_eq!(
            visible_status(&pending(chrono::Duration::hours(1))),
            "pending"
        );
        assert_eq!(
            visible_status(&pending(-chrono::Duration::seconds(1))),
            "expired"
        );
        let mut paid = pending(-chrono::Duration::seconds(1));
        paid.status = invoice::PAID.into();
        assert_eq!(visible_status(&paid), "paid");
    }

    #[test]
    fn the_fund_view_links_the_invoice_page_unless_the_backend_has_one() {
        let mut inv = pending(chrono::Duration::hours(1));
        let v = invoice(&inv, "http://gw");
        assert_eq!(v.invoice_url, "http://gw/invoice/inv_1");
        assert_eq!(v.lightning_url, "lightning:lnbc1x");
        assert_eq!(v.payment_request, "lnbc1x");
        inv.checkout_url = Some("https://pay.example/x".into());
        assert_eq!(
            invoice(&inv, "http://gw").invoice_url,
            "https://pay.example/x"
        );
        let json = serde_json::to_value(status(&inv)).expect("serialises");
        assert_eq!(json["invoiceId"], "inv_1");
        assert!(json["paidAt"].is_null());
    }
}
