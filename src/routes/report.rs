//! `GET /api/report?period=1h|24h|7d|30d&key=<id>|all`: a key's spend over the period (the
//! caller's by default), per provider, and an hourly series for the console's chart; with
//! `key=all` the whole account's, with a `perKey` map. Another key or `all` needs the account's
//! manage key. Sums are over the usage rows, in micro-dollars.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use chrono::{Duration, Timelike};
use serde::Deserialize;

use crate::api::views::{HourReport, KeyReport, ProviderReport, ReportView};
use crate::auth::AuthedKey;
use crate::db;
use crate::db::models::usage::Scope;
use crate::db::models::{api_key, usage};
use crate::error::ApiError;
use crate::routes::breakdown::Breakdowns;
use crate::routes::views::usd;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    #[serde(default)]
    period: Option<String>,
    #[serde(default)]
    key: Option<String>,
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
    let asked = query.key.as_deref().unwrap_or(&key.id);
    if asked != key.id && !key.manages() {
        return Err(crate::routes::keys::forbidden());
    }
    let scope = if asked == "all" {
        Scope::Account(key.account_id.clone())
    } else {
        Scope::Key(asked.to_owned())
    };
    let (account, asked_id) = (key.account_id.clone(), asked.to_owned());
    // Usage and money as of every request answered so far (the journal folded in).
    super::settled(&state).await?;
    let (keys, rows) = db::run(&state.pool, move |conn| {
        let keys = api_key::in_account(conn, &account)?;
        // Another account's key id is as unknown as a made-up one.
        if asked_id != "all" && !keys.iter().any(|k| k.id == asked_id) {
            return Ok((keys, None));
        }
        Ok((keys, Some(usage::report_rows(conn, &scope, since)?)))
    })
    .await?;
    let rows = rows
        .ok_or_else(|| ApiError::NotFound(format!("No key with id `{asked}` in this account.")))?;
    let mut per_key: Option<BTreeMap<String, KeyReport>> = (asked == "all").then(|| {
        keys.iter()
            .map(|k| {
                let line = KeyReport {
                    label: k.label.clone(),
                    requests: 0,
                    spend_usd: 0.0,
                    savings_usd: 0.0,
                    prompt_tokens: 0,
                    completion_tokens: 0,
                };
                (k.id.clone(), line)
            })
            .collect()
    });
    let mut key_totals: BTreeMap<&str, Totals> = BTreeMap::new();
    let mut total = Totals::default();
    let mut per: BTreeMap<String, Totals> = BTreeMap::new();
    let mut hourly: BTreeMap<chrono::NaiveDateTime, (i64, i64)> = BTreeMap::new();
    let mut breakdowns = Breakdowns::default();
    for r in &rows {
        let by_key = key_totals.entry(r.key_id.as_str()).or_default();
        for t in [
            &mut total,
            per.entry(r.provider.clone()).or_default(),
            by_key,
        ] {
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
        let hour = hour.unwrap_or(r.created_at);
        breakdowns.add(hour, r);
        let slot = hourly.entry(hour).or_default();
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
            detail: breakdowns.hour(&h),
        })
        .collect();
    if let Some(lines) = per_key.as_mut() {
        for (id, t) in key_totals {
            if let Some(line) = lines.get_mut(id) {
                line.requests = t.requests;
                line.spend_usd = usd(t.spend);
                line.savings_usd = usd(t.savings);
                line.prompt_tokens = t.prompt;
                line.completion_tokens = t.completion;
            }
        }
    }
    let average = if total.requests > 0 {
        // Rounded to the micro-dollar, as every other amount (no float division noise).
        usd((total.spend + total.requests / 2) / total.requests)
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
        key: asked.to_owned(),
        per_key,
        breakdown: breakdowns.totals(),
    }))
}
