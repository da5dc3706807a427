//! Sums a report's rows per model, per tier, and per hour by provider and by tier, in
//! micro-dollars until the view is made (so the figures add up exactly).

use std::collections::BTreeMap;

use chrono::NaiveDateTime;

use crate::api::breakdown::{Breakdown, HourDetail, Slice};
use crate::db::models::usage::ReportRow;
use crate::routes::views::usd;

#[derive(Default)]
struct Sum {
    requests: i64,
    spend: i64,
    savings: i64,
    prompt: i64,
    completion: i64,
}

impl Sum {
    fn add(&mut self, r: &ReportRow) {
        self.requests += 1;
        self.spend += r.cost_micros;
        self.savings += r.premium_cost_micros - r.cost_micros;
        self.prompt += r.prompt_tokens;
        self.completion += r.completion_tokens;
    }

    fn slice(&self) -> Slice {
        Slice {
            requests: self.requests,
            spend_usd: usd(self.spend),
            savings_usd: usd(self.savings),
            prompt_tokens: self.prompt,
            completion_tokens: self.completion,
        }
    }
}

type Sums = BTreeMap<String, Sum>;

fn slices(sums: &Sums) -> BTreeMap<String, Slice> {
    sums.iter().map(|(k, s)| (k.clone(), s.slice())).collect()
}

#[derive(Default)]
pub struct Breakdowns {
    by_model: Sums,
    by_tier: Sums,
    /// Per hour: by provider, by tier.
    hours: BTreeMap<NaiveDateTime, (Sums, Sums)>,
}

impl Breakdowns {
    pub fn add(&mut self, hour: NaiveDateTime, r: &ReportRow) {
        self.by_model.entry(r.model.clone()).or_default().add(r);
        self.by_tier.entry(r.tier.clone()).or_default().add(r);
        let (by_provider, by_tier) = self.hours.entry(hour).or_default();
        by_provider.entry(r.provider.clone()).or_default().add(r);
        by_tier.entry(r.tier.clone()).or_default().add(r);
    }

    pub fn totals(&self) -> Breakdown {
        Breakdown {
            by_model: slices(&self.by_model),
            by_tier: slices(&self.by_tier),
        }
    }

    pub fn hour(&self, hour: &NaiveDateTime) -> HourDetail {
        let Some((by_provider, by_tier)) = self.hours.get(hour) else {
            return HourDetail::default();
        };
        HourDetail {
            tokens: by_tier.values().map(|s| s.prompt + s.completion).sum(),
            by_provider: slices(by_provider),
            by_tier: slices(by_tier),
        }
    }
}
