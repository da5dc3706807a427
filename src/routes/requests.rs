//! `GET /api/requests?limit=&before=&model=&status=&format=csv&key=<id>|all`: the key's recent
//! requests (its usage rows), newest first, a page at a time. `key=` works as in the report:
//! another key of the account or `all` needs the account's manage key, and another account's
//! key id is as unknown as a made-up one.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::api::requests::{csv, RequestView, RequestsPage};
use crate::auth::AuthedKey;
use crate::db;
use crate::db::models::usage::{PageFilter, Scope, UsageRow};
use crate::db::models::{api_key, usage};
use crate::error::ApiError;
use crate::routes::views::usd;
use crate::state::AppState;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    limit: Option<i64>,
    before: Option<String>,
    model: Option<String>,
    status: Option<String>,
    format: Option<String>,
    key: Option<String>,
}

/// An empty filter (`?model=`) is no filter, as a cleared select box sends it.
fn given(v: &Option<String>) -> Option<String> {
    v.as_deref().filter(|s| !s.is_empty()).map(str::to_owned)
}

fn limit(asked: Option<i64>) -> Result<i64, ApiError> {
    match asked.unwrap_or(DEFAULT_LIMIT) {
        n @ 1..=MAX_LIMIT => Ok(n),
        _ => Err(ApiError::bad_param(
            "limit",
            format!("limit is a whole number from 1 to {MAX_LIMIT}"),
        )),
    }
}

pub async fn list(
    AuthedKey(key): AuthedKey,
    state: web::Data<AppState>,
    query: web::Query<Query>,
) -> Result<HttpResponse, ApiError> {
    let limit = limit(query.limit)?;
    let csv_wanted = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::bad_param(
                "format",
                format!("format `{other}` is not one of json, csv"),
            ))
        }
    };
    let asked = query.key.clone().unwrap_or_else(|| key.id.clone());
    if asked != key.id && !key.manages() {
        return Err(crate::routes::keys::forbidden());
    }
    let scope = if asked == "all" {
        Scope::Account(key.account_id.clone())
    } else {
        Scope::Key(asked.clone())
    };
    // One more row than asked says whether an older page exists.
    let filter = PageFilter {
        scope,
        before: given(&query.before),
        model: given(&query.model),
        status: given(&query.status),
        limit: limit + 1,
    };
    let (account, own, asked_id) = (key.account_id.clone(), key.id.clone(), asked.clone());
    // Usage and money as of every request answered so far (the journal folded in).
    super::settled(&state).await?;
    let rows = db::run(&state.pool, move |conn| {
        let mine = asked_id == "all"
            || asked_id == own
            || api_key::in_account(conn, &account)?
                .iter()
                .any(|k| k.id == asked_id);
        if !mine {
            return Ok(None);
        }
        Ok(Some(usage::page(conn, &filter)?))
    })
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("No key with id `{asked}` in this account.")))?;
    let has_more = rows.len() as i64 > limit;
    let data: Vec<RequestView> = rows.into_iter().take(limit as usize).map(view).collect();
    if csv_wanted {
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                "Content-Disposition",
                "attachment; filename=\"pura-requests.csv\"",
            ))
            .body(csv(&data)));
    }
    let next_before = if has_more {
        data.last().map(|r| r.id.clone())
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(RequestsPage {
        data,
        has_more,
        next_before,
    }))
}

fn view(r: UsageRow) -> RequestView {
    RequestView {
        time: crate::time::rfc3339(r.created_at),
        cost_usd: usd(r.cost_micros),
        savings_usd: usd(r.premium_cost_micros - r.cost_micros),
        id: r.id,
        key_id: r.key_id,
        protocol: r.protocol,
        model: r.model,
        provider: r.provider,
        tier: r.tier,
        prompt_tokens: r.prompt_tokens,
        completion_tokens: r.completion_tokens,
        cached_tokens: r.cached_tokens,
        latency_ms: r.latency_ms,
        ttft_ms: r.ttft_ms,
        status: r.status,
        stream: r.stream,
        client_request_id: r.client_request_id,
    }
}
