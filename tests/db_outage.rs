//! Issue 12, item 6: the database going away. The gateway runs on PostgreSQL through a TCP
//! proxy (`common::tcp_proxy`) that is cut for a few seconds and restored, under paid and free
//! requests, JSON and streamed, with and without the database arbitrating reservations. During
//! the outage every request fails fast with a 503 envelope and `/health` and `/ready` say 503;
//! afterwards everything recovers by itself, and the books hold exactly the requests answered
//! 200: one usage row each, one debit each for the paid key, the balance moved by their cost.
//! PostgreSQL only (SQLite is a file of the process): skipped without `PURA_TEST_DATABASE_URL`.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::tcp_proxy::{host_port, TcpProxy};
use common::{
    exact_request, fresh_pg_database, provider_toml, Behavior, FakeDialect, FakeUpstream, Gateway,
};
use serde_json::Value;

/// How long the database stays away.
const OUTAGE: Duration = Duration::from_secs(6);
/// Generous bounds (the issue measured 160 s hangs and 135 s before a settlement was dropped):
/// they tell fail-fast from hanging, not fast from slow.
const FAIL_FAST_BOUND: Duration = Duration::from_secs(20);
const RECOVERY_BOUND: Duration = Duration::from_secs(60);
const CREDIT_SATS: i64 = 10_000;
/// The upstream's pause before answering the requests in flight at the cut.
const IN_FLIGHT_DELAY: Duration = Duration::from_millis(1500);
/// Request ids of the requests in flight start here (the others count from 0).
const IN_FLIGHT_IDS: usize = 1_000_000;
/// `lightning.usd_per_sat` 0.0004.
const MICROS_PER_SAT: i64 = 400;
const FREE_REQUESTS: i64 = 5_000;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    PaidJson,
    PaidStream,
    FreeJson,
    FreeStream,
}

const KINDS: [Kind; 4] = [
    Kind::PaidJson,
    Kind::PaidStream,
    Kind::FreeJson,
    Kind::FreeStream,
];

impl Kind {
    fn stream(self) -> bool {
        matches!(self, Kind::PaidStream | Kind::FreeStream)
    }

    fn paid(self) -> bool {
        matches!(self, Kind::PaidJson | Kind::PaidStream)
    }

    /// A paid request asks for more output than the free tier's per-request cap allows.
    fn body(self) -> Value {
        let mut body = exact_request(self.stream());
        if self.paid() {
            body["max_tokens"] = 100.into();
        }
        body
    }
}

#[derive(Debug)]
struct Answer {
    id: String,
    kind: Kind,
    status: u16,
    /// A stream that ended with an error event.
    stream_error: bool,
    took: Duration,
    body: String,
}

struct Keys {
    paid: (String, String),
    free: (String, String),
}

async fn ask(gw: &Gateway, keys: &Keys, kind: Kind, n: usize) -> Answer {
    let secret = if kind.paid() {
        &keys.paid.1
    } else {
        &keys.free.1
    };
    let id = format!("{kind:?}-{n}");
    let started = Instant::now();
    let mut resp = gw
        .client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(secret)
        .insert_header(("X-Client-Request-Id", id.clone()))
        .send_json(&kind.body())
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let body = resp.body().limit(1 << 20).await.expect("body");
    let body = String::from_utf8_lossy(&body).into_owned();
    let stream_error = status == 200 && kind.stream() && body.contains("data: {\"error\"");
    Answer {
        id,
        kind,
        status,
        stream_error,
        took: started.elapsed(),
        body,
    }
}

