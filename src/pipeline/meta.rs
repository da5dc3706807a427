//! Everything about one served request that ends up in its headers, its usage row and the
//! `x_pura` summary of a stream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::HttpResponse;
use serde::Serialize;

use crate::actors::budget::Reservation;
use crate::api::Usage;
use crate::db::models::api_key::ApiKey;
use crate::db::models::usage::UsageRow;
use crate::money::Micros;
use crate::providers::ProviderSpec;

/// What identifies a request from the moment its body is read: our request id (the usage
/// row's id, time-ordered) and the SHA-256 of the exact bytes received, so a client can match
/// its own logs, Pura's usage record and the upstream's. Both go out as `X-Pura-Request-Id` and
/// `X-Pura-Body-Sha256` on every answer given after the body was read, errors included.
#[derive(Debug, Clone)]
pub struct Received {
    pub request_id: String,
    pub body_sha256: BodyHash,
    /// The path served, for the access line.
    pub route: &'static str,
    pub started: Instant,
    /// Where this request's spans go; `None` when traces are off.
    pub trace: Option<crate::telemetry::Trace>,
    /// The pipeline took the request: it counts it in `pura_requests_total` itself.
    pub entered: std::cell::Cell<bool>,
}

/// A body's SHA-256 as lowercase hex, on the stack: hashing costs one pass over the body and
/// no allocation until the header and the usage row need it.
#[derive(Debug, Clone, Copy)]
pub struct BodyHash([u8; 64]);

impl BodyHash {
    pub fn of(body: &[u8]) -> Self {
        BodyHash(crate::sha::hex(body))
    }

    pub fn as_str(&self) -> &str {
        // Hex digits are ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// The pipeline's paths and the protocol each speaks, as `&'static str` so an access line
/// costs no copy of the path.
const ROUTES: [(&str, &str); 6] = [
    ("/v1/chat/completions", "chat"),
    ("/api/chat/completions", "chat"),
    ("/api/chat", "chat"),
    ("/v1/responses", "responses"),
    ("/api/responses", "responses"),
    ("/v1/messages", "messages"),
];

/// The client protocol a pipeline path speaks, for requests refused before they reach it.
pub fn protocol_of(path: &str) -> Option<&'static str> {
    ROUTES.into_iter().find(|r| r.0 == path).map(|r| r.1)
}

impl Received {
    pub fn of(req: &actix_web::HttpRequest, body: &[u8]) -> Self {
        let path = req.path();
        Received {
            request_id: crate::ids::ordered_id("req_"),
            body_sha256: BodyHash::of(body),
            route: ROUTES
                .into_iter()
                .find(|r| r.0 == path)
                .map_or("(other)", |r| r.0),
            started: Instant::now(),
            trace: crate::telemetry::Trace::begin(
                req.headers()
                    .get(&names::TRACEPARENT)
                    .and_then(|v| v.to_str().ok()),
            ),
            entered: std::cell::Cell::new(false),
        }
    }

    /// The access line of a request the pipeline refused or failed (a served one is logged
    /// where it settles, see [`Meta::row`]).
    /// A request refused before the pipeline took it (a body that does not parse or
    /// validate) is counted here, with no provider.
    pub fn log_failure(&self, protocol: &str, key: &ApiKey, status: u16) {
        if status < 400 {
            return;
        }
        if !self.entered.get() {
            crate::metrics::refused(protocol, &status.to_string());
        }
        crate::access::write(crate::access::Access {
            request_id: Some(&self.request_id),
            key_id: Some(&key.id),
            account_id: Some(&key.account_id),
            method: "POST",
            route: self.route,
            protocol: Some(protocol),
            status,
            latency_ms: self.started.elapsed().as_secs_f64() * 1000.0,
            ..Default::default()
        });
    }

