//! Money's one home: integer micro-dollars, a model's price applied to a usage, the
//! reservation estimate, the UTC calendar windows budgets reset on, and USD ↔ sats.
//! Floats appear only at the edges (config prices, JSON numbers); sums are integers.

use std::fmt;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::api::Usage;

/// An amount of US dollars in millionths. Stored as BigInt; never a float in the database.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Micros(pub i64);

impl Micros {
    pub const ZERO: Micros = Micros(0);

    /// USD as configured or sent by a client, rounded to the nearest micro-dollar.
    pub fn from_usd(usd: f64) -> Micros {
        Micros((usd * 1_000_000.0).round() as i64)
    }

    /// As a JSON number of USD (Pura's views).
    pub fn usd(self) -> f64 {
        self.0 as f64 / 1_000_000.0
    }

    pub fn get(self) -> i64 {
        self.0
    }

    pub fn max(self, other: Micros) -> Micros {
        Micros(self.0.max(other.0))
    }

    pub fn min(self, other: Micros) -> Micros {
        Micros(self.0.min(other.0))
    }
}

impl std::ops::Add for Micros {
    type Output = Micros;
    fn add(self, o: Micros) -> Micros {
        Micros(self.0 + o.0)
    }
}

impl std::ops::Sub for Micros {
    type Output = Micros;
    fn sub(self, o: Micros) -> Micros {
        Micros(self.0 - o.0)
    }
}

/// Exact decimal USD with six places (`X-Pura-Cost: 0.000123`), no float rounding.
impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.decimal().as_str())
    }
}

/// A [`Micros`] as its decimal text, written on the stack: three of a request's headers are
/// amounts, and `format!` through `core::fmt` cost more than the rest of those headers.
pub struct Decimal {
    buf: [u8; 28],
    start: usize,
}

impl Decimal {
    pub fn as_str(&self) -> &str {
        // Only ASCII digits, '.' and '-' are written.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The text's bytes, for a header value (which checks them itself).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

impl Micros {
    /// The text `Display` writes, without a formatter or an allocation.
    pub fn decimal(self) -> Decimal {
        let mut buf = [b'0'; 28];
        let mut at = buf.len();
        let mut m = self.0.unsigned_abs();
        // Six fraction digits, always written (the buffer's zeros pad them).
        for _ in 0..6 {
            at -= 1;
            buf[at] = b'0' + (m % 10) as u8;
            m /= 10;
        }
        at -= 1;
        buf[at] = b'.';
        // The whole dollars: at least one digit.
        loop {
            at -= 1;
            buf[at] = b'0' + (m % 10) as u8;
            m /= 10;
            if m == 0 {
                break;
            }
        }
        if self.0 < 0 {
            at -= 1;
            buf[at] = b'-';
        }
        Decimal { buf, start: at }
    }
}

/// A model's catalogue price in USD per 1,000 tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input_per_1k: f64,
    pub output_per_1k: f64,
    /// Prompt tokens served from the upstream's cache; `None`: priced as ordinary input.
    pub cached_input_per_1k: Option<f64>,
}

impl Price {
    /// What `usage` costs at this price: the only place a price meets a token count.
    pub fn cost(&self, usage: &Usage) -> Micros {
        let cached = usage.cached_tokens().min(usage.prompt_tokens);
        let cached_price = self.cached_input_per_1k.unwrap_or(self.input_per_1k);
        let usd = (usage.prompt_tokens - cached) as f64 * self.input_per_1k / 1000.0
            + cached as f64 * cached_price / 1000.0
            + usage.completion_tokens as f64 * self.output_per_1k / 1000.0;
        Micros::from_usd(usd)
    }

    /// Input plus output price, the router's "how expensive is this provider" figure.
    pub fn weight(&self) -> f64 {
        self.input_per_1k + self.output_per_1k
    }
}

/// Output tokens assumed for the reserved estimate when the client sets no cap.
pub const DEFAULT_OUTPUT_CAP: u64 = 4096;

/// Rough token count of text when an upstream reports none (about four bytes a token).
pub fn estimate_tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

/// The worst case a request may cost: its prompt estimate plus the output cap, at the
/// priciest of the prices it may land on (a fallback can move it to a pricier provider).
pub fn reservation<'a>(
    prompt_chars: usize,
    max_output: Option<u64>,
    prices: impl Iterator<Item = &'a Price>,
) -> Micros {
    let worst = Usage::new(
        estimate_tokens(prompt_chars),
        max_output.unwrap_or(DEFAULT_OUTPUT_CAP),
    );
    prices.map(|p| p.cost(&worst)).max().unwrap_or_default()
}

