//! Group commit for settlements (a usage row, plus the ledger debit or the free request it
//! used): one thread takes whatever has queued up, writes it in a single transaction, then
//! acknowledges each. A request waits for its acknowledgement before its final byte leaves,
//! so a completed response is always on disk, while many requests share one commit. Each
//! commit also announces the spend to the other replicas (see [`super::events`]), from inside
//! the transaction, so they hear of it exactly when it is committed. At shutdown,
//! [`UsageWriter::flush`] waits until everything queued before it is committed.
//!
//! On SQLite a settlement is first appended to the [`journal`](super::journal), which makes
//! it durable: the request goes on at once, and the writer folds what the journal holds into
//! the database in batches, at most [`FOLD_WINDOW`] after it was journalled (at once for a
//! [`UsageWriter::flush`], which readers of usage and money call first: [`UsageWriter::settled`]).
//! A commit per request was most of a request's cost.
//!
//! When the database is away the writer never gives a settlement up: it keeps the batch in
//! memory and tries again until it commits. The request waiting on one decides, once its
//! commit has failed ([`Pending::wait`]): a JSON answer not yet sent withdraws it (the client
//! gets a 503, so nothing is served unpaid, and the writer gives back what the request set
//! aside in the database: its hold, its free-spend estimate), while a stream, whose text is
//! already out, leaves it held here until the database returns.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use tokio::sync::oneshot;

use super::events::{self, Event};
use super::journal::{self, Journal};
use super::models::usage::UsageRow;
use super::models::{account, free_spend, hold, ledger, usage};
use super::{health, DbConn, DbError, Pool};

/// At most this many rows per transaction.
const MAX_BATCH: usize = 512;
/// Journalled settlements not yet committed, beyond which a request waits for its own commit
/// instead of journalling. The writer runs in the idle class (see [`super::sched::idle`]), so
/// under saturation it only gets the core when the worker has nothing to do: this makes the
/// worker wait for it rather than let settlements pile up in memory. About a tenth of a second
/// of a closed loop; far above what steady traffic leaves queued (a fold window's worth).
/// The price is paid at saturation only: a closed loop's p99 went from about 5.5 to 13 ms
/// (the requests caught by a drain), with the same throughput. A bound of one batch (512)
/// drained more often and cost 30 ms p99 and 13% of the throughput; 8,192 changed little.
pub const MAX_BACKLOG: usize = 4 * MAX_BATCH;
/// Journalled settlements queued before the writer is woken ahead of its fold window: under
/// load a batch is this size. With the window alone a closed loop queued thousands of rows and
/// committed them in one burst on the core a worker shares (closed-loop p99 7 -> 22 ms, and
/// the queue in memory); 128 keeps the p99 at 6-7 ms with the throughput of large batches
/// (32 cost a tenth of it: 0.38-0.40x of direct against 0.43-0.44x).
const WAKE_AT: usize = 128;
/// How long journalled settlements may wait for others to share their commit. The journal
/// holds them meanwhile, and readers of usage and money fold it first ([`UsageWriter::settled`]),
/// so a longer window costs no reader anything: it only lets more rows share a commit (a
/// commit's fixed cost, its WAL frames and their checksums, was ~100k instructions).
pub const FOLD_WINDOW: Duration = Duration::from_millis(200);
/// Pause before retrying a batch whose commit failed, doubled up to [`MAX_RETRY_PAUSE`].
const RETRY_PAUSE: Duration = Duration::from_millis(100);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(1);
/// The writer's wait for a connection: short, since a failed attempt is simply retried and a
/// request may be waiting to withdraw its settlement in between.
const CONNECT_WAIT: Duration = Duration::from_secs(1);
/// After this long a request looks at how its commit is going (see [`Pending::wait`]).
const PATIENCE: Duration = Duration::from_secs(2);
/// How often a request past its patience looks again.
const RECHECK: Duration = Duration::from_millis(100);

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

