//! The 402 a refused reservation becomes: the wallet attaches an invoice for
//! `lightning.default_fund_sats` (reusing a pending one), so that paying it is all the client
//! has to do; without a working backend, the 402 says how to fund instead.

use crate::db::models::api_key::ApiKey;
use crate::error::ApiError;

use super::Ctx;
use crate::wallet::base_url;

pub async fn required(ctx: &Ctx<'_>, key: &ApiKey, message: String) -> ApiError {
    ctx.state
        .wallet
        .payment_required(ctx.lightning, key, &base_url(ctx.request), message)
        .await
}
