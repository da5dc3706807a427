//! Lightning funding against a real LNbits (FakeWallet) started by scripts/test.sh, and
//! against a fake LND REST node. Needs PURA_TEST_LNBITS_KEYS (the keys.env that
//! scripts/lnbits-up.sh writes).

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::fake_lnd::{FakeLnd, MACAROON};
use common::{provider_toml, FakeDialect, FakeUpstream, Gateway};
use serde_json::{json, Value};

struct Lnbits {
    url: String,
    payer_admin_key: String,
}

fn lnbits() -> Option<Lnbits> {
    let Ok(path) = std::env::var("PURA_TEST_LNBITS_KEYS") else {
        eprintln!("PURA_TEST_LNBITS_KEYS unset: run scripts/test.sh, which starts LNbits");
        return None;
    };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let vars: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    Some(Lnbits {
        url: vars["LNBITS_URL"].to_owned(),
        payer_admin_key: vars["PAYER_ADMIN_KEY"].to_owned(),
    })
}

fn http() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
}

impl Lnbits {
    /// A fresh merchant wallet for one test; returns its invoice key.
    async fn merchant(&self) -> String {
        let mut resp = http()
            .post(format!("{}/api/v1/account", self.url))
            .send_json(&json!({"name": "pura-test"}))
            .await
            .expect("create wallet");
        let v: Value = resp.json().await.expect("wallet json");
        v["inkey"].as_str().expect("inkey").to_owned()
    }

    /// Pays a BOLT11 from the funded payer wallet; the payment JSON.
    async fn pay(&self, bolt11: &str) -> Value {
        let mut resp = http()
            .post(format!("{}/api/v1/payments", self.url))
            .insert_header(("X-Api-Key", self.payer_admin_key.as_str()))
            .send_json(&json!({"out": true, "bolt11": bolt11}))
            .await
            .expect("pay");
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.expect("payment json");
        assert_eq!(
            (status, v["status"].as_str()),
            (201, Some("success")),
            "{v}"
        );
        v
    }
}

fn lnbits_env<'a>(ln: &'a Lnbits, inkey: &'a str, poll: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("PURA__LIGHTNING__BACKEND", "lnbits"),
        ("PURA__LIGHTNING__URL", ln.url.as_str()),
        ("LNBITS_INVOICE_KEY", inkey),
        ("PURA__LIGHTNING__POLL_INTERVAL", poll),
        ("PURA__FREE_TIER__REQUESTS", "0"),
    ]
}

fn chat_toml(fake: &FakeUpstream) -> String {
    provider_toml("openai", fake, "mid", "gpt-4o", 0.005)
}

fn hello() -> Value {
    json!({"model": "gpt-4o", "max_tokens": 50, "messages": [{"role": "user", "content": "hello"}]})
}

