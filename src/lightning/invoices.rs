//! Transitional, for `routes/chat.rs` only: the two calls it made before invoices moved to the
//! wallet, forwarded there through small traits (implemented in `state.rs` and `wallet/`), so
//! that this folder imports neither the wallet nor the state. Delete this file once the chat
//! path calls `Wallet::payment_required`.

use actix_web::web;

use crate::api::views::InvoiceView;
use crate::db::models::invoice::Invoice;
use crate::error::ApiError;

/// Whatever can find or open the invoice a 402 carries (the application state, through its
/// wallet).
#[expect(
    async_fn_in_trait,
    reason = "called on one worker with its !Send awc client, like the backends"
)]
pub trait PaymentInvoices {
    async fn payment_invoice(&self, http: &awc::Client, key_id: &str) -> Result<Invoice, ApiError>;
}

/// An invoice's fund view (implemented by the wallet for the stored invoice).
pub trait FundView {
    fn fund_view(&self, base_url: &str) -> InvoiceView;
}

/// See [`crate::wallet::Wallet::invoice_for_payment`].
pub async fn for_payment_required<S: PaymentInvoices>(
    state: &web::Data<S>,
    http: &awc::Client,
    key_id: &str,
) -> Result<Invoice, ApiError> {
    state.payment_invoice(http, key_id).await
}

/// See [`crate::wallet::Wallet::view`].
pub fn view<I: FundView>(inv: &I, base_url: &str) -> InvoiceView {
    inv.fund_view(base_url)
}
