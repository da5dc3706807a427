//! Accounts: one balance, one free tier, several keys. Keys of one account share the money
//! under concurrency, keep their own budgets and RPM limits, and a `use` key cannot manage the
//! account. Wave-one data (a key holding its own money) migrates to one account per key.
//! Runs on SQLite and on PostgreSQL (`PURA_TEST_DATABASE_URL`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::fake_lnd::{FakeLnd, MACAROON};
use common::{
    exact_gateway, exact_request, provider_toml, FakeDialect, FakeUpstream, Gateway, Reply,
    EXACT_COST_MICROS,
};
use diesel::connection::SimpleConnection;
use futures_util::future::join_all;
use pura::db::models::{account, api_key, invoice, ledger, usage};
use pura::db::DbConn;
use serde_json::{json, Value};

const COST: i64 = EXACT_COST_MICROS;
/// 400 µ$ per sat at the default `usd_per_sat = 0.0004`.
const MICROS_PER_SAT: i64 = 400;
const CHAT: &str = "/v1/chat/completions";

/// A key as `POST /api/keys` returned it.
#[derive(Debug, Clone)]
struct Key {
    id: String,
    secret: String,
    account: String,
}

impl Key {
    fn from_created(v: &Value) -> Key {
        for field in [
            "id",
            "key",
            "label",
            "createdAt",
            "freeRequestsRemaining",
            "accountId",
            "role",
        ] {
            assert!(v.get(field).is_some(), "`{field}` missing from {v}");
        }
        Key {
            id: v["id"].as_str().expect("id").to_owned(),
            secret: v["key"].as_str().expect("key").to_owned(),
            account: v["accountId"].as_str().expect("accountId").to_owned(),
        }
    }
}

/// `POST /api/keys` without auth: a new account and its first (manage) key.
async fn new_account(gw: &Gateway, label: &str) -> (Key, Value) {
    let mut resp = gw
        .client()
        .post(format!("{}/api/keys", gw.url))
        .send_json(&json!({ "label": label }))
        .await
        .expect("mint");
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.expect("mint json");
    assert_eq!(status, 201, "{v}");
    assert_eq!(
        v["role"], "manage",
        "the first key of an account manages it: {v}"
    );
    assert_eq!(v["label"], label);
    (Key::from_created(&v), v)
}

/// `POST /api/keys` with a manage key's bearer: a new key in its account.
async fn mint(gw: &Gateway, manager: &Key, body: Value) -> (Key, Value) {
    let (status, v) = gw
        .send("POST", "/api/keys", &manager.secret, Some(body.clone()))
        .await;
    assert_eq!(status, 201, "{body} -> {v}");
    let key = Key::from_created(&v);
    assert_eq!(
        key.account, manager.account,
        "minted into the caller's account"
    );
    assert_ne!(key.id, manager.id);
    let role = body.get("role").and_then(Value::as_str).unwrap_or("use");
    assert_eq!(v["role"], role, "{v}");
    (key, v)
}

async fn chat(gw: &Gateway, key: &Key) -> Reply {
    gw.post(CHAT, &key.secret, &exact_request(false)).await
}

/// An OpenAI-shaped error with this status, type and code.
fn assert_error(what: &str, status: u16, v: &Value, want: u16, kind: &str, code: &str) {
    assert_eq!(status, want, "{what}: {v}");
    let e = &v["error"];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: no message in {v}"
    );
    assert!(
        e.as_object().is_some_and(|o| o.contains_key("param")),
        "{what}: no param in {v}"
    );
    assert_eq!(e["type"], kind, "{what}: {v}");
    assert_eq!(e["code"], code, "{what}: {v}");
}

fn assert_forbidden(what: &str, status: u16, v: &Value) {
    assert_error(
        what,
        status,
        v,
        403,
        "permission_error",
        "insufficient_permissions",
    );
}

/// A JSON number of USD equals `micros` micro-dollars.
fn assert_usd(v: &Value, micros: i64, what: &str) {
    let got = v
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number: {v}"));
    assert!(
        (got - micros as f64 / 1e6).abs() < 1e-9,
        "{what}: {got} USD, expected {} USD",
        micros as f64 / 1e6
    );
}

fn account_of(gw: &Gateway, key_id: &str) -> account::Account {
    let pool = gw.db();
    let mut conn = pool.get().expect("conn");
    account::of_key(&mut conn, key_id)
        .expect("query")
        .expect("the key has an account")
}

/// (cached balance, ledger sum) of an account.
fn balance_and_ledger(gw: &Gateway, account_id: &str) -> (i64, i64) {
    let pool = gw.db();
    let mut conn = pool.get().expect("conn");
    let acc = account::find(&mut conn, account_id)
        .expect("query")
        .expect("account");
    let sum = ledger::sum_for_account(&mut conn, account_id).expect("ledger sum");
    (acc.balance_micros, sum)
}

/// The entry for `key_id` in `GET /api/account`'s `keys`.
fn listed<'a>(account: &'a Value, key_id: &str) -> &'a Value {
    account["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["id"] == key_id)
        .unwrap_or_else(|| panic!("{key_id} not listed in {account}"))
}

/// Polls `check` for up to 5 s.
async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    check()
}

