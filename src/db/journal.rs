//! The settlement journal (SQLite only): a settlement is durable once its line is appended
//! here, so a request need not wait for a SQLite commit before its last byte. The writer folds
//! the journalled settlements into the database in batches (one commit for many requests),
//! and a process that died before folding some has them replayed at its next start
//! ([`replay`]), skipping those already committed: the usage row id says which.
//!
//! A line is appended with one `write(2)` on a file opened for appending, so it is in the
//! kernel's page cache when the call returns and survives `kill -9`, as a SQLite commit with
//! `synchronous = NORMAL` does (neither survives a power cut without an fsync). Once
//! everything journalled has been committed the file is emptied ([`Journal::fold`]).

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use super::models::usage::UsageRow;
use super::usage_writer::{HoldSettled, Settlement};

/// A journal longer than this is emptied even under steady load (see [`Journal::fold`]).
pub const FOLD_AT_BYTES: u64 = 1 << 20;

pub struct Journal {
    path: PathBuf,
    file: Mutex<Open>,
}

struct Open {
    file: File,
    len: u64,
    /// An append failed part-way: the next line starts on a fresh line, so the torn one
    /// cannot swallow it.
    torn: bool,
}

/// One journalled settlement, as written (a stable layout: replay may read a line an older
/// build wrote). Written from borrowed text, times as Unix nanoseconds: encoding a line is on
/// every request's path, and chrono's text formatting cost more than the rest of the line.
#[derive(Serialize, Deserialize)]
struct Line<'a> {
    row: Row<'a>,
    debit_micros: i64,
    free: bool,
    /// (UTC day, micro-dollars) of a free request's free-spend adjustment.
    free_spend: Option<(i64, i64)>,
    /// (hold id, day start, month start).
    hold: Option<(Cow<'a, str>, i64, i64)>,
}

#[derive(Serialize, Deserialize)]
struct Row<'a> {
    id: Cow<'a, str>,
    key_id: Cow<'a, str>,
    account_id: Cow<'a, str>,
    provider: Cow<'a, str>,
    model: Cow<'a, str>,
    tier: Cow<'a, str>,
    prompt_tokens: i64,
    completion_tokens: i64,
    cached_tokens: i64,
    reasoning_tokens: i64,
    cost_micros: i64,
    premium_cost_micros: i64,
    latency_ms: i64,
    ttft_ms: Option<i64>,
    status: Cow<'a, str>,
    stream: bool,
    protocol: Cow<'a, str>,
    upstream_request_id: Option<Cow<'a, str>>,
    client_request_id: Option<Cow<'a, str>>,
    body_sha256: Option<Cow<'a, str>>,
    created_at: i64,
}