    /// Puts `X-Pura-Request-Id` and `X-Pura-Body-Sha256` on an answer, whatever its status.
    /// Appended (see [`Headers::apply`]): only this puts them on, once per answer.
    pub fn apply(&self, resp: &mut HttpResponse) {
        let headers = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&self.request_id) {
            headers.append(names::PURA_REQUEST_ID, v);
        }
        if let Ok(v) = HeaderValue::from_bytes(&self.body_sha256.0) {
            headers.append(names::BODY_SHA256, v);
        }
    }
}

#[derive(Clone)]
pub struct Meta {
    /// Ours, from [`Received`]: the usage row's id and `X-Pura-Request-Id`.
    pub request_id: String,
    pub body_sha256: BodyHash,
    pub route: &'static str,
    pub trace: Option<crate::telemetry::Trace>,
    pub key_id: String,
    pub account_id: String,
    pub client_request_id: Option<String>,
    pub upstream_request_id: Option<String>,
    pub provider: Arc<ProviderSpec>,
    pub model: String,
    pub started: Instant,
    pub stream: bool,
    /// Prompt tokens estimated from the request, for when the upstream reports none.
    pub prompt_estimate: u64,
    /// The premium tier's default model, whose price is the savings baseline.
    pub premium: Option<Arc<ProviderSpec>>,
    /// `X-Pura-Score` for `auto` requests.
    pub score: Option<String>,
    /// The client protocol, recorded on the usage row.
    pub protocol: &'static str,
}

/// The `x_pura` object a stream's final chunks carry (SDKs ignore unknown fields).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct XPura {
    pub cost_usd: f64,
    pub savings_usd: f64,
    pub provider: String,
    pub model: String,
    pub tier: &'static str,
}

/// The names of those headers, made at compile time: `from_static` at run time first compares
/// the name with every standard header's.
mod names {
    use actix_web::http::header::HeaderName;

    pub const PROVIDER: HeaderName = HeaderName::from_static("x-pura-provider");
    pub const MODEL: HeaderName = HeaderName::from_static("x-pura-model");
    pub const COST: HeaderName = HeaderName::from_static("x-pura-cost");
    pub const SAVINGS: HeaderName = HeaderName::from_static("x-pura-savings");
    pub const TIER: HeaderName = HeaderName::from_static("x-pura-tier");
    pub const BUDGET_REMAINING: HeaderName = HeaderName::from_static("x-pura-budget-remaining");
    pub const FREE_REMAINING: HeaderName =
        HeaderName::from_static("x-pura-free-requests-remaining");
    pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
    pub const RATE_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
    pub const RATE_REMAINING: HeaderName =
        HeaderName::from_static("x-ratelimit-remaining-requests");
    pub const RATE_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
    pub const SCORE: HeaderName = HeaderName::from_static("x-pura-score");
    pub const CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("x-client-request-id");
    pub const PURA_REQUEST_ID: HeaderName = HeaderName::from_static("x-pura-request-id");
    pub const BODY_SHA256: HeaderName = HeaderName::from_static("x-pura-body-sha256");
    pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
}

/// Response headers of a served request, ready to put on whatever the front end answers.
#[derive(Debug, Clone, Default)]
pub struct Headers(Vec<(HeaderName, HeaderValue)>);

impl Headers {
    /// Onto a response the front end just built (its content type at most): none of these
    /// names is on it yet, so each is appended. `insert` also looks for the name's old values
    /// and hands them back in a list of their own, about 60 instructions a header more.
    pub fn apply(self, resp: &mut HttpResponse) {
        let headers = resp.headers_mut();
        // Room for these and `Received`'s two at once: the map would otherwise grow (and
        // rehash) on the way.
        headers.reserve(self.0.len() + 2);
        for (name, value) in self.0 {
            headers.append(name, value);
        }
    }