/// A budget window: budgets reset on UTC calendar days and months.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Day,
    Month,
}

impl Window {
    pub fn name(self) -> &'static str {
        match self {
            Window::Day => "daily",
            Window::Month => "monthly",
        }
    }

    /// Midnight UTC that opened the window containing `t`.
    pub fn start(self, t: NaiveDateTime) -> NaiveDateTime {
        use chrono::Datelike;
        let day = t.date().and_hms_opt(0, 0, 0).unwrap_or(t);
        match self {
            Window::Day => day,
            Window::Month => t
                .date()
                .with_day(1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .unwrap_or(day),
        }
    }

    /// When the window opened at `start` closes.
    pub fn end(self, start: NaiveDateTime) -> NaiveDateTime {
        match self {
            Window::Day => start + chrono::Duration::days(1),
            Window::Month => start
                .date()
                .checked_add_months(chrono::Months::new(1))
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .unwrap_or(start + chrono::Duration::days(31)),
        }
    }
}

/// Micro-dollars one satoshi buys at the configured rate.
pub fn micros_per_sat(usd_per_sat: f64) -> f64 {
    usd_per_sat * 1_000_000.0
}

/// What a payment of `sats` credits, at the configured rate.
pub fn sats_to_micros(sats: i64, usd_per_sat: f64) -> Micros {
    Micros((sats as f64 * micros_per_sat(usd_per_sat)).round() as i64)
}

/// A balance in whole sats (rounded down: never show more than can be spent).
pub fn micros_to_sats(m: Micros, usd_per_sat: f64) -> i64 {
    let per = micros_per_sat(usd_per_sat);
    if per <= 0.0 {
        return 0;
    }
    (m.0 as f64 / per).floor() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written digits read as `format!` writes the same amount, at every edge.
    #[test]
    fn an_amount_reads_as_format_writes_it() {
        let formatted = |v: i64| {
            let (sign, m) = (if v < 0 { "-" } else { "" }, v.unsigned_abs());
            format!("{sign}{}.{:06}", m / 1_000_000, m % 1_000_000)
        };
        let mut values = vec![0, 1, -1, 9, 10, 999_999, 1_000_000, -1_000_000, 1_000_001];
        values.extend([123_456_789, -42, i64::MAX, i64::MIN, i64::MIN + 1]);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push((x as i64) >> (x % 60));
        }
        for v in values {
            assert_eq!(Micros(v).decimal().as_str(), formatted(v), "{v}");
            assert_eq!(Micros(v).to_string(), formatted(v), "{v}");
        }
    }

    #[test]
    fn decimal_strings_are_exact() {
        assert_eq!(Micros(123).to_string(), "0.000123");
        assert_eq!(Micros(-1_500_000).to_string(), "-1.500000");
        assert_eq!(Micros::from_usd(0.1 + 0.2), Micros(300_000));
    }

    #[test]
    fn price_applies_cached_rate_to_cached_tokens_only() {
        let p = Price {
            input_per_1k: 1.0,
            output_per_1k: 2.0,
            cached_input_per_1k: Some(0.5),
        };
        let mut u = Usage::new(1000, 1000);
        assert_eq!(p.cost(&u), Micros(3_000_000));
        u.prompt_tokens_details = Some(crate::api::usage::PromptDetails {
            cached_tokens: 1000,
        });
        assert_eq!(p.cost(&u), Micros(2_500_000));
    }

    #[test]
    fn windows_are_utc_calendar() {
        let t = chrono::NaiveDate::from_ymd_opt(2026, 1, 31)
            .and_then(|d| d.and_hms_opt(13, 5, 0))
            .expect("valid");
        let m = Window::Month.start(t);
        assert_eq!(m.to_string(), "2026-01-01 00:00:00");
        assert_eq!(Window::Month.end(m).to_string(), "2026-02-01 00:00:00");
        assert_eq!(
            Window::Day.end(Window::Day.start(t)).to_string(),
            "2026-02-01 00:00:00"
        );
    }

    #[test]
    fn sats_round_trip_rounds_down() {
        assert_eq!(sats_to_micros(10_000, 0.0004), Micros(4_000_000));
        assert_eq!(micros_to_sats(Micros(4_000_399), 0.0004), 10_000);
    }
}
