//! Group commit for settlements (a usage row, plus the ledger debit or the free request it
//! used): one thread takes whatever has queued up, writes it in a single transaction, then
//! acknowledges each. A request waits for its acknowledgement before its final byte leaves,
//! so a completed response is always on disk, while many requests share one commit. Each
//! commit also announces the spend to the other replicas (see [`super::events`]), from inside
//! the transaction, so they hear of it exactly when it is committed. At shutdown,
//! [`UsageWriter::flush`] waits until everything queued before it is committed.

use std::collections::BTreeMap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use tokio::sync::oneshot;

use super::events::{self, Event};
use super::models::usage::UsageRow;
use super::models::{account, free_spend, hold, ledger, usage};
use super::{DbConn, DbError, Pool};

/// At most this many rows per transaction.
const MAX_BATCH: usize = 512;
/// Pause before retrying a batch whose commit failed (database briefly down).
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Retries of one batch before its rows are given up on (and logged).
const MAX_RETRIES: u32 = 25;

/// What one finished request leaves in the database.
#[derive(Debug, Clone)]
pub struct Settlement {
    pub row: UsageRow,
    /// Micro-dollars taken from the prepaid balance (0 for a free-tier request).
    pub debit_micros: i64,
    /// The request used one of the key's free requests.
    pub free: bool,
    /// For a free request: the UTC day whose free spend holds its estimate, and the actual
    /// cost minus that estimate (usually negative, a refund), applied in the same commit.
    pub free_spend: Option<(NaiveDateTime, i64)>,
    /// The database hold of the reservation (several replicas on PostgreSQL): deleted in the
    /// same commit, and the cost added to the key's windows it was checked against.
    pub hold: Option<HoldSettled>,
}

#[derive(Debug, Clone)]
pub struct HoldSettled {
    pub id: String,
    pub day_start: NaiveDateTime,
    pub month_start: NaiveDateTime,
}

/// A settlement to commit, or (`settlement: None`) a flush: answered once every job queued
/// before it is committed (or given up on).
struct Job {
    settlement: Option<Settlement>,
    done: Option<oneshot::Sender<bool>>,
}

/// Cloneable handle to the writer thread.
#[derive(Clone)]
pub struct UsageWriter {
    tx: Sender<Job>,
}

impl UsageWriter {
    /// Starts the writer thread on `pool`; `replica_id` tags its spend announcements.
    pub fn start(pool: Pool, replica_id: String) -> UsageWriter {
        let (tx, rx) = mpsc::channel();
        let spawned = thread::Builder::new()
            .name("usage-writer".into())
            .spawn(move || run(pool, rx, replica_id));
        if let Err(e) = spawned {
            log::error!("cannot start usage writer: {e}");
        }
        UsageWriter { tx }
    }

    /// Queues a settlement; the receiver resolves to `true` once it is committed.
    pub fn write(&self, settlement: Settlement) -> oneshot::Receiver<bool> {
        let (done, rx) = oneshot::channel();
        let job = Job {
            settlement: Some(settlement),
            done: Some(done),
        };
        crate::metrics::settlement_queued();
        if self.tx.send(job).is_err() {
            log::error!("settlement writer is gone; a settlement was not recorded");
        }
        rx
    }

    /// Resolves to `true` once every settlement queued before this call is committed: the
    /// queue is first in, first out, so the flush is answered after the batch holding the last
    /// of them. `false` when the writer is gone or the batch with the flush failed.
    pub async fn flush(&self) -> bool {
        let (done, rx) = oneshot::channel();
        let flush = Job {
            settlement: None,
            done: Some(done),
        };
        if self.tx.send(flush).is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }
}

fn run(pool: Pool, rx: Receiver<Job>, replica_id: String) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.recv_timeout(Duration::ZERO) {
                Ok(j) => jobs.push(j),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let batch: Vec<&Settlement> = jobs.iter().filter_map(|j| j.settlement.as_ref()).collect();
        let ok = batch.is_empty() || {
            let started = Instant::now();
            let ok = commit(&pool, &batch, &replica_id);
            crate::metrics::settlements_done(batch.len(), ok, started.elapsed());
            ok
        };
        for job in &mut jobs {
            if let Some(done) = job.done.take() {
                let _ = done.send(ok);
            }
        }
    }
}

