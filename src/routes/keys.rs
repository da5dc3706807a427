//! `POST /api/keys`: mint a key. Without credentials (open by default, rate limited per IP;
//! admin-only when `server.open_key_minting = false`) it creates a new account whose first key
//! is its manage key. With an account's manage key as bearer it mints a key into that account
//! (a key per tool). The key is returned once and only its hash is stored.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::api::views::CreatedKey;
use crate::auth::{authenticate, bearer, mint_key, secrets_equal, KEY_PREFIX};
use crate::db;
use crate::db::models::account::{self, Account};
use crate::db::models::api_key::{self, ApiKey, KeySettings, MANAGE, USE};
use crate::error::ApiError;
use crate::routes::limits::SmallJson;
use crate::routes::views::SettingsPatch;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateKey {
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    daily_budget_usd: Option<f64>,
    #[serde(default)]
    monthly_budget_usd: Option<f64>,
    #[serde(default)]
    rpm_limit: Option<i64>,
}

/// Most keys one account may hold (a guard against runaway scripts).
const MAX_KEYS_PER_ACCOUNT: usize = 200;

pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Result<SmallJson<CreateKey>, ApiError>,
) -> Result<HttpResponse, ApiError> {
    // No body (or one that is not a key's settings) mints with the defaults, as a bare
    // `curl -XPOST` expects; a body too large or too slow to arrive is refused, unread.
    let body = match body {
        Ok(SmallJson(body)) => body,
        Err(e @ (ApiError::TooLarge(_) | ApiError::RequestTimeout(_))) => return Err(e),
        Err(_) => CreateKey::default(),
    };
    let token = bearer(&req);
    if let Some(token) = token.filter(|t| t.starts_with(KEY_PREFIX)) {
        let manager = authenticate(&state.pool, &state.keys, Some(token)).await?;
        return mint_into_account(&state, &manager, body).await;
    }
    let is_admin = match (&state.admin_token, token) {
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
    if body.role.as_deref().is_some_and(|r| r != MANAGE) {
        return Err(ApiError::bad_param(
            "role",
            "the first key of a new account is its manage key; mint `use` keys with it",
        ));
    }
    let now = crate::time::now();
    let new_account = Account {
        id: format!("acct_{}", crate::ids::random_alnum(16)),
        created_at: now,
        balance_micros: 0,
        free_requests_remaining: state.config.free_tier.requests,
    };
    let (secret, row) = key_row(&body, &new_account.id, MANAGE)?;
    let (stored_account, stored_key) = (new_account.clone(), row.clone());
    db::run(&state.pool, move |conn| {
        account::create_with_key(conn, &stored_account, &stored_key)
    })
    .await?;
    let created = created(&row, secret, new_account.free_requests_remaining);
    state.keys.put(row);
    Ok(HttpResponse::Created().json(created))
}

/// A manage key mints a key into its own account (`role` `use` by default).
async fn mint_into_account(
    state: &AppState,
    manager: &ApiKey,
    body: CreateKey,
) -> Result<HttpResponse, ApiError> {
    if !manager.manages() {
        return Err(forbidden());
    }
    let role = match body.role.as_deref() {
        None | Some(USE) => USE,
        Some(MANAGE) => MANAGE,
        Some(other) => {
            return Err(ApiError::bad_param(
                "role",
                format!("role `{other}` is not one of use, manage"),
            ))
        }
    };
    let (secret, row) = key_row(&body, &manager.account_id, role)?;
    let (stored, account_id) = (row.clone(), manager.account_id.clone());
    // Usage and money as of every request answered so far (the journal folded in).
    super::settled(state).await?;
    let free = db::run(&state.pool, move |conn| {
        if api_key::in_account(conn, &account_id)?.len() >= MAX_KEYS_PER_ACCOUNT {
            return Ok(None);
        }
        api_key::insert(conn, &stored)?;
        Ok(account::find(conn, &account_id)?.map(|a| a.free_requests_remaining))
    })
    .await?
    .ok_or_else(|| {
        ApiError::bad_request(format!(
            "This account already has {MAX_KEYS_PER_ACCOUNT} keys; disable or reuse one."
        ))
    })?;
    state.keys.put(row.clone());
    state.budgets.refresh(&row);
    let event = crate::db::events::Event::Key { id: row.id.clone() };
    crate::db::events::announce(&state.pool, &state.replica_id, event).await;
    Ok(HttpResponse::Created().json(created(&row, secret, free)))
}

/// What a use key gets on a management call.
pub fn forbidden() -> ApiError {
    ApiError::Forbidden(
        "This is a `use` key: only the account's manage key can manage its keys or read other \
         keys' usage."
            .into(),
    )
}

/// A new key row (and its secret) from the request's label and limits, validated like a PATCH.
fn key_row(body: &CreateKey, account_id: &str, role: &str) -> Result<(String, ApiKey), ApiError> {
    let patch = SettingsPatch {
        label: body.label.clone(),
        daily_budget_usd: body.daily_budget_usd.map(Some),
        monthly_budget_usd: body.monthly_budget_usd.map(Some),
        rpm_limit: body.rpm_limit.map(Some),
        ..SettingsPatch::default()
    };
    let KeySettings {
        label,
        daily_budget_micros,
        monthly_budget_micros,
        rpm_limit,
        ..
    } = patch.into_settings(false)?;
    let (secret, hash) = mint_key();
    let row = ApiKey {
        id: format!("key_{}", crate::ids::random_alnum(16)),
        key_hash: hash,
        label: label.unwrap_or_default(),
        created_at: crate::time::now(),
        disabled: false,
        daily_budget_micros: daily_budget_micros.flatten(),
        monthly_budget_micros: monthly_budget_micros.flatten(),
        rpm_limit: rpm_limit.flatten(),
        notify_email: None,
        webhook_url: None,
        account_id: account_id.to_owned(),
        role: role.to_owned(),
    };
    Ok((secret, row))
}

fn created(row: &ApiKey, secret: String, free_requests_remaining: i64) -> CreatedKey {
    CreatedKey {
        id: row.id.clone(),
        key: secret,
        label: row.label.clone(),
        created_at: crate::time::rfc3339(row.created_at),
        free_requests_remaining,
        account_id: row.account_id.clone(),
        role: row.role.clone(),
    }
}
