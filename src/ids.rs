//! Identifiers the gateway mints: random tails, time-ordered row ids, OpenAI-style ids.

use rand::distributions::{Alphanumeric, DistString};
use rand::Rng;

pub fn random_alnum(n: usize) -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), n)
}

/// An id that sorts by creation time (microseconds, hex) with a random tail. Usage and ledger
/// rows keyed by it are appended at the end of their B-tree instead of scattered through it,
/// which keeps each group commit to a few dirty pages.
/// Written into one buffer: `format!` plus a second string for the tail cost more than the
/// rest of minting it, and every request mints one.
pub fn ordered_id(prefix: &str) -> String {
    let micros = chrono::Utc::now().timestamp_micros().max(0) as u64;
    let mut id = String::with_capacity(prefix.len() + 16 + 12);
    id.push_str(prefix);
    push_hex(&mut id, micros, 14);
    push_tail(&mut id);
    id
}

/// Twelve random alphanumerics, six from each of two random words (62^6 is far below 2^64, so
/// the digits are as good as uniform): `Alphanumeric` draws a word per character and rejects
/// some, three times the instructions.
fn push_tail(out: &mut String) {
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    for _ in 0..2 {
        let mut word: u64 = rng.gen();
        for _ in 0..6 {
            out.push(char::from(DIGITS[(word % 62) as usize]));
            word /= 62;
        }
    }
}

/// `v` in lowercase hex with at least `width` digits, zero-padded (what `{v:0width$x}` writes).
fn push_hex(out: &mut String, v: u64, width: usize) {
    let digits = (64 - v.leading_zeros() as usize)
        .div_ceil(4)
        .max(width)
        .max(1);
    for i in (0..digits).rev() {
        let nibble = if i < 16 { (v >> (4 * i)) & 0xf } else { 0 };
        out.push(char::from(b"0123456789abcdef"[nibble as usize]));
    }
}

/// A `chatcmpl-` id with 29 random alphanumerics, as OpenAI mints them.
pub fn completion_id() -> String {
    format!("chatcmpl-{}", random_alnum(29))
}

/// A `call_` id with 24 random alphanumerics, for dialects whose tool calls have none.
pub fn call_id() -> String {
    format!("call_{}", random_alnum(24))
}

pub fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written hex is what `format!` writes, at every width and edge.
    #[test]
    fn hex_digits_read_as_format_writes_them() {
        let mut values = vec![0, 1, 0xf, 0x10, u64::MAX, 1 << 52, (1 << 56) - 1, 1 << 56];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..5_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(x >> (x % 64));
        }
        for v in values {
            for width in [0, 1, 14, 16, 20] {
                let mut out = String::from("p_");
                push_hex(&mut out, v, width);
                assert_eq!(out, format!("p_{v:0width$x}"), "{v} {width}");
            }
        }
    }

    #[test]
    fn an_ordered_id_has_its_prefix_time_and_tail() {
        let (a, b) = (ordered_id("req_"), ordered_id("req_"));
        for id in [&a, &b] {
            assert_eq!(id.len(), 4 + 14 + 12, "{id}");
            assert!(id.starts_with("req_"), "{id}");
            assert!(id[4..18].bytes().all(|c| c.is_ascii_hexdigit()), "{id}");
            assert!(id[18..].bytes().all(|c| c.is_ascii_alphanumeric()), "{id}");
        }
        assert!(a[4..18] <= b[4..18], "{a} then {b}");
        assert_ne!(a, b);
    }

    /// Every place of the tail takes every one of the 62 characters, about equally often.
    #[test]
    fn the_tail_spreads_over_all_alphanumerics() {
        let mut counts = [[0u32; 128]; 12];
        for _ in 0..12_400 {
            let mut tail = String::new();
            push_tail(&mut tail);
            for (place, c) in tail.bytes().enumerate() {
                counts[place][c as usize] += 1;
            }
        }
        for place in counts {
            let seen: Vec<u32> = place.into_iter().filter(|&n| n > 0).collect();
            assert_eq!(seen.len(), 62);
            // 200 expected each: far outside these bounds only if the digits are skewed.
            assert!(seen.iter().all(|&n| (100..=320).contains(&n)), "{seen:?}");
        }
    }
}