/// Nanoseconds since 1970 (exact, where the database keeps what it is given; `i64` reaches
/// the year 2262).
fn nanos(t: NaiveDateTime) -> i64 {
    t.and_utc().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

fn time(nanos: i64) -> io::Result<NaiveDateTime> {
    Ok(chrono::DateTime::from_timestamp_nanos(nanos).naive_utc())
}

impl Journal {
    /// The journal of the SQLite database at `db_path` (`<db_path>-settlements`).
    pub fn path_for(db_path: &str) -> PathBuf {
        PathBuf::from(format!("{db_path}-settlements"))
    }

    /// Opens (creates) the journal and locks it for this process: a second gateway on the
    /// same SQLite file would empty a journal whose settlements it does not hold, and its
    /// account actors would spend the same balances, so it is refused.
    pub fn open(path: &Path) -> io::Result<Journal> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        if let Err(e) = file.try_lock() {
            return Err(match e {
                std::fs::TryLockError::WouldBlock => io::Error::other(format!(
                    "{} is held by another running gateway: one SQLite database serves one \
                     process (several replicas share a PostgreSQL database)",
                    path.display()
                )),
                std::fs::TryLockError::Error(e) => e,
            });
        }
        let len = file.metadata()?.len();
        Ok(Journal {
            path: path.to_owned(),
            file: Mutex::new(Open {
                file,
                len,
                torn: len > 0,
            }),
        })
    }

    /// Appends `line` (from [`encode`]), then hands `item` to `then` (the writer's queue)
    /// before any other append or fold can happen: so when [`Journal::fold`] holds appends off,
    /// every settlement in the file is in the writer's hands. A failed append gives `item` back.
    pub fn append<T>(
        &self,
        mut line: Vec<u8>,
        item: T,
        then: impl FnOnce(T),
    ) -> Result<(), (io::Error, T)> {
        let mut open = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if open.torn {
            line.insert(0, b'\n');
        }
        if let Err(e) = open.file.write_all(&line) {
            open.torn = true;
            return Err((e, item));
        }
        open.torn = false;
        open.len += line.len() as u64;
        then(item);
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes journalled since the file was last emptied.
    pub fn len(&self) -> u64 {
        self.file.lock().unwrap_or_else(|e| e.into_inner()).len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Empties the file if `all_committed` (called with appends held off) says that every
    /// settlement journalled so far is in the database.
    pub fn fold(&self, all_committed: impl FnOnce() -> bool) -> io::Result<bool> {
        let mut open = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if open.len == 0 || !all_committed() {
            return Ok(false);
        }
        open.file.set_len(0)?;
        open.len = 0;
        open.torn = false;
        Ok(true)
    }
}

/// `,"name":` as one literal: a key costs one copy, not three.
macro_rules! key {
    ($name:literal) => {
        concat!(",\"", $name, "\":")
    };
}

/// A settlement's journal line, newline included: the bytes `serde_json::to_vec(&Line)`
/// writes (a test holds them equal), but with the keys written as the literal text they are.
/// The derived encoder escapes every key and goes through serde's per-field calls, which cost
/// about as much as the rest of a request's settlement; the values are written as serde_json
/// writes them (see [`Plain`]).
pub fn encode(s: &Settlement) -> io::Result<Vec<u8>> {
    let line = Line::from(s);
    let r = &line.row;
    // A line is 600 to 800 bytes: room for it at once, not a copy when it passes 512.
    let mut w = LineWriter(Vec::with_capacity(1024));
    w.raw(b"{\"row\":{\"id\":");
    r.id.write(&mut w.0);
    w.field(key!("key_id"), &r.key_id);
    w.field(key!("account_id"), &r.account_id);
    w.field(key!("provider"), &r.provider);
    w.field(key!("model"), &r.model);
    w.field(key!("tier"), &r.tier);
    w.field(key!("prompt_tokens"), &r.prompt_tokens);
    w.field(key!("completion_tokens"), &r.completion_tokens);
    w.field(key!("cached_tokens"), &r.cached_tokens);
    w.field(key!("reasoning_tokens"), &r.reasoning_tokens);
    w.field(key!("cost_micros"), &r.cost_micros);
    w.field(key!("premium_cost_micros"), &r.premium_cost_micros);
    w.field(key!("latency_ms"), &r.latency_ms);
    w.field(key!("ttft_ms"), &r.ttft_ms);
    w.field(key!("status"), &r.status);
    w.field(key!("stream"), &r.stream);
    w.field(key!("protocol"), &r.protocol);
    w.field(key!("upstream_request_id"), &r.upstream_request_id);
    w.field(key!("client_request_id"), &r.client_request_id);
    w.field(key!("body_sha256"), &r.body_sha256);
    w.field(key!("created_at"), &r.created_at);
    w.raw(b"}");
    w.field(key!("debit_micros"), &line.debit_micros);
    w.field(key!("free"), &line.free);
    w.serde_field(key!("free_spend"), &line.free_spend)?;
    w.serde_field(key!("hold"), &line.hold)?;
    w.raw(b"}\n");
    Ok(w.0)
}

/// Writes a journal line: keys as given (plain ASCII names, needing no escape), the row's
/// values by [`Plain`], the rest through serde_json.
struct LineWriter(Vec<u8>);

impl LineWriter {
    fn raw(&mut self, text: &[u8]) {
        self.0.extend_from_slice(text);
    }

    /// `key` is a [`key!`]: the comma, the quoted name and the colon.
    fn key(&mut self, key: &str) {
        self.0.extend_from_slice(key.as_bytes());
    }

    /// `,"key":value`
    fn field<T: Plain + ?Sized>(&mut self, key: &str, v: &T) {
        self.key(key);
        v.write(&mut self.0);
    }

    fn serde_field<T: Serialize + ?Sized>(&mut self, key: &str, v: &T) -> io::Result<()> {
        self.key(key);
        serde_json::to_writer(&mut self.0, v).map_err(io::Error::other)
    }
}

/// A row's value written as serde_json writes it, without its per-value machinery: a string
/// with nothing to escape is copied as it is (serde_json's escaper reads it a byte at a time,
/// which was most of the line's cost), a number by `itoa`.
trait Plain {
    fn write(&self, out: &mut Vec<u8>);
}

impl Plain for str {
    fn write(&self, out: &mut Vec<u8>) {
        // Folded without an early exit, so that the compiler checks many bytes at a time.
        let escapes = self.bytes().fold(false, |any, b| {
            any | (b < 0x20) | (b == b'"') | (b == b'\\')
        });
        if escapes {
            // Writing a `str` into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, self);
        } else {
            out.reserve(self.len() + 2);
            out.push(b'"');
            out.extend_from_slice(self.as_bytes());
            out.push(b'"');
        }
    }
}

impl Plain for Cow<'_, str> {
    fn write(&self, out: &mut Vec<u8>) {
        self.as_ref().write(out)
    }
}

impl Plain for i64 {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(itoa::Buffer::new().format(*self).as_bytes());
    }
}

