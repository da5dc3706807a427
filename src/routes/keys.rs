//! `POST /api/keys`: mint a key. Open by default (rate limited per IP); admin-only when
//! `server.open_key_minting = false`. The key is returned once and only its hash is stored.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::api::views::CreatedKey;
use crate::auth::{bearer, mint_key, secrets_equal};
use crate::db;
use crate::db::models::api_key::{self, ApiKey};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    #[serde(default)]
    label: Option<String>,
}

const MAX_LABEL: usize = 200;

pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Option<web::Json<CreateKey>>,
) -> Result<HttpResponse, ApiError> {
    let is_admin = match (&state.admin_token, bearer(&req)) {
        (Some(admin), Some(given)) => secrets_equal(admin.expose(), given),
        _ => false,
    };
    if !state.config.server.open_key_minting && !is_admin {
        crate::metrics::mint_refused("admin_only");
        return Err(ApiError::Unauthorized(
            "Minting keys needs the admin token.".into(),
        ));
    }
    if !is_admin {
        if let Some(ip) = req.peer_addr().map(|a| a.ip()) {
            let limit = state.config.server.key_mint_per_ip_per_hour;
            state
                .mint_limiter
                .check(ip, limit)
                .await?
                .inspect_err(|_| crate::metrics::mint_refused("rate_limited"))
                .map_err(|wait| ApiError::RateLimited {
                    message: format!(
                        "Too many keys minted from this address; try again in {wait} s."
                    ),
                    retry_after_secs: wait,
                    limit: None,
                })?;
        }
    }
    let label = body.and_then(|b| b.into_inner().label).unwrap_or_default();
    if label.len() > MAX_LABEL {
        return Err(ApiError::bad_param(
            "label",
            format!("label is longer than {MAX_LABEL} bytes"),
        ));
    }
    let (secret, hash) = mint_key();
    let row = ApiKey {
        id: format!("key_{}", crate::ids::random_alnum(16)),
        key_hash: hash,
        label,
        created_at: chrono::Utc::now().naive_utc(),
        disabled: false,
        free_requests_remaining: state.config.free_tier.requests,
        daily_budget_micros: None,
        monthly_budget_micros: None,
        rpm_limit: None,
        notify_email: None,
        webhook_url: None,
        balance_micros: 0,
    };
    let stored = row.clone();
    db::run(&state.pool, move |conn| api_key::insert(conn, &stored)).await?;
    let body = CreatedKey {
        id: row.id.clone(),
        key: secret,
        label: row.label.clone(),
        created_at: crate::time::rfc3339(row.created_at),
        free_requests_remaining: row.free_requests_remaining,
    };
    state.keys.put(row);
    Ok(HttpResponse::Created().json(body))
}
