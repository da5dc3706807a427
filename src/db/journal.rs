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
/// build wrote).
#[derive(Serialize, Deserialize)]
struct Line {
    row: Row,
    debit_micros: i64,
    free: bool,
    free_spend: Option<(NaiveDateTime, i64)>,
    hold: Option<(String, NaiveDateTime, NaiveDateTime)>,
}

#[derive(Serialize, Deserialize)]
struct Row {
    id: String,
    key_id: String,
    account_id: String,
    provider: String,
    model: String,
    tier: String,
    prompt_tokens: i64,
    completion_tokens: i64,
    cached_tokens: i64,
    reasoning_tokens: i64,
    cost_micros: i64,
    premium_cost_micros: i64,
    latency_ms: i64,
    ttft_ms: Option<i64>,
    status: String,
    stream: bool,
    protocol: String,
    upstream_request_id: Option<String>,
    client_request_id: Option<String>,
    body_sha256: Option<String>,
    created_at: NaiveDateTime,
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

/// A settlement's journal line, newline included.
pub fn encode(s: &Settlement) -> io::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(&Line::from(s)).map_err(io::Error::other)?;
    line.push(b'\n');
    Ok(line)
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
        match serde_json::from_slice::<Line>(&line) {
            Ok(l) => out.push(l.into()),
            Err(e) => log::warn!("settlement journal line {}: skipped ({e})", n + 1),
        }
    }
    Ok(out)
}

impl From<&Settlement> for Line {
    fn from(s: &Settlement) -> Line {
        let r = &s.row;
        Line {
            row: Row {
                id: r.id.clone(),
                key_id: r.key_id.clone(),
                account_id: r.account_id.clone(),
                provider: r.provider.clone(),
                model: r.model.clone(),
                tier: r.tier.clone(),
                prompt_tokens: r.prompt_tokens,
                completion_tokens: r.completion_tokens,
                cached_tokens: r.cached_tokens,
                reasoning_tokens: r.reasoning_tokens,
                cost_micros: r.cost_micros,
                premium_cost_micros: r.premium_cost_micros,
                latency_ms: r.latency_ms,
                ttft_ms: r.ttft_ms,
                status: r.status.clone(),
                stream: r.stream,
                protocol: r.protocol.clone(),
                upstream_request_id: r.upstream_request_id.clone(),
                client_request_id: r.client_request_id.clone(),
                body_sha256: r.body_sha256.clone(),
                created_at: r.created_at,
            },
            debit_micros: s.debit_micros,
            free: s.free,
            free_spend: s.free_spend,
            hold: s
                .hold
                .as_ref()
                .map(|h| (h.id.clone(), h.day_start, h.month_start)),
        }
    }
}

impl From<Line> for Settlement {
    fn from(l: Line) -> Settlement {
        let r = l.row;
        Settlement {
            row: UsageRow {
                id: r.id,
                key_id: r.key_id,
                provider: r.provider,
                model: r.model,
                tier: r.tier,
                prompt_tokens: r.prompt_tokens,
                completion_tokens: r.completion_tokens,
                cost_micros: r.cost_micros,
                latency_ms: r.latency_ms,
                ttft_ms: r.ttft_ms,
                status: r.status,
                stream: r.stream,
                upstream_request_id: r.upstream_request_id,
                client_request_id: r.client_request_id,
                created_at: r.created_at,
                premium_cost_micros: r.premium_cost_micros,
                protocol: r.protocol,
                cached_tokens: r.cached_tokens,
                reasoning_tokens: r.reasoning_tokens,
                account_id: r.account_id,
                body_sha256: r.body_sha256,
            },
            debit_micros: l.debit_micros,
            free: l.free,
            free_spend: l.free_spend,
            hold: l.hold.map(|(id, day_start, month_start)| HoldSettled {
                id,
                day_start,
                month_start,
            }),
        }
    }
}
