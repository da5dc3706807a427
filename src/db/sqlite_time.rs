//! A timestamp bound on SQLite as the text diesel itself writes (`%F %T%.f`), formatted by
//! hand: diesel formats through chrono's strftime, which parses the format string and goes
//! through `fmt` for every value, about 2,900 instructions per settled row, more than the
//! B-tree insert of one of its indexes. The text is the same, so rows written either way
//! compare and read back alike (SQLite compares timestamps as text).

use chrono::{Datelike, NaiveDateTime, Timelike};
use diesel::serialize::{IsNull, Output, ToSql};
use diesel::sql_types::HasSqlType;
use diesel::sqlite::{Sqlite, SqliteType};

/// The SQL type of [`NaiveDateTime`] bound through [`text`]: `TEXT`, as diesel's `Timestamp`
/// is on SQLite.
#[derive(Debug, Clone, Copy)]
pub struct SqliteTime;

impl HasSqlType<SqliteTime> for Sqlite {
    fn metadata(_: &mut ()) -> SqliteType {
        SqliteType::Text
    }
}

impl ToSql<SqliteTime, Sqlite> for NaiveDateTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> diesel::serialize::Result {
        out.set_value(text(self));
        Ok(IsNull::No)
    }
}

/// `t` as chrono writes it with `%F %T%.f`: the date, the time, then the fraction with as few
/// of 3, 6 or 9 digits as hold it (none when it is zero). Years outside 0..=9999 and leap
/// seconds, which chrono writes its own way, go through chrono.
pub fn text(t: &NaiveDateTime) -> String {
    let (year, nanos) = (t.year(), t.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return t.format("%F %T%.f").to_string();
    }
    let mut s = String::with_capacity(29);
    digits(&mut s, year as u32, 4);
    s.push('-');
    digits(&mut s, t.month(), 2);
    s.push('-');
    digits(&mut s, t.day(), 2);
    s.push(' ');
    digits(&mut s, t.hour(), 2);
    s.push(':');
    digits(&mut s, t.minute(), 2);
    s.push(':');
    digits(&mut s, t.second(), 2);
    if nanos != 0 {
        s.push('.');
        if nanos % 1_000_000 == 0 {
            digits(&mut s, nanos / 1_000_000, 3);
        } else if nanos % 1_000 == 0 {
            digits(&mut s, nanos / 1_000, 6);
        } else {
            digits(&mut s, nanos, 9);
        }
    }
    s
}

/// `v` in decimal, zero-padded to `width` digits (`v` has at most `width`).
fn digits(s: &mut String, v: u32, width: u32) {
    for i in (0..width).rev() {
        let d = (v / 10u32.pow(i)) % 10;
        s.push(char::from(b'0' + d as u8));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeDelta};

    /// What diesel writes for a `Timestamp` on SQLite.
    fn chrono_text(t: &NaiveDateTime) -> String {
        t.format("%F %T%.f").to_string()
    }

    #[test]
    fn the_text_is_what_diesel_writes() {
        let base = NaiveDate::from_ymd_opt(2026, 12, 1)
            .and_then(|d| d.and_hms_opt(3, 4, 5))
            .expect("a valid date");
        let mut cases = vec![
            base,
            base + TimeDelta::milliseconds(7),
            base + TimeDelta::microseconds(7),
            base + TimeDelta::nanoseconds(7),
            base + TimeDelta::microseconds(120_000),
            base + TimeDelta::nanoseconds(999_999_999),
            NaiveDate::from_ymd_opt(0, 1, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .expect("year 0"),
            NaiveDate::from_ymd_opt(9999, 12, 31)
                .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1))
                .expect("year 9999"),
            NaiveDate::from_ymd_opt(10000, 1, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .expect("year 10000"),
            NaiveDate::from_ymd_opt(-1, 6, 30)
                .and_then(|d| d.and_hms_opt(12, 0, 0))
                .expect("year -1"),
            NaiveDate::from_ymd_opt(2016, 12, 31)
                .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
                .expect("a leap second"),
        ];
        // Many instants at every precision, spread over centuries.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let secs = (x % 300_000_000_000) as i64 - 50_000_000_000;
            let nanos = match x % 4 {
                0 => 0,
                1 => (x >> 8) as u32 % 1_000 * 1_000_000,
                2 => (x >> 8) as u32 % 1_000_000 * 1_000,
                _ => (x >> 8) as u32 % 1_000_000_000,
            };
            cases.extend(chrono::DateTime::from_timestamp(secs, nanos).map(|d| d.naive_utc()));
        }
        for t in cases {
            assert_eq!(text(&t), chrono_text(&t), "{t:?}");
        }
    }
}