#[actix_web::test]
async fn two_keys_of_one_account_never_overspend_its_balance() {
    let (_fake, gw) = exact_gateway(&[("PURA__FREE_TIER__REQUESTS", "0")]);
    let (manage, _) = new_account(&gw, "owner").await;
    let (tool, _) = mint(&gw, &manage, json!({"label": "tool"})).await;
    assert_eq!(account_of(&gw, &tool.id).id, manage.account);

    // Exactly 100 requests' worth, half credited through each key: both land in the account.
    let half_sats = 50 * COST / MICROS_PER_SAT;
    gw.admin_credit(&manage.id, half_sats).await;
    gw.admin_credit(&tool.id, half_sats).await;
    for k in [&manage, &tool] {
        let (status, bal) = gw.get("/api/wallet/balance", &k.secret).await;
        assert_eq!(status, 200, "{bal}");
        assert_eq!(bal["balanceSats"], 2 * half_sats, "{bal}");
        assert_usd(
            &bal["balanceUsd"],
            100 * COST,
            "account balance seen by a key",
        );
        assert_eq!(bal["freeRequestsRemaining"], 0);
    }

    let keys = [&manage, &tool];
    let body = exact_request(false);
    let (gw_ref, body_ref) = (&gw, &body);
    let replies: Vec<(&Key, Reply)> = join_all((0..500).map(|i| {
        let key = keys[i % 2];
        async move { (key, gw_ref.post(CHAT, &key.secret, body_ref).await) }
    }))
    .await;

    let mut served: BTreeMap<&str, usize> = BTreeMap::new();
    let mut paywalled = 0;
    let mut other = Vec::new();
    for (key, r) in &replies {
        match r.status {
            200 => *served.entry(key.id.as_str()).or_default() += 1,
            402 => {
                paywalled += 1;
                let v = r.json();
                assert_error(
                    "a refused request",
                    402,
                    &v,
                    402,
                    "payment_required",
                    "payment_required",
                );
            }
            s => other.push(format!("{s} {}", r.text())),
        }
    }
    let served_manage = served.get(manage.id.as_str()).copied().unwrap_or(0);
    let served_tool = served.get(tool.id.as_str()).copied().unwrap_or(0);
    let total = served_manage + served_tool;
    println!(
        "accounts concurrency: 500 requests over 2 keys of one account funded for 100: \
         {total} served (manage key {served_manage}, use key {served_tool}), {paywalled} got 402, \
         {} other",
        other.len()
    );
    if let Some(o) = other.first() {
        println!("first other reply: {o}");
    }
    assert!(other.is_empty(), "only 200 and 402 expected: {other:?}");
    assert_eq!(total, 100, "the balance covers exactly 100 requests");
    assert_eq!(paywalled, 400);

    let pool = gw.db();
    let mut conn = pool.get().expect("conn");
    // Settlement is part of answering; the poll only guards against a slow commit.
    let settled = eventually(|| {
        ledger::for_account(&mut conn, &manage.account)
            .map(|e| e.iter().filter(|e| e.kind == ledger::DEBIT).count() >= 100)
            .unwrap_or(false)
    })
    .await;
    assert!(settled, "100 debits recorded");
    let (balance, ledger_sum) = balance_and_ledger(&gw, &manage.account);
    println!(
        "accounts concurrency: final account balance {balance} µ$ (ledger sum {ledger_sum} µ$)"
    );
    assert_eq!(
        balance, 0,
        "the account is spent to exactly zero, never below"
    );
    assert_eq!(
        ledger_sum, balance,
        "the cached balance is the ledger's sum"
    );

    let entries = ledger::for_account(&mut conn, &manage.account).expect("ledger");
    assert!(entries.iter().all(|e| e.account_id == manage.account));
    let credits: Vec<_> = entries
        .iter()
        .filter(|e| e.kind == ledger::ADMIN_CREDIT)
        .collect();
    assert_eq!(credits.len(), 2);
    assert_eq!(
        credits
            .iter()
            .map(|e| e.key_id.as_str())
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([manage.id.as_str(), tool.id.as_str()]),
        "a credit remembers the key it was made through"
    );
    assert!(credits.iter().all(|e| e.amount_micros == 50 * COST));
    let mut debits: BTreeMap<&str, Vec<&ledger::Entry>> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.kind == ledger::DEBIT) {
        debits.entry(e.reference.as_str()).or_default().push(e);
    }
    assert_eq!(debits.values().map(Vec::len).sum::<usize>(), 100);

    for (key, n) in [(&manage, served_manage), (&tool, served_tool)] {
        let rows = usage::for_key(&mut conn, &key.id).expect("usage");
        assert_eq!(
            rows.len(),
            n,
            "one usage row per request served by {}",
            key.id
        );
        for row in &rows {
            assert_eq!(row.key_id, key.id);
            assert_eq!(
                row.account_id, manage.account,
                "usage row {} account",
                row.id
            );
            assert_eq!(row.cost_micros, COST);
            let d = debits
                .get(row.id.as_str())
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            assert_eq!(d.len(), 1, "request {} debited exactly once", row.id);
            assert_eq!(d[0].amount_micros, -COST);
            assert_eq!(d[0].key_id, key.id, "the debit names the key that spent");
        }
    }

    let (status, acc) = gw.get("/api/account", &manage.secret).await;
    assert_eq!(status, 200, "{acc}");
    assert_eq!(acc["id"], manage.account.as_str());
    assert_eq!(acc["balanceSats"], 0);
    assert_usd(&acc["balanceUsd"], 0, "account balance");
    assert_usd(
        &listed(&acc, &manage.id)["dailySpendUsd"],
        served_manage as i64 * COST,
        "manage key's own daily spend",
    );
    assert_usd(
        &listed(&acc, &tool.id)["dailySpendUsd"],
        served_tool as i64 * COST,
        "use key's own daily spend",
    );
}

