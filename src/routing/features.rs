//! Feature extraction for the complexity scorer: one pass over the bytes of each message,
//! counting word classes (see [`vocab`](super::vocab)), symbols and layout, then a fixed-size
//! feature vector on the stack. Nothing is lowercased into a new `String`: words are
//! lowercased into a small stack buffer as they are met.
//!
//! The features describe the task, not its wrapping, so that they carry over to prompts from
//! sources the scorer never saw:
//! - the last user turn is the task. Each feature pools one kind of demand over a vocabulary
//!   and notation (code, maths, writing, arithmetic...), never one benchmark's house style;
//!   greetings, thanks and small talk count only when they are the whole message; markdown
//!   (`**`, `#` headings, `>` quotes) and whitespace are layout; maths symbols inside a code
//!   fence are code.
//! - earlier turns are context: they only matter for a follow-up (a hard previous turn makes
//!   a short follow-up hard, while "thanks" or "sum that up" after it stays trivial), and only
//!   through their maths and code, so an earlier exchange of small talk changes nothing.
//! - the system prompt counts only through a schema or code in it (text-to-SQL); a generic
//!   one ("You are a helpful assistant.") has none. A request with tools is an agent's: its
//!   system prompt is boilerplate and is not read, nor are tool definitions, nor anything
//!   after the last user turn (the agent's own tool calls and results while it works).
//! - reading is bounded (see [`LAST_BUDGET`], [`SYSTEM_BUDGET`], [`CONTEXT_BUDGET`]), so a
//!   long agent conversation costs no more to score than a short chat.

use serde_json::Value;

use super::vocab::{self, MAX_WORD};
use crate::api::{ChatRequest, Message, Role};

/// Names of the trained features, in the order of [`Features`]; the weights file repeats them
/// so that a stale file is detected instead of silently misapplied. Each one is a kind of
/// demand a task makes, pooled over vocabularies so that no single benchmark's house style
/// carries a feature on its own (see the module notes).
pub const FEATURE_NAMES: [&str; N_FEATURES] = [
    "shortness",
    "code",
    "maths",
    "advanced_maths",
    "maths_density",
    "science",
    "arithmetic",
    "numbers",
    "writing",
    "constraints",
    "question",
    "multiple_choice",
    "imperative",
    "small_talk",
    "trivial_followup",
    "hard_followup",
];