    fn push(&mut self, name: HeaderName, value: &str) {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.0.push((name, v));
        }
    }

    /// An amount in dollars, its ASCII text checked once (by the header value).
    fn push_decimal(&mut self, name: HeaderName, value: Micros) {
        if let Ok(v) = HeaderValue::from_bytes(value.decimal().as_bytes()) {
            self.0.push((name, v));
        }
    }

    /// A number, formatted on the stack and copied once: `HeaderValue::from(u64)` writes it
    /// into a growable buffer first, whose reserve was twice the copy's cost.
    fn push_number(&mut self, name: HeaderName, value: u64) {
        if let Ok(v) = HeaderValue::from_bytes(itoa::Buffer::new().format(value).as_bytes()) {
            self.0.push((name, v));
        }
    }
}

impl Meta {
    /// The request's usage row, made once per served request, when it settles: which is also
    /// where its access line is written (JSON logs), with the row's figures.
    pub fn row(&self, usage: &Usage, status: &str, ttft: Option<Duration>) -> UsageRow {
        let row = UsageRow {
            id: self.request_id.clone(),
            key_id: self.key_id.clone(),
            account_id: self.account_id.clone(),
            provider: self.provider.name.clone(),
            model: self.model.clone(),
            tier: self.provider.tier.as_str().to_owned(),
            prompt_tokens: usage.prompt_tokens as i64,
            completion_tokens: usage.completion_tokens as i64,
            cost_micros: self.provider.cost(usage).get(),
            latency_ms: self.started.elapsed().as_millis() as i64,
            ttft_ms: ttft.map(|t| t.as_millis() as i64),
            status: status.to_owned(),
            stream: self.stream,
            upstream_request_id: self.upstream_request_id.clone(),
            client_request_id: self.client_request_id.clone(),
            created_at: crate::time::now(),
            premium_cost_micros: self.premium_cost(usage).get(),
            protocol: self.protocol.to_owned(),
            cached_tokens: usage.cached_tokens() as i64,
            reasoning_tokens: usage.reasoning_tokens() as i64,
            body_sha256: Some(self.body_sha256.as_str().to_owned()),
        };
        crate::access::write(crate::access::Access {
            request_id: Some(&row.id),
            key_id: Some(&row.key_id),
            account_id: Some(&row.account_id),
            method: "POST",
            route: self.route,
            protocol: Some(self.protocol),
            status: 200,
            outcome: Some(status),
            provider: Some(&row.provider),
            model: Some(&row.model),
            tier: Some(&row.tier),
            prompt_tokens: Some(row.prompt_tokens),
            completion_tokens: Some(row.completion_tokens),
            cost_usd: Some(Micros(row.cost_micros).usd()),
            latency_ms: self.started.elapsed().as_secs_f64() * 1000.0,
            ttft_ms: row.ttft_ms,
            ..Default::default()
        });
        row
    }

    /// Records the finished request in the metrics: its count and latency, its time to first
    /// token (streams), and the tokens and cost billed.
    pub fn observe(&self, usage: &Usage, cost: Micros, ttft: Option<Duration>) {
        crate::metrics::served(&crate::metrics::Served {
            protocol: self.protocol,
            provider: &self.provider.name,
            model: &self.model,
            tier: self.provider.tier.as_str(),
            latency: self.started.elapsed(),
            ttft,
            prompt: usage.prompt_tokens,
            completion: usage.completion_tokens,
            cost_micros: cost.get(),
        });
    }

    /// What `usage` would cost at the premium baseline (the actual cost when there is none).
    pub fn premium_cost(&self, usage: &Usage) -> Micros {
        self.premium
            .as_ref()
            .map_or_else(|| self.provider.cost(usage), |p| p.cost(usage))
    }

    pub fn x_pura(&self, cost: Micros, premium: Micros) -> XPura {
        XPura {
            cost_usd: cost.usd(),
            savings_usd: (premium - cost).usd(),
            provider: self.provider.name.clone(),
            model: self.model.clone(),
            tier: self.provider.tier.as_str(),
        }
    }

