//! Lightning funding, over the wallet: `POST /api/wallet/fund`,
//! `GET /api/wallet/status?invoiceId=`, and the public invoice page `GET /invoice/{id}` (the
//! BOLT11 and its QR code).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::auth::AuthedKey;
use crate::error::ApiError;
use crate::lightning::LightningHttp;
use crate::routes::limits::SmallJson;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
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
    SmallJson(body): SmallJson<FundBody>,
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

/// The invoice page (rendered, escaped, with its CSP, in `wallet::page`).
pub async fn page(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let inv = state.wallet.invoice(&path.into_inner()).await?;
    let page = crate::wallet::page::render(&inv);
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, page.csp))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(page.html))
}
