//! Pura's own JSON views (camelCase, as the Pura docs): keys, balance, reports, the wallet,
//! the admin API, the model list, health. Plain data, built by the routes and the wallet; USD
//! amounts are JSON numbers, sats integers, timestamps RFC 3339 strings. This module imports
//! nothing of the crate, so anything may use it (the error envelope carries [`InvoiceView`]).

use std::collections::BTreeMap;

use serde::Serialize;

/// `POST /api/keys` → 201: the only time the key itself is shown.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKey {
    pub id: String,
    pub key: String,
    pub label: String,
    pub created_at: String,
    pub free_requests_remaining: i64,
    pub account_id: String,
    /// `manage` or `use`.
    pub role: String,
}

/// `POST /api/keys/me/rotate`: the same id, the new secret.
#[derive(Debug, Serialize)]
pub struct RotatedKey {
    pub id: String,
    pub key: String,
}

/// A key with its effective limits (`GET|PATCH /api/keys/me`, the admin PATCH).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyView {
    pub id: String,
    pub account_id: String,
    pub role: String,
    pub label: String,
    pub created_at: String,
    pub disabled: bool,
    pub free_requests_remaining: i64,
    pub daily_budget_usd: f64,
    pub monthly_budget_usd: f64,
    pub rpm_limit: u32,
    pub notify_email: Option<String>,
    pub webhook_url: Option<String>,
}

/// `GET /api/wallet/balance`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BalanceView {
    pub balance_sats: i64,
    pub balance_usd: f64,
    pub free_requests_remaining: i64,
    pub daily_budget_usd: f64,
    pub daily_spend_usd: f64,
    pub monthly_budget_usd: f64,
    pub monthly_spend_usd: f64,
    pub budget_remaining_usd: f64,
}

/// An invoice to pay: the answer of `POST /api/wallet/fund`, and the `invoice` of a 402.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceView {
    pub invoice_id: String,
    pub amount_sats: i64,
    /// The BOLT11.
    pub payment_request: String,
    pub lightning_url: String,
    pub invoice_url: String,
    pub status: String,
    pub expires_at: String,
}

/// `GET /api/wallet/status?invoiceId=…`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceStatusView {
    pub invoice_id: String,
    pub status: String,
    pub amount_sats: i64,
    pub paid_at: Option<String>,
}

/// `GET /api/report`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportView {
    pub period: &'static str,
    pub total_spend_usd: f64,
    pub request_count: i64,
    pub average_cost_usd: f64,
    pub total_savings_usd: f64,
    /// Per provider.
    pub per_model: BTreeMap<String, ProviderReport>,
    pub hourly: Vec<HourReport>,
    /// The key reported on, or `all` for the whole account.
    pub key: String,
    /// For `key=all`: per key of the account (keys with no request in the period included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_key: Option<BTreeMap<String, KeyReport>>,
    #[serde(flatten)]
    pub breakdown: crate::api::breakdown::Breakdown,
}

/// One key's line in an account report.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyReport {
    pub label: String,
    pub requests: i64,
    pub spend_usd: f64,
    pub savings_usd: f64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

/// `GET /api/account`: the account's money and its keys.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    pub id: String,
    pub balance_sats: i64,
    pub balance_usd: f64,
    pub free_requests_remaining: i64,
    pub keys: Vec<AccountKeyView>,
}

/// One key of an account (`GET /api/account`, `PATCH /api/account/keys/{id}`): its effective
/// limits and its spend in the current UTC day and month.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountKeyView {
    pub id: String,
    pub label: String,
    pub role: String,
    pub disabled: bool,
    pub created_at: String,
    pub daily_budget_usd: f64,
    pub monthly_budget_usd: f64,
    pub rpm_limit: u32,
    pub daily_spend_usd: f64,
    pub monthly_spend_usd: f64,
    pub notify_email: Option<String>,
    pub webhook_url: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderReport {
    pub requests: i64,
    pub spend_usd: f64,
    pub savings_usd: f64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub avg_latency_ms: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HourReport {
    pub hour: String,
    pub requests: i64,
    pub spend_usd: f64,
    #[serde(flatten)]
    pub detail: crate::api::breakdown::HourDetail,
}

/// `{"object":"list","data":[…]}`, as OpenAI lists things.
#[derive(Debug, Serialize)]
pub struct List<T> {
    pub object: &'static str,
    pub data: Vec<T>,
}

impl<T> List<T> {
    pub fn of(data: Vec<T>) -> List<T> {
        List {
            object: "list",
            data,
        }
    }
}

/// One entry of `GET /v1/models`.
#[derive(Debug, Serialize)]
pub struct ModelView {
    pub id: String,
    pub object: &'static str,
    pub created: i64,
    pub owned_by: String,
    /// A concrete model's price on this gateway (absent for `auto` and aliases).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pricing: Option<crate::api::breakdown::ModelPrice>,
}

/// One key in `GET /api/admin/keys`: its settings as stored, its balance and spend.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminKeyView {
    pub id: String,
    pub account_id: String,
    pub role: String,
    pub label: String,
    pub created_at: String,
    pub disabled: bool,
    pub free_requests_remaining: i64,
    pub daily_budget_usd: Option<f64>,
    pub monthly_budget_usd: Option<f64>,
    pub rpm_limit: Option<i32>,
    pub notify_email: Option<String>,
    pub webhook_url: Option<String>,
    pub balance_usd: f64,
    pub balance_sats: i64,
    pub daily_spend_usd: f64,
    pub monthly_spend_usd: f64,
}

/// `POST /api/admin/keys/{id}/credit`: the key's account was credited.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreditView {
    pub id: String,
    pub account_id: String,
    pub credited_sats: i64,
    pub balance_sats: i64,
    pub balance_usd: f64,
}
