//! Feature extraction for the complexity scorer: one pass over the bytes of each message,
//! counting word classes (see [`vocab`](super::vocab)), symbols and layout, then a fixed-size
//! feature vector on the stack. Nothing is lowercased into a new `String`: words are
//! lowercased into a small stack buffer as they are met.
//!
//! Three views of a request are kept apart because they mean different things: the last user
//! turn is the task; earlier user and assistant turns are context (a hard previous turn makes
//! a short follow-up hard, while "thanks" after it stays trivial); the system prompt frames it.

use serde_json::Value;

use super::vocab::{self, MAX_WORD};
use crate::api::{ChatRequest, Message, Role};

/// Names of the trained features, in the order of [`Features`]; the weights file repeats them
/// so that a stale file is detected instead of silently misapplied.
pub const FEATURE_NAMES: [&str; N_FEATURES] = [
    "length",
    "lines",
    "code_fences",
    "code_words",
    "code_punctuation",
    "latex",
    "math_symbols",
    "math_variables",
    "numbers",
    "math_words",
    "algebra_logic",
    "proof_words",
    "science",
    "quantities",
    "sql",
    "constraints",
    "design",
    "writing",
    "roleplay",
    "greeting",
    "thanks",
    "identity",
    "summarize",
    "edit_previous",
    "short_wh_question",
    "shortness",
    "question_marks",
    "multiple_choice",
    "math_density",
    "number_density",
    "turns",
    "context_length",
    "context_math",
    "context_code",
    "hard_followup",
    "trivial_followup",
    "system_length",
    "system_sql",
    "system_math",
];

/// How many trained features there are.
pub const N_FEATURES: usize = 39;

/// A request's feature vector, in the order of [`FEATURE_NAMES`].
pub type Features = [f64; N_FEATURES];

/// Counts gathered from one view (last user turn, context, or system prompt).
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub bytes: usize,
    pub words: u32,
    pub lines: u32,
    pub fences: u32,
    pub code_punct: u32,
    pub latex: u32,
    pub money: u32,
    pub percent: u32,
    pub math_symbols: u32,
    pub variables: u32,
    pub numbers: u32,
    pub questions: u32,
    pub options: u32,
    /// Occurrences per word class, indexed by the class's bit position.
    pub class: [u32; 17],
    /// Classes of the first word of the view.
    pub first_word: u32,
    prev: [u8; MAX_WORD],
    prev_len: usize,
    at_line_start: bool,
}

impl Counts {
    /// How many words of a class (a `vocab` constant) were seen.
    pub fn of(&self, class: u32) -> u32 {
        self.class[class.trailing_zeros() as usize % 17]
    }

    /// Counts one span of text. Several spans (content parts, messages) may be added to one
    /// view; a word pair is not matched across spans.
    pub fn scan(&mut self, text: &str) {
        let b = text.as_bytes();
        self.bytes += b.len();
        self.prev_len = 0;
        self.at_line_start = true;
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if c.is_ascii_alphanumeric() {
                let start = i;
                while i < b.len() && b[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                self.word(&b[start..i], b.get(i).copied());
                self.at_line_start = false;
                continue;
            }
            if c >= 0x80 {
                // Multi-byte UTF-8: only mathematical symbols and Greek letters count.
                let ch = text.get(i..).and_then(|s| s.chars().next());
                let len = ch.map_or(1, char::len_utf8);
                if ch.is_some_and(is_math_char) {
                    self.math_symbols += 1;
                }
                i += len;
                self.at_line_start = false;
                continue;
            }
            self.symbol(b, i);
            i += if c == b'`' && b.get(i..i + 3) == Some(b"```") {
                3
            } else {
                1
            };
        }
    }

    fn symbol(&mut self, b: &[u8], i: usize) {
        let next = b.get(i + 1).copied().unwrap_or(b' ');
        match b[i] {
            b'\n' => {
                self.lines += 1;
                self.at_line_start = true;
                return;
            }
            b'`' if b.get(i..i + 3) == Some(b"```") => self.fences += 1,
            b'\\' if next.is_ascii_alphabetic() => self.latex += 1,
            b'$' if next.is_ascii_digit() => self.money += 1,
            b'$' => self.latex += 1,
            b'%' => self.percent += 1,
            b'^' | b'=' | b'<' | b'>' | b'+' | b'*' | b'/' | b'|' | b'~' => self.math_symbols += 1,
            b';' | b'{' | b'}' | b'[' | b']' | b'#' | b'_' => self.code_punct += 1,
            b'?' => self.questions += 1,
            _ => {}
        }
        if !b[i].is_ascii_whitespace() {
            self.at_line_start = false;
        }
    }

    fn word(&mut self, w: &[u8], next: Option<u8>) {
        // "A." to "D." (or "A)") at the start of a line is a multiple-choice option.
        if self.at_line_start
            && w.len() == 1
            && (b'A'..=b'D').contains(&w[0])
            && matches!(next, Some(b'.' | b')'))
        {
            self.options += 1;
            return;
        }
        self.words += 1;
        if w[0].is_ascii_digit() {
            self.numbers += 1;
            // "2x", "3n": a coefficient on a variable; "5th", "1980s", "2nd" are not.
            let tail = w.iter().position(u8::is_ascii_alphabetic).map(|p| &w[p..]);
            if let Some(t) = tail {
                let ordinal = matches!(t, b"st" | b"nd" | b"rd" | b"th" | b"s" | b"d" | b"k");
                if !ordinal && t.len() <= 2 {
                    self.variables += 1;
                }
            }
            self.prev_len = 0;
            return;
        }
        if w.len() == 1 && !matches!(w[0], b'a' | b'A' | b'I') {
            self.variables += 1;
        }
        if w.len() > MAX_WORD {
            self.prev_len = 0;
            return;
        }
        let mut buf = [0u8; MAX_WORD];
        for (d, s) in buf.iter_mut().zip(w) {
            *d = s.to_ascii_lowercase();
        }
        let lower = &buf[..w.len()];
        let mut classes = vocab::word_class(lower);
        if self.prev_len > 0 {
            classes |= vocab::bigram_class(&self.prev[..self.prev_len], lower);
        }
        if self.words == 1 {
            self.first_word = classes;
        }
        let mut bits = classes;
        while bits != 0 {
            let k = bits.trailing_zeros() as usize;
            if let Some(slot) = self.class.get_mut(k) {
                *slot += 1;
            }
            bits &= bits - 1;
        }
        self.prev = buf;
        self.prev_len = w.len();
    }
}

