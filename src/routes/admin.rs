//! The admin API (`/api/admin/…`), authenticated by the admin token as bearer (the `Admin`
//! extractor in `extract.rs`): list keys with their spend and their account's balance, change
//! any key's limits or disable it, credit a key's account by hand (through the wallet).

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::api::views::{AdminKeyView, CreditView, List};
use crate::db;
use crate::db::models::account::Account;
use crate::db::models::api_key::ApiKey;
use crate::db::models::{account, api_key, usage};
use crate::error::ApiError;
use crate::money::{Micros, Window};
use crate::routes::extract::Admin;
use crate::routes::limits::SmallJson;
use crate::routes::me::apply;
use crate::routes::views::{key_view, usd, SettingsPatch};
use crate::state::AppState;
use crate::wallet::Wallet;

pub async fn list(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let now = crate::time::now();
    let (day, month) = (Window::Day.start(now), Window::Month.start(now));
    // Usage and money as of every request answered so far (the journal folded in).
    super::settled(&state).await?;
    let rows = db::run(&state.pool, move |conn| {
        let keys = api_key::all(conn)?;
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let spent_day = usage::spend_since(conn, &k.id, day)?;
            let spent_month = usage::spend_since(conn, &k.id, month)?;
            let owner = account::find(conn, &k.account_id)?;
            out.push((k, owner, spent_day, spent_month));
        }
        Ok(out)
    })
    .await?;
    let data = rows
        .into_iter()
        .map(|(k, owner, day, month)| admin_view(k, owner, day, month, &state.wallet))
        .collect();
    Ok(HttpResponse::Ok().json(List::of(data)))
}

/// A key with its account's balance and free requests (shared with the account's other keys).
fn admin_view(
    k: ApiKey,
    owner: Option<Account>,
    spent_day: i64,
    spent_month: i64,
    wallet: &Wallet,
) -> AdminKeyView {
    let (balance, free) = owner.map_or((0, 0), |a| (a.balance_micros, a.free_requests_remaining));
    AdminKeyView {
        balance_sats: wallet.sats_for(Micros(balance)),
        balance_usd: usd(balance),
        created_at: crate::time::rfc3339(k.created_at),
        daily_budget_usd: k.daily_budget_micros.map(usd),
        monthly_budget_usd: k.monthly_budget_micros.map(usd),
        daily_spend_usd: usd(spent_day),
        monthly_spend_usd: usd(spent_month),
        id: k.id,
        account_id: k.account_id,
        role: k.role,
        label: k.label,
        disabled: k.disabled,
        free_requests_remaining: free,
        rpm_limit: k.rpm_limit,
        notify_email: k.notify_email,
        webhook_url: k.webhook_url,
    }
}

pub async fn update(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    SmallJson(body): SmallJson<SettingsPatch>,
) -> Result<HttpResponse, ApiError> {
    let settings = body.into_settings(true)?;
    let key = apply(&state, &path.into_inner(), settings).await?;
    let account = state.budgets.account(&key).await?;
    Ok(HttpResponse::Ok().json(key_view(&key, &account)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
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
    SmallJson(body): SmallJson<CreditBody>,
) -> Result<HttpResponse, ApiError> {
    let CreditBody { sats, memo } = body;
    if !(1..=MAX_CREDIT_SATS).contains(&sats) {
        return Err(ApiError::bad_param(
            "sats",
            format!("sats must be between 1 and {MAX_CREDIT_SATS}"),
        ));
    }
    let key_id = path.into_inner();
    let (account, micros) = state.wallet.credit_by_hand(&key_id, sats, memo).await?;
    state.budgets.credit(&account.id, micros.get());
    Ok(HttpResponse::Ok().json(CreditView {
        id: key_id,
        account_id: account.id,
        credited_sats: sats,
        balance_sats: state.wallet.sats_for(Micros(account.balance_micros)),
        balance_usd: usd(account.balance_micros),
    }))
}