fn commit(pool: &Pool, batch: &[&Settlement], replica_id: &str) -> bool {
    for attempt in 0..=MAX_RETRIES {
        let result = pool
            .get()
            .map_err(Into::into)
            .and_then(|mut c| write_batch(&mut c, batch, replica_id));
        match result {
            Ok(()) => return true,
            Err(e) => {
                log::warn!(
                    "settlement commit of {} failed (attempt {attempt}): {e}",
                    batch.len()
                );
                thread::sleep(RETRY_PAUSE);
            }
        }
    }
    let ids: Vec<&str> = batch.iter().map(|s| s.row.id.as_str()).collect();
    log::error!("gave up on {} settlements: {ids:?}", batch.len());
    false
}

fn write_batch(conn: &mut DbConn, batch: &[&Settlement], replica_id: &str) -> Result<(), DbError> {
    use diesel::Connection;
    // One statement per kind of change, not per request: the rows in one multi-row insert,
    // free requests per account, debits summed per account, spend announced per key.
    let rows: Vec<UsageRow> = batch.iter().map(|s| s.row.clone()).collect();
    let mut free: BTreeMap<&str, i64> = BTreeMap::new();
    let mut spend: BTreeMap<(&str, &str), Spend> = BTreeMap::new();
    let mut debits = Vec::new();
    let mut free_days: BTreeMap<NaiveDateTime, i64> = BTreeMap::new();
    for s in batch {
        if let Some((day, delta)) = s.free_spend {
            *free_days.entry(day).or_default() += delta;
        }
        let total = spend
            .entry((s.row.account_id.as_str(), s.row.key_id.as_str()))
            .or_default();
        total.cost_micros += s.row.cost_micros;
        total.debit_micros += s.debit_micros;
        if s.free {
            total.free += 1;
            *free.entry(s.row.account_id.as_str()).or_default() += 1;
        }
        if s.debit_micros != 0 {
            debits.push(debit_entry(&s.row, s.debit_micros));
        }
    }
    conn.transaction(|conn| {
        usage::insert_many(conn, &rows)?;
        for (id, n) in &free {
            account::use_free_requests(conn, id, *n)?;
        }
        ledger::record_debits(conn, &debits)?;
        for (day, delta) in &free_days {
            free_spend::adjust(conn, *day, *delta)?;
        }
        for s in batch {
            if let Some(h) = &s.hold {
                let (key, cost) = (&s.row.key_id, s.row.cost_micros);
                hold::settled(conn, &h.id, key, h.day_start, h.month_start, cost)?;
            }
        }
        // Other replicas' BudgetActors learn of this spend when (and only if) it commits:
        // NOTIFY inside the transaction is delivered at COMMIT.
        for ((account, key), s) in &spend {
            events::notify(conn, replica_id, s.event(account, key))?;
        }
        Ok::<_, DbError>(())
    })
}

/// What one batch spent through one key.
#[derive(Debug, Default, Clone, Copy)]
pub struct Spend {
    pub cost_micros: i64,
    pub debit_micros: i64,
    pub free: i64,
}

impl Spend {
    fn event(&self, account_id: &str, key_id: &str) -> Event {
        Event::Spend {
            account: account_id.to_owned(),
            key: key_id.to_owned(),
            cost: self.cost_micros,
            debit: self.debit_micros,
            free: self.free,
            xid: None,
        }
    }
}

fn debit_entry(row: &UsageRow, micros: i64) -> ledger::Entry {
    ledger::Entry {
        id: crate::ids::ordered_id("led_"),
        key_id: row.key_id.clone(),
        kind: ledger::DEBIT.to_owned(),
        reference: row.id.clone(),
        amount_micros: -micros,
        memo: None,
        created_at: row.created_at,
        account_id: row.account_id.clone(),
    }
}