/// Where a settlement stands, shared by the writer and the request waiting on it. Only the
/// transitions below happen, each by compare-and-swap, so a settlement is either committed or
/// withdrawn, never both: QUEUED/RETRYING -> COMMITTING (the writer tries it) -> COMMITTED or
/// RETRYING; RETRYING (or QUEUED while the database is down) -> WITHDRAWN (the request).
const QUEUED: u8 = 0;
const COMMITTING: u8 = 1;
const COMMITTED: u8 = 2;
const RETRYING: u8 = 3;
const WITHDRAWN: u8 = 4;

/// How a request's wait for its settlement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Committed,
    /// Taken back by the request: nothing of it will be written.
    Withdrawn,
    /// Not committed yet; the writer keeps it and commits it when the database returns.
    Held,
}

/// A queued settlement, as the request that queued it sees it: `None` for one committed as far
/// as its request is concerned (journalled), which needs no channel to say so.
pub struct Pending(Option<Waiting>);

/// A settlement its request waits on.
struct Waiting {
    state: Arc<AtomicU8>,
    done: oneshot::Receiver<bool>,
}

impl Pending {
    /// Waits until the settlement is committed. Past [`PATIENCE`] (at once while the database
    /// is known to be down), if its commit has failed (or it waits on a database known to be
    /// down) the request stops waiting: with
    /// `withdraw` it takes the settlement back (`Withdrawn`), otherwise it leaves it to the
    /// writer (`Held`). A commit being tried is always waited for: its result decides.
    pub async fn wait(self, withdraw: bool) -> Outcome {
        match self.0 {
            Some(waiting) => waiting.wait(withdraw).await,
            None => Outcome::Committed,
        }
    }
}

impl Waiting {
    async fn wait(mut self, withdraw: bool) -> Outcome {
        // Already answered: no clock, no timer.
        match self.done.try_recv() {
            Ok(true) => return Outcome::Committed,
            Ok(false) | Err(oneshot::error::TryRecvError::Closed) => return Outcome::Withdrawn,
            Err(oneshot::error::TryRecvError::Empty) => {}
        }
        let started = Instant::now();
        loop {
            // A database known to be down needs no patience: its commit fails (or failed).
            let patient = || started.elapsed() < PATIENCE && !health::is_down();
            let slice = if patient() {
                PATIENCE.saturating_sub(started.elapsed()).max(RECHECK)
            } else {
                RECHECK
            };
            match tokio::time::timeout(slice, &mut self.done).await {
                Ok(Ok(true)) => return Outcome::Committed,
                // Answered false (withdrawn) or the writer is gone: nothing will commit it.
                Ok(_) => return Outcome::Withdrawn,
                Err(_) if patient() => continue,
                Err(_) => {}
            }
            let state = self.state.load(Ordering::Acquire);
            let stalled = state == RETRYING || (state == QUEUED && health::is_down());
            if !stalled {
                continue;
            }
            if !withdraw {
                return Outcome::Held;
            }
            let taken =
                self.state
                    .compare_exchange(state, WITHDRAWN, Ordering::AcqRel, Ordering::Acquire);
            if taken.is_ok() {
                return Outcome::Withdrawn;
            }
        }
    }
}

/// A settlement to commit, or (`settlement: None`) a flush: answered once every job queued
/// before it is committed.
struct Job {
    settlement: Option<Settlement>,
    state: Arc<AtomicU8>,
    done: Option<oneshot::Sender<bool>>,
    /// A journalled job's place in [`UsageWriter::backlog`], given back when it is answered.
    backlog: Option<Arc<AtomicUsize>>,
}

impl Job {
    /// Journalled: durable already, and nobody waits for its commit.
    fn journalled(&self) -> bool {
        self.done.is_none()
    }

