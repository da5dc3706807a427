//! `GET /api/report?period=1h|24h|7d|30d`: the key's spend over the period, per provider, and
//! an hourly series for the console's chart. Sums are over the usage rows, in micro-dollars.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use chrono::{Duration, Timelike};
use serde::Deserialize;

use crate::api::views::{HourReport, ProviderReport, ReportView};
use crate::auth::AuthedKey;
use crate::db;
use crate::db::models::usage;
use crate::error::ApiError;
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
    let key_id = key.id.clone();
    let rows = db::run(&state.pool, move |conn| {
        usage::report_rows(conn, &key_id, since)
    })
    .await?;
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
    let per_model = per
        .into_iter()
        .map(|(p, t)| {
            let view = ProviderReport {
                requests: t.requests,
                spend_usd: usd(t.spend),
                savings_usd: usd(t.savings),
                prompt_tokens: t.prompt,
                completion_tokens: t.completion,
                avg_latency_ms: if t.requests > 0 {
                    t.latency as f64 / t.requests as f64
                } else {
                    0.0
                },
            };
            (p, view)
        })
        .collect();
    let hourly = hourly
        .into_iter()
        .map(|(h, (n, spend))| HourReport {
            hour: crate::time::rfc3339(h),
            requests: n,
            spend_usd: usd(spend),
        })
        .collect();
    let average = if total.requests > 0 {
        usd(total.spend) / total.requests as f64
    } else {
        0.0
    };
    Ok(HttpResponse::Ok().json(ReportView {
        period: name,
        total_spend_usd: usd(total.spend),
        request_count: total.requests,
        average_cost_usd: average,
        total_savings_usd: usd(total.savings),
        per_model,
        hourly,
    }))
}
