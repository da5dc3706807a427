//! Money: reservations under concurrency, the free tier, budgets, the RPM limit, partial
//! billing, and the ledger staying consistent. Runs on SQLite and on PostgreSQL.

mod common;

use std::time::Duration;

use common::{
    exact_gateway, exact_request, provider_toml, Behavior, FakeDialect, FakeUpstream, Gateway,
    ADMIN_TOKEN, EXACT_COST_MICROS,
};
use futures_util::future::join_all;
use serde_json::json;

const COST_MICROS: i64 = EXACT_COST_MICROS;
/// 400 µ$ per sat at the default `usd_per_sat = 0.0004`.
const MICROS_PER_SAT: i64 = 400;

fn gateway(env: &[(&str, &str)]) -> (FakeUpstream, Gateway) {
    exact_gateway(env)
}

/// (balance column, ledger sum) of a key's account, straight from the database.
fn balance_and_ledger(gw: &Gateway, key_id: &str) -> (i64, i64) {
    let pool = gw.db();
    let mut conn = pool.get().expect("conn");
    let account = pura::db::models::account::of_key(&mut conn, key_id)
        .expect("query")
        .expect("account");
    let sum =
        pura::db::models::ledger::sum_for_account(&mut conn, &account.id).expect("ledger sum");
    (account.balance_micros, sum)
}

async fn fire(gw: &Gateway, key: &str, n: usize) -> Vec<common::Reply> {
    let body = exact_request(false);
    join_all((0..n).map(|_| gw.post("/v1/chat/completions", key, &body))).await
}

#[actix_web::test]
async fn concurrent_requests_never_overspend_the_balance() {
    let (_fake, gw) = gateway(&[("PURA__FREE_TIER__REQUESTS", "0")]);
    let (key_id, key) = gw.key().await;
    gw.admin_credit(&key_id, 100 * COST_MICROS / MICROS_PER_SAT)
        .await;
    let replies = fire(&gw, &key, 500).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let paywalled: Vec<_> = replies.iter().filter(|r| r.status == 402).collect();
    println!(
        "balance test: {ok} served, {} got 402, {} other",
        paywalled.len(),
        500 - ok - paywalled.len()
    );
    if let Some(other) = replies.iter().find(|r| r.status != 200 && r.status != 402) {
        println!("other: {} {}", other.status, other.text());
    }
    assert!(
        ok <= 100,
        "{ok} requests served on a balance that covers 100"
    );
    assert_eq!(ok + paywalled.len(), 500, "every other request is a 402");
    assert_eq!(paywalled[0].json()["error"]["code"], "payment_required");
    assert_eq!(paywalled[0].json()["error"]["type"], "payment_required");
    let (balance, ledger) = balance_and_ledger(&gw, &key_id);
    println!("final balance {balance} µ$ (ledger {ledger} µ$)");
    assert_eq!(balance, ledger, "the cached balance is the ledger's sum");
    assert!(balance >= 0);
    assert_eq!(balance, (100 - ok as i64) * COST_MICROS);
    assert_eq!(gw.usage_rows(&key_id).len(), ok);
}

#[actix_web::test]
async fn concurrent_requests_never_overspend_the_daily_budget() {
    let (_fake, gw) = gateway(&[]);
    let (key_id, key) = gw.key().await;
    let (status, _) = gw
        .send(
            "PATCH",
            "/api/keys/me",
            &key,
            Some(json!({"dailyBudgetUsd": 1.5})),
        )
        .await;
    assert_eq!(status, 200);
    let replies = fire(&gw, &key, 500).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let quota: Vec<_> = replies.iter().filter(|r| r.status == 429).collect();
    println!("budget test: {ok} served, {} got 429", quota.len());
    assert!(ok <= 100, "{ok} served on a daily budget that covers 100");
    assert_eq!(ok + quota.len(), 500);
    assert_eq!(quota[0].json()["error"]["code"], "insufficient_quota");
    let retry: u64 = quota[0]
        .header("retry-after")
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    assert!(
        (1..=86_400).contains(&retry),
        "retry-after until midnight UTC: {retry}"
    );
    let spent: i64 = gw.usage_rows(&key_id).iter().map(|r| r.cost_micros).sum();
    assert!(spent <= 1_500_000);
}