    /// Claims the settlement for a commit attempt; false when its request withdrew it.
    fn claim(&self) -> bool {
        [QUEUED, RETRYING].into_iter().any(|from| {
            self.state
                .compare_exchange(from, COMMITTING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })
    }

    fn answer(&mut self, committed: bool) {
        if committed {
            self.state.store(COMMITTED, Ordering::Release);
        }
        if let Some(backlog) = self.backlog.take() {
            backlog.fetch_sub(1, Ordering::AcqRel);
        }
        if let Some(done) = self.done.take() {
            let _ = done.send(committed);
        }
    }
}

/// Cloneable handle to the writer thread.
#[derive(Clone)]
pub struct UsageWriter {
    tx: Sender<Job>,
    journal: Option<Arc<Journal>>,
    /// The writer thread, woken (unparked) for a job someone waits for. A journalled job wakes
    /// nothing: the writer gathers those when its fold window ends, so a request's settlement
    /// costs its worker no wake-up of another thread.
    thread: Option<thread::Thread>,
    /// Journalled settlements sent since the writer last gathered its queue (see [`WAKE_AT`]).
    queued: Arc<AtomicUsize>,
    /// Journalled settlements not yet committed (see [`MAX_BACKLOG`]).
    backlog: Arc<AtomicUsize>,
    max_backlog: usize,
}

impl UsageWriter {
    /// Starts the writer thread on `pool`; `replica_id` tags its spend announcements. With a
    /// `journal` (SQLite), settlements are journalled and folded in batches.
    pub fn start(pool: Pool, replica_id: String, journal: Option<Journal>) -> UsageWriter {
        let (tx, rx) = mpsc::channel();
        let journal = journal.map(Arc::new);
        let folds = journal.clone();
        let queued = Arc::new(AtomicUsize::new(0));
        let gathered = queued.clone();
        let spawned = thread::Builder::new()
            .name("usage-writer".into())
            .spawn(move || run(pool, rx, gathered, replica_id, folds));
        let thread = match spawned {
            Ok(handle) => Some(handle.thread().clone()),
            Err(e) => {
                log::error!("cannot start usage writer: {e}");
                None
            }
        };
        UsageWriter {
            tx,
            journal,
            thread,
            queued,
            backlog: Arc::new(AtomicUsize::new(0)),
            max_backlog: MAX_BACKLOG,
        }
    }

    /// The same writer with another bound on its backlog (tests use a small one).
    pub fn with_max_backlog(mut self, max: usize) -> UsageWriter {
        self.max_backlog = max;
        self
    }

    /// Journalled settlements not yet committed to the database.
    pub fn backlog(&self) -> usize {
        self.backlog.load(Ordering::Acquire)
    }

    /// Sends a job someone waits for, and wakes the writer if it is gathering a batch.
    fn send_waited(&self, job: Job) -> bool {
        let sent = self.tx.send(job).is_ok();
        if let Some(t) = &self.thread {
            t.unpark();
        }
        sent
    }

    /// Queues a settlement; see [`Pending::wait`]. A journalled one is committed as far as its
    /// request is concerned: the journal holds it.
    pub fn write(&self, settlement: Settlement) -> Pending {
        crate::metrics::settlement_queued();
        let Some(journal) = &self.journal else {
            return self.queue(settlement);
        };
        let line = match journal::encode(&settlement) {
            Ok(line) => line,
            Err(e) => {
                log::error!("settlement journal: cannot encode a settlement ({e}); committing it");
                return self.queue(settlement);
            }
        };
        // A full backlog means the writer is being starved of the core: wait for it. Not while
        // the database is down, when the journal is what keeps requests served.
        if self.backlog.fetch_add(1, Ordering::AcqRel) >= self.max_backlog && !health::is_down() {
            self.backlog.fetch_sub(1, Ordering::AcqRel);
            return self.queue(settlement);
        }
        let appended = journal.append(line, settlement, |settlement| {
            let job = Job {
                settlement: Some(settlement),
                state: Arc::new(AtomicU8::new(QUEUED)),
                done: None,
                backlog: Some(self.backlog.clone()),
            };
            if self.tx.send(job).is_err() {
                log::error!(
                    "settlement writer is gone; a journalled settlement waits for the next start"
                );
            }
            if self.queued.fetch_add(1, Ordering::Relaxed) + 1 == WAKE_AT {
                if let Some(t) = &self.thread {
                    t.unpark();
                }
            }
        });
        match appended {
            Ok(()) => Pending(None),
            Err((e, settlement)) => {
                log::error!("settlement journal: append failed ({e}); committing it instead");
                self.backlog.fetch_sub(1, Ordering::AcqRel);
                self.queue(settlement)
            }
        }
    }

