//! `GET /api/report?period=1h|24h|7d|30d`: the key's spend over the period, per provider, and
//! an hourly series for the console's chart. Sums are over the usage rows, in micro-dollars.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use chrono::{Duration, Timelike};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::AuthedKey;
use crate::db::models::usage;
use crate::error::ApiError;
use crate::routes::account::db_down;
use crate::routes::views::usd;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    #[serde(default)]
    period: Option<String>,
}

fn period(p: Option<&str>) -> Result<(&'static str, Duration), ApiError> {
    match p.unwrap_or("24h") {
        "1h" => Ok(("1h", Duration::hours(1))),
        "24h" => Ok(("24h", Duration::hours(24))),
        "7d" => Ok(("7d", Duration::days(7))),
        "30d" => Ok(("30d", Duration::days(30))),
        other => Err(ApiError::bad_param(
            "period",
            format!("period `{other}` is not one of 1h, 24h, 7d, 30d"),
        )),
    }
}

#[derive(Default)]
struct Totals {
    requests: i64,
    spend: i64,
    prompt: i64,
    completion: i64,
    latency: i64,
    /// Premium-baseline cost minus actual cost.
    savings: i64,
}

pub async fn report(
    AuthedKey(key): AuthedKey,
    state: web::Data<AppState>,
    query: web::Query<Query>,
) -> Result<HttpResponse, ApiError> {
    let (name, span) = period(query.period.as_deref())?;
    let since = crate::time::now() - span;
    let (pool, key_id) = (state.pool.clone(), key.id.clone());
    let rows = web::block(move || usage::report_rows(&mut *pool.get()?, &key_id, since))
        .await
        .map_err(ApiError::internal)?
        .map_err(db_down)?;
    let mut total = Totals::default();
    let mut per: BTreeMap<String, Totals> = BTreeMap::new();
    let mut hourly: BTreeMap<chrono::NaiveDateTime, (i64, i64)> = BTreeMap::new();
    for r in &rows {
        for t in [&mut total, per.entry(r.provider.clone()).or_default()] {
            t.requests += 1;
            t.spend += r.cost_micros;
            t.prompt += r.prompt_tokens;
            t.completion += r.completion_tokens;
            t.latency += r.latency_ms;
            t.savings += r.premium_cost_micros - r.cost_micros;
        }
        let hour = r
            .created_at
            .with_minute(0)
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_nanosecond(0));
        let slot = hourly.entry(hour.unwrap_or(r.created_at)).or_default();
        slot.0 += 1;
        slot.1 += r.cost_micros;
    }
    let per_model: serde_json::Map<String, Value> = per
        .into_iter()
        .map(|(p, t)| {
            let view = json!({
                "requests": t.requests,
                "spendUsd": usd(t.spend),
                "savingsUsd": usd(t.savings),
                "promptTokens": t.prompt,
                "completionTokens": t.completion,
                "avgLatencyMs": if t.requests > 0 { t.latency as f64 / t.requests as f64 } else { 0.0 },
            });
            (p, view)
        })
        .collect();
    let hourly: Vec<Value> = hourly
        .into_iter()
        .map(|(h, (n, spend))| json!({"hour": crate::time::rfc3339(h), "requests": n, "spendUsd": usd(spend)}))
        .collect();
    let average = if total.requests > 0 {
        usd(total.spend) / total.requests as f64
    } else {
        0.0
    };
    Ok(HttpResponse::Ok().json(json!({
        "period": name,
        "totalSpendUsd": usd(total.spend),
        "requestCount": total.requests,
        "averageCostUsd": average,
        "totalSavingsUsd": usd(total.savings),
        "perModel": per_model,
        "hourly": hourly,
    })))
}
