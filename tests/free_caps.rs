//! Free requests are bounded: a per-request cap on what a free request may reserve, a
//! deployment-wide cap on free spend per UTC day kept in the database (so it holds across
//! restarts and replicas), and the key-mint limit kept in the database too. Runs on SQLite
//! and on PostgreSQL (each gateway here gets a database of its own).

mod common;

use common::{exact_request, provider_toml, FakeDialect, FakeUpstream, Gateway, EXACT_COST_MICROS};
use serde_json::{json, Value};

/// The exact-cost gateway of `common`, on a database of its own.
fn isolated_gateway(env: &[(&str, &str)]) -> (FakeUpstream, Gateway) {
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    fake.set_reply_text("one two three four five");
    let mut all = vec![("PURA__LIMITS__RPM", "100000")];
    all.extend_from_slice(env);
    let gw = Gateway::start_isolated(&provider_toml("openai", &fake, "mid", "gpt-4o", 1.0), &all);
    (fake, gw)
}

/// The exact request with another output cap: reserves (10 + `max_tokens`) tokens at $1/1K
/// while the fake still answers 5 tokens.
fn request_with_cap(max_tokens: u64) -> Value {
    let mut body = exact_request(false);
    body["max_tokens"] = json!(max_tokens);
    body
}

fn message(r: &common::Reply) -> String {
    r.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

fn balance_micros(gw: &Gateway, key_id: &str) -> i64 {
    let pool = gw.db();
    let mut conn = pool.get().expect("conn");
    pura::db::models::account::of_key(&mut conn, key_id)
        .expect("query")
        .expect("account")
        .balance_micros
}

fn free_spend_today(gw: &Gateway) -> i64 {
    let pool = gw.db();
    let mut conn = pool.get().expect("conn");
    let day = pura::money::Window::Day.start(pura::time::now());
    pura::db::models::free_spend::spent(&mut conn, day).expect("free spend")
}

#[actix_web::test]
async fn a_free_request_over_the_per_request_cap_is_paid_or_refused() {
    // The exact request reserves $0.015, above the cap; with max_tokens 1 it reserves $0.011.
    let (_fake, gw) = isolated_gateway(&[("PURA__FREE_TIER__MAX_REQUEST_USD", "0.012")]);
    let (key_id, key) = gw.key().await;

    let r = gw
        .post("/v1/chat/completions", &key, &exact_request(false))
        .await;
    assert_eq!(r.status, 402, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "payment_required");
    assert!(message(&r).contains("limit"), "{}", message(&r));
    assert!(message(&r).contains("/api/wallet/fund"));
    let r = gw
        .post("/v1/chat/completions", &key, &exact_request(true))
        .await;
    assert_eq!(r.status, 402, "a stream is refused the same way");
    assert!(gw.usage_rows(&key_id).is_empty(), "nothing was served");

    // Under the cap it is served free.
    let r = gw
        .post("/v1/chat/completions", &key, &request_with_cap(1))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-pura-free-requests-remaining"), Some("4999"));

    // Over the cap with a balance that covers it: paid from the balance, no free request used.
    gw.admin_credit(&key_id, 100).await; // 40,000 µ$
    let r = gw
        .post("/v1/chat/completions", &key, &exact_request(false))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-pura-free-requests-remaining"), Some("4999"));
    assert_eq!(balance_micros(&gw, &key_id), 40_000 - EXACT_COST_MICROS);
    let (_, bal) = gw.get("/api/wallet/balance", &key).await;
    assert_eq!(bal["freeRequestsRemaining"], 4999);
}

#[actix_web::test]
async fn the_daily_free_budget_stops_free_requests_and_survives_a_restart() {
    // Room for three exact requests ($0.015 each) across the whole deployment.
    let (_fake, mut gw) = isolated_gateway(&[
        ("PURA__FREE_TIER__DAILY_BUDGET_USD", "0.045"),
        ("PURA__FREE_TIER__MAX_REQUEST_USD", "0.05"),
    ]);
    let (a_id, a) = gw.key().await;
    let (_, b) = gw.key().await;

    // Reserves $0.030 but costs $0.015: the settlement gives the difference back.
    let r = gw
        .post("/v1/chat/completions", &a, &request_with_cap(20))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(free_spend_today(&gw), EXACT_COST_MICROS);

    let r = gw
        .post("/v1/chat/completions", &a, &exact_request(false))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = gw
        .post("/v1/chat/completions", &b, &exact_request(true))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!r.chunks().is_empty());
    assert_eq!(free_spend_today(&gw), 3 * EXACT_COST_MICROS);

    // Both keys still have free requests, but the deployment's free budget is spent.
    for key in [&a, &b] {
        let r = gw
            .post("/v1/chat/completions", key, &exact_request(false))
            .await;
        assert_eq!(r.status, 402, "{}", r.text());
        assert!(message(&r).contains("today"), "{}", message(&r));
    }

    gw.restart();
    let r = gw
        .post("/v1/chat/completions", &b, &exact_request(false))
        .await;
    assert_eq!(r.status, 402, "the cap holds after a restart: {}", r.text());
    let (_, c) = gw.key().await;
    let r = gw
        .post("/v1/chat/completions", &c, &exact_request(false))
        .await;
    assert_eq!(r.status, 402, "and for a new key: {}", r.text());

    // A funded key is served from its balance; free spend does not move.
    gw.admin_credit(&a_id, 100).await;
    let r = gw
        .post("/v1/chat/completions", &a, &exact_request(false))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-pura-free-requests-remaining"), Some("4998"));
    assert_eq!(balance_micros(&gw, &a_id), 40_000 - EXACT_COST_MICROS);
    assert_eq!(free_spend_today(&gw), 3 * EXACT_COST_MICROS);
}

#[actix_web::test]
async fn a_failed_free_request_gives_its_estimate_back() {
    let (fake, gw) = isolated_gateway(&[("PURA__FREE_TIER__DAILY_BUDGET_USD", "0.015")]);
    let (_, key) = gw.key().await;
    fake.set_behavior(common::Behavior::Status(500));
    let r = gw
        .post("/v1/chat/completions", &key, &exact_request(false))
        .await;
    assert_eq!(r.status, 502, "{}", r.text());
    // The error is answered once the estimate is back in the day's free spend.
    assert_eq!(free_spend_today(&gw), 0);
}

#[actix_web::test]
async fn the_mint_limit_is_kept_in_the_database_across_restarts() {
    let mut gw = Gateway::start_isolated("", &[("PURA__SERVER__KEY_MINT_PER_IP_PER_HOUR", "3")]);
    gw.key().await;
    gw.key().await;
    gw.restart();
    gw.key().await;
    let mut resp = gw
        .client()
        .post(format!("{}/api/keys", gw.url))
        .send_json(&json!({"label": "one too many"}))
        .await
        .expect("mint");
    assert_eq!(resp.status().as_u16(), 429);
    let retry: u64 = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("retry-after");
    assert!((1..=3600).contains(&retry));
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    gw.restart();
    let (status, _) = gw.send("POST", "/api/keys", "", Some(json!({}))).await;
    assert_eq!(status, 429, "still refused after another restart");
}
