//! Key self-service with the key's own bearer: `GET|PATCH|DELETE /api/keys/me`,
//! `POST /api/keys/me/rotate`, and `GET /api/wallet/balance` (the account's money, the key's
//! budgets). `apply` and `rotate_key` also serve the account's management paths.

use actix_web::{web, HttpResponse};

use crate::api::views::RotatedKey;
use crate::auth::{mint_key, AuthedKey};
use crate::db;
use crate::db::events::{self, Event};
use crate::db::models::api_key::{self, ApiKey, KeySettings};
use crate::error::ApiError;
use crate::routes::limits::SmallJson;
use crate::routes::views::{balance_view, key_view, SettingsPatch};
use crate::state::AppState;

pub async fn me(
    AuthedKey(key): AuthedKey,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let account = state.budgets.account(&key).await?;
    Ok(HttpResponse::Ok().json(key_view(&key, &account)))
}

pub async fn balance(
    AuthedKey(key): AuthedKey,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let account = state.budgets.account(&key).await?;
    Ok(HttpResponse::Ok().json(balance_view(&key, &account, &state.wallet)))
}

pub async fn update(
    AuthedKey(key): AuthedKey,
    state: web::Data<AppState>,
    SmallJson(body): SmallJson<SettingsPatch>,
) -> Result<HttpResponse, ApiError> {
    let settings = body.into_settings(false)?;
    // A tool key may not lift its own limits: a leaked one could then drain the account.
    let limits = settings.daily_budget_micros.is_some()
        || settings.monthly_budget_micros.is_some()
        || settings.rpm_limit.is_some();
    if limits && !key.manages() {
        return Err(ApiError::Forbidden(
            "This key's budgets and rate limit can only be changed with the account's manage key \
             (PATCH /api/account/keys/{id})."
                .into(),
        ));
    }
    let updated = apply(&state, &key.id, settings).await?;
    let account = state.budgets.account(&updated).await?;
    Ok(HttpResponse::Ok().json(key_view(&updated, &account)))
}

pub async fn disable(
    AuthedKey(key): AuthedKey,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let settings = KeySettings {
        disabled: Some(true),
        ..KeySettings::default()
    };
    apply(&state, &key.id, settings).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn rotate(
    AuthedKey(key): AuthedKey,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(rotate_key(&state, &key).await?))
}

/// Gives `key` a new secret; the old one is refused at once here, and on the other replicas
/// as soon as they hear of it.
pub async fn rotate_key(state: &AppState, key: &ApiKey) -> Result<RotatedKey, ApiError> {
    let (secret, hash) = mint_key();
    let (id, old) = (key.id.clone(), key.key_hash.clone());
    let rotated = db::run(&state.pool, move |conn| {
        api_key::rotate(conn, &id, &old, &hash, crate::time::now())?;
        api_key::find(conn, &id)
    })
    .await?
    .ok_or_else(|| ApiError::Unauthorized("This API key no longer exists.".into()))?;
    state.keys.forget(&key.key_hash);
    state.keys.forget_id(&key.id);
    state.keys.put(rotated);
    let event = Event::Key { id: key.id.clone() };
    events::announce(&state.pool, &state.replica_id, event).await;
    Ok(RotatedKey {
        id: key.id.clone(),
        key: secret,
    })
}

/// Writes settings, then refreshes the key cache and the key's budget actor.
pub async fn apply(state: &AppState, id: &str, settings: KeySettings) -> Result<ApiKey, ApiError> {
    let lookup = id.to_owned();
    let updated = db::run(&state.pool, move |conn| {
        api_key::update(conn, &lookup, &settings)
    })
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("No key with id `{id}`.")))?;
    state.keys.put(updated.clone());
    state.budgets.refresh(&updated);
    let event = Event::Key {
        id: updated.id.clone(),
    };
    events::announce(&state.pool, &state.replica_id, event).await;
    Ok(updated)
}
