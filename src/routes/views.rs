//! Building Pura's views (the types are in `api/views.rs`) from a key and its live account,
//! and reading the settings a key or an admin may PATCH.

use serde::{Deserialize, Deserializer};

use crate::actors::budget::Account;
use crate::actors::budget::KeyMoney;
use crate::api::views::{AccountKeyView, BalanceView, KeyView};
use crate::db::models::api_key::{ApiKey, KeySettings};
use crate::error::ApiError;
use crate::money::Micros;
use crate::wallet::Wallet;

/// USD from micro-dollars, as a JSON number.
pub fn usd(micros: i64) -> f64 {
    Micros(micros).usd()
}

/// The key's figures in its live account (`Budgets::account` makes sure the actor has them;
/// an empty entry is a key it has not read yet, which has spent nothing here).
fn money_of<'a>(key: &ApiKey, account: &'a Account) -> std::borrow::Cow<'a, KeyMoney> {
    match account.key(&key.id) {
        Some(k) => std::borrow::Cow::Borrowed(k),
        None => std::borrow::Cow::Owned(KeyMoney::new(key, account.defaults, 0, 0)),
    }
}

/// A key's public view: effective limits (its own or the defaults) from its live account.
pub fn key_view(key: &ApiKey, account: &Account) -> KeyView {
    let k = money_of(key, account);
    KeyView {
        id: key.id.clone(),
        account_id: key.account_id.clone(),
        role: key.role.clone(),
        label: key.label.clone(),
        created_at: crate::time::rfc3339(key.created_at),
        disabled: key.disabled,
        free_requests_remaining: account.free_remaining.max(0),
        daily_budget_usd: usd(k.daily_budget_micros),
        monthly_budget_usd: usd(k.monthly_budget_micros),
        rpm_limit: k.rpm,
        notify_email: key.notify_email.clone(),
        webhook_url: key.webhook_url.clone(),
    }
}

/// One key of an account, with its spend (`GET /api/account` and the account PATCH).
pub fn account_key_view(key: &ApiKey, account: &Account) -> AccountKeyView {
    let k = money_of(key, account);
    AccountKeyView {
        id: key.id.clone(),
        label: key.label.clone(),
        role: key.role.clone(),
        disabled: key.disabled,
        created_at: crate::time::rfc3339(key.created_at),
        daily_budget_usd: usd(k.daily_budget_micros),
        monthly_budget_usd: usd(k.monthly_budget_micros),
        rpm_limit: k.rpm,
        daily_spend_usd: usd(k.spent_day_micros),
        monthly_spend_usd: usd(k.spent_month_micros),
        notify_email: key.notify_email.clone(),
        webhook_url: key.webhook_url.clone(),
    }
}

/// `GET /api/wallet/balance`: the account's money, the key's budgets.
pub fn balance_view(key: &ApiKey, account: &Account, wallet: &Wallet) -> BalanceView {
    let k = money_of(key, account);
    let day_left = k.daily_budget_micros - k.spent_day_micros;
    let month_left = k.monthly_budget_micros - k.spent_month_micros;
    BalanceView {
        balance_sats: wallet.sats_for(Micros(account.balance_micros)),
        balance_usd: usd(account.balance_micros),
        free_requests_remaining: account.free_remaining.max(0),
        daily_budget_usd: usd(k.daily_budget_micros),
        daily_spend_usd: usd(k.spent_day_micros),
        monthly_budget_usd: usd(k.monthly_budget_micros),
        monthly_spend_usd: usd(k.spent_month_micros),
        budget_remaining_usd: usd(day_left.min(month_left).max(0)),
    }
}

/// `null` in a PATCH body clears a setting; an absent field leaves it alone.
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The body of `PATCH /api/keys/me` (and, with `disabled`, of the admin PATCH).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SettingsPatch {
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub daily_budget_usd: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present")]
    pub monthly_budget_usd: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present")]
    pub rpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    pub notify_email: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub webhook_url: Option<Option<String>>,
    #[serde(default)]
    pub disabled: Option<bool>,
}

const MAX_BUDGET_USD: f64 = 1_000_000.0;

fn budget(field: &'static str, v: Option<Option<f64>>) -> Result<Option<Option<i64>>, ApiError> {
    match v {
        Some(Some(usd)) if !(0.0..=MAX_BUDGET_USD).contains(&usd) || !usd.is_finite() => {
            Err(ApiError::bad_param(
                field,
                format!("{field} must be between 0 and {MAX_BUDGET_USD}"),
            ))
        }
        Some(Some(usd)) => Ok(Some(Some(crate::money::Micros::from_usd(usd).get()))),
        Some(None) => Ok(Some(None)),
        None => Ok(None),
    }
}

impl SettingsPatch {
    /// Validates and converts to the database change set.
    pub fn into_settings(self, allow_disabled: bool) -> Result<KeySettings, ApiError> {
        if self.disabled.is_some() && !allow_disabled {
            return Err(ApiError::bad_param(
                "disabled",
                "use DELETE /api/keys/me to disable a key",
            ));
        }
        if let Some(l) = &self.label {
            if l.len() > 200 {
                return Err(ApiError::bad_param(
                    "label",
                    "label is longer than 200 bytes",
                ));
            }
        }
        let rpm_limit = match self.rpm_limit {
            Some(Some(r)) if !(0..=1_000_000).contains(&r) => {
                return Err(ApiError::bad_param(
                    "rpmLimit",
                    "rpmLimit must be between 0 and 1000000",
                ));
            }
            Some(r) => Some(r.map(|r| r as i32)),
            None => None,
        };
        if let Some(Some(e)) = &self.notify_email {
            if !e.contains('@') || e.len() > 320 {
                return Err(ApiError::bad_param(
                    "notifyEmail",
                    "notifyEmail is not an email address",
                ));
            }
        }
        if let Some(Some(u)) = &self.webhook_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() > 2000 {
                return Err(ApiError::bad_param(
                    "webhookUrl",
                    "webhookUrl must be an http(s) URL",
                ));
            }
        }
        Ok(KeySettings {
            label: self.label,
            daily_budget_micros: budget("dailyBudgetUsd", self.daily_budget_usd)?,
            monthly_budget_micros: budget("monthlyBudgetUsd", self.monthly_budget_usd)?,
            rpm_limit,
            notify_email: self.notify_email,
            webhook_url: self.webhook_url,
            disabled: self.disabled,
        })
    }
}
