//! The database: a `MultiConnection` over SQLite and PostgreSQL, an r2d2 pool whose manager
//! picks the backend from the URL scheme (diesel's own `establish` would try each variant in
//! turn, and SQLite accepts any string as a path), embedded migrations, the query modules
//! (`models/<table>.rs`), the group-commit settlement writer and the replicas' announcements.
//! All SQL lives under this module, and it is called, never calling out: it imports nothing of
//! the crate but the leaves `time`, `ids` and `money`. The async side reaches it through
//! [`run`].

pub mod cached;
pub mod events;
pub mod health;
pub mod journal;
pub mod models;
mod sched;
pub mod schema;
mod sqlite_time;
pub mod usage_writer;

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Serialises migrations when several replicas start at once against one PostgreSQL.
const PG_MIGRATION_LOCK: i64 = 0x7075_7261; // "pura"

#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

pub type Pool = r2d2::Pool<Manager>;
pub type PooledConn = r2d2::PooledConnection<Manager>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("database connection: {0}")]
    Connect(String),
    #[error("database pool: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("database worker: {0}")]
    Blocking(String),
    #[error("database unreachable")]
    Down,
}

/// Database work that may be run again after a lost answer and commits at most once (its own
/// transaction sees to it), e.g. a paid invoice's credit handed to whichever actor runs it.
pub type Retryable<T> = std::sync::Arc<dyn Fn(&mut DbConn) -> Result<T, DbError> + Send + Sync>;

/// How long a caller waits for a pooled connection before giving up.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);
/// The wait for a connection is cut into slices this long, so that a caller already waiting
/// when the database goes away fails as soon as [`health`] sees it, not after [`POOL_TIMEOUT`].
const POOL_WAIT_SLICE: Duration = Duration::from_millis(250);

/// The one way the async side reaches the database: `f` runs on actix's blocking pool with a
/// pooled connection (actix workers are current-thread runtimes, so never `block_in_place`).
pub async fn run<T, F>(pool: &Pool, f: F) -> Result<T, DbError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConn) -> Result<T, DbError> + Send + 'static,
{
    if health::is_down() {
        return Err(DbError::Down);
    }
    let pool = pool.clone();
    actix_web::web::block(move || f(&mut *get(&pool)?))
        .await
        .map_err(|e| DbError::Blocking(e.to_string()))?
}

/// A transaction that writes. On SQLite it begins `IMMEDIATE`, taking the write lock up
/// front: a deferred transaction that reads before it writes cannot upgrade once another
/// connection has committed since its read (`SQLITE_BUSY_SNAPSHOT`, which the busy timeout
/// does not wait out), so under concurrent writers it failed with "database is locked". On
/// PostgreSQL, and nested inside another transaction, it is diesel's plain `transaction`.
pub fn write<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let nested = <DbConn as TransactionManager<DbConn>>::transaction_manager_status_mut(conn)
        .transaction_depth()?
        .is_some();
    match conn {
        DbConn::Sqlite(c) if !nested => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?
        }
        _ => return conn.transaction(f),
    }
    // As diesel's `TransactionManager::transaction`, after the begin above.
    match f(conn) {
        Ok(value) => {
            DbConn::commit_transaction(conn)?;
            Ok(value)
        }
        Err(error) => match DbConn::rollback_transaction(conn) {
            Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(error),
            Err(rollback) => Err(rollback.into()),
        },
    }
}

/// A pooled connection, unless the pool has none for [`POOL_TIMEOUT`] or the database is
/// seen down meanwhile.
pub fn get(pool: &Pool) -> Result<PooledConn, DbError> {
    let deadline = Instant::now() + POOL_TIMEOUT;
    loop {
        if health::is_down() {
            return Err(DbError::Down);
        }
        match pool.get_timeout(POOL_WAIT_SLICE) {
            Ok(conn) => return Ok(conn),
            Err(e) if Instant::now() >= deadline => return Err(e.into()),
            Err(_) => {}
        }
    }
}

#[derive(Debug, Clone)]
enum Target {
    Sqlite(String),
    Pg(String),
}

/// r2d2 manager that opens the right backend for the URL and sets SQLite's pragmas.
#[derive(Debug)]
pub struct Manager {
    target: Target,
}

impl Manager {
    /// `sqlite://pura.db` (relative), `sqlite:///abs/path.db`, `postgres://…` or `postgresql://…`.
    pub fn new(url: &str) -> Result<Manager, DbError> {
        let target = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Target::Pg(url.to_owned())
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            Target::Sqlite(path.to_owned())
        } else {
            return Err(DbError::Connect(format!(
                "unsupported database url `{url}` (use sqlite://… or postgres://…)"
            )));
        };
        Ok(Manager { target })
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConn;
    type Error = DbError;