    /// Queues a settlement its request waits for.
    fn queue(&self, settlement: Settlement) -> Pending {
        let (done, rx) = oneshot::channel();
        let state = Arc::new(AtomicU8::new(QUEUED));
        let job = Job {
            settlement: Some(settlement),
            state: state.clone(),
            done: Some(done),
            backlog: None,
        };
        if !self.send_waited(job) {
            log::error!("settlement writer is gone; a settlement was not recorded");
        }
        Pending(Some(Waiting { state, done: rx }))
    }

    /// Before reading usage or money from the database: waits until the journalled
    /// settlements are in it (at once without a journal, where each request waited for its own
    /// commit). False when the writer is gone.
    pub async fn settled(&self) -> bool {
        if self.journal.is_none() {
            return true;
        }
        self.flush().await
    }

    /// Resolves to `true` once every settlement queued before this call is committed (or
    /// withdrawn): the queue is first in, first out, so the flush is answered with the batch
    /// holding the last of them. `false` when the writer is gone.
    pub async fn flush(&self) -> bool {
        let (done, rx) = oneshot::channel();
        let flush = Job {
            settlement: None,
            state: Arc::new(AtomicU8::new(QUEUED)),
            done: Some(done),
            backlog: None,
        };
        if !self.send_waited(flush) {
            return false;
        }
        rx.await.unwrap_or(false)
    }
}

/// The writer's connection, kept from one batch to the next so that the statements it
/// prepared stay prepared: a connection taken from the pool each time is often another one
/// (readers take them too), whose first run of each statement parses it again (the 16-row
/// insert costs more to parse than a batch to run). Dropped after a failed batch, so the next
/// one starts on a fresh connection. With a pool of one it is given back after each batch, so
/// readers still get it.
struct WriterConn {
    pool: Pool,
    held: Option<r2d2::PooledConnection<super::Manager>>,
}

impl WriterConn {
    fn new(pool: Pool) -> WriterConn {
        WriterConn { pool, held: None }
    }

