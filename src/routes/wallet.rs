//! Lightning funding: `POST /api/wallet/fund`, `GET /api/wallet/status?invoiceId=`, and the
//! public invoice page `GET /invoice/{id}` (the BOLT11 and its QR code).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::auth::AuthedKey;
use crate::db::models::invoice;
use crate::error::ApiError;
use crate::lightning::{invoices, LightningHttp};
use crate::routes::account::db_down;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FundBody {
    amount: i64,
}

/// `scheme://host` of the request, for links back to this gateway.
pub fn base_url(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

pub async fn fund(
    req: HttpRequest,
    AuthedKey(key): AuthedKey,
    state: web::Data<AppState>,
    http: web::Data<LightningHttp>,
    body: web::Json<FundBody>,
) -> Result<HttpResponse, ApiError> {
    let amount = body.amount;
    let c = &state.config.lightning;
    if amount < c.min_fund_sats || amount > c.max_fund_sats {
        return Err(ApiError::bad_param(
            "amount",
            format!(
                "amount must be a whole number of sats between {} and {}",
                c.min_fund_sats, c.max_fund_sats
            ),
        ));
    }
    invoices::backend(&state)?;
    let inv = invoices::open(&state, &http.0, &key.id, amount).await?;
    Ok(HttpResponse::Created().json(invoices::view(&inv, &base_url(&req))))
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
    let (pool, id, key_id) = (state.pool.clone(), query.invoice_id.clone(), key.id.clone());
    let found = web::block(move || invoice::find_for_key(&mut *pool.get()?, &id, &key_id))
        .await
        .map_err(ApiError::internal)?
        .map_err(db_down)?;
    let inv = found.ok_or_else(|| not_found(&query.invoice_id))?;
    Ok(HttpResponse::Ok().json(json!({
        "invoiceId": inv.id,
        "status": invoices::visible_status(&inv),
        "amountSats": inv.amount_sats,
        "paidAt": inv.paid_at.map(crate::time::rfc3339),
    })))
}

fn not_found(id: &str) -> ApiError {
    ApiError::BadRequest {
        message: format!("No invoice `{id}` for this key."),
        param: Some("invoiceId"),
        code: "invoice_not_found",
    }
    .into_not_found()
}

/// The invoice page: amount, status, the BOLT11 and a QR code of `lightning:<BOLT11>`.
pub async fn page(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let (pool, lookup) = (state.pool.clone(), id.clone());
    let inv = web::block(move || invoice::find(&mut *pool.get()?, &lookup))
        .await
        .map_err(ApiError::internal)?
        .map_err(db_down)?
        .ok_or_else(|| not_found(&id))?;
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
        status = invoices::visible_status(&inv),
        expires = crate::time::rfc3339(inv.expires_at),
        qr = qr,
        uri = uri,
        bolt11 = inv.bolt11,
    );
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html))
}