#[actix_web::test]
async fn free_tier_then_balance_then_402() {
    let (_fake, gw) = gateway(&[("PURA__FREE_TIER__REQUESTS", "3")]);
    let (key_id, key) = gw.key().await;
    for left in ["2", "1", "0"] {
        let r = gw
            .post("/v1/chat/completions", &key, &exact_request(false))
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-pura-free-requests-remaining"), Some(left));
        assert_eq!(
            r.header("x-pura-cost"),
            Some("0.015000"),
            "free requests still show their cost"
        );
    }
    let r = gw
        .post("/v1/chat/completions", &key, &exact_request(false))
        .await;
    assert_eq!(r.status, 402, "{}", r.text());
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("/api/wallet/fund"));
    assert_eq!(
        balance_and_ledger(&gw, &key_id),
        (0, 0),
        "free requests debit nothing"
    );

    gw.admin_credit(&key_id, 100).await; // 40,000 µ$
    let r = gw
        .post("/v1/chat/completions", &key, &exact_request(true))
        .await;
    assert_eq!(r.status, 200);
    assert!(!r.chunks().is_empty());
    assert_eq!(balance_and_ledger(&gw, &key_id), (25_000, 25_000));
    let (_, bal) = gw.get("/api/wallet/balance", &key).await;
    assert_eq!(bal["freeRequestsRemaining"], 0);
    assert_eq!(bal["balanceSats"], 62);
    assert_eq!(bal["balanceUsd"], 0.025);
    assert_eq!(bal["dailySpendUsd"], 0.06);
}

#[actix_web::test]
async fn rpm_limit_answers_429_with_retry_after_and_ratelimit_headers() {
    let (_fake, gw) = gateway(&[]);
    let (_, key) = gw.key().await;
    let (status, v) = gw
        .send("PATCH", "/api/keys/me", &key, Some(json!({"rpmLimit": 5})))
        .await;
    assert_eq!((status, v["rpmLimit"].as_i64()), (200, Some(5)));
    for i in 0..5 {
        let r = gw
            .post("/v1/chat/completions", &key, &exact_request(false))
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-ratelimit-limit-requests"), Some("5"));
        assert_eq!(
            r.header("x-ratelimit-remaining-requests"),
            Some((4 - i).to_string().as_str())
        );
    }
    let r = gw
        .post("/v1/chat/completions", &key, &exact_request(false))
        .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    let retry: u64 = r.header("retry-after").unwrap_or("0").parse().unwrap_or(0);
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(r.header("x-ratelimit-limit-requests"), Some("5"));
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("0"));
    assert!(r
        .header("x-ratelimit-reset-requests")
        .is_some_and(|v| v.ends_with('s')));
}

#[actix_web::test]
async fn abandoned_stream_is_billed_on_what_was_streamed() {
    let (fake, gw) = gateway(&[("PURA__FREE_TIER__REQUESTS", "0")]);
    fake.set_behavior(Behavior::SlowStream(Duration::from_millis(150)));
    fake.set_reply_text(&"word ".repeat(60));
    let (key_id, key) = gw.key().await;
    gw.admin_credit(&key_id, 1000).await; // 400,000 µ$
    {
        let body = json!({"model": "gpt-4o", "stream": true, "max_tokens": 100,
                          "messages": [{"role": "user", "content": "0123456789012345678901234567890123456789"}]});
        let mut resp = gw
            .client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(&key)
            .send_json(&body)
            .await
            .expect("stream");
        use futures_util::StreamExt;
        for _ in 0..3 {
            assert!(resp.next().await.is_some_and(|c| c.is_ok()));
        }
    }
    let mut rows = Vec::new();
    for _ in 0..50 {
        rows = gw.usage_rows(&key_id);
        if !rows.is_empty() {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.status, "client_closed");
    assert!(
        row.completion_tokens > 0 && row.completion_tokens < 60,
        "{}",
        row.completion_tokens
    );
    let (balance, ledger) = balance_and_ledger(&gw, &key_id);
    assert_eq!(balance, ledger);
    assert_eq!(
        400_000 - balance,
        row.cost_micros,
        "the debit is the partial cost"
    );
}

#[actix_web::test]
async fn report_equals_a_direct_sum_over_usage_rows() {
    let a = FakeUpstream::start(FakeDialect::OpenAi);
    let b = FakeUpstream::start(FakeDialect::Anthropic);
    let toml = provider_toml("openai", &a, "mid", "gpt-4o", 0.005)
        + &provider_toml("anthropic", &b, "premium", "claude", 0.003);
    let gw = Gateway::start(&toml, &[]);
    let (key_id, key) = gw.key().await;
    let (_, other) = gw.key().await;
    for (model, n) in [("gpt-4o", 3), ("claude", 2)] {
        for _ in 0..n {
            let body = json!({"model": model, "messages": [{"role": "user", "content": "count the primes below 30"}]});
            assert_eq!(
                gw.post("/v1/chat/completions", &key, &body).await.status,
                200
            );
        }
    }
    let body =
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "someone else"}]});
    assert_eq!(
        gw.post("/v1/chat/completions", &other, &body).await.status,
        200
    );
    let rows = gw.usage_rows(&key_id);
    assert_eq!(rows.len(), 5);
    for period in ["1h", "24h", "7d", "30d"] {
        let (status, r) = gw.get(&format!("/api/report?period={period}"), &key).await;
        assert_eq!(status, 200);
        assert_eq!(r["period"], period);
        assert_eq!(r["requestCount"], 5);
        let total: i64 = rows.iter().map(|r| r.cost_micros).sum();
        assert!((r["totalSpendUsd"].as_f64().unwrap_or(-1.0) - total as f64 / 1e6).abs() < 1e-9);
        assert!((r["averageCostUsd"].as_f64().unwrap_or(-1.0) - total as f64 / 5e6).abs() < 1e-9);
        for provider in ["openai", "anthropic"] {
            let mine: Vec<_> = rows.iter().filter(|r| r.provider == provider).collect();
            let p = &r["perModel"][provider];
            assert_eq!(p["requests"], mine.len(), "{provider}");
            assert_eq!(
                p["promptTokens"],
                mine.iter().map(|r| r.prompt_tokens).sum::<i64>()
            );
            assert_eq!(
                p["completionTokens"],
                mine.iter().map(|r| r.completion_tokens).sum::<i64>()
            );
            let spend: i64 = mine.iter().map(|r| r.cost_micros).sum();
            assert!((p["spendUsd"].as_f64().unwrap_or(-1.0) - spend as f64 / 1e6).abs() < 1e-9);
            let lat = mine.iter().map(|r| r.latency_ms).sum::<i64>() as f64 / mine.len() as f64;
            assert!((p["avgLatencyMs"].as_f64().unwrap_or(-1.0) - lat).abs() < 1e-9);
        }
        let hourly = r["hourly"].as_array().expect("hourly");
        assert_eq!(
            hourly
                .iter()
                .map(|h| h["requests"].as_i64().unwrap_or(0))
                .sum::<i64>(),
            5
        );
        assert!(hourly[0]["hour"]
            .as_str()
            .is_some_and(|h| h.ends_with(":00:00Z")));
    }
    let (status, v) = gw.get("/api/report?period=2w", &key).await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["param"], "period");
    let (_, theirs) = gw.get("/api/report", &other).await;
    assert_eq!(theirs["requestCount"], 1, "a key sees only its own usage");
}

