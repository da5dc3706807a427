//! The account's management paths, for its manage key: `GET /api/account` (the money and
//! every key with its limits and spend), and `PATCH`, `DELETE` and `POST …/rotate` on
//! `/api/account/keys/{id}`. A `use` key gets 403; another account's key id is a 404.

use actix_web::{web, HttpResponse};

use crate::api::views::AccountView;
use crate::auth::AuthedKey;
use crate::db;
use crate::db::models::api_key::{self, ApiKey, KeySettings};
use crate::error::ApiError;
use crate::money::Micros;
use crate::routes::keys::forbidden;
use crate::routes::limits::SmallJson;
use crate::routes::me::{apply, rotate_key};
use crate::routes::views::{account_key_view, usd, SettingsPatch};
use crate::state::AppState;

pub async fn show(
    AuthedKey(manager): AuthedKey,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if !manager.manages() {
        return Err(forbidden());
    }
    let id = manager.account_id.clone();
    let keys = db::run(&state.pool, move |conn| api_key::in_account(conn, &id)).await?;
    let account = state.budgets.account_with(&manager, &keys).await?;
    Ok(HttpResponse::Ok().json(AccountView {
        id: manager.account_id.clone(),
        balance_sats: state.wallet.sats_for(Micros(account.balance_micros)),
        balance_usd: usd(account.balance_micros),
        free_requests_remaining: account.free_remaining.max(0),
        keys: keys.iter().map(|k| account_key_view(k, &account)).collect(),
    }))
}

pub async fn update(
    AuthedKey(manager): AuthedKey,
    state: web::Data<AppState>,
    path: web::Path<String>,
    SmallJson(body): SmallJson<SettingsPatch>,
) -> Result<HttpResponse, ApiError> {
    let key = managed(&state, &manager, &path).await?;
    let settings = body.into_settings(true)?;
    let updated = apply(&state, &key.id, settings).await?;
    let account = state.budgets.account(&updated).await?;
    Ok(HttpResponse::Ok().json(account_key_view(&updated, &account)))
}

pub async fn rotate(
    AuthedKey(manager): AuthedKey,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = managed(&state, &manager, &path).await?;
    Ok(HttpResponse::Ok().json(rotate_key(&state, &key).await?))
}

pub async fn disable(
    AuthedKey(manager): AuthedKey,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = managed(&state, &manager, &path).await?;
    let settings = KeySettings {
        disabled: Some(true),
        ..KeySettings::default()
    };
    apply(&state, &key.id, settings).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The key `id` of the manager's account: 403 for a `use` key, 404 for an unknown id or one
/// of another account (the two are not told apart).
async fn managed(state: &AppState, manager: &ApiKey, id: &str) -> Result<ApiKey, ApiError> {
    if !manager.manages() {
        return Err(forbidden());
    }
    let lookup = id.to_owned();
    let key = db::run(&state.pool, move |conn| api_key::find(conn, &lookup)).await?;
    key.filter(|k| k.account_id == manager.account_id)
        .ok_or_else(|| ApiError::NotFound(format!("No key with id `{id}` in this account.")))
}