async fn wait_paid(gw: &Gateway, key: &str, invoice_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, v) = gw
            .get(&format!("/api/wallet/status?invoiceId={invoice_id}"), key)
            .await;
        assert_eq!(status, 200, "{v}");
        if v["status"] == "paid" || Instant::now() > deadline {
            return v;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

fn credits(gw: &Gateway, key_id: &str) -> Vec<pura::db::models::ledger::Entry> {
    let pool = gw.db();
    let mut conn = pool.get().expect("conn");
    pura::db::models::ledger::for_key(&mut conn, key_id)
        .expect("ledger")
        .into_iter()
        .filter(|e| e.kind == "lightning_credit")
        .collect()
}

#[actix_web::test]
async fn payment_required_then_pay_then_the_same_key_works() {
    let Some(ln) = lnbits() else { return };
    let inkey = ln.merchant().await;
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    let gw = Gateway::start(&chat_toml(&fake), &lnbits_env(&ln, &inkey, "200ms"));
    let (key_id, key) = gw.key().await;

    let r = gw.post("/v1/chat/completions", &key, &hello()).await;
    assert_eq!(r.status, 402, "{}", r.text());
    let body = r.json();
    assert_eq!(body["error"]["code"], "payment_required");
    let invoice = &body["invoice"];
    assert_eq!(invoice["amountSats"], 10_000);
    assert_eq!(invoice["status"], "pending");
    let bolt11 = invoice["paymentRequest"]
        .as_str()
        .expect("bolt11")
        .to_owned();
    assert_eq!(invoice["lightningUrl"], format!("lightning:{bolt11}"));
    assert_eq!(
        r.header("www-authenticate"),
        Some(format!("L402 invoice=\"{bolt11}\"").as_str())
    );
    // A second 402 reuses the pending invoice instead of minting another.
    let again = gw.post("/v1/chat/completions", &key, &hello()).await.json();
    assert_eq!(again["invoice"]["invoiceId"], invoice["invoiceId"]);

    let page = gw
        .client()
        .get(invoice["invoiceUrl"].as_str().expect("url"))
        .send()
        .await;
    let mut page = page.expect("invoice page");
    assert_eq!(page.status().as_u16(), 200);
    let html = String::from_utf8_lossy(&page.body().await.expect("html")).into_owned();
    assert!(
        html.contains("<svg") && html.contains(&bolt11),
        "the page shows the QR code and the invoice"
    );

    ln.pay(&bolt11).await;
    let status = wait_paid(&gw, &key, invoice["invoiceId"].as_str().expect("id")).await;
    assert_eq!(status["status"], "paid");
    assert!(status["paidAt"].as_str().is_some());
    let (_, bal) = gw.get("/api/wallet/balance", &key).await;
    assert_eq!(bal["balanceSats"], 10_000);
    assert_eq!(bal["balanceUsd"], 4.0);
    let r = gw.post("/v1/chat/completions", &key, &hello()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (_, bal) = gw.get("/api/wallet/balance", &key).await;
    assert!(
        bal["balanceUsd"].as_f64().unwrap_or(4.0) < 4.0,
        "the request was debited"
    );
    assert_eq!(credits(&gw, &key_id).len(), 1, "credited exactly once");
}

#[actix_web::test]
async fn fund_status_and_bad_input() {
    let Some(ln) = lnbits() else { return };
    let inkey = ln.merchant().await;
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    let gw = Gateway::start(&chat_toml(&fake), &lnbits_env(&ln, &inkey, "200ms"));
    let (key_id, key) = gw.key().await;
    let (_, other) = gw.key().await;

    let (status, inv) = gw
        .send(
            "POST",
            "/api/wallet/fund",
            &key,
            Some(json!({"amount": 2100})),
        )
        .await;
    assert_eq!(status, 201, "{inv}");
    for field in [
        "invoiceId",
        "paymentRequest",
        "lightningUrl",
        "invoiceUrl",
        "expiresAt",
    ] {
        assert!(
            inv[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field} in {inv}"
        );
    }
    assert_eq!(
        (inv["amountSats"].as_i64(), inv["status"].as_str()),
        (Some(2100), Some("pending"))
    );
    let id = inv["invoiceId"].as_str().expect("id");
    let (status, s) = gw
        .get(&format!("/api/wallet/status?invoiceId={id}"), &key)
        .await;
    assert_eq!(
        (status, s["status"].as_str(), s["paidAt"].is_null()),
        (200, Some("pending"), true)
    );
    let (status, s) = gw
        .get(&format!("/api/wallet/status?invoiceId={id}"), &other)
        .await;
    assert_eq!(status, 404, "another key's invoice is unknown to it");
    assert_eq!(s["error"]["code"], "invoice_not_found");
    let (status, _) = gw.get("/api/wallet/status?invoiceId=inv_nope", &key).await;
    assert_eq!(status, 404);
    let (status, _) = gw.get("/api/wallet/status", &key).await;
    assert_eq!(status, 400);

    for bad in [
        json!({"amount": -5}),
        json!({"amount": 0}),
        json!({"amount": 99}),
        json!({"amount": 1_000_000_000_000i64}),
        json!({"amount": 1.5}),
        json!({"amount": "100"}),
        json!({}),
        json!({"amount": 100, "extra": 1}),
    ] {
        let (status, v) = gw
            .send("POST", "/api/wallet/fund", &key, Some(bad.clone()))
            .await;
        assert_eq!(status, 400, "{bad}: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    ln.pay(inv["paymentRequest"].as_str().expect("bolt11"))
        .await;
    assert_eq!(wait_paid(&gw, &key, id).await["status"], "paid");
    let (_, bal) = gw.get("/api/wallet/balance", &key).await;
    assert_eq!(bal["balanceSats"], 2100);
    assert_eq!(credits(&gw, &key_id).len(), 1);
}

#[actix_web::test]
async fn backend_none_or_down_is_503_and_nothing_else_breaks() {
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    let gw = Gateway::start(&chat_toml(&fake), &[("PURA__FREE_TIER__REQUESTS", "1")]);
    let (_, key) = gw.key().await;
    let (status, v) = gw
        .send(
            "POST",
            "/api/wallet/fund",
            &key,
            Some(json!({"amount": 1000})),
        )
        .await;
    assert_eq!(status, 503);
    assert_eq!(v["error"]["code"], "unavailable");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("not configured"));

    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let url = format!("http://{dead}");
    let env = [
        ("PURA__LIGHTNING__BACKEND", "lnbits"),
        ("PURA__LIGHTNING__URL", url.as_str()),
        ("LNBITS_INVOICE_KEY", "x"),
        ("PURA__LIGHTNING__POLL_INTERVAL", "100ms"),
        ("PURA__FREE_TIER__REQUESTS", "1"),
    ];
    let gw = Gateway::start(&chat_toml(&fake), &env);
    let (key_id, key) = gw.key().await;
    let (status, v) = gw
        .send(
            "POST",
            "/api/wallet/fund",
            &key,
            Some(json!({"amount": 1000})),
        )
        .await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(
        gw.post("/v1/chat/completions", &key, &hello()).await.status,
        200,
        "chat keeps working"
    );
    let r = gw.post("/v1/chat/completions", &key, &hello()).await;
    assert_eq!(
        r.status, 402,
        "the free request is used; the 402 says how to fund"
    );
    assert!(r.json()["invoice"].is_null());
    let (status, _) = gw.get("/health", "").await;
    assert_eq!(status, 200);
    let pool = gw.db();
    let mut conn = pool.get().expect("conn");
    use diesel::prelude::*;
    let n: i64 = pura::db::schema::invoices::table
        .filter(pura::db::schema::invoices::key_id.eq(&key_id))
        .count()
        .get_result(&mut *conn)
        .expect("count");
    assert_eq!(n, 0, "no half-made invoice is left behind");
}

#[actix_web::test]
async fn two_watchers_and_restarts_credit_once() {
    let Some(ln) = lnbits() else { return };
    let inkey = ln.merchant().await;
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    let mut a = Gateway::start(&chat_toml(&fake), &lnbits_env(&ln, &inkey, "100ms"));
    // A second replica on the same database, with its own watcher: replicas share PostgreSQL.
    // SQLite serves one process, and a second gateway on its file is refused (its account
    // actors would spend the same balances); A's restarts still race its own watcher there.
    let b = if a.db_url.starts_with("sqlite://") {
        let refused = Gateway::start_failing(&format!(
            "[server]\nbind = \"127.0.0.1:0\"\n\n[database]\nurl = \"{}\"\n",
            a.db_url
        ));
        assert!(
            refused.contains("held by another running gateway"),
            "{refused}"
        );
        None
    } else {
        let b_env: Vec<(String, String)> = lnbits_env(&ln, &inkey, "100ms")
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .chain([("PURA__DATABASE__URL".to_owned(), a.db_url.clone())])
            .collect();
        let b_env: Vec<(&str, &str)> = b_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Some(Gateway::start(&chat_toml(&fake), &b_env))
    };
    let (key_id, key) = a.key().await;
    let (_, inv) = a
        .send(
            "POST",
            "/api/wallet/fund",
            &key,
            Some(json!({"amount": 500})),
        )
        .await;
    let id = inv["invoiceId"].as_str().expect("id").to_owned();

    // Pay while replica A is dead, then bring it back: both watchers see it paid.
    a.kill9();
    ln.pay(inv["paymentRequest"].as_str().expect("bolt11"))
        .await;
    a.restart();
    assert_eq!(wait_paid(&a, &key, &id).await["status"], "paid");
    actix_web::rt::time::sleep(Duration::from_millis(800)).await;
    a.restart();
    actix_web::rt::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        credits(&a, &key_id).len(),
        1,
        "two watchers and two restarts, one credit"
    );
    let (_, bal) = b
        .as_ref()
        .unwrap_or(&a)
        .get("/api/wallet/balance", &key)
        .await;
    assert_eq!(bal["balanceSats"], 500);

    // The same invoice observed paid twice more, directly through the crediting transaction.
    let pool = a.db();
    let mut conn = pool.get().expect("conn");
    let row = pura::db::models::invoice::find(&mut conn, &id)
        .expect("query")
        .expect("invoice");
    for _ in 0..2 {
        let again =
            pura::db::models::invoice::credit_paid(&mut conn, &row, 200_000, pura::time::now())
                .expect("credit");
        assert_eq!(again, None);
    }
    assert_eq!(credits(&a, &key_id).len(), 1);
}

#[actix_web::test]
async fn a_late_payment_of_an_expired_invoice_is_still_credited() {
    let Some(ln) = lnbits() else { return };
    let inkey = ln.merchant().await;
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    let mut env = lnbits_env(&ln, &inkey, "3s");
    env.push(("PURA__LIGHTNING__INVOICE_EXPIRY", "1s"));
    let gw = Gateway::start(&chat_toml(&fake), &env);
    let (key_id, key) = gw.key().await;
    let (_, inv) = gw
        .send(
            "POST",
            "/api/wallet/fund",
            &key,
            Some(json!({"amount": 300})),
        )
        .await;
    let id = inv["invoiceId"].as_str().expect("id").to_owned();
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    let (_, s) = gw
        .get(&format!("/api/wallet/status?invoiceId={id}"), &key)
        .await;
    assert_eq!(s["status"], "expired", "the gateway enforces expiry itself");
    // LNbits still accepts the payment of an expired invoice it has not checked yet.
    ln.pay(inv["paymentRequest"].as_str().expect("bolt11"))
        .await;
    assert_eq!(wait_paid(&gw, &key, &id).await["status"], "paid");
    assert_eq!(credits(&gw, &key_id).len(), 1);
    assert!(gw.log().contains("paid after it expired"));
}

#[actix_web::test]
async fn lnd_rest_backend_over_tls() {
    let lnd = FakeLnd::start();
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    let cert = lnd.cert_path.display().to_string();
    let env = [
        ("PURA__LIGHTNING__BACKEND", "lnd"),
        ("PURA__LIGHTNING__URL", lnd.url.as_str()),
        ("PURA__LIGHTNING__TLS_CERT_PATH", cert.as_str()),
        ("LND_MACAROON_HEX", MACAROON),
        ("PURA__LIGHTNING__POLL_INTERVAL", "100ms"),
        ("PURA__FREE_TIER__REQUESTS", "0"),
    ];
    let gw = Gateway::start(&chat_toml(&fake), &env);
    let (key_id, key) = gw.key().await;
    let (status, inv) = gw
        .send(
            "POST",
            "/api/wallet/fund",
            &key,
            Some(json!({"amount": 1234})),
        )
        .await;
    assert_eq!(status, 201, "{inv}\n{}", gw.log());
    assert!(
        inv["paymentRequest"]
            .as_str()
            .is_some_and(|b| b.starts_with("lnbc12340n")),
        "{inv}"
    );
    let id = inv["invoiceId"].as_str().expect("id");
    let (_, s) = gw
        .get(&format!("/api/wallet/status?invoiceId={id}"), &key)
        .await;
    assert_eq!(s["status"], "pending");
    lnd.settle_all();
    assert_eq!(wait_paid(&gw, &key, id).await["status"], "paid");
    let (_, bal) = gw.get("/api/wallet/balance", &key).await;
    assert_eq!(bal["balanceSats"], 1234);
    assert_eq!(credits(&gw, &key_id).len(), 1);

    // A wrong macaroon is refused by the node: fund answers 503 and records nothing.
    let mut env = env.to_vec();
    env[3] = ("LND_MACAROON_HEX", "00");
    let gw = Gateway::start(&chat_toml(&fake), &env);
    let (_, key) = gw.key().await;
    let (status, _) = gw
        .send(
            "POST",
            "/api/wallet/fund",
            &key,
            Some(json!({"amount": 1234})),
        )
        .await;
    assert_eq!(status, 503);
}