impl Plain for bool {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(if *self { b"true" } else { b"false" });
    }
}

impl<T: Plain> Plain for Option<T> {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Some(v) => v.write(out),
            None => out.extend_from_slice(b"null"),
        }
    }
}

/// The settlements in the journal at `path` (none when there is no file). A line that does not
/// parse is a torn append (the process died inside the `write`): logged and skipped, as it was
/// never acknowledged to its request.
pub fn read(path: &Path) -> io::Result<Vec<Settlement>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for (n, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        let parsed = serde_json::from_slice::<Line>(&line)
            .map_err(io::Error::other)
            .and_then(Line::settlement);
        match parsed {
            Ok(s) => out.push(s),
            Err(e) => log::warn!("settlement journal line {}: skipped ({e})", n + 1),
        }
    }
    Ok(out)
}

impl<'a> From<&'a Settlement> for Line<'a> {
    fn from(s: &'a Settlement) -> Line<'a> {
        let r = &s.row;
        let text = |t: &'a str| Cow::Borrowed(t);
        Line {
            row: Row {
                id: text(&r.id),
                key_id: text(&r.key_id),
                account_id: text(&r.account_id),
                provider: text(&r.provider),
                model: text(&r.model),
                tier: text(&r.tier),
                prompt_tokens: r.prompt_tokens,
                completion_tokens: r.completion_tokens,
                cached_tokens: r.cached_tokens,
                reasoning_tokens: r.reasoning_tokens,
                cost_micros: r.cost_micros,
                premium_cost_micros: r.premium_cost_micros,
                latency_ms: r.latency_ms,
                ttft_ms: r.ttft_ms,
                status: text(&r.status),
                stream: r.stream,
                protocol: text(&r.protocol),
                upstream_request_id: r.upstream_request_id.as_deref().map(text),
                client_request_id: r.client_request_id.as_deref().map(text),
                body_sha256: r.body_sha256.as_deref().map(text),
                created_at: nanos(r.created_at),
            },
            debit_micros: s.debit_micros,
            free: s.free,
            free_spend: s.free_spend.map(|(day, delta)| (nanos(day), delta)),
            hold: s
                .hold
                .as_ref()
                .map(|h| (text(&h.id), nanos(h.day_start), nanos(h.month_start))),
        }
    }
}

