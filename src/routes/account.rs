//! Key self-service with the key's own bearer: `GET|PATCH|DELETE /api/keys/me`,
//! `POST /api/keys/me/rotate`, and `GET /api/wallet/balance`.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::auth::{mint_key, AuthedKey};
use crate::cluster::{self, Event};
use crate::db::models::api_key::{self, ApiKey, KeySettings};
use crate::error::ApiError;
use crate::routes::views::{balance_view, key_view, SettingsPatch};
use crate::state::AppState;

pub async fn me(
    AuthedKey(key): AuthedKey,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let account = state.budgets.account(&key.id).await?;
    Ok(HttpResponse::Ok().json(key_view(&key, &account)))
}

pub async fn balance(
    AuthedKey(key): AuthedKey,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let account = state.budgets.account(&key.id).await?;
    let micros_per_sat = state.config.lightning.usd_per_sat * 1_000_000.0;
    Ok(HttpResponse::Ok().json(balance_view(&account, micros_per_sat)))
}

pub async fn update(
    AuthedKey(key): AuthedKey,
    state: web::Data<AppState>,
    body: web::Json<SettingsPatch>,
) -> Result<HttpResponse, ApiError> {
    let settings = body.into_inner().into_settings(false)?;
    let updated = apply(&state, &key.id, settings).await?;
    let account = state.budgets.account(&key.id).await?;
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
    let (secret, hash) = mint_key();
    let (pool, id, old, new) = (
        state.pool.clone(),
        key.id.clone(),
        key.key_hash.clone(),
        hash.clone(),
    );
    let rotated = web::block(move || {
        let mut conn = pool.get()?;
        api_key::rotate(&mut conn, &id, &old, &new, crate::time::now())?;
        api_key::find(&mut conn, &id)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(db_down)?
    .ok_or_else(|| ApiError::Unauthorized("This API key no longer exists.".into()))?;
    // The old secret stops working at once on this replica.
    state.keys.forget(&key.key_hash);
    state.keys.put(rotated);
    cluster::announce(&state, Event::Key { id: key.id.clone() }).await;
    Ok(HttpResponse::Ok().json(json!({"id": key.id, "key": secret})))
}

/// Writes settings, then refreshes the key cache and the key's budget actor.
pub async fn apply(
    state: &web::Data<AppState>,
    id: &str,
    settings: KeySettings,
) -> Result<ApiKey, ApiError> {
    let (pool, id_owned) = (state.pool.clone(), id.to_owned());
    let updated = web::block(move || api_key::update(&mut *pool.get()?, &id_owned, &settings))
        .await
        .map_err(ApiError::internal)?
        .map_err(db_down)?
        .ok_or_else(|| ApiError::NotFound(format!("No key with id `{id}`.")))?;
    state.keys.put(updated.clone());
    state.budgets.refresh(&updated);
    cluster::announce(
        state,
        Event::Key {
            id: updated.id.clone(),
        },
    )
    .await;
    Ok(updated)
}

pub fn db_down(e: impl std::fmt::Display) -> ApiError {
    ApiError::Unavailable(format!("Database unavailable: {e}"))
}