#[actix_web::test]
async fn a_keys_budget_and_rpm_limit_hold_while_its_siblings_keep_working() {
    let (_fake, gw) = exact_gateway(&[("PURA__FREE_TIER__REQUESTS", "0")]);
    let (manage, _) = new_account(&gw, "owner").await;
    let credit_sats = 10_000; // $4, far more than this test spends
    gw.admin_credit(&manage.id, credit_sats).await;
    let (budgeted, _) = mint(
        &gw,
        &manage,
        json!({"label": "budgeted", "dailyBudgetUsd": 0.045}),
    )
    .await;
    let (limited, _) = mint(&gw, &manage, json!({"label": "limited", "rpmLimit": 3})).await;
    let (_, me) = gw.get("/api/keys/me", &budgeted.secret).await;
    assert_eq!(me["dailyBudgetUsd"], 0.045, "{me}");
    let (_, me) = gw.get("/api/keys/me", &limited.secret).await;
    assert_eq!(me["rpmLimit"], 3, "{me}");
    let mut served = 0;

    // The daily budget covers 3 requests of the budgeted key.
    for i in 0..3 {
        let r = chat(&gw, &budgeted).await;
        assert_eq!(r.status, 200, "budgeted request {i}: {}", r.text());
        served += 1;
    }
    let r = chat(&gw, &budgeted).await;
    assert_error(
        "over the key's daily budget",
        r.status,
        &r.json(),
        429,
        "insufficient_quota",
        "insufficient_quota",
    );
    let (_, bal) = gw.get("/api/wallet/balance", &budgeted.secret).await;
    assert_usd(&bal["dailyBudgetUsd"], 45_000, "the key's own daily budget");
    assert_usd(&bal["dailySpendUsd"], 3 * COST, "the key's own daily spend");
    let r = chat(&gw, &manage).await;
    assert_eq!(r.status, 200, "the manage key still works: {}", r.text());
    served += 1;

    // The RPM limit allows 3 requests this minute to the limited key.
    for i in 0..3 {
        let r = chat(&gw, &limited).await;
        assert_eq!(r.status, 200, "limited request {i}: {}", r.text());
        assert_eq!(r.header("x-ratelimit-limit-requests"), Some("3"));
        served += 1;
    }
    // Reading the balance copies the account without its RPM windows: the actor's stay.
    let (status, _) = gw.get("/api/wallet/balance", &limited.secret).await;
    assert_eq!(status, 200);
    let r = chat(&gw, &limited).await;
    assert_error(
        "over the key's RPM limit",
        r.status,
        &r.json(),
        429,
        "rate_limit_error",
        "rate_limit_exceeded",
    );
    let retry: u64 = r.header("retry-after").unwrap_or("0").parse().unwrap_or(0);
    assert!((1..=60).contains(&retry), "retry-after {retry}");

    // The siblings are untouched by either limit.
    let r = chat(&gw, &manage).await;
    assert_eq!(r.status, 200, "the manage key still works: {}", r.text());
    served += 1;
    let (fresh, _) = mint(&gw, &manage, json!({"label": "fresh"})).await;
    let r = chat(&gw, &fresh).await;
    assert_eq!(r.status, 200, "a new sibling works: {}", r.text());
    served += 1;
    let r = chat(&gw, &budgeted).await;
    assert_eq!(r.status, 429, "the budget still holds: {}", r.text());
    let r = chat(&gw, &limited).await;
    assert_eq!(r.status, 429, "the RPM limit still holds: {}", r.text());
    let (_, bal) = gw.get("/api/wallet/balance", &manage.secret).await;
    assert_usd(
        &bal["dailySpendUsd"],
        2 * COST,
        "the manage key's own daily spend",
    );

    // The manage key raises the budgeted key's budget: it is served again.
    let (status, v) = gw
        .send(
            "PATCH",
            &format!("/api/account/keys/{}", budgeted.id),
            &manage.secret,
            Some(json!({"dailyBudgetUsd": 1.0})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["id"], budgeted.id.as_str());
    assert_eq!(v["dailyBudgetUsd"], 1.0, "{v}");
    let r = chat(&gw, &budgeted).await;
    assert_eq!(
        r.status,
        200,
        "served under the raised budget: {}",
        r.text()
    );
    served += 1;

    // Under concurrency: a key with a budget of 10 requests and a key with an RPM limit of 5
    // each get exactly their share of 60 concurrent requests, while the sibling gets all of its.
    let (capped, _) = mint(
        &gw,
        &manage,
        json!({"label": "capped", "dailyBudgetUsd": 0.15}),
    )
    .await;
    let (throttled, _) = mint(&gw, &manage, json!({"label": "throttled", "rpmLimit": 5})).await;
    let (sibling, _) = mint(&gw, &manage, json!({"label": "sibling"})).await;
    let keys = [&capped, &throttled, &sibling];
    let body = exact_request(false);
    let (gw_ref, body_ref) = (&gw, &body);
    let replies: Vec<(usize, Reply)> = join_all((0..180).map(|i| {
        let key = keys[i % 3];
        async move { (i % 3, gw_ref.post(CHAT, &key.secret, body_ref).await) }
    }))
    .await;
    let mut outcome = [[0usize; 3]; 3]; // [key][200, 429, other]
    for (k, r) in &replies {
        let slot = match r.status {
            200 => 0,
            429 => 1,
            _ => 2,
        };
        outcome[*k][slot] += 1;
        if r.status == 429 {
            let want = if *k == 0 {
                "insufficient_quota"
            } else {
                "rate_limit_exceeded"
            };
            assert_eq!(r.json()["error"]["code"], want, "key {k}: {}", r.text());
        }
    }
    println!("accounts limits under concurrency (served, 429, other): capped {:?}, throttled {:?}, sibling {:?}", outcome[0], outcome[1], outcome[2]);
    assert_eq!(
        outcome[0],
        [10, 50, 0],
        "the daily budget covers exactly 10"
    );
    assert_eq!(outcome[1], [5, 55, 0], "the RPM limit allows exactly 5");
    assert_eq!(outcome[2], [60, 0, 0], "the sibling is served every time");
    served += 75;

    let (balance, ledger_sum) = balance_and_ledger(&gw, &manage.account);
    assert_eq!(balance, credit_sats * MICROS_PER_SAT - served * COST);
    assert_eq!(ledger_sum, balance);
}

#[actix_web::test]
async fn a_use_key_cannot_manage_and_a_manage_key_cannot_reach_another_account() {
    let gw = Gateway::start("", &[]);
    let (manage, _) = new_account(&gw, "owner").await;
    let (tool, _) = mint(
        &gw,
        &manage,
        json!({"label": "tool", "dailyBudgetUsd": 1.0, "monthlyBudgetUsd": 10.0, "rpmLimit": 10}),
    )
    .await;
    let (other, _) = new_account(&gw, "stranger").await;
    let (others_tool, _) = mint(&gw, &other, json!({"label": "their tool"})).await;
    assert_ne!(other.account, manage.account);

    let forbidden: Vec<(&str, String, Option<Value>)> = vec![
        ("POST", "/api/keys".into(), Some(json!({"label": "more"}))),
        (
            "POST",
            "/api/keys".into(),
            Some(json!({"label": "more", "role": "manage"})),
        ),
        ("GET", "/api/account".into(), None),
        (
            "PATCH",
            format!("/api/account/keys/{}", manage.id),
            Some(json!({"label": "taken over"})),
        ),
        (
            "PATCH",
            format!("/api/account/keys/{}", tool.id),
            Some(json!({"dailyBudgetUsd": 100})),
        ),
        (
            "POST",
            format!("/api/account/keys/{}/rotate", manage.id),
            None,
        ),
        (
            "POST",
            format!("/api/account/keys/{}/rotate", tool.id),
            None,
        ),
        ("DELETE", format!("/api/account/keys/{}", manage.id), None),
        ("GET", "/api/report?period=24h&key=all".into(), None),
        (
            "GET",
            format!("/api/report?period=24h&key={}", manage.id),
            None,
        ),
        // A leaked tool key must not lift its own limits.
        (
            "PATCH",
            "/api/keys/me".into(),
            Some(json!({"dailyBudgetUsd": 100})),
        ),
        (
            "PATCH",
            "/api/keys/me".into(),
            Some(json!({"monthlyBudgetUsd": 1000})),
        ),
        (
            "PATCH",
            "/api/keys/me".into(),
            Some(json!({"rpmLimit": 100000})),
        ),
        (
            "PATCH",
            "/api/keys/me".into(),
            Some(json!({"dailyBudgetUsd": null})),
        ),
        (
            "PATCH",
            "/api/keys/me".into(),
            Some(json!({"label": "sneaky", "rpmLimit": 100000})),
        ),
    ];
    for (method, path, body) in forbidden {
        let what = format!("use key: {method} {path} {body:?}");
        let (status, v) = gw.send(method, &path, &tool.secret, body).await;
        assert_forbidden(&what, status, &v);
    }

    // Nothing of the refused calls happened.
    let (status, me) = gw.get("/api/keys/me", &tool.secret).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["label"], "tool");
    assert_eq!(me["dailyBudgetUsd"], 1.0);
    assert_eq!(me["monthlyBudgetUsd"], 10.0);
    assert_eq!(me["rpmLimit"], 10);
    let (status, acc) = gw.get("/api/account", &manage.secret).await;
    assert_eq!(
        status, 200,
        "the manage key's secret was not rotated: {acc}"
    );
    assert_eq!(acc["id"], manage.account.as_str());
    let keys = acc["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2, "no key was minted by the use key: {acc}");
    for k in keys {
        for field in [
            "id",
            "label",
            "role",
            "disabled",
            "createdAt",
            "dailyBudgetUsd",
            "monthlyBudgetUsd",
            "rpmLimit",
            "dailySpendUsd",
            "monthlySpendUsd",
        ] {
            assert!(k.get(field).is_some(), "`{field}` missing from {k}");
        }
    }
    for field in ["balanceSats", "balanceUsd", "freeRequestsRemaining"] {
        assert!(acc.get(field).is_some(), "`{field}` missing from {acc}");
    }
    let m = listed(&acc, &manage.id);
    assert_eq!(
        (m["role"].as_str(), m["label"].as_str()),
        (Some("manage"), Some("owner"))
    );
    assert_eq!(m["disabled"], false);
    let t = listed(&acc, &tool.id);
    assert_eq!(t["role"], "use");
    assert_eq!(t["dailyBudgetUsd"], 1.0);
    assert_eq!(t["monthlyBudgetUsd"], 10.0);
    assert_eq!(t["rpmLimit"], 10);
    assert!(!keys
        .iter()
        .any(|k| k["id"] == other.id.as_str() || k["id"] == others_tool.id.as_str()));

    // What a use key may do for itself.
    let (status, me) = gw
        .send(
            "PATCH",
            "/api/keys/me",
            &tool.secret,
            Some(json!({"label": "tool 2", "notifyEmail": "ops@example.com",
                        "webhookUrl": "http://127.0.0.1:9/hook"})),
        )
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["label"], "tool 2");
    assert_eq!(me["notifyEmail"], "ops@example.com");
    assert_eq!(me["webhookUrl"], "http://127.0.0.1:9/hook");
    assert_eq!(me["dailyBudgetUsd"], 1.0);
    for path in [
        "/api/report".to_owned(),
        format!("/api/report?period=24h&key={}", tool.id),
        "/api/wallet/balance".to_owned(),
    ] {
        let (status, v) = gw.get(&path, &tool.secret).await;
        assert_eq!(status, 200, "use key: GET {path}: {v}");
    }

    // A manage key minted as such manages the account too.
    let (co_owner, _) = mint(&gw, &manage, json!({"label": "co-owner", "role": "manage"})).await;
    let (status, acc) = gw.get("/api/account", &co_owner.secret).await;
    assert_eq!(status, 200, "{acc}");
    assert_eq!(acc["id"], manage.account.as_str());
    assert_eq!(listed(&acc, &co_owner.id)["role"], "manage");
    let (status, v) = gw
        .get("/api/report?period=24h&key=all", &co_owner.secret)
        .await;
    assert_eq!(status, 200, "{v}");

    // Another account's keys are unknown to a manage key.
    let not_found: Vec<(&str, String, Option<Value>)> = vec![
        (
            "PATCH",
            format!("/api/account/keys/{}", others_tool.id),
            Some(json!({"label": "mine now"})),
        ),
        (
            "PATCH",
            format!("/api/account/keys/{}", other.id),
            Some(json!({"disabled": true})),
        ),
        (
            "POST",
            format!("/api/account/keys/{}/rotate", others_tool.id),
            None,
        ),
        (
            "POST",
            format!("/api/account/keys/{}/rotate", other.id),
            None,
        ),
        (
            "DELETE",
            format!("/api/account/keys/{}", others_tool.id),
            None,
        ),
        ("DELETE", format!("/api/account/keys/{}", other.id), None),
        (
            "GET",
            format!("/api/report?period=24h&key={}", others_tool.id),
            None,
        ),
        (
            "PATCH",
            "/api/account/keys/key_doesnotexist".into(),
            Some(json!({"label": "x"})),
        ),
    ];
    for (method, path, body) in not_found {
        let what = format!("manage key: {method} {path} {body:?}");
        let (status, v) = gw.send(method, &path, &manage.secret, body).await;
        assert_eq!(status, 404, "{what}: {v}");
        assert!(v["error"]["message"].as_str().is_some(), "{what}: {v}");
        assert!(v["error"]["type"].as_str().is_some(), "{what}: {v}");
    }
    for (key, label) in [(&other, "stranger"), (&others_tool, "their tool")] {
        let (status, me) = gw.get("/api/keys/me", &key.secret).await;
        assert_eq!(status, 200, "the other account's key still works: {me}");
        assert_eq!(me["label"], label);
        assert_eq!(me["disabled"], false);
    }

    let (status, v) = gw.get("/api/account", "").await;
    assert_eq!(status, 401, "{v}");
}