#[actix_web::test]
async fn key_self_service_rotation_and_disable() {
    let (_fake, gw) = gateway(&[]);
    let (key_id, key) = gw.key().await;
    let (status, me) = gw.get("/api/keys/me", &key).await;
    assert_eq!(status, 200);
    assert_eq!(me["id"], key_id.as_str());
    assert_eq!(me["dailyBudgetUsd"], 5.0);
    assert_eq!(me["monthlyBudgetUsd"], 50.0);
    let patch = json!({"label": "renamed", "dailyBudgetUsd": 2.5, "monthlyBudgetUsd": 20, "rpmLimit": 30,
                       "notifyEmail": "ops@example.com", "webhookUrl": "http://127.0.0.1:9/hook"});
    let (status, me) = gw.send("PATCH", "/api/keys/me", &key, Some(patch)).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["label"], "renamed");
    assert_eq!(me["dailyBudgetUsd"], 2.5);
    assert_eq!(me["rpmLimit"], 30);
    assert_eq!(me["webhookUrl"], "http://127.0.0.1:9/hook");
    for bad in [
        json!({"dailyBudgetUsd": -1}),
        json!({"rpmLimit": "many"}),
        json!({"color": "red"}),
        json!({"notifyEmail": "nope"}),
        json!({"disabled": true}),
    ] {
        let (status, v) = gw
            .send("PATCH", "/api/keys/me", &key, Some(bad.clone()))
            .await;
        assert_eq!(status, 400, "{bad}: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    let (status, me) = gw
        .send(
            "PATCH",
            "/api/keys/me",
            &key,
            Some(json!({"dailyBudgetUsd": null})),
        )
        .await;
    assert_eq!(
        (status, me["dailyBudgetUsd"].as_f64()),
        (200, Some(5.0)),
        "null restores the default"
    );

    assert_eq!(
        gw.post("/v1/chat/completions", &key, &exact_request(false))
            .await
            .status,
        200
    );
    let (status, rotated) = gw.send("POST", "/api/keys/me/rotate", &key, None).await;
    assert_eq!(status, 200);
    assert_eq!(rotated["id"], key_id.as_str());
    let new_key = rotated["key"].as_str().expect("new key").to_owned();
    assert_ne!(new_key, key);
    assert_eq!(
        gw.post("/v1/chat/completions", &key, &exact_request(false))
            .await
            .status,
        401
    );
    assert_eq!(
        gw.post("/v1/chat/completions", &new_key, &exact_request(false))
            .await
            .status,
        200
    );
    let (_, report) = gw.get("/api/report", &new_key).await;
    assert_eq!(
        report["requestCount"], 2,
        "history follows the key across rotation"
    );

    let (status, _) = gw.send("DELETE", "/api/keys/me", &new_key, None).await;
    assert_eq!(status, 204);
    let r = gw
        .post("/v1/chat/completions", &new_key, &exact_request(false))
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "invalid_api_key");
    assert_eq!(
        gw.usage_rows(&key_id).len(),
        2,
        "a disabled key keeps its history"
    );
}

