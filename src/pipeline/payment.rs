//! The 402 a refused reservation becomes: with an invoice for `lightning.default_fund_sats`
//! (reusing a pending one), so that paying it is all the client has to do; without a working
//! backend, the 402 says how to fund instead.

use crate::error::ApiError;
use crate::lightning::invoices;

use super::Ctx;

pub async fn required(ctx: &Ctx<'_>, key_id: &str, message: String) -> ApiError {
    let bare = |message| ApiError::PaymentRequired {
        message,
        invoice: None,
    };
    let Some(http) = ctx.lightning.filter(|_| ctx.state.lightning.is_some()) else {
        return bare(message);
    };
    match invoices::for_payment_required(ctx.state, http, key_id).await {
        Ok(inv) => ApiError::PaymentRequired {
            message: format!(
                "{message} This response carries an invoice of {} sats.",
                inv.amount_sats
            ),
            invoice: Some(Box::new(invoices::view(&inv, &ctx.base_url))),
        },
        Err(e) => {
            log::warn!("402 without an invoice for key {key_id}: {e}");
            bare(message)
        }
    }
}