/// How many trained features there are.
pub const N_FEATURES: usize = 16;

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
    /// Sentences that open with a request for work ("Write...", "Please prove...").
    pub imperatives: u32,
    /// Pleasantries ("hope you're doing well"), which pad small talk.
    pub pleasantries: u32,
    /// Occurrences per word class, indexed by the class's bit position.
    pub class: [u32; 17],
    /// Classes of the first word of the view that is not a greeting or a thank-you.
    pub first_word: u32,
    first_seen: bool,
    /// Inside a fenced code block: maths symbols and words there are code, not maths.
    in_code: bool,
    at_sentence_start: bool,
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
        self.at_sentence_start = true;
        self.in_code = false;
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if c.is_ascii_alphanumeric() {
                let start = i;
                while i < b.len() && b[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                let after_apostrophe = start > 0 && matches!(b[start - 1], b'\'' | 0x99);
                self.word(&b[start..i], b.get(i).copied(), after_apostrophe);
                self.at_line_start = false;
                continue;
            }
            if c >= 0x80 {
                // Multi-byte UTF-8: only mathematical symbols and Greek letters count.
                let ch = text.get(i..).and_then(|s| s.chars().next());
                let len = ch.map_or(1, char::len_utf8);
                if !self.in_code && ch.is_some_and(is_math_char) {
                    self.math_symbols += 1;
                }
                i += len;
                self.at_line_start = false;
                continue;
            }
            if c == b'<' {
                if let Some(len) = markup_tag(&b[i..]) {
                    // `<context>`, `</system-reminder>`: an agent's markup, not maths.
                    i += len;
                    continue;
                }
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
        let prev = i
            .checked_sub(1)
            .and_then(|p| b.get(p))
            .copied()
            .unwrap_or(b' ');
        // Markdown is layout, not content: `**bold**`, `__bold__`, `# heading`, `> quote`.
        let markdown = match b[i] {
            b'*' | b'_' => next == b[i] || prev == b[i],
            b'#' | b'>' => self.at_line_start,
            _ => false,
        };
        if markdown {
            return;
        }
        if matches!(b[i], b'.' | b'!' | b'?' | b':' | b'\n') {
            self.at_sentence_start = true;
        }
        if self.in_code && !matches!(b[i], b'\n' | b'`') {
            if matches!(
                b[i],
                b';' | b'{' | b'}' | b'[' | b']' | b'#' | b'_' | b'=' | b'('
            ) {
                self.code_punct += 1;
            }
            return;
        }
        match b[i] {
            b'\n' => {
                self.lines += 1;
                self.at_line_start = true;
                return;
            }
            b'`' if b.get(i..i + 3) == Some(b"```") => {
                self.fences += 1;
                self.in_code = !self.in_code;
            }
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

    /// One word; `after_apostrophe` marks a contraction's tail ("I'm", "don't"), which is
    /// not a one-letter variable.
    fn word(&mut self, w: &[u8], next: Option<u8>, after_apostrophe: bool) {
        if self.in_code {
            self.code_word(w);
            return;
        }
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
        if w.len() == 1 && !after_apostrophe && !matches!(w[0], b'a' | b'A' | b'I') {
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
        let bits = vocab::lookup(lower);
        let mut classes = bits & vocab::CLASSES;
        if classes == 0 && bits & vocab::PLEASANTRY != 0 {
            self.pleasantries += 1;
        }
        if self.prev_len > 0 {
            classes |= vocab::bigram_class(&self.prev[..self.prev_len], lower);
        }
        if self.at_sentence_start {
            if bits & vocab::DEMAND != 0 {
                self.imperatives += 1;
                self.at_sentence_start = false;
            } else if bits & vocab::POLITE == 0
                && classes & (vocab::GREET | vocab::THANKS | vocab::IDENTITY) == 0
            {
                self.at_sentence_start = false;
            }
        }
        if !self.first_seen && classes & (vocab::GREET | vocab::THANKS) == 0 {
            self.first_word = classes;
            self.first_seen = true;
        }
        let mut rest = classes;
        while rest != 0 {
            let k = rest.trailing_zeros() as usize;
            if let Some(slot) = self.class.get_mut(k) {
                *slot += 1;
            }
            rest &= rest - 1;
        }
        self.prev = buf;
        self.prev_len = w.len();
    }
}

impl Counts {
    /// A word inside a code block: only its code classes count.
    fn code_word(&mut self, w: &[u8]) {
        self.words += 1;
        if w.len() > MAX_WORD || w[0].is_ascii_digit() {
            return;
        }
        let mut buf = [0u8; MAX_WORD];
        for (d, s) in buf.iter_mut().zip(w) {
            *d = s.to_ascii_lowercase();
        }
        let classes = vocab::word_class(&buf[..w.len()]) & (vocab::CODE | vocab::SQL);
        for k in [vocab::CODE, vocab::SQL] {
            if classes & k != 0 {
                self.class[k.trailing_zeros() as usize] += 1;
            }
        }
    }
}

/// The length of an XML-like tag (`<name>`, `</name-2>`) at the start of `b`, if one is.
fn markup_tag(b: &[u8]) -> Option<usize> {
    let start = if b.get(1) == Some(&b'/') { 2 } else { 1 };
    if !b.get(start)?.is_ascii_alphabetic() {
        return None;
    }
    let end = b
        .iter()
        .take(64)
        .skip(start)
        .position(|c| !(c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_')))?;
    (b.get(start + end) == Some(&b'>')).then_some(start + end + 1)
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
    /// The system prompt; left empty for agents (requests with tools), whose system prompt is
    /// boilerplate that says nothing about the task at hand.
    pub system: Counts,
    /// Messages before the last user turn, system prompts excluded.
    pub prior_turns: u32,
    /// Whether the request carries tool definitions.
    pub agent: bool,
}

/// At most this many bytes of the last user turn are read (its head): a pasted document
/// says what it is long before its end, and scoring stays bounded in time.
pub const LAST_BUDGET: usize = 8 * 1024;
/// At most this many bytes of the system prompt are read (its head).
pub const SYSTEM_BUDGET: usize = 4 * 1024;
/// At most this many bytes of earlier turns are read, newest first and each from its end:
/// what a follow-up leans on is the exchange just before it.
pub const CONTEXT_BUDGET: usize = 1024;

impl Views {
    /// Counts the messages of the request into their views, within the byte budgets above.
    /// Tool definitions are never read, nor is anything after the last user turn (an agent's
    /// own tool calls and their results while it works on the task): the task is the last
    /// user turn, read with the turns before it.
    pub fn of(req: &ChatRequest) -> Views {
        let mut v = Views {
            agent: req.tools.as_ref().is_some_and(|t| !t.is_empty()),
            ..Views::default()
        };
        let last_user = req.messages.iter().rposition(|m| m.role == Role::User);
        let end = last_user.unwrap_or(req.messages.len());
        let mut system_budget = SYSTEM_BUDGET;
        let mut context_budget = CONTEXT_BUDGET;
        for m in req.messages[..end].iter().rev() {
            match m.role {
                Role::System | Role::Developer if v.agent => {}
                Role::System | Role::Developer => {
                    // Reversed order does not matter for the system view's counts.
                    scan_message(&mut v.system, m, &mut system_budget, false);
                }
                _ => {
                    v.prior_turns += u32::from(last_user.is_some());
                    scan_message(&mut v.context, m, &mut context_budget, true);
                }
            }
        }
        if let Some(m) = last_user.and_then(|l| req.messages.get(l)) {
            let mut last_budget = LAST_BUDGET;
            scan_message(&mut v.last, m, &mut last_budget, false);
        }
        v
    }
}

/// Scans a message's text and tool-call arguments within `budget` bytes (its head, or with
/// `tail` its end), and takes what was read off the budget.
fn scan_message(view: &mut Counts, m: &Message, budget: &mut usize, tail: bool) {
    let mut read = |t: &str| {
        let n = t.len().min(*budget);
        if n == 0 {
            return;
        }
        let part = if tail {
            let mut from = t.len() - n;
            while !t.is_char_boundary(from) {
                from += 1;
            }
            &t[from..]
        } else {
            let mut to = n;
            while !t.is_char_boundary(to) {
                to -= 1;
            }
            &t[..to]
        };
        view.scan(part);
        *budget -= part.len();
    };
    for_each_text(m.content.as_ref(), &mut read);
    for call in m.tool_calls.iter().flatten() {
        read(&call.function.arguments);
    }
}

fn ln1(x: u32) -> f64 {
    f64::from(x).ln_1p()
}

/// Words and symbols that say "this is mathematics" in a view.
fn maths(c: &Counts) -> u32 {
    c.of(vocab::MATH) + c.of(vocab::ALGEBRA_LOGIC) + c.latex + c.math_symbols + c.variables
}

/// Words, fences and punctuation that say "this is code" in a view.
fn code(c: &Counts) -> u32 {
    c.of(vocab::CODE) + c.of(vocab::SQL) + 3 * c.fences.min(4) + c.code_punct
}

/// Greetings, thanks, questions about the assistant and requests to restate.
fn small_talk_words(c: &Counts) -> u32 {
    use vocab::*;
    c.of(GREET) + c.of(THANKS) + c.of(IDENTITY) + c.of(SUMMARY)
}

/// A message that is nothing but small talk or a request to restate has at most this many
/// other words; greetings and thanks around a real request do not make it small talk.
const SMALL_TALK_MAX_OTHER_WORDS: u32 = 4;

/// The feature vector of a request.
pub fn extract(req: &ChatRequest) -> Features {
    from_views(&Views::of(req))
}

/// The feature vector from counted views (split out so tests can build views directly).
pub fn from_views(v: &Views) -> Features {
    use vocab::*;
    let l = &v.last;
    let words = f64::from(l.words) + 1.0;
    let chat = small_talk_words(l);
    let other = l.words.saturating_sub(chat + l.pleasantries);
    let chatty = other <= SMALL_TALK_MAX_OTHER_WORDS && chat > 0;
    let small_talk = if chatty {
        f64::from(chat) / f64::from(l.words.max(1))
    } else {
        0.0
    };
    let followup = v.prior_turns > 0;
    // After a conversation, small talk ("thanks!") or a request to restate what was said.
    let trivial = chatty || (l.words <= 25 && l.of(SUMMARY) > 0);
    // A schema or code in the system prompt is part of the task (text-to-SQL, "fix this").
    let task_code = code(l) + code(&v.system);
    let advanced = l.of(ALGEBRA_LOGIC) + l.of(PROOF) + l.latex;
    // A question to be answered, not a request for work that happens to contain a '?'.
    let question = (l.questions > 0 && l.imperatives == 0) || l.first_word & WH != 0;
    let arithmetic = if l.numbers >= 2 {
        l.of(QUANTITY) + l.money + l.percent
    } else {
        0
    };
    [
        (1.0 - f64::from(l.words) / 30.0).max(0.0),
        ln1(task_code),
        ln1(maths(l)),
        ln1(advanced),
        f64::from(maths(l)) / words,
        ln1(l.of(SCIENCE)),
        ln1(arithmetic),
        ln1(l.numbers),
        ln1(l.of(WRITING) + l.of(DESIGN) + l.of(ROLEPLAY) + l.of(EDIT)),
        ln1(l.of(STEPS)),
        f64::from(u8::from(question)),
        f64::from(u8::from(l.options >= 3)),
        ln1(l.imperatives),
        small_talk,
        f64::from(u8::from(followup && trivial)),
        if followup && !trivial {
            ln1(maths(&v.context) + code(&v.context))
        } else {
            0.0
        },
    ]
}

#[cfg(test)]
#[path = "features_tests.rs"]
mod tests;