#[actix_web::test]
async fn the_account_path_disables_and_rotates_one_key_only() {
    let (_fake, gw) = exact_gateway(&[]);
    let (manage, _) = new_account(&gw, "owner").await;
    let (doomed, _) = mint(&gw, &manage, json!({"label": "doomed"})).await;
    let (sibling, _) = mint(&gw, &manage, json!({"label": "sibling"})).await;
    for k in [&manage, &doomed, &sibling] {
        assert_eq!(chat(&gw, k).await.status, 200);
    }

    let path = format!("/api/account/keys/{}", doomed.id);
    let (status, v) = gw.send("DELETE", &path, &manage.secret, None).await;
    assert_eq!(status, 204, "{v}");
    let r = chat(&gw, &doomed).await;
    assert_error(
        "a disabled key",
        r.status,
        &r.json(),
        401,
        "authentication_error",
        "invalid_api_key",
    );
    let (status, _) = gw.get("/api/keys/me", &doomed.secret).await;
    assert_eq!(status, 401);
    for k in [&manage, &sibling] {
        let r = chat(&gw, k).await;
        assert_eq!(r.status, 200, "a sibling still works: {}", r.text());
    }
    let (_, acc) = gw.get("/api/account", &manage.secret).await;
    assert_eq!(listed(&acc, &doomed.id)["disabled"], true, "{acc}");
    assert_eq!(listed(&acc, &sibling.id)["disabled"], false, "{acc}");

    // Rotation through the account: the old secret is refused at once, the new one works.
    let (status, rotated) = gw
        .send(
            "POST",
            &format!("/api/account/keys/{}/rotate", sibling.id),
            &manage.secret,
            None,
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(rotated["id"], sibling.id.as_str());
    let new_secret = rotated["key"].as_str().expect("new key").to_owned();
    assert_ne!(new_secret, sibling.secret);
    let r = chat(&gw, &sibling).await;
    assert_error(
        "a rotated-away secret",
        r.status,
        &r.json(),
        401,
        "authentication_error",
        "invalid_api_key",
    );
    let renewed = Key {
        secret: new_secret,
        ..sibling.clone()
    };
    let r = chat(&gw, &renewed).await;
    assert_eq!(r.status, 200, "the new secret works: {}", r.text());
    let (_, report) = gw.get("/api/report", &renewed.secret).await;
    assert_eq!(
        report["requestCount"], 3,
        "history follows the key across rotation"
    );
    assert_eq!(
        chat(&gw, &manage).await.status,
        200,
        "the manager is untouched"
    );

    // PATCH through the account changes the key's settings and can enable it again.
    let (status, v) = gw
        .send(
            "PATCH",
            &path,
            &manage.secret,
            Some(json!({"disabled": false, "label": "revived", "rpmLimit": 7})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["id"], doomed.id.as_str());
    assert_eq!(v["disabled"], false);
    assert_eq!(v["label"], "revived");
    assert_eq!(v["rpmLimit"], 7);
    let r = chat(&gw, &doomed).await;
    assert_eq!(r.status, 200, "enabled again: {}", r.text());
    assert_eq!(r.header("x-ratelimit-limit-requests"), Some("7"));
    assert_eq!(
        gw.usage_rows(&doomed.id).len(),
        2,
        "a disabled key kept its history"
    );
}

#[actix_web::test]
async fn the_free_tier_is_counted_per_account() {
    let (_fake, gw) = exact_gateway(&[("PURA__FREE_TIER__REQUESTS", "3")]);
    let (manage, created) = new_account(&gw, "owner").await;
    assert_eq!(created["freeRequestsRemaining"], 3);
    let (tool, created) = mint(&gw, &manage, json!({"label": "tool"})).await;
    assert_eq!(
        created["freeRequestsRemaining"], 3,
        "the account's free requests"
    );

    for (key, left) in [(&manage, 2), (&tool, 1), (&manage, 0)] {
        let r = chat(&gw, key).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let left_text = left.to_string();
        assert_eq!(
            r.header("x-pura-free-requests-remaining"),
            Some(left_text.as_str()),
            "free requests left in the account"
        );
        for k in [&manage, &tool] {
            let (_, bal) = gw.get("/api/wallet/balance", &k.secret).await;
            assert_eq!(bal["freeRequestsRemaining"], left, "{bal}");
            let (_, me) = gw.get("/api/keys/me", &k.secret).await;
            assert_eq!(me["freeRequestsRemaining"], left, "{me}");
        }
    }
    for key in [&manage, &tool] {
        let r = chat(&gw, key).await;
        assert_error(
            "free tier used up, nothing in the balance",
            r.status,
            &r.json(),
            402,
            "payment_required",
            "payment_required",
        );
    }
    let (_, acc) = gw.get("/api/account", &manage.secret).await;
    assert_eq!(acc["freeRequestsRemaining"], 0, "{acc}");
    assert_eq!(acc["balanceSats"], 0);
    let (_, late) = mint(&gw, &manage, json!({"label": "late"})).await;
    assert_eq!(
        late["freeRequestsRemaining"], 0,
        "a new key brings no free requests"
    );
    let late = Key::from_created(&late);
    assert_eq!(chat(&gw, &late).await.status, 402);
    let stored = account_of(&gw, &tool.id);
    assert_eq!(
        (stored.free_requests_remaining, stored.balance_micros),
        (0, 0)
    );
    assert_eq!(
        balance_and_ledger(&gw, &manage.account),
        (0, 0),
        "free requests debit nothing"
    );

    // Another account has its own free tier.
    let (stranger, _) = new_account(&gw, "stranger").await;
    let r = chat(&gw, &stranger).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-pura-free-requests-remaining"), Some("2"));

    // Funding through the use key pays for the manage key's requests.
    gw.admin_credit(&tool.id, 100).await; // 40,000 µ$
    let r = chat(&gw, &manage).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-pura-free-requests-remaining"), Some("0"));
    assert_eq!(
        balance_and_ledger(&gw, &manage.account),
        (40_000 - COST, 40_000 - COST)
    );
    let (_, bal) = gw.get("/api/wallet/balance", &tool.secret).await;
    assert_usd(
        &bal["balanceUsd"],
        40_000 - COST,
        "the account balance seen by the use key",
    );
    assert_usd(&bal["dailySpendUsd"], COST, "the use key's own spend");
}

#[actix_web::test]
async fn the_account_report_splits_spend_per_key() {
    let (_fake, gw) = exact_gateway(&[]);
    let (manage, _) = new_account(&gw, "owner").await;
    let (tool, _) = mint(&gw, &manage, json!({"label": "tool"})).await;
    let (stranger, _) = new_account(&gw, "stranger").await;
    for (key, n) in [(&manage, 3), (&tool, 2), (&stranger, 1)] {
        for _ in 0..n {
            let r = chat(&gw, key).await;
            assert_eq!(r.status, 200, "{}", r.text());
        }
    }

    let (status, all) = gw
        .get("/api/report?period=24h&key=all", &manage.secret)
        .await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["period"], "24h");
    assert_eq!(all["requestCount"], 5, "{all}");
    assert_usd(&all["totalSpendUsd"], 5 * COST, "account spend");
    assert_usd(&all["averageCostUsd"], COST, "average cost");
    assert_eq!(all["perModel"]["openai"]["requests"], 5, "{all}");
    let hourly = all["hourly"].as_array().expect("hourly");
    assert_eq!(
        hourly
            .iter()
            .map(|h| h["requests"].as_i64().unwrap_or(0))
            .sum::<i64>(),
        5
    );
    let per_key = all["perKey"].as_object().expect("perKey");
    assert_eq!(
        per_key.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        BTreeSet::from([manage.id.as_str(), tool.id.as_str()]),
        "{all}"
    );
    for (key, label, n) in [(&manage, "owner", 3), (&tool, "tool", 2)] {
        let p = &per_key[&key.id];
        assert_eq!(p["label"], label);
        assert_eq!(p["requests"], n);
        assert_usd(&p["spendUsd"], n * COST, "per-key spend");
        let rows = gw.usage_rows(&key.id);
        assert_eq!(
            p["promptTokens"],
            rows.iter().map(|r| r.prompt_tokens).sum::<i64>()
        );
        assert_eq!(
            p["completionTokens"],
            rows.iter().map(|r| r.completion_tokens).sum::<i64>()
        );
    }
    let sum_requests: i64 = per_key
        .values()
        .map(|p| p["requests"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(sum_requests, 5);
    let sum_spend: f64 = per_key
        .values()
        .map(|p| p["spendUsd"].as_f64().unwrap_or(0.0))
        .sum();
    assert!((sum_spend - all["totalSpendUsd"].as_f64().unwrap_or(-1.0)).abs() < 1e-9);

    // One key's report: a use key's own, the manager's view of it, the manager's own.
    for (bearer, path, n) in [
        (&tool, "/api/report?period=24h".to_owned(), 2),
        (&tool, format!("/api/report?period=24h&key={}", tool.id), 2),
        (
            &manage,
            format!("/api/report?period=24h&key={}", tool.id),
            2,
        ),
        (&manage, "/api/report?period=24h".to_owned(), 3),
        (&stranger, "/api/report?period=24h".to_owned(), 1),
    ] {
        let (status, r) = gw.get(&path, &bearer.secret).await;
        assert_eq!(status, 200, "{path}: {r}");
        assert_eq!(r["requestCount"], n, "{} GET {path}: {r}", bearer.id);
        assert_usd(&r["totalSpendUsd"], n * COST, "one key's spend");
    }
    let (status, v) = gw
        .get("/api/report?period=24h&key=all", &stranger.secret)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["requestCount"], 1, "a one-key account's report: {v}");
}

/// Polls an async `check` for up to 5 s (well under the key cache's 30 s).
async fn eventually_async(mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    check().await
}

#[actix_web::test]
async fn funding_through_a_use_key_credits_the_account() {
    let lnd = FakeLnd::start();
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    fake.set_reply_text("one two three four five");
    let cert = lnd.cert_path.display().to_string();
    let gw = Gateway::start(
        &provider_toml("openai", &fake, "mid", "gpt-4o", 1.0),
        &[
            ("PURA__LIGHTNING__BACKEND", "lnd"),
            ("PURA__LIGHTNING__URL", lnd.url.as_str()),
            ("PURA__LIGHTNING__TLS_CERT_PATH", cert.as_str()),
            ("LND_MACAROON_HEX", MACAROON),
            ("PURA__LIGHTNING__POLL_INTERVAL", "100ms"),
            ("PURA__FREE_TIER__REQUESTS", "0"),
            ("PURA__LIMITS__RPM", "100000"),
        ],
    );
    let (manage, _) = new_account(&gw, "owner").await;
    let (tool, _) = mint(&gw, &manage, json!({"label": "tool"})).await;
    let (stranger, _) = new_account(&gw, "stranger").await;
    // (No 402 here: it would come with an invoice of its own, and the fake node settles all.)
    let (_, bal) = gw.get("/api/wallet/balance", &manage.secret).await;
    assert_eq!(bal["balanceSats"], 0, "{bal}");

    let (status, inv) = gw
        .send(
            "POST",
            "/api/wallet/fund",
            &tool.secret,
            Some(json!({"amount": 1000})),
        )
        .await;
    assert_eq!(status, 201, "{inv}\n{}", gw.log());
    let id = inv["invoiceId"].as_str().expect("invoiceId").to_owned();
    let status_path = format!("/api/wallet/status?invoiceId={id}");
    let (status, s) = gw.get(&status_path, &manage.secret).await;
    assert_eq!(
        status, 200,
        "the account's invoice, seen by its manage key: {s}"
    );
    assert_eq!(s["status"], "pending");
    let (status, v) = gw.get(&status_path, &stranger.secret).await;
    assert_eq!(status, 404, "another account's invoice: {v}");
    assert_eq!(v["error"]["code"], "invoice_not_found");

    lnd.settle_all();
    let paid =
        eventually_async(async || gw.get(&status_path, &tool.secret).await.1["status"] == "paid")
            .await;
    assert!(paid, "the invoice is paid");
    // Committed in the turn of the account's actor: the balance never lags the status.
    for k in [&manage, &tool] {
        let (_, bal) = gw.get("/api/wallet/balance", &k.secret).await;
        assert_eq!(bal["balanceSats"], 1000, "{bal}");
    }
    {
        let pool = gw.db();
        let mut conn = pool.get().expect("conn");
        let row = invoice::find(&mut conn, &id)
            .expect("query")
            .expect("invoice");
        assert_eq!(
            (row.key_id.as_str(), row.account_id.as_str()),
            (tool.id.as_str(), manage.account.as_str())
        );
        let credits: Vec<_> = ledger::for_account(&mut conn, &manage.account)
            .expect("ledger")
            .into_iter()
            .filter(|e| e.kind == ledger::LIGHTNING_CREDIT)
            .collect();
        assert_eq!(credits.len(), 1, "credited once");
        assert_eq!(credits[0].key_id, tool.id);
        assert_eq!(credits[0].amount_micros, 1000 * MICROS_PER_SAT);
    }
    assert_eq!(
        balance_and_ledger(&gw, &manage.account),
        (1000 * MICROS_PER_SAT, 1000 * MICROS_PER_SAT)
    );
    let r = chat(&gw, &manage).await;
    assert_eq!(
        r.status,
        200,
        "the manage key spends what the use key funded: {}",
        r.text()
    );
    assert_eq!(
        balance_and_ledger(&gw, &manage.account),
        (1000 * MICROS_PER_SAT - COST, 1000 * MICROS_PER_SAT - COST)
    );
}

#[actix_web::test]
async fn replicas_share_an_accounts_money_and_key_changes() {
    let url = match std::env::var("PURA_TEST_DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => url,
        _ => {
            eprintln!("PostgreSQL only: PURA_TEST_DATABASE_URL is not a postgres URL");
            return;
        }
    };
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    fake.set_reply_text("one two three four five");
    let toml = provider_toml("openai", &fake, "mid", "gpt-4o", 1.0);
    let env = [
        ("PURA__DATABASE__URL", url.as_str()),
        ("PURA__FREE_TIER__REQUESTS", "0"),
        ("PURA__LIMITS__RPM", "100000"),
    ];
    let a = Gateway::start(&toml, &env);
    let b = Gateway::start(&toml, &env);
    let (manage, _) = new_account(&a, "owner").await;
    let (tool, _) = mint(&a, &manage, json!({"label": "tool"})).await;

    // B loads the account (its BudgetActor) by serving the use key.
    assert_eq!(chat(&b, &tool).await.status, 402);
    // 40,000 µ$ through the manage key on A: two requests' worth.
    a.admin_credit(&manage.id, 100).await;
    assert!(
        eventually_async(async || chat(&b, &tool).await.status == 200).await,
        "B learns of a credit made through A to another key of the account"
    );
    assert_eq!(chat(&a, &manage).await.status, 200);
    let (_, on_a) = a.get("/api/wallet/balance", &manage.secret).await;
    assert_usd(&on_a["balanceUsd"], 40_000 - 2 * COST, "balance on A");
    assert!(
        eventually_async(async || {
            b.get("/api/wallet/balance", &tool.secret).await.1["balanceUsd"] == on_a["balanceUsd"]
        })
        .await,
        "B's view of the account follows A's debit by the sibling key"
    );
    let r = chat(&b, &tool).await;
    assert_eq!(
        r.status,
        402,
        "10,000 µ$ left does not cover a request: {}",
        r.text()
    );
    assert_eq!(
        balance_and_ledger(&a, &manage.account),
        (40_000 - 2 * COST, 40_000 - 2 * COST)
    );

    // A key disabled through A's account path is refused by B.
    let (status, _) = a
        .send(
            "DELETE",
            &format!("/api/account/keys/{}", tool.id),
            &manage.secret,
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert!(
        eventually_async(async || b.get("/api/keys/me", &tool.secret).await.0 == 401).await,
        "B refuses the disabled key"
    );
}

// ---- Migration of wave-one data ----

#[derive(diesel::QueryableByName, Debug)]
struct Owned {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    key_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    account_id: String,
}

#[derive(diesel::QueryableByName, Debug)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn load<T>(conn: &mut DbConn, sql: &str) -> Vec<T>
where
    T: diesel::QueryableByName<diesel::sqlite::Sqlite>
        + diesel::QueryableByName<diesel::pg::Pg>
        + 'static,
{
    use diesel::RunQueryDsl;
    match conn {
        DbConn::Sqlite(c) => diesel::sql_query(sql).load(c),
        DbConn::Pg(c) => diesel::sql_query(sql).load(c),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn count(conn: &mut DbConn, table: &str) -> i64 {
    load::<Count>(conn, &format!("SELECT COUNT(*) AS n FROM {table}"))[0].n
}

/// A database of its own: a temp SQLite file, or a new database on the PostgreSQL of
/// `PURA_TEST_DATABASE_URL` (dropped at the end).
struct FreshDb {
    url: String,
    _dir: tempfile::TempDir,
    pg: Option<common::OwnDb>,
}

impl FreshDb {
    fn new() -> FreshDb {
        let dir = tempfile::tempdir().expect("tempdir");
        match common::fresh_pg_database("pura_mig") {
            Some((url, own)) => FreshDb {
                url,
                _dir: dir,
                pg: Some(own),
            },
            None => FreshDb {
                url: format!("sqlite://{}", dir.path().join("wave-one.db").display()),
                _dir: dir,
                pg: None,
            },
        }
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        if let Some(own) = &self.pg {
            if let Ok(mut conn) = pura::db::pool(&own.server_url, 1).and_then(|p| Ok(p.get()?)) {
                let _ = conn.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    own.name
                ));
            }
        }
    }
}

/// Wave one: a key held its own money. `a` was funded by an admin credit and a paid invoice
/// and spent twice; `b` spent two free requests and one paid from a small credit.
const KEY_A: &str = "key_waveoneAAAAAAAAAAA";
const KEY_B: &str = "key_waveoneBBBBBBBBBBB";
const SECRET_A: &str = "pura_waveoneAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const SECRET_B: &str = "pura_waveoneBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
const BALANCE_A: i64 = 1_000_000 + 400_000 - 2 * 15_000;
const BALANCE_B: i64 = 40_000 - 15_000;
const FREE_B: i64 = 4990;

fn wave_one_sql() -> String {
    let now = pura::time::now();
    let ts = |hours_ago: i64| {
        (now - chrono::Duration::hours(hours_ago))
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    let (t0, t1, later) = (ts(2), ts(1), ts(-1));
    let (ha, hb) = (
        pura::auth::hash_key(SECRET_A),
        pura::auth::hash_key(SECRET_B),
    );
    format!(
        "INSERT INTO api_keys (id, key_hash, label, created_at, disabled, free_requests_remaining,
             daily_budget_micros, monthly_budget_micros, rpm_limit, notify_email, webhook_url, balance_micros)
         VALUES ('{KEY_A}', '{ha}', 'wave one a', '{t0}', FALSE, 0, 2000000, NULL, NULL, NULL, NULL, {BALANCE_A}),
                ('{KEY_B}', '{hb}', 'wave one b', '{t0}', FALSE, {FREE_B}, NULL, 30000000, 7, 'b@example.com', NULL, {BALANCE_B});
         INSERT INTO usage (id, key_id, provider, model, tier, prompt_tokens, completion_tokens, cost_micros,
             latency_ms, ttft_ms, status, stream, upstream_request_id, client_request_id, created_at,
             premium_cost_micros, protocol, cached_tokens, reasoning_tokens)
         VALUES ('req_wa1', '{KEY_A}', 'openai', 'gpt-4o', 'mid', 10, 5, 15000, 120, NULL, 'ok', FALSE, NULL, NULL, '{t1}', 30000, 'chat', 0, 0),
                ('req_wa2', '{KEY_A}', 'openai', 'gpt-4o', 'mid', 10, 5, 15000, 130, 40, 'ok', TRUE, 'up_1', 'cl_1', '{t1}', 30000, 'chat', 0, 0),
                ('req_wb1', '{KEY_B}', 'openai', 'gpt-4o', 'mid', 10, 5, 15000, 110, NULL, 'ok', FALSE, NULL, NULL, '{t1}', 30000, 'responses', 0, 0),
                ('req_wb2', '{KEY_B}', 'openai', 'gpt-4o', 'mid', 10, 5, 15000, 110, NULL, 'ok', FALSE, NULL, NULL, '{t1}', 30000, 'messages', 0, 0),
                ('req_wb3', '{KEY_B}', 'openai', 'gpt-4o', 'mid', 10, 5, 15000, 110, NULL, 'ok', FALSE, NULL, NULL, '{t1}', 30000, 'chat', 0, 0);
         INSERT INTO invoices (id, key_id, backend, payment_hash, bolt11, amount_sats, status, checkout_url,
             created_at, expires_at, paid_at)
         VALUES ('inv_wa', '{KEY_A}', 'lnd', 'hash_wa', 'lnbcrt10u1wavea', 1000, 'paid', NULL, '{t0}', '{later}', '{t0}'),
                ('inv_wb', '{KEY_B}', 'lnd', 'hash_wb', 'lnbcrt5u1waveb', 500, 'expired', NULL, '{t0}', '{t1}', NULL);
         INSERT INTO ledger (id, key_id, kind, reference, amount_micros, memo, created_at)
         VALUES ('led_w1', '{KEY_A}', 'admin_credit', 'adm_w1', 1000000, 'wave one credit', '{t0}'),
                ('led_w2', '{KEY_A}', 'lightning_credit', 'inv_wa', 400000, NULL, '{t0}'),
                ('led_w3', '{KEY_A}', 'debit', 'req_wa1', -15000, NULL, '{t1}'),
                ('led_w4', '{KEY_A}', 'debit', 'req_wa2', -15000, NULL, '{t1}'),
                ('led_w5', '{KEY_B}', 'admin_credit', 'adm_w2', 40000, NULL, '{t0}'),
                ('led_w6', '{KEY_B}', 'debit', 'req_wb3', -15000, NULL, '{t1}');"
    )
}

#[actix_web::test]
async fn wave_one_keys_migrate_to_one_account_each() {
    let db = FreshDb::new();
    let pool = pura::db::pool(&db.url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    pura::db::migrate_until(&mut conn, "2026-11-29-000007").expect("wave-one migrations");
    conn.batch_execute(&wave_one_sql()).expect("wave-one data");
    pura::db::migrate(&mut conn).expect("accounts migration");

    let mut accounts = BTreeSet::new();
    for (key_id, balance, free, usage_rows, ledger_rows) in [
        (KEY_A, BALANCE_A, 0, 2, 4),
        (KEY_B, BALANCE_B, FREE_B, 3, 2),
    ] {
        let key = api_key::find(&mut conn, key_id)
            .expect("query")
            .expect("key kept");
        let acc = account::of_key(&mut conn, key_id)
            .expect("query")
            .expect("every key has an account");
        assert_eq!(key.account_id, acc.id);
        assert_eq!(key.role, "manage", "a wave-one key manages its own account");
        assert!(!key.disabled);
        assert_eq!(
            account::find(&mut conn, &acc.id)
                .expect("query")
                .map(|a| a.id),
            Some(acc.id.clone())
        );
        assert_eq!(
            acc.balance_micros, balance,
            "{key_id}: balance moved to its account"
        );
        assert_eq!(
            acc.free_requests_remaining, free,
            "{key_id}: free requests moved"
        );
        assert_eq!(
            ledger::sum_for_account(&mut conn, &acc.id).expect("sum"),
            balance,
            "{key_id}: the ledger sums to the account's balance"
        );
        let entries = ledger::for_account(&mut conn, &acc.id).expect("ledger");
        assert_eq!(entries.len(), ledger_rows, "{key_id}: ledger rows");
        assert!(entries
            .iter()
            .all(|e| e.key_id == key_id && e.account_id == acc.id));
        let rows = usage::for_key(&mut conn, key_id).expect("usage");
        assert_eq!(rows.len(), usage_rows, "{key_id}: usage rows");
        assert!(
            rows.iter().all(|r| r.account_id == acc.id),
            "{key_id}: usage account"
        );
        assert!(
            accounts.insert(acc.id),
            "each key has an account of its own"
        );
    }
    let b = api_key::find(&mut conn, KEY_B)
        .expect("query")
        .expect("key");
    assert_eq!(b.label, "wave one b");
    assert_eq!(b.rpm_limit, Some(7));
    assert_eq!(b.monthly_budget_micros, Some(30_000_000));
    assert_eq!(b.notify_email.as_deref(), Some("b@example.com"));
    let a = api_key::find(&mut conn, KEY_A)
        .expect("query")
        .expect("key");
    assert_eq!(a.daily_budget_micros, Some(2_000_000));

    assert_eq!(count(&mut conn, "accounts"), 2);
    assert_eq!(count(&mut conn, "api_keys"), 2);
    assert_eq!(count(&mut conn, "usage"), 5);
    assert_eq!(count(&mut conn, "ledger"), 6);
    assert_eq!(count(&mut conn, "invoices"), 2);
    for table in ["usage", "ledger", "invoices"] {
        let rows: Vec<Owned> = load(
            &mut conn,
            &format!(
                "SELECT t.id AS id, t.key_id AS key_id, t.account_id AS account_id \
                 FROM {table} t ORDER BY t.id"
            ),
        );
        for row in rows {
            let key = api_key::find(&mut conn, &row.key_id)
                .expect("query")
                .expect("key");
            assert_eq!(
                row.account_id, key.account_id,
                "{table} row {} carries its key's account",
                row.id
            );
        }
    }
    let account_a = a.account_id.clone();
    drop(conn);
    drop(pool);

    // The gateway serves the migrated keys from their accounts.
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    fake.set_reply_text("one two three four five");
    let gw = Gateway::start(
        &provider_toml("openai", &fake, "mid", "gpt-4o", 1.0),
        &[
            ("PURA__DATABASE__URL", db.url.as_str()),
            ("PURA__LIMITS__RPM", "100000"),
        ],
    );
    let (status, acc) = gw.get("/api/account", SECRET_A).await;
    assert_eq!(status, 200, "{acc}");
    assert_eq!(acc["id"], account_a.as_str());
    assert_usd(&acc["balanceUsd"], BALANCE_A, "migrated balance");
    assert_eq!(acc["freeRequestsRemaining"], 0);
    assert_eq!(acc["keys"].as_array().map(Vec::len), Some(1), "{acc}");
    assert_eq!(listed(&acc, KEY_A)["role"], "manage");
    let (_, bal) = gw.get("/api/wallet/balance", SECRET_B).await;
    assert_usd(&bal["balanceUsd"], BALANCE_B, "migrated balance");
    assert_eq!(bal["freeRequestsRemaining"], FREE_B, "{bal}");
    let (status, report) = gw.get("/api/report?period=24h&key=all", SECRET_A).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["requestCount"], 2,
        "wave-one usage is in the report: {report}"
    );
    assert_eq!(report["perKey"][KEY_A]["requests"], 2, "{report}");

    let r = gw.post(CHAT, SECRET_A, &exact_request(false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = gw.post(CHAT, SECRET_B, &exact_request(false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let free_left = (FREE_B - 1).to_string();
    assert_eq!(
        r.header("x-pura-free-requests-remaining"),
        Some(free_left.as_str())
    );
    gw.settle();
    let pool = pura::db::pool(&db.url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    let acc = account::find(&mut conn, &account_a)
        .expect("query")
        .expect("account");
    assert_eq!(
        acc.balance_micros,
        BALANCE_A - COST,
        "paid from the migrated balance"
    );
    assert_eq!(
        ledger::sum_for_account(&mut conn, &account_a).expect("sum"),
        acc.balance_micros
    );
    drop(conn);
    drop(pool);
    drop(gw);
}
