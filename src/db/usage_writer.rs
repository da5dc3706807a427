//! Group commit for usage rows: one thread takes whatever rows have queued up, writes them in
//! a single transaction, then acknowledges each. A request waits for its acknowledgement
//! before its final byte leaves, so a completed response is always on disk, while many
//! requests share one commit (and one fsync).

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::Duration;

use tokio::sync::oneshot;

use super::models::usage::{self, UsageRow};
use super::Pool;

/// At most this many rows per transaction.
const MAX_BATCH: usize = 512;
/// Pause before retrying a batch whose commit failed (database briefly down).
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Retries of one batch before its rows are given up on (and logged).
const MAX_RETRIES: u32 = 25;

struct Job {
    row: UsageRow,
    done: Option<oneshot::Sender<bool>>,
}

/// Cloneable handle to the writer thread.
#[derive(Clone)]
pub struct UsageWriter {
    tx: Sender<Job>,
}

impl UsageWriter {
    /// Starts the writer thread on `pool`.
    pub fn start(pool: Pool) -> UsageWriter {
        let (tx, rx) = mpsc::channel();
        let spawned = thread::Builder::new()
            .name("usage-writer".into())
            .spawn(move || run(pool, rx));
        if let Err(e) = spawned {
            log::error!("cannot start usage writer: {e}");
        }
        UsageWriter { tx }
    }

    /// Queues a row; the returned receiver resolves to `true` once it is committed.
    pub fn write(&self, row: UsageRow) -> oneshot::Receiver<bool> {
        let (done, rx) = oneshot::channel();
        if self
            .tx
            .send(Job {
                row,
                done: Some(done),
            })
            .is_err()
        {
            log::error!("usage writer is gone; a usage row was not recorded");
        }
        rx
    }
}

fn run(pool: Pool, rx: Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.recv_timeout(Duration::ZERO) {
                Ok(j) => jobs.push(j),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let ok = commit(&pool, &jobs);
        for job in &mut jobs {
            if let Some(done) = job.done.take() {
                let _ = done.send(ok);
            }
        }
    }
}

fn commit(pool: &Pool, jobs: &[Job]) -> bool {
    let rows: Vec<UsageRow> = jobs.iter().map(|j| j.row.clone()).collect();
    for attempt in 0..=MAX_RETRIES {
        let result = pool
            .get()
            .map_err(Into::into)
            .and_then(|mut c| usage::insert_batch(&mut c, &rows));
        match result {
            Ok(()) => return true,
            Err(e) => {
                log::warn!(
                    "usage commit of {} rows failed (attempt {attempt}): {e}",
                    rows.len()
                );
                thread::sleep(RETRY_PAUSE);
            }
        }
    }
    log::error!(
        "gave up on {} usage rows: {:?}",
        rows.len(),
        rows.iter().map(|r| &r.id).collect::<Vec<_>>()
    );
    false
}