impl Line<'_> {
    fn settlement(self) -> io::Result<Settlement> {
        let r = self.row;
        let own = Cow::into_owned;
        Ok(Settlement {
            row: UsageRow {
                id: own(r.id),
                key_id: own(r.key_id),
                provider: own(r.provider),
                model: own(r.model),
                tier: own(r.tier),
                prompt_tokens: r.prompt_tokens,
                completion_tokens: r.completion_tokens,
                cost_micros: r.cost_micros,
                latency_ms: r.latency_ms,
                ttft_ms: r.ttft_ms,
                status: own(r.status),
                stream: r.stream,
                upstream_request_id: r.upstream_request_id.map(own),
                client_request_id: r.client_request_id.map(own),
                created_at: time(r.created_at)?,
                premium_cost_micros: r.premium_cost_micros,
                protocol: own(r.protocol),
                cached_tokens: r.cached_tokens,
                reasoning_tokens: r.reasoning_tokens,
                account_id: own(r.account_id),
                body_sha256: r.body_sha256.map(own),
            },
            debit_micros: self.debit_micros,
            free: self.free,
            free_spend: match self.free_spend {
                Some((day, delta)) => Some((time(day)?, delta)),
                None => None,
            },
            hold: match self.hold {
                Some((id, day, month)) => Some(HoldSettled {
                    id: own(id),
                    day_start: time(day)?,
                    month_start: time(month)?,
                }),
                None => None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Strings a journal line must carry through escaping: quotes, backslashes, control
    /// characters, non-ASCII, and nothing at all.
    const TEXTS: [&str; 10] = [
        "",
        "plain",
        "quote \" and \\ backslash",
        "line\nbreak\ttab\u{1}\u{1f}",
        "ünïcødé ✓ 🚀",
        "</script>",
        "\u{7f}del",
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "a long plain string, longer than a vector register, until its very last byte\\",
        "a long plain string, longer than a vector register, until its very last byte\u{0}",
    ];

    fn settlement(n: usize) -> Settlement {
        let text = |k: usize| TEXTS[(n + k) % TEXTS.len()].to_owned();
        let some = |k: usize| (!(n + k).is_multiple_of(3)).then(|| text(k));
        let at = |k: i64| {
            chrono::DateTime::from_timestamp_nanos(1_764_000_000_123_456_789 + k * n as i64)
                .naive_utc()
        };
        let v = n as i64;
        Settlement {
            row: UsageRow {
                id: text(0),
                key_id: text(1),
                provider: text(2),
                model: text(3),
                tier: text(4),
                prompt_tokens: v,
                completion_tokens: -v,
                cost_micros: v * 1_000_003,
                latency_ms: i64::MAX - v,
                ttft_ms: n.is_multiple_of(2).then_some(v),
                status: text(5),
                stream: n % 2 == 1,
                upstream_request_id: some(6),
                client_request_id: some(7),
                created_at: at(1),
                premium_cost_micros: i64::MIN + v,
                protocol: text(8),
                cached_tokens: v / 2,
                reasoning_tokens: v / 3,
                account_id: text(9),
                body_sha256: some(10),
            },
            debit_micros: v * 7,
            free: n.is_multiple_of(3),
            free_spend: (!n.is_multiple_of(4)).then(|| (at(2), -v)),
            hold: (!n.is_multiple_of(5)).then(|| HoldSettled {
                id: text(11),
                day_start: at(3),
                month_start: at(4),
            }),
        }
    }

    /// The hand-written line is byte for byte what the derived encoder writes, and reads back
    /// as the settlement it came from.
    #[test]
    fn a_line_is_what_serde_writes_and_reads_back() {
        for n in 0..420 {
            let s = settlement(n);
            let mut derived = serde_json::to_vec(&Line::from(&s)).expect("derived");
            derived.push(b'\n');
            let line = encode(&s).expect("encode");
            assert_eq!(
                String::from_utf8_lossy(&line),
                String::from_utf8_lossy(&derived),
                "settlement {n}"
            );
            let back = serde_json::from_slice::<Line>(&line[..line.len() - 1])
                .expect("parses")
                .settlement()
                .expect("settlement");
            assert_eq!(format!("{:?}", back.row), format!("{:?}", s.row), "{n}");
            let other = |s: &Settlement| {
                let hold = s.hold.as_ref().map(|h| (&h.id, h.day_start, h.month_start));
                format!(
                    "{} {} {:?} {:?}",
                    s.debit_micros, s.free, s.free_spend, hold
                )
            };
            assert_eq!(other(&back), other(&s), "{n}");
        }
    }
}
