//! Lightning funding, over the wallet: `POST /api/wallet/fund`,
//! `GET /api/wallet/status?invoiceId=`, and the public invoice page `GET /invoice/{id}` (the
//! BOLT11 and its QR code).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::auth::AuthedKey;
use crate::error::ApiError;
use crate::lightning::LightningHttp;
use crate::state::AppState;
use crate::wallet::visible_status;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FundBody {
    amount: i64,
}

pub use crate::wallet::base_url;

pub async fn fund(
    req: HttpRequest,
    AuthedKey(key): AuthedKey,
    state: web::Data<AppState>,
    http: web::Data<LightningHttp>,
    body: web::Json<FundBody>,
) -> Result<HttpResponse, ApiError> {
    let inv = state.wallet.fund(&http.0, &key, body.amount).await?;
    Ok(HttpResponse::Created().json(state.wallet.view(&inv, &base_url(&req))))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusQuery {
    invoice_id: String,
}

pub async fn status(
    AuthedKey(key): AuthedKey,
    state: web::Data<AppState>,
    query: web::Query<StatusQuery>,
) -> Result<HttpResponse, ApiError> {
    let inv = state.wallet.invoice_of(&key, &query.invoice_id).await?;
    Ok(HttpResponse::Ok().json(state.wallet.status_view(&inv)))
}

/// The invoice page: amount, status, the BOLT11 and a QR code of `lightning:<BOLT11>`.
pub async fn page(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let inv = state.wallet.invoice(&path.into_inner()).await?;
    // Upper case makes a denser QR code (alphanumeric mode); BOLT11 is case-insensitive.
    let uri = format!("lightning:{}", inv.bolt11.to_ascii_uppercase());
    let qr = qrcode::QrCode::new(uri.as_bytes())
        .map(|c| {
            c.render::<qrcode::render::svg::Color>()
                .min_dimensions(280, 280)
                .build()
        })
        .unwrap_or_default();
    let html = format!(
        include_str!("../../static/invoice.html"),
        amount = inv.amount_sats,
        status = visible_status(&inv),
        expires = crate::time::rfc3339(inv.expires_at),
        qr = qr,
        uri = uri,
        bolt11 = inv.bolt11,
    );
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html))
}
