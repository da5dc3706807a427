//! The settlement journal (SQLite): a settlement is durable once journalled, the writer folds
//! the journal into the database in batches and empties it, and a process that died before
//! folding has its journal replayed at start, each settlement committed exactly once.

use chrono::Utc;
use pura::db::journal::{self, Journal};
use pura::db::models::account::{self, Account};
use pura::db::models::api_key::ApiKey;
use pura::db::models::{ledger, usage};
use pura::db::usage_writer::{self, Outcome, Settlement, UsageWriter};
use pura::db::Pool;

const BALANCE: i64 = 1_000_000;
const COST: i64 = 700;

fn setup() -> (tempfile::TempDir, Pool, std::path::PathBuf, ApiKey) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db_path = dir.path().join("pura.db");
    let pool = pura::db::pool(&format!("sqlite://{}", db_path.display()), 4).expect("pool");
    let mut conn = pool.get().expect("conn");
    pura::db::migrate(&mut conn).expect("migrate");
    let now = Utc::now().naive_utc();
    let acct = Account {
        id: "acct_journal".into(),
        created_at: now,
        balance_micros: BALANCE,
        free_requests_remaining: 0,
    };
    let key = ApiKey {
        id: "key_journal".into(),
        key_hash: pura::auth::hash_key("sk-pura-journal-test"),
        label: "journal".into(),
        created_at: now,
        disabled: false,
        daily_budget_micros: None,
        monthly_budget_micros: None,
        rpm_limit: None,
        notify_email: None,
        webhook_url: None,
        account_id: acct.id.clone(),
        role: "manage".into(),
    };
    account::create_with_key(&mut conn, &acct, &key).expect("account");
    let journal = Journal::path_for(&db_path.display().to_string());
    (dir, pool, journal, key)
}

/// A paid request's settlement: its usage row and a debit of [`COST`].
fn settlement(id: &str, key: &ApiKey) -> Settlement {
    Settlement {
        row: usage::UsageRow {
            id: id.into(),
            key_id: key.id.clone(),
            provider: "fake".into(),
            model: "gpt-4o".into(),
            tier: "mid".into(),
            prompt_tokens: 10,
            completion_tokens: 20,
            cost_micros: COST,
            latency_ms: 5,
            ttft_ms: Some(1),
            status: "ok".into(),
            stream: false,
            upstream_request_id: Some(format!("up-{id}")),
            client_request_id: None,
            created_at: Utc::now().naive_utc(),
            premium_cost_micros: COST * 3,
            protocol: "chat".into(),
            cached_tokens: 2,
            reasoning_tokens: 0,
            account_id: key.account_id.clone(),
            body_sha256: Some("ab".repeat(32)),
        },
        debit_micros: COST,
        free: false,
        free_spend: None,
        hold: None,
    }
}

/// (balance, usage row ids, debit references) as the database has them.
fn books(pool: &Pool, key: &ApiKey) -> (i64, Vec<String>, Vec<String>) {
    let mut conn = pool.get().expect("conn");
    let balance = account::find(&mut conn, &key.account_id)
        .expect("query")
        .expect("account")
        .balance_micros;
    let mut rows: Vec<String> = usage::for_key(&mut conn, &key.id)
        .expect("rows")
        .into_iter()
        .map(|r| r.id)
        .collect();
    rows.sort();
    let mut debits: Vec<String> = ledger::for_key(&mut conn, &key.id)
        .expect("ledger")
        .into_iter()
        .filter(|e| e.kind == "debit")
        .map(|e| e.reference)
        .collect();
    debits.sort();
    (balance, rows, debits)
}

fn journal_lines(path: &std::path::Path, settlements: &[Settlement]) {
    let journal = Journal::open(path).expect("journal");
    for s in settlements {
        journal
            .append(journal::encode(s).expect("encode"), (), |()| {})
            .map_err(|(e, ())| e)
            .expect("append");
    }
}