/// What an answer during the outage may be: a 503 envelope, or a stream already under way
/// whose end could not be recorded in time (it ends with an error event; its bill is held).
fn assert_outage_answer(a: &Answer) {
    if a.status == 200 {
        assert!(
            a.kind.stream() && a.stream_error,
            "a 200 during the outage: {a:?}"
        );
        return;
    }
    assert_eq!(a.status, 503, "{a:?}");
    let v: Value = serde_json::from_str(&a.body).expect("503 body is JSON");
    assert_eq!(v["error"]["code"], "unavailable", "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
}

async fn timed_get(gw: &Gateway, path: &str) -> (u16, Duration) {
    let started = Instant::now();
    let (status, _) = gw.get(path, "").await;
    (status, started.elapsed())
}

async fn outage(arbitrate: bool) {
    let Some((direct, own)) = fresh_pg_database("pura_out") else {
        eprintln!("db_outage: PURA_TEST_DATABASE_URL is not PostgreSQL; skipped");
        return;
    };
    let proxy = TcpProxy::start(&host_port(&direct));
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    fake.set_reply_text("one two three four five");
    let arbitrate = arbitrate.to_string();
    let env = [
        ("PURA__LIMITS__RPM", "100000"),
        ("PURA__FREE_TIER__MAX_REQUEST_USD", "0.02"),
        ("PURA__DATABASE__ARBITRATE", arbitrate.as_str()),
    ];
    let extra = provider_toml("openai", &fake, "mid", "gpt-4o", 1.0);
    let gw = Gateway::start_with_database(proxy.url_through(&direct), Some(own), &extra, &env);
    let keys = Keys {
        paid: gw.key().await,
        free: gw.key().await,
    };
    gw.admin_credit(&keys.paid.0, CREDIT_SATS).await;
    let mut answers = Vec::new();
    for kind in KINDS {
        let a = ask(&gw, &keys, kind, answers.len()).await;
        assert_eq!(a.status, 200, "before the outage: {a:?}");
        answers.push(a);
    }

    // Requests in flight when the database goes: served by the upstream, then unable to
    // settle. The JSON answers are withdrawn (503, nothing billed); the streams, whose text is
    // out, end with an error event and their bills are held until the database returns.
    fake.set_behavior(Behavior::DelayFirstByte(IN_FLIGHT_DELAY));
    let in_flight = futures_util::future::join_all(
        KINDS
            .iter()
            .enumerate()
            .map(|(i, kind)| ask(&gw, &keys, *kind, IN_FLIGHT_IDS + i)),
    );
    let cutter = async {
        actix_web::rt::time::sleep(IN_FLIGHT_DELAY / 3).await;
        proxy.cut();
        let cut_at = Instant::now();
        let (status, took) = timed_get(&gw, "/health").await;
        (cut_at, status, took)
    };
    let (in_flight, (cut_at, health_first, health_first_took)) =
        futures_util::join!(in_flight, cutter);
    fake.set_behavior(Behavior::Normal);
    for a in &in_flight {
        if a.kind.stream() {
            assert!(a.status == 200 && a.stream_error, "in flight: {a:?}");
        } else {
            assert_eq!(a.status, 503, "in flight: {a:?}");
        }
        assert_outage_answer(a);
    }
    // From the cut to the in-flight JSON answers' 503 (they were sent before it).
    let in_flight_503 = in_flight
        .iter()
        .filter(|a| a.status == 503)
        .map(|a| a.took.saturating_sub(IN_FLIGHT_DELAY / 3))
        .max()
        .unwrap_or_default();
    answers.extend(in_flight);
    assert_eq!(health_first, 503, "/health right after the cut");
    let since_cut = cut_at.elapsed();
    let mut first_503: Option<Duration> = None;
    let mut slowest_503 = Duration::ZERO;
    let mut health_took = Vec::new();
    while cut_at.elapsed() < since_cut + OUTAGE {
        for kind in KINDS {
            let a = ask(&gw, &keys, kind, answers.len()).await;
            assert_outage_answer(&a);
            if a.status == 503 {
                first_503.get_or_insert(cut_at.elapsed() - since_cut);
                slowest_503 = slowest_503.max(a.took);
            }
            answers.push(a);
        }
        let (health, took) = timed_get(&gw, "/health").await;
        assert_eq!(health, 503, "/health during the outage");
        health_took.push(took);
        let (ready, _) = timed_get(&gw, "/ready").await;
        assert_eq!(ready, 503, "/ready during the outage");
    }
    let first_503 = first_503.expect("some request answered 503 during the outage");
    assert!(first_503 < FAIL_FAST_BOUND, "first 503 after {first_503:?}");
    assert!(
        in_flight_503 < FAIL_FAST_BOUND,
        "in flight 503 after {in_flight_503:?}"
    );
    assert!(slowest_503 < FAIL_FAST_BOUND, "a 503 took {slowest_503:?}");

    proxy.restore();
    let restored = Instant::now();
    loop {
        if timed_get(&gw, "/health").await.0 == 200 {
            break;
        }
        assert!(
            restored.elapsed() < RECOVERY_BOUND,
            "/health never recovered"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let health_back = restored.elapsed();
    for kind in KINDS {
        loop {
            let a = ask(&gw, &keys, kind, answers.len()).await;
            let served = a.status == 200 && !a.stream_error;
            answers.push(a);
            if served {
                break;
            }
            assert!(
                restored.elapsed() < RECOVERY_BOUND,
                "{kind:?} never recovered"
            );
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let requests_back = restored.elapsed();
    let during = answers.len() - 2 * KINDS.len() - KINDS.len();
    let mut health_sorted = health_took.clone();
    health_sorted.sort();
    println!(
        "db outage (arbitrate = {arbitrate}): JSON requests in flight at the cut answered 503 \
         {in_flight_503:.2?} after it; then {during} requests in {OUTAGE:?}: first 503 after \
         {first_503:.2?}, slowest 503 {slowest_503:.2?}; /health sent at the cut answered 503 in \
         {health_first_took:.2?}, during the outage median {:.2?} max {:.2?} ({} probes); \
         recovery: /health 200 after {health_back:.2?}, every kind served after {requests_back:.2?}; \
         streams ended with an error event: {}",
        health_sorted[health_sorted.len() / 2],
        health_sorted.last().copied().unwrap_or_default(),
        health_sorted.len(),
        answers.iter().filter(|a| a.stream_error).count(),
    );
    check_books(&gw, &direct, &keys, &answers);
    let pool = pura::db::pool(&direct, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    use diesel::prelude::*;
    let holds: i64 = pura::db::schema::holds::table
        .count()
        .get_result(&mut *conn)
        .expect("holds");
    assert_eq!(holds, 0, "no hold is left behind");
    let log = gw.log();
    assert!(
        !log.contains("gave up"),
        "a settlement was given up:\n{log}"
    );
}

/// Every request answered 200 has its usage row (and, paid, its debit); none answered 503 has.
fn check_books(gw: &Gateway, direct: &str, keys: &Keys, answers: &[Answer]) {
    let _ = gw;
    let pool = pura::db::pool(direct, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    for (key_id, paid) in [(&keys.paid.0, true), (&keys.free.0, false)] {
        let rows = pura::db::models::usage::for_key(&mut conn, key_id).expect("rows");
        let recorded: HashSet<String> = rows
            .iter()
            .filter_map(|r| r.client_request_id.clone())
            .collect();
        let mine: Vec<&Answer> = answers.iter().filter(|a| a.kind.paid() == paid).collect();
        for a in &mine {
            let billed = recorded.contains(&a.id);
            assert_eq!(
                billed,
                a.status == 200,
                "answered {} but billed {billed}: {a:?}",
                a.status
            );
        }
        let served = mine.iter().filter(|a| a.status == 200).count();
        assert_eq!(rows.len(), served, "one usage row per request answered 200");
        let cost: i64 = rows.iter().map(|r| r.cost_micros).sum();
        let entries = pura::db::models::ledger::for_key(&mut conn, key_id).expect("ledger");
        let debits: Vec<_> = entries.iter().filter(|e| e.kind == "debit").collect();
        let account = pura::db::models::account::of_key(&mut conn, key_id)
            .expect("query")
            .expect("account");
        if paid {
            assert_eq!(debits.len(), rows.len(), "one debit per usage row");
            let debited: i64 = debits.iter().map(|e| -e.amount_micros).sum();
            assert_eq!(debited, cost, "debits == usage cost");
            assert_eq!(account.balance_micros, CREDIT_SATS * MICROS_PER_SAT - cost);
        } else {
            assert!(debits.is_empty(), "free requests debit nothing");
            assert_eq!(
                account.free_requests_remaining,
                FREE_REQUESTS - rows.len() as i64
            );
        }
        if !paid {
            // Free spend of the day: exactly the free requests served (withdrawn ones gave
            // their estimates back).
            let day = pura::money::Window::Day.start(pura::time::now());
            let spent = pura::db::models::free_spend::spent(&mut conn, day).expect("free spend");
            assert_eq!(
                spent, cost,
                "the day's free spend is what free requests cost"
            );
        }
        println!(
            "db outage books ({}): {} answered 200, {} usage rows, {} debits, cost {cost} µ$",
            if paid { "paid" } else { "free" },
            served,
            rows.len(),
            debits.len()
        );
    }
}

#[actix_web::test]
async fn database_outage_fails_fast_and_recovers_without_losing_money() {
    outage(false).await;
}

#[actix_web::test]
async fn database_outage_with_the_database_arbitrating() {
    outage(true).await;
}
