//! The admin API (`/api/admin/…`), authenticated by the admin token as bearer: list keys
//! with their spend, change any key's limits or disable it, credit a balance by hand.

use std::future::{ready, Ready};

use actix_web::{dev::Payload, web, FromRequest, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{bearer, secrets_equal};
use crate::db::models::{api_key, ledger, usage};
use crate::error::ApiError;
use crate::routes::account::{apply, db_down};
use crate::routes::views::{usd, SettingsPatch};
use crate::state::AppState;

/// Proof that the request carried the admin token.
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Admin, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = req
            .app_data::<web::Data<AppState>>()
            .and_then(|s| s.admin_token.clone());
        ready(match (token, bearer(req)) {
            (None, _) => Err(ApiError::Unauthorized(
                "The admin API is disabled: set the admin token's environment variable.".into(),
            )),
            (Some(t), Some(given)) if secrets_equal(&t, given) => Ok(Admin),
            _ => Err(ApiError::Unauthorized(
                "A valid admin token is required.".into(),
            )),
        })
    }
}

pub async fn list(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let pool = state.pool.clone();
    let now = crate::time::now();
    let (day, month) = (
        crate::money::Window::Day.start(now),
        crate::money::Window::Month.start(now),
    );
    let rows = web::block(move || {
        let mut conn = pool.get()?;
        let keys = api_key::all(&mut conn)?;
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let spent_day = usage::spend_since(&mut conn, &k.id, day)?;
            let spent_month = usage::spend_since(&mut conn, &k.id, month)?;
            out.push((k, spent_day, spent_month));
        }
        Ok::<_, crate::db::DbError>(out)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(db_down)?;
    let micros_per_sat = state.config.lightning.usd_per_sat * 1_000_000.0;
    let data: Vec<Value> = rows
        .into_iter()
        .map(|(k, day, month)| {
            json!({
                "id": k.id,
                "label": k.label,
                "createdAt": crate::time::rfc3339(k.created_at),
                "disabled": k.disabled,
                "freeRequestsRemaining": k.free_requests_remaining,
                "dailyBudgetUsd": k.daily_budget_micros.map(usd),
                "monthlyBudgetUsd": k.monthly_budget_micros.map(usd),
                "rpmLimit": k.rpm_limit,
                "notifyEmail": k.notify_email,
                "webhookUrl": k.webhook_url,
                "balanceUsd": usd(k.balance_micros),
                "balanceSats": (k.balance_micros as f64 / micros_per_sat).floor() as i64,
                "dailySpendUsd": usd(day),
                "monthlySpendUsd": usd(month),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"object": "list", "data": data})))
}

pub async fn update(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<SettingsPatch>,
) -> Result<HttpResponse, ApiError> {
    let settings = body.into_inner().into_settings(true)?;
    let key = apply(&state, &path.into_inner(), settings).await?;
    let account = state.budgets.account(&key.id).await?;
    Ok(HttpResponse::Ok().json(crate::routes::views::key_view(&key, &account)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditBody {
    sats: i64,
    #[serde(default)]
    memo: Option<String>,
}

/// Most sats one manual credit may add (a typo guard).
const MAX_CREDIT_SATS: i64 = 100_000_000;

pub async fn credit(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<CreditBody>,
) -> Result<HttpResponse, ApiError> {
    let CreditBody { sats, memo } = body.into_inner();
    if !(1..=MAX_CREDIT_SATS).contains(&sats) {
        return Err(ApiError::bad_param(
            "sats",
            format!("sats must be between 1 and {MAX_CREDIT_SATS}"),
        ));
    }
    let micros_per_sat = state.config.lightning.usd_per_sat * 1_000_000.0;
    let micros = (sats as f64 * micros_per_sat).round() as i64;
    let key_id = path.into_inner();
    let entry = ledger::Entry {
        id: crate::ids::ordered_id("led_"),
        key_id: key_id.clone(),
        kind: ledger::ADMIN_CREDIT.to_owned(),
        reference: format!("adm_{}", crate::ids::random_alnum(20)),
        amount_micros: micros,
        memo,
        created_at: crate::time::now(),
    };
    let pool = state.pool.clone();
    let lookup = key_id.clone();
    let key = web::block(move || {
        let mut conn = pool.get()?;
        if api_key::find(&mut conn, &lookup)?.is_none() {
            return Ok(None);
        }
        ledger::record_one(&mut conn, &entry)?;
        api_key::find(&mut conn, &lookup)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(db_down)?
    .ok_or_else(|| ApiError::NotFound(format!("No key with id `{key_id}`.")))?;
    state.budgets.credit(&key_id, micros);
    let event = crate::cluster::Event::Credit {
        id: key_id.clone(),
        micros,
    };
    crate::cluster::announce(&state, event).await;
    Ok(HttpResponse::Ok().json(json!({
        "id": key.id,
        "creditedSats": sats,
        "balanceSats": (key.balance_micros as f64 / micros_per_sat).floor() as i64,
        "balanceUsd": usd(key.balance_micros),
    })))
}
