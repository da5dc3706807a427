//! An account's BudgetActor runs on the HTTP worker that first needed it. At shutdown a worker
//! stops as soon as its own connections end, and its actors go with it; a stream served by
//! another worker may still settle with one of them. Such a settlement is adopted by an actor
//! that outlives the workers and billed once; a JSON answer's settlement is withdrawn instead
//! (its request answers 503), and nothing of it is written.
//!
//! Drives `Budgets` directly: a plain `Arbiter` stands for the worker, so the test controls
//! when it stops.

use actix::prelude::*;
use chrono::Utc;
use pura::actors::budget::Defaults;
use pura::actors::budgets::{Budgets, Ticket};
use pura::db::models::account::{self, Account};
use pura::db::models::api_key::ApiKey;
use pura::db::models::usage::{self, UsageRow};
use pura::db::usage_writer::{Outcome, UsageWriter};
use pura::db::Pool;
use pura::notify::Notifier;
use tokio::sync::oneshot;

const BALANCE: i64 = 1_000_000;
const ESTIMATE: i64 = 1_000;
const COST: i64 = 700;

fn setup() -> (tempfile::TempDir, Pool, ApiKey) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("pura.db").display());
    let pool = pura::db::pool(&url, 4).expect("pool");
    let mut conn = pool.get().expect("conn");
    pura::db::migrate(&mut conn).expect("migrate");
    let now = Utc::now().naive_utc();
    let acct = Account {
        id: "acct_adopt".into(),
        created_at: now,
        balance_micros: BALANCE,
        free_requests_remaining: 0,
    };
    let key = ApiKey {
        id: "key_adopt".into(),
        key_hash: pura::auth::hash_key("sk-pura-adoption-test"),
        label: "adoption".into(),
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
    (dir, pool, key)
}

fn budgets(pool: &Pool) -> Budgets {
    Budgets::new(
        pool.clone(),
        UsageWriter::start(pool.clone(), "replica".into(), None),
        Notifier::start(pool.clone(), String::new(), String::new()),
        Defaults {
            daily_budget_micros: 1_000_000_000_000,
            monthly_budget_micros: 1_000_000_000_000,
            rpm: 1_000,
            free_max_request_micros: 0,
            free_daily_budget_micros: 0,
        },
        None,
    )
}

/// Reserves on a worker of its own (where the account's actor starts), then stops that worker.
async fn reserve_on_a_worker_that_stops(budgets: &Budgets, key: &ApiKey) -> Ticket {
    let worker = Arbiter::new();
    let (tx, rx) = oneshot::channel();
    let (b, k) = (budgets.clone(), key.clone());
    worker.spawn(async move {
        let _ = tx.send(b.reserve(&k, ESTIMATE).await.map_err(|e| e.to_string()));
    });
    let ticket = rx.await.expect("worker answered").expect("reserved");
    assert!(worker.stop(), "worker running");
    worker.join().expect("worker thread");
    assert!(
        !ticket.actor.connected(),
        "the actor stopped with its worker"
    );
    ticket
}

fn row(id: &str, key: &ApiKey) -> UsageRow {
    UsageRow {
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
        status: "shutdown".into(),
        stream: true,
        upstream_request_id: None,
        client_request_id: None,
        created_at: Utc::now().naive_utc(),
        premium_cost_micros: COST,
        protocol: "chat".into(),
        cached_tokens: 0,
        reasoning_tokens: 0,
        account_id: key.account_id.clone(),
        body_sha256: None,
    }
}

/// (balance, usage row ids) from the database.
fn books(pool: &Pool, key: &ApiKey) -> (i64, Vec<String>) {
    let mut conn = pool.get().expect("conn");
    let acct = account::find(&mut conn, &key.account_id)
        .expect("query")
        .expect("account");
    let rows = usage::for_key(&mut conn, &key.id).expect("rows");
    (
        acct.balance_micros,
        rows.into_iter().map(|r| r.id).collect(),
    )
}

#[actix_web::test]
async fn a_stream_settling_with_a_stopped_workers_actor_is_billed_once() {
    let (_dir, pool, key) = setup();
    let budgets = budgets(&pool);
    let ticket = reserve_on_a_worker_that_stops(&budgets, &key).await;

    // What a stream's relay does when it ends or its client leaves: fire and forget.
    ticket
        .actor
        .do_send(ticket.settle(row("req_stream", &key), true));
    assert!(budgets.drain().await, "every settlement committed");
    assert_eq!(
        books(&pool, &key),
        (BALANCE - COST, vec!["req_stream".to_owned()])
    );

    // The adopting actor now holds the account: a later request reserves and settles there.
    let worker = Arbiter::new();
    let (tx, rx) = oneshot::channel();
    let (b, k) = (budgets.clone(), key.clone());
    worker.spawn(async move {
        let ticket = b.reserve(&k, ESTIMATE).await.expect("reserved");
        let outcome = pura::pipeline::relay::settle(&ticket, row("req_next", &k), false).await;
        let _ = tx.send(outcome);
    });
    assert_eq!(rx.await.expect("answer"), Outcome::Committed);
    let (balance, mut ids) = books(&pool, &key);
    ids.sort();
    assert_eq!(balance, BALANCE - 2 * COST);
    assert_eq!(ids, ["req_next", "req_stream"]);
    worker.stop();
}

#[actix_web::test]
async fn an_answer_settling_with_a_stopped_workers_actor_is_withdrawn_and_not_billed() {
    let (_dir, pool, key) = setup();
    let budgets = budgets(&pool);
    let ticket = reserve_on_a_worker_that_stops(&budgets, &key).await;

    let outcome = pura::pipeline::relay::settle(&ticket, row("req_json", &key), true).await;
    assert_eq!(outcome, Outcome::Withdrawn);
    assert!(budgets.drain().await);
    assert_eq!(books(&pool, &key), (BALANCE, vec![]));

    // A stream's settlement awaited the same way is adopted instead: its text was sent.
    let ticket = reserve_on_a_worker_that_stops(&budgets, &key).await;
    let outcome = pura::pipeline::relay::settle(&ticket, row("req_sent", &key), false).await;
    assert_eq!(
        outcome,
        Outcome::Held,
        "not committed yet when the sender learns"
    );
    assert!(budgets.drain().await);
    assert_eq!(
        books(&pool, &key),
        (BALANCE - COST, vec!["req_sent".to_owned()])
    );
}
