//! Everything about one served request that ends up in its headers, its usage row and the
//! `x_pura` summary of a stream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::HttpResponse;
use serde::Serialize;

use crate::actors::budget::Reservation;
use crate::api::Usage;
use crate::db::models::usage::UsageRow;
use crate::money::Micros;
use crate::providers::ProviderSpec;

#[derive(Clone)]
pub struct Meta {
    pub request_id: String,
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

/// Response headers of a served request, ready to put on whatever the front end answers.
#[derive(Debug, Clone, Default)]
pub struct Headers(Vec<(HeaderName, HeaderValue)>);

impl Headers {
    pub fn apply(self, resp: &mut HttpResponse) {
        let headers = resp.headers_mut();
        for (name, value) in self.0 {
            headers.insert(name, value);
        }
    }

    fn push(&mut self, name: &'static str, value: &str) {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.0.push((HeaderName::from_static(name), v));
        }
    }

    /// A number, formatted without going through `fmt`.
    fn push_number(&mut self, name: &'static str, value: u64) {
        self.0
            .push((HeaderName::from_static(name), HeaderValue::from(value)));
    }
}

impl Meta {
    pub fn row(&self, usage: &Usage, status: &str, ttft: Option<Duration>) -> UsageRow {
        UsageRow {
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
        }
    }

    /// Records the finished request in the metrics: its count and latency, its time to first
    /// token (streams), and the tokens and cost billed.
    pub fn observe(&self, usage: &Usage, cost: Micros, ttft: Option<Duration>) {
        let (provider, model) = (self.provider.name.as_str(), self.model.as_str());
        let tier = self.provider.tier.as_str();
        let latency = self.started.elapsed();
        crate::metrics::request(self.protocol, "200", provider, model, tier, latency);
        if let Some(t) = ttft {
            crate::metrics::ttft(provider, model, t);
        }
        let (prompt, completion) = (usage.prompt_tokens, usage.completion_tokens);
        crate::metrics::billed(provider, model, prompt, completion, cost.get());
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
        h.push("x-pura-provider", &self.provider.name);
        h.push("x-pura-model", &self.model);
        h.push("x-pura-cost", &cost.to_string());
        h.push("x-pura-savings", &savings.to_string());
        h.push("x-pura-tier", self.provider.tier.as_str());
        h.push(
            "x-pura-budget-remaining",
            &left.max(Micros::ZERO).to_string(),
        );
        h.push_number(
            "x-pura-free-requests-remaining",
            r.free_remaining.max(0) as u64,
        );
        h.push("x-request-id", request_id);
        h.push_number("x-ratelimit-limit-requests", r.rate.limit.into());
        h.push_number("x-ratelimit-remaining-requests", r.rate.remaining.into());
        h.push(
            "x-ratelimit-reset-requests",
            &format!("{}s", r.rate.reset.as_secs()),
        );
        if let Some(score) = &self.score {
            h.push("x-pura-score", score);
        }
        if let Some(id) = &self.client_request_id {
            h.push("x-client-request-id", id);
        }
        h
    }
}