/// A start: takes the journal and commits what it holds.
fn replay(pool: &Pool, path: &std::path::Path) -> Result<usize, pura::db::DbError> {
    let journal = Journal::open(path).expect("journal");
    usage_writer::replay(pool, &journal, "replica")
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("req_{i}")).collect()
}

#[test]
fn a_journal_left_by_a_dead_process_is_committed_at_start() {
    let (_dir, pool, path, key) = setup();
    let all: Vec<Settlement> = ids(3).iter().map(|id| settlement(id, &key)).collect();
    journal_lines(&path, &all);
    let replayed = replay(&pool, &path).expect("replay");
    assert_eq!(replayed, 3);
    let (balance, rows, debits) = books(&pool, &key);
    assert_eq!(rows, ids(3));
    assert_eq!(debits, ids(3), "one debit per request");
    assert_eq!(balance, BALANCE - 3 * COST);
    // The row reads back as journalled, not just its id.
    let mut conn = pool.get().expect("conn");
    let back = usage::for_key(&mut conn, &key.id).expect("rows");
    let first = back.iter().find(|r| r.id == "req_0").expect("req_0");
    let sent = &all[0].row;
    assert_eq!(
        (
            &first.upstream_request_id,
            first.premium_cost_micros,
            first.cached_tokens,
            &first.body_sha256,
            first.created_at,
        ),
        (
            &sent.upstream_request_id,
            sent.premium_cost_micros,
            sent.cached_tokens,
            &sent.body_sha256,
            sent.created_at,
        )
    );
    assert_eq!(
        std::fs::metadata(&path).expect("journal").len(),
        0,
        "emptied"
    );
    // A second start finds nothing more to do.
    assert_eq!(replay(&pool, &path).expect("replay"), 0);
    assert_eq!(books(&pool, &key).0, BALANCE - 3 * COST);
}

#[test]
fn replay_skips_what_was_already_committed_and_a_torn_last_line() {
    let (_dir, pool, path, key) = setup();
    let all: Vec<Settlement> = ids(4).iter().map(|id| settlement(id, &key)).collect();
    // The first two were folded before the process died; the journal was not emptied yet.
    journal_lines(&path, &all[..2]);
    assert_eq!(replay(&pool, &path).expect("fold"), 2);
    journal_lines(&path, &all);
    // The process died inside the append of a fifth: half a line.
    let torn = journal::encode(&settlement("req_torn", &key)).expect("encode");
    let mut text = std::fs::read(&path).expect("read");
    text.extend_from_slice(&torn[..torn.len() / 2]);
    std::fs::write(&path, text).expect("write");
    assert_eq!(
        replay(&pool, &path).expect("replay"),
        2,
        "only the two not committed yet"
    );
    let (balance, rows, debits) = books(&pool, &key);
    assert_eq!(rows, ids(4), "each request once, the torn one never");
    assert_eq!(debits, ids(4), "no request debited twice");
    assert_eq!(balance, BALANCE - 4 * COST);
}

#[test]
fn an_append_after_a_torn_line_still_reads_back() {
    let (_dir, pool, path, key) = setup();
    let torn = journal::encode(&settlement("req_torn", &key)).expect("encode");
    std::fs::write(&path, &torn[..torn.len() - 9]).expect("write");
    // Reopened after the crash: the next line must not be glued to the torn one.
    journal_lines(&path, &[settlement("req_after", &key)]);
    let read = journal::read(&path).expect("read");
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].row.id, "req_after");
    replay(&pool, &path).expect("replay");
    assert_eq!(books(&pool, &key).1, vec!["req_after".to_string()]);
}

#[actix_web::test]
async fn the_writer_answers_at_once_and_folds_the_journal_into_the_database() {
    let (_dir, pool, path, key) = setup();
    let writer = UsageWriter::start(
        pool.clone(),
        "replica".into(),
        Some(Journal::open(&path).expect("journal")),
    );
    let mut pending = Vec::new();
    for id in ids(50) {
        pending.push(writer.write(settlement(&id, &key)));
    }
    for p in pending {
        // Journalled is committed, as far as the request is concerned.
        assert_eq!(p.wait(true).await, Outcome::Committed);
    }
    assert!(std::fs::metadata(&path).expect("journal").len() > 0);
    assert!(writer.settled().await, "folded");
    let (balance, rows, debits) = books(&pool, &key);
    let mut want = ids(50);
    want.sort();
    assert_eq!(rows, want);
    assert_eq!(debits, want);
    assert_eq!(balance, BALANCE - 50 * COST);
    // Emptied once everything in it is committed (right after the commit that answered the
    // flush: give the writer its turn).
    let emptied = (0..500).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::metadata(&path).expect("journal").len() == 0
    });
    assert!(emptied, "the journal is emptied once folded");
}