    fn connect(&self) -> Result<DbConn, DbError> {
        match &self.target {
            Target::Sqlite(path) => {
                let mut c = SqliteConnection::establish(path)
                    .map_err(|e| DbError::Connect(e.to_string()))?;
                // WAL lets readers run beside the one writer; busy_timeout makes a second
                // writer wait instead of failing with SQLITE_BUSY.
                // Automatic checkpoints would run (and fsync) inside whichever commit crosses
                // the threshold, stalling the request waiting on it; `checkpointer` runs them
                // off the request path instead.
                c.batch_execute(
                    "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                )?;
                Ok(DbConn::Sqlite(c))
            }
            Target::Pg(url) => PgConnection::establish(url)
                .map(DbConn::Pg)
                .map_err(|e| DbError::Connect(e.to_string())),
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), DbError> {
        conn.batch_execute("SELECT 1").map_err(DbError::from)
    }

    fn has_broken(&self, _conn: &mut DbConn) -> bool {
        false
    }
}

/// The file of a `sqlite://` URL, unless it is an in-memory database.
pub fn sqlite_file(url: &str) -> Option<&str> {
    let path = url.strip_prefix("sqlite://")?;
    let memory = path.is_empty() || path.contains(":memory:") || path.contains("mode=memory");
    (!memory).then_some(path)
}

/// Builds the pool; fails fast when the database cannot be reached.
pub fn pool(url: &str, size: u32) -> Result<Pool, DbError> {
    let manager = Manager::new(url)?;
    // A SQLite connection is an open file: it cannot go stale, and a test query on every
    // checkout would cost a statement parse per settlement. A PostgreSQL one can be cut.
    let check = matches!(manager.target, Target::Pg(_));
    Ok(r2d2::Pool::builder()
        .max_size(size)
        .connection_timeout(POOL_TIMEOUT)
        .test_on_check_out(check)
        .build(manager)?)
}

/// Runs pending migrations of the connection's backend.
pub fn migrate(conn: &mut DbConn) -> Result<(), DbError> {
    let result = match conn {
        DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ()),
        DbConn::Pg(c) => {
            c.batch_execute(&format!("SELECT pg_advisory_lock({PG_MIGRATION_LOCK})"))?;
            let r = c.run_pending_migrations(PG_MIGRATIONS).map(|_| ());
            c.batch_execute(&format!("SELECT pg_advisory_unlock({PG_MIGRATION_LOCK})"))?;
            r
        }
    };
    result.map_err(|e| DbError::Connect(format!("migration failed: {e}")))
}

/// Runs the pending migrations up to and including `version` (the date-and-number part of a
/// migration's folder name, e.g. `2026-11-29-000007`): tests build a database as an older
/// release left it, fill it, then migrate the rest with [`migrate`].
pub fn migrate_until(conn: &mut DbConn, version: &str) -> Result<(), DbError> {
    fn upto<DB: diesel::backend::Backend>(
        c: &mut impl MigrationHarness<DB>,
        source: EmbeddedMigrations,
        version: &str,
    ) -> diesel::migration::Result<()> {
        for m in c.pending_migrations(source)? {
            let name = m.name().to_string();
            if name.split('_').next().unwrap_or("") <= version {
                c.run_migration(&m)?;
            }
        }
        Ok(())
    }
    let result = match conn {
        DbConn::Sqlite(c) => upto(c, SQLITE_MIGRATIONS, version),
        DbConn::Pg(c) => upto(c, PG_MIGRATIONS, version),
    };
    result.map_err(|e| DbError::Connect(format!("migration failed: {e}")))
}

/// How often the WAL is folded back into the SQLite database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// For SQLite, starts the thread that checkpoints the WAL in the background (PASSIVE: it
/// never blocks writers). Nothing to do for PostgreSQL.
pub fn start_checkpointer(pool: &Pool) {
    let is_sqlite = pool.get().is_ok_and(|c| matches!(*c, DbConn::Sqlite(_)));
    if !is_sqlite {
        return;
    }
    let pool = pool.clone();
    let spawned = std::thread::Builder::new()
        .name("wal-checkpoint".into())
        .spawn(move || {
            // Periodic and never urgent: it need not preempt a worker when it wakes.
            sched::batch();
            loop {
                std::thread::sleep(CHECKPOINT_EVERY);
                let done = pool.get().map_err(DbError::from).and_then(|mut c| {
                    c.batch_execute("PRAGMA wal_checkpoint(PASSIVE)")
                        .map_err(DbError::from)
                });
                if let Err(e) = done {
                    log::warn!("WAL checkpoint failed: {e}");
                }
            }
        });
    if let Err(e) = spawned {
        log::error!("cannot start the WAL checkpointer: {e}");
    }
}

/// Cheap liveness check for `/health` (run it through [`run`]: getting the connection is
/// half the check).
pub fn ping(conn: &mut DbConn) -> Result<(), DbError> {
    conn.batch_execute("SELECT 1")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;

    /// A write transaction that reads first still commits when another connection writes
    /// between its read and its write: on SQLite [`super::write`] holds the write lock from
    /// its start, so the other writer waits (busy timeout) instead of this one failing with
    /// "database is locked" (seen under schemathesis on the admin credit).
    #[test]
    fn a_write_transaction_that_reads_first_survives_a_concurrent_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("w.db").display());
        let pool = super::pool(&url, 2).expect("pool");
        pool.get()
            .expect("conn")
            .batch_execute("CREATE TABLE t (n INTEGER NOT NULL)")
            .expect("table");
        let (read, wait_read) = std::sync::mpsc::channel();
        let other = {
            let pool = pool.clone();
            std::thread::spawn(move || {
                wait_read.recv().expect("first read");
                pool.get()
                    .expect("conn")
                    .batch_execute("INSERT INTO t VALUES (2)")
            })
        };
        let mut conn = pool.get().expect("conn");
        let first = super::write(&mut conn, |c| {
            c.batch_execute("SELECT count(*) FROM t")?;
            read.send(()).expect("signal");
            // Long enough for the other connection to try its insert meanwhile.
            std::thread::sleep(std::time::Duration::from_millis(300));
            c.batch_execute("INSERT INTO t VALUES (1)")
        });
        assert!(first.is_ok(), "the reading writer failed: {first:?}");
        let second = other.join().expect("thread");
        assert!(second.is_ok(), "the other writer failed: {second:?}");
    }
}
