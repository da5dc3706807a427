//! Opening invoices for a key (through `POST /api/wallet/fund` or a 402) and their JSON view.

use actix_web::web;
use serde_json::{json, Value};

use super::{Backend, LightningBackend};
use crate::db::models::invoice::{self, Invoice};
use crate::error::ApiError;
use crate::state::AppState;

/// A pending invoice is reused for a 402 only while it has at least this long to live.
const REUSE_MARGIN_SECS: i64 = 120;

/// The configured backend, or the 503 that `backend = "none"` answers.
pub fn backend(state: &AppState) -> Result<&Backend, ApiError> {
    state.lightning.as_ref().ok_or_else(|| {
        ApiError::Unavailable(
            "Lightning funding is not configured on this gateway (lightning.backend = \"none\")."
                .into(),
        )
    })
}

/// Creates, checks and stores a new invoice of `amount_sats` for the key.
pub async fn open(
    state: &web::Data<AppState>,
    http: &awc::Client,
    key_id: &str,
    amount_sats: i64,
) -> Result<Invoice, ApiError> {
    let backend = backend(state)?;
    let (_, expiry) = super::timings(&state.config.lightning);
    let memo = format!("Pura balance top-up ({amount_sats} sats)");
    let created = backend
        .create_invoice(http, amount_sats, &memo, expiry)
        .await
        .map_err(|e| ApiError::Unavailable(format!("Could not create a Lightning invoice: {e}")))?;
    let now = crate::time::now();
    let row = Invoice {
        id: format!("inv_{}", crate::ids::random_alnum(24)),
        key_id: key_id.to_owned(),
        backend: backend.name().to_owned(),
        payment_hash: created.payment_hash.to_ascii_lowercase(),
        bolt11: created.bolt11,
        amount_sats,
        status: invoice::PENDING.to_owned(),
        checkout_url: created.checkout_url,
        created_at: now,
        expires_at: now + chrono::Duration::from_std(expiry).unwrap_or(chrono::Duration::hours(1)),
        paid_at: None,
    };
    let (pool, stored) = (state.pool.clone(), row.clone());
    web::block(move || invoice::insert(&mut *pool.get()?, &stored))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::Unavailable(format!("Database unavailable: {e}")))?;
    log::info!(
        "invoice {} opened for key {key_id}: {amount_sats} sats",
        row.id
    );
    Ok(row)
}

/// The invoice a 402 carries: the key's still-pending one for the default amount, or a new one.
pub async fn for_payment_required(
    state: &web::Data<AppState>,
    http: &awc::Client,
    key_id: &str,
) -> Result<Invoice, ApiError> {
    let amount = state.config.lightning.default_fund_sats;
    let good_until = crate::time::now() + chrono::Duration::seconds(REUSE_MARGIN_SECS);
    let (pool, key) = (state.pool.clone(), key_id.to_owned());
    let existing =
        web::block(move || invoice::reusable(&mut *pool.get()?, &key, amount, good_until))
            .await
            .map_err(ApiError::internal)?
            .map_err(|e| ApiError::Unavailable(format!("Database unavailable: {e}")))?;
    match existing {
        Some(inv) => Ok(inv),
        None => open(state, http, key_id, amount).await,
    }
}

/// The status a client sees: a pending invoice past its expiry is expired, even before the
/// watcher has written so.
pub fn visible_status(inv: &Invoice) -> &str {
    if inv.status == invoice::PENDING && inv.expires_at <= crate::time::now() {
        invoice::EXPIRED
    } else {
        &inv.status
    }
}

/// The fields of `POST /api/wallet/fund`'s answer.
pub fn view(inv: &Invoice, base_url: &str) -> Value {
    let invoice_url = inv
        .checkout_url
        .clone()
        .unwrap_or_else(|| format!("{base_url}/invoice/{}", inv.id));
    json!({
        "invoiceId": inv.id,
        "amountSats": inv.amount_sats,
        "paymentRequest": inv.bolt11,
        "lightningUrl": format!("lightning:{}", inv.bolt11),
        "invoiceUrl": invoice_url,
        "status": visible_status(inv),
        "expiresAt": crate::time::rfc3339(inv.expires_at),
    })
}

/// Micro-dollars a paid invoice credits.
pub fn credit_micros(amount_sats: i64, usd_per_sat: f64) -> i64 {
    (amount_sats as f64 * usd_per_sat * 1_000_000.0).round() as i64
}