    /// Runs `f` on the kept connection (taken from the pool when there is none).
    fn with<T>(&mut self, f: impl FnOnce(&mut DbConn) -> Result<T, DbError>) -> Result<T, DbError> {
        let mut conn = match self.held.take() {
            Some(c) => c,
            None => self.pool.get_timeout(CONNECT_WAIT)?,
        };
        let result = f(&mut conn);
        if result.is_ok() && self.pool.max_size() > 1 {
            self.held = Some(conn);
        }
        result
    }
}

fn run(
    pool: Pool,
    rx: Receiver<Job>,
    queued: Arc<AtomicUsize>,
    replica_id: String,
    journal: Option<Arc<Journal>>,
) {
    if journal.is_some() {
        // Nobody waits for a journalled settlement's commit (the journal made it durable), so
        // folding them yields the core to every request ([`super::sched`]). Without a journal
        // each request waits for its commit: the writer keeps its ordinary class.
        super::sched::idle();
    }
    let mut jobs: Vec<Job> = Vec::new();
    let mut failures: u32 = 0;
    let mut conn = WriterConn::new(pool);
    loop {
        if jobs.is_empty() {
            match rx.recv() {
                Ok(first) => jobs.push(first),
                Err(_) => return,
            }
            // Group commit: on a core shared with a busy worker, let the worker run on first,
            // so the settlements of the requests it has ready join this batch instead of
            // each paying for a transaction of its own (the writer's wake-up preempts the
            // worker). With nothing else to run, this returns at once and adds no wait.
            thread::yield_now();
        }
        // While a batch is retried, what arrives meanwhile joins it, so every waiting request
        // sees its own commit fail (and may withdraw) instead of queueing behind it. A batch of
        // journalled settlements waits up to the fold window for more, until someone waits.
        // Journalled jobs do not wake the writer (see `UsageWriter::thread`): it sleeps out the
        // window, woken early by a job someone waits for or by [`WAKE_AT`] journalled ones,
        // then takes what has come.
        let mut patient = failures == 0 && jobs.iter().all(Job::journalled);
        let until = Instant::now() + FOLD_WINDOW;
        loop {
            while jobs.len() < MAX_BATCH {
                let Ok(j) = rx.try_recv() else { break };
                patient &= j.journalled();
                jobs.push(j);
            }
            let left = until.saturating_duration_since(Instant::now());
            if !patient || jobs.len() >= MAX_BATCH || left.is_zero() {
                break;
            }
            if queued.load(Ordering::Relaxed) >= WAKE_AT {
                break;
            }
            thread::park_timeout(left);
        }
        // What came after this is counted towards the next batch (an estimate: a job taken by
        // the fold below may be counted, which only wakes the writer a little early).
        queued.store(0, Ordering::Relaxed);
        if attempt(&mut conn, &mut jobs, &replica_id, failures > 0) {
            jobs.clear();
            failures = 0;
            if let Some(journal) = &journal {
                fold(journal, &mut conn, &rx, &mut jobs, &replica_id);
            }
        } else {
            failures += 1;
            let pause = RETRY_PAUSE.saturating_mul(1 << failures.min(4));
            thread::sleep(pause.min(MAX_RETRY_PAUSE));
        }
    }
}

/// After a commit: empties the journal when everything in it is committed, that is when the
/// queue is empty while appends are held off. What the queue still held joins `jobs` for the
/// next batch. A journal past [`journal::FOLD_AT_BYTES`] (steady load: the queue is never
/// found empty) is emptied anyway: the queue is committed while appends wait, once in a while.
fn fold(
    journal: &Journal,
    conn: &mut WriterConn,
    rx: &Receiver<Job>,
    jobs: &mut Vec<Job>,
    replica_id: &str,
) {
    let force = journal.len() >= journal::FOLD_AT_BYTES;
    let folded = journal.fold(|| {
        jobs.extend(rx.try_iter());
        if jobs.is_empty() {
            return true;
        }
        if force && attempt(conn, jobs, replica_id, false) {
            jobs.clear();
            return true;
        }
        false
    });
    if let Err(e) = folded {
        log::warn!("settlement journal: cannot empty it ({e}); it is replayed at the next start");
    }
}

/// Commits what `journal` holds that the database does not (a process that died before
/// folding it), then empties it. Run at start, before anything reads money. Returns how many
/// settlements it committed.
pub fn replay(pool: &Pool, journal: &Journal, replica_id: &str) -> Result<usize, DbError> {
    let failed = |e: std::io::Error| DbError::Connect(format!("settlement journal: {e}"));
    let found = journal::read(journal.path()).map_err(failed)?;
    let mut committed = 0;
    if !found.is_empty() {
        let mut conn = pool.get()?;
        for batch in found.chunks(MAX_BATCH) {
            let batch: Vec<&Settlement> = batch.iter().collect();
            // As a retry: rows already committed (their fold did happen) are skipped.
            committed += write_batch(&mut conn, &batch, &[], replica_id, true)?;
        }
    }
    journal.fold(|| true).map_err(failed)?;
    Ok(committed)
}

/// One try at committing `jobs`; true (every job answered) when it committed.
fn attempt(conn: &mut WriterConn, jobs: &mut [Job], replica_id: &str, retry: bool) -> bool {
    let mut commits = Vec::new();
    let mut withdrawn = Vec::new();
    for job in jobs.iter() {
        if let Some(s) = &job.settlement {
            if job.claim() {
                commits.push(s);
            } else {
                withdrawn.push(s);
            }
        }
    }
    let started = Instant::now();
    let result = if commits.is_empty() && withdrawn.is_empty() {
        Ok(())
    } else if health::is_down() {
        Err(DbError::Down)
    } else {
        conn.with(|c| write_batch(c, &commits, &withdrawn, replica_id, retry))
            .map(drop)
    };
    let (n_commits, n_withdrawn) = (commits.len(), withdrawn.len());
    if let Err(e) = result {
        if !retry {
            log::warn!("settlement commit of {n_commits} failed (kept, retrying): {e}");
        }
        for job in jobs.iter() {
            // Only what this attempt claimed: a withdrawn job stays withdrawn.
            let _ = job.state.compare_exchange(
                COMMITTING,
                RETRYING,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        return false;
    }
    if retry {
        log::info!("settlements committed after retrying: {n_commits}, withdrawn: {n_withdrawn}");
    }
    if n_commits > 0 {
        // A batch of flushes alone commits nothing: no commit to time.
        crate::metrics::settlements_done(n_commits, true, started.elapsed());
    }
    if n_withdrawn > 0 {
        crate::metrics::settlements_withdrawn(n_withdrawn);
    }
    for job in jobs.iter_mut() {
        let committed = job.state.load(Ordering::Acquire) == COMMITTING || job.settlement.is_none();
        job.answer(committed);
    }
    true
}

/// Writes the settlements of `commits` and gives back what the `withdrawn` set aside, in one
/// transaction. On a `retry`, rows already there are skipped: the attempt before may have
/// committed even though its answer was lost with the connection. Returns how many of
/// `commits` were written.
fn write_batch(
    conn: &mut DbConn,
    commits: &[&Settlement],
    withdrawn: &[&Settlement],
    replica_id: &str,
    retry: bool,
) -> Result<usize, DbError> {
    crate::db::write(conn, |conn| {
        let done: HashSet<String> = if retry {
            let ids: Vec<&str> = commits
                .iter()
                .chain(withdrawn)
                .map(|s| s.row.id.as_str())
                .collect();
            usage::existing_ids(conn, &ids)?.into_iter().collect()
        } else {
            HashSet::new()
        };
        let fresh = |s: &&&Settlement| !done.contains(&s.row.id);
        let commits: Vec<&Settlement> = commits.iter().filter(fresh).copied().collect();
        for s in withdrawn.iter().filter(fresh) {
            give_back(conn, s)?;
        }
        write_settlements(conn, &commits, replica_id)?;
        Ok(commits.len())
    })
}

/// A withdrawn settlement: its hold goes and the free spend it took is given back, as for a
/// request that served nothing.
fn give_back(conn: &mut DbConn, s: &Settlement) -> Result<(), DbError> {
    if let Some((day, delta)) = s.free_spend {
        // What the database was to get beyond the cost is what it already holds of the
        // estimate (all of it with the arbiter; nothing when one process counts in memory):
        // nothing was served, so that goes back.
        free_spend::adjust(conn, day, delta - s.row.cost_micros)?;
    }
    if let Some(h) = &s.hold {
        hold::withdrawn(conn, &h.id)?;
    }
    Ok(())
}

fn write_settlements(
    conn: &mut DbConn,
    batch: &[&Settlement],
    replica_id: &str,
) -> Result<(), DbError> {
    if batch.is_empty() {
        return Ok(());
    }
    // One statement per kind of change, not per request: the rows in one multi-row insert,
    // free requests per account, debits summed per account, spend announced per key.
    let rows: Vec<&UsageRow> = batch.iter().map(|s| &s.row).collect();
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
    {
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
        Ok(())
    }
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