#[actix_web::test]
async fn admin_lists_disables_enables_and_credits() {
    let (_fake, gw) = gateway(&[("PURA__FREE_TIER__REQUESTS", "0")]);
    let (key_id, key) = gw.key().await;
    let (status, _) = gw.get("/api/admin/keys", &key).await;
    assert_eq!(status, 401, "a key is not the admin");
    let credited = gw.admin_credit(&key_id, 250).await;
    assert_eq!(credited["balanceSats"], 250);
    assert_eq!(
        gw.post("/v1/chat/completions", &key, &exact_request(false))
            .await
            .status,
        200
    );
    let (status, list) = gw.get("/api/admin/keys", ADMIN_TOKEN).await;
    assert_eq!(status, 200);
    let mine = list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["id"] == key_id.as_str())
        .expect("listed");
    assert_eq!(mine["dailySpendUsd"], 0.015);
    assert_eq!(mine["balanceUsd"], 0.085);

    let path = format!("/api/admin/keys/{key_id}");
    let (status, v) = gw
        .send("PATCH", &path, ADMIN_TOKEN, Some(json!({"disabled": true})))
        .await;
    assert_eq!((status, v["disabled"].as_bool()), (200, Some(true)));
    assert_eq!(
        gw.post("/v1/chat/completions", &key, &exact_request(false))
            .await
            .status,
        401
    );
    let (status, _) = gw
        .send(
            "PATCH",
            &path,
            ADMIN_TOKEN,
            Some(json!({"disabled": false, "rpmLimit": 2})),
        )
        .await;
    assert_eq!(status, 200);
    // One request already counted this minute; the limit of 2 leaves room for one more.
    assert_eq!(
        gw.post("/v1/chat/completions", &key, &exact_request(false))
            .await
            .status,
        200
    );
    assert_eq!(
        gw.post("/v1/chat/completions", &key, &exact_request(false))
            .await
            .status,
        429
    );

    let (status, _) = gw
        .send(
            "POST",
            "/api/admin/keys/key_nope/credit",
            ADMIN_TOKEN,
            Some(json!({"sats": 5})),
        )
        .await;
    assert_eq!(status, 404);
    for bad in [
        json!({"sats": 0}),
        json!({"sats": -5}),
        json!({"sats": 1.5}),
        json!({}),
    ] {
        let (status, _) = gw
            .send(
                "POST",
                &format!("{path}/credit"),
                ADMIN_TOKEN,
                Some(bad.clone()),
            )
            .await;
        assert_eq!(status, 400, "{bad}");
    }
    let pool = gw.db();
    let mut conn = pool.get().expect("conn");
    let entries = pura::db::models::ledger::for_key(&mut conn, &key_id).expect("ledger");
    let credit = entries
        .iter()
        .find(|e| e.kind == "admin_credit")
        .expect("audited credit");
    assert_eq!(credit.memo.as_deref(), Some("test credit"));
    assert_eq!(credit.amount_micros, 100_000);
    assert_eq!(entries.iter().filter(|e| e.kind == "debit").count(), 2);
}

#[actix_web::test]
async fn one_key_cannot_see_another_keys_money() {
    let (_fake, gw) = gateway(&[("PURA__FREE_TIER__REQUESTS", "0")]);
    let (a_id, a) = gw.key().await;
    let (_, b) = gw.key().await;
    gw.admin_credit(&a_id, 500).await;
    assert_eq!(
        gw.post("/v1/chat/completions", &a, &exact_request(false))
            .await
            .status,
        200
    );
    let (_, a_bal) = gw.get("/api/wallet/balance", &a).await;
    let (_, b_bal) = gw.get("/api/wallet/balance", &b).await;
    assert_eq!(a_bal["balanceUsd"], 0.185);
    assert_eq!(b_bal["balanceUsd"], 0.0);
    let (_, b_report) = gw.get("/api/report", &b).await;
    assert_eq!(b_report["requestCount"], 0);
    let (_, b_me) = gw.get("/api/keys/me", &b).await;
    assert_ne!(b_me["id"], a_id.as_str());
}