    /// The `X-Pura-*`, request-id and rate-limit headers of a served request.
    pub fn headers(&self, r: &Reservation, cost: Micros, savings: Micros, left: Micros) -> Headers {
        // Room for every header below, so the vector never grows.
        let mut h = Headers(Vec::with_capacity(16));
        let request_id = self
            .upstream_request_id
            .as_deref()
            .unwrap_or(&self.request_id);
        h.push(names::PROVIDER, &self.provider.name);
        h.push(names::MODEL, &self.model);
        h.push_decimal(names::COST, cost);
        h.push_decimal(names::SAVINGS, savings);
        // A static value: neither checked nor copied.
        let tier = HeaderValue::from_static(self.provider.tier.as_str());
        h.0.push((names::TIER, tier));
        h.push_decimal(names::BUDGET_REMAINING, left.max(Micros::ZERO));
        h.push_number(names::FREE_REMAINING, r.free_remaining.max(0) as u64);
        h.push(names::REQUEST_ID, request_id);
        h.push_number(names::RATE_LIMIT, r.rate.limit.into());
        h.push_number(names::RATE_REMAINING, r.rate.remaining.into());
        h.push(names::RATE_RESET, seconds(r.rate.reset.as_secs()).as_str());
        if let Some(score) = &self.score {
            h.push(names::SCORE, score);
        }
        if let Some(id) = &self.client_request_id {
            h.push(names::CLIENT_REQUEST_ID, id);
        }
        h
    }
}

/// `12s`, as `x-ratelimit-reset-requests` says a duration (the integer's own `to_string`
/// skips `format!`'s argument machinery).
fn seconds(secs: u64) -> String {
    let mut text = secs.to_string();
    text.push('s');
    text
}

/// Attributes of a span about this provider and model.
pub fn upstream_attributes(provider: &str, model: &str) -> Vec<(&'static str, String)> {
    vec![
        ("pura.provider", provider.to_owned()),
        ("pura.model", model.to_owned()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::budget::RateInfo;
    use crate::config::Tier;
    use crate::providers::Dialect;

    /// Each header carries its value, in the form its readers expect.
    #[test]
    fn a_served_requests_headers_carry_their_values() {
        let provider =
            ProviderSpec::for_test(Dialect::Openai, "openai", "http://x", Tier::Mid, "m");
        let meta = Meta {
            request_id: "req_1".into(),
            body_sha256: BodyHash::of(b"{}"),
            route: "/v1/chat/completions",
            trace: None,
            key_id: "key_1".into(),
            account_id: "acc_1".into(),
            client_request_id: Some("client-7".into()),
            upstream_request_id: Some("up-9".into()),
            provider: Arc::new(provider),
            model: "gpt-4o-mini".into(),
            started: Instant::now(),
            stream: false,
            prompt_estimate: 0,
            premium: None,
            score: Some("0.42".into()),
            protocol: "chat",
        };
        let r = Reservation {
            id: 1,
            free: false,
            estimate_micros: 0,
            day: chrono::NaiveDateTime::default(),
            free_remaining: -3,
            budget_remaining_micros: 0,
            rate: RateInfo {
                limit: 60,
                remaining: 59,
                reset: Duration::from_secs(12),
            },
        };
        let h = meta.headers(&r, Micros(123), Micros(1_500_000), Micros(-5));
        let got: Vec<(&str, &str)> =
            h.0.iter()
                .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
                .collect();
        assert_eq!(
            got,
            [
                ("x-pura-provider", "openai"),
                ("x-pura-model", "gpt-4o-mini"),
                ("x-pura-cost", "0.000123"),
                ("x-pura-savings", "1.500000"),
                ("x-pura-tier", "mid"),
                ("x-pura-budget-remaining", "0.000000"),
                ("x-pura-free-requests-remaining", "0"),
                ("x-request-id", "up-9"),
                ("x-ratelimit-limit-requests", "60"),
                ("x-ratelimit-remaining-requests", "59"),
                ("x-ratelimit-reset-requests", "12s"),
                ("x-pura-score", "0.42"),
                ("x-client-request-id", "client-7"),
            ]
        );
    }
}