#[test]
fn a_second_process_cannot_take_the_journal() {
    let (_dir, _pool, path, _key) = setup();
    let first = Journal::open(&path).expect("first");
    let second = Journal::open(&path)
        .err()
        .expect("refused while the first holds it");
    assert!(
        second.to_string().contains("another running gateway"),
        "{second}"
    );
    drop(first);
    Journal::open(&path).expect("free again once the first is gone");
}

/// Appends never stop while the writer folds and empties the journal: nothing is lost or
/// written twice, and the file is emptied while appends go on (it never holds them all).
#[actix_web::test]
async fn folding_under_steady_appends_loses_and_doubles_nothing() {
    let (_dir, pool, path, key) = setup();
    let writer = UsageWriter::start(
        pool.clone(),
        "replica".into(),
        Some(Journal::open(&path).expect("journal")),
    );
    const N: usize = 3_000;
    let all = ids(N);
    let line = journal::encode(&settlement(&all[0], &key))
        .expect("encode")
        .len() as u64;
    let mut largest = 0;
    for (i, id) in all.iter().enumerate() {
        assert_eq!(
            writer.write(settlement(id, &key)).wait(true).await,
            Outcome::Committed
        );
        if i % 100 == 0 {
            largest = largest.max(std::fs::metadata(&path).expect("journal").len());
            // Let the writer's thread run now and then, as a worker's other work would.
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    assert!(writer.settled().await, "folded");
    println!(
        "steady appends: the journal held at most {largest} of {} bytes",
        N as u64 * line
    );
    let (balance, rows, debits) = books(&pool, &key);
    let mut want = all.clone();
    want.sort();
    assert_eq!(rows.len(), N);
    assert_eq!(rows, want, "every settlement once");
    assert_eq!(debits, want, "every debit once");
    assert_eq!(balance, BALANCE - N as i64 * COST);
    assert!(
        largest < N as u64 * line,
        "the journal was emptied while appends went on: at most {largest} bytes of {}",
        N as u64 * line
    );
}

/// The writer folds in the idle scheduling class, so under saturation it may get no core for a
/// while: past its backlog bound a request waits for its own commit instead of journalling,
/// so what waits in memory stays bounded, and every settlement is still committed once.
#[actix_web::test]
async fn past_its_backlog_bound_a_request_waits_for_its_commit() {
    let (_dir, pool, path, key) = setup();
    const BOUND: usize = 10;
    let writer = UsageWriter::start(
        pool.clone(),
        "replica".into(),
        Some(Journal::open(&path).expect("journal")),
    )
    .with_max_backlog(BOUND);
    let all = ids(40);
    let mut pending = Vec::new();
    for id in &all {
        // Written back to back, well inside the writer's fold window: without the bound all
        // 40 would be journalled and waiting for it.
        pending.push(writer.write(settlement(id, &key)));
        assert!(
            writer.backlog() <= BOUND,
            "backlog {} over its bound",
            writer.backlog()
        );
    }
    for p in pending {
        assert_eq!(p.wait(true).await, Outcome::Committed);
    }
    assert!(writer.settled().await, "folded");
    assert_eq!(writer.backlog(), 0, "every journalled settlement answered");
    let (balance, rows, debits) = books(&pool, &key);
    let mut want = all.clone();
    want.sort();
    assert_eq!(rows, want, "every settlement once");
    assert_eq!(debits, want, "every debit once");
    assert_eq!(balance, BALANCE - 40 * COST);
}
