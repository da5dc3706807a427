//! The parts of `GET /api/report` the console's savings panel and stacked chart read (totals
//! per model and per tier, each hour's tokens split by provider and by tier), and the price a
//! `GET /v1/models` entry carries.

use std::collections::BTreeMap;

use serde::Serialize;

/// Requests, money and tokens of one slice of a report.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Slice {
    pub requests: i64,
    pub spend_usd: f64,
    pub savings_usd: f64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

/// Flattened into the report: per concrete model and per tier (`auto`'s tier mix).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Breakdown {
    pub by_model: BTreeMap<String, Slice>,
    pub by_tier: BTreeMap<String, Slice>,
}

/// Flattened into each hour of the report: its tokens and its stacks.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HourDetail {
    /// Prompt plus completion tokens.
    pub tokens: i64,
    pub by_provider: BTreeMap<String, Slice>,
    pub by_tier: BTreeMap<String, Slice>,
}

/// USD per 1,000 tokens, as the provider serving the model is priced in the config.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelPrice {
    pub input_per_1k_usd: f64,
    pub output_per_1k_usd: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_input_per_1k_usd: Option<f64>,
}