/// Mathematical operators, arrows, Greek letters, ±, ×, ÷, •: maths typed without LaTeX.
fn is_math_char(c: char) -> bool {
    matches!(c as u32,
        0x2200..=0x22FF | 0x2190..=0x21FF | 0x0391..=0x03C9 | 0x00B1 | 0x00D7 | 0x00F7
        | 0x2022)
}

/// Calls `f` with each piece of text of a message content (a string, or `text` parts),
/// borrowing instead of joining as `Message::text` does.
pub fn for_each_text(content: Option<&Value>, mut f: impl FnMut(&str)) {
    match content {
        Some(Value::String(s)) => f(s),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .for_each(f),
        _ => {}
    }
}

/// The three views of a request, counted.
#[derive(Debug, Default, Clone, Copy)]
pub struct Views {
    pub last: Counts,
    pub context: Counts,
    pub system: Counts,
    /// Messages before the last user turn, system prompts excluded.
    pub prior_turns: u32,
}

impl Views {
    /// Counts every message of the request into its view.
    pub fn of(req: &ChatRequest) -> Views {
        let mut v = Views::default();
        let last_user = req.messages.iter().rposition(|m| m.role == Role::User);
        for (i, m) in req.messages.iter().enumerate() {
            let view = match m.role {
                Role::System | Role::Developer => &mut v.system,
                _ if Some(i) == last_user => &mut v.last,
                _ => {
                    v.prior_turns += u32::from(last_user.is_some_and(|l| i < l));
                    &mut v.context
                }
            };
            scan_message(view, m);
        }
        v
    }
}

fn scan_message(view: &mut Counts, m: &Message) {
    for_each_text(m.content.as_ref(), |t| view.scan(t));
    for call in m.tool_calls.iter().flatten() {
        view.scan(&call.function.arguments);
    }
}

fn ln1(x: u32) -> f64 {
    f64::from(x).ln_1p()
}

/// Words and symbols that say "this is mathematics" in a view.
fn maths(c: &Counts) -> u32 {
    c.of(vocab::MATH) + c.of(vocab::ALGEBRA_LOGIC) + c.latex + c.math_symbols + c.variables
}

/// The feature vector of a request.
pub fn extract(req: &ChatRequest) -> Features {
    from_views(&Views::of(req))
}

/// The feature vector from counted views (split out so tests can build views directly).
pub fn from_views(v: &Views) -> Features {
    use vocab::*;
    let l = &v.last;
    let words = f64::from(l.words) + 1.0;
    let short = l.bytes < 160;
    let followup = v.prior_turns > 0;
    let trivial = short && l.of(THANKS) + l.of(SUMMARY) + l.of(GREET) > 0;
    let ctx_math = maths(&v.context);
    let ctx_words = f64::from(v.context.words) + 1.0;
    [
        (l.bytes as f64).ln_1p(),
        ln1(l.lines),
        f64::from(l.fences.min(4)),
        ln1(l.of(CODE)),
        ln1(l.code_punct),
        ln1(l.latex),
        ln1(l.math_symbols),
        ln1(l.variables),
        ln1(l.numbers),
        ln1(l.of(MATH)),
        ln1(l.of(ALGEBRA_LOGIC)),
        ln1(l.of(PROOF)),
        ln1(l.of(SCIENCE)),
        ln1(l.of(QUANTITY) + l.money + l.percent),
        ln1(l.of(SQL)),
        ln1(l.of(STEPS)),
        ln1(l.of(DESIGN)),
        ln1(l.of(WRITING)),
        ln1(l.of(ROLEPLAY)),
        f64::from(l.of(GREET).min(2)),
        f64::from(l.of(THANKS).min(2)),
        f64::from(l.of(IDENTITY).min(3)),
        f64::from(l.of(SUMMARY).min(2)),
        f64::from(l.of(EDIT).min(3)),
        f64::from(u8::from(l.first_word & WH != 0 && l.bytes < 100)),
        (1.0 - l.bytes as f64 / 160.0).max(0.0),
        f64::from(l.questions.min(3)),
        f64::from(u8::from(l.options >= 3)),
        f64::from(maths(l)) / words,
        f64::from(l.numbers) / words,
        ln1(v.prior_turns),
        (v.context.bytes as f64).ln_1p(),
        ln1(ctx_math),
        ln1(v.context.of(CODE) + v.context.fences),
        if followup && !trivial {
            f64::from(ctx_math) / ctx_words
        } else {
            0.0
        },
        f64::from(u8::from(followup && trivial)),
        (v.system.bytes as f64).ln_1p(),
        ln1(v.system.of(SQL)),
        ln1(v.system.of(MATH) + v.system.of(ALGEBRA_LOGIC)),
    ]
}

#[cfg(test)]
#[path = "features_tests.rs"]
mod tests;
