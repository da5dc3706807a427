//! Two replicas on one PostgreSQL: a key disabled, rotated, credited or spent through one is
//! seen by the other at once (LISTEN/NOTIFY), not only when its key cache expires. PostgreSQL only:
//! with SQLite there is one process and nothing to announce.

mod common;

use std::time::{Duration, Instant};

use common::{provider_toml, FakeDialect, FakeUpstream, Gateway};
use serde_json::{json, Value};

fn hello() -> Value {
    json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]})
}

/// Polls `check` for up to 5 s (well under the key cache's 30 s).
async fn eventually(mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[actix_web::test]
async fn replicas_learn_of_disables_rotations_and_credits() {
    let Ok(url) = std::env::var("PURA_TEST_DATABASE_URL") else {
        eprintln!(
            "PostgreSQL only: PURA_TEST_DATABASE_URL is unset (scripts/test.sh sets it in CI)"
        );
        return;
    };
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    let toml = provider_toml("openai", &fake, "mid", "gpt-4o", 0.005);
    let env = [
        ("PURA__DATABASE__URL", url.as_str()),
        ("PURA__FREE_TIER__REQUESTS", "0"),
    ];
    let a = Gateway::start(&toml, &env);
    let b = Gateway::start(&toml, &env);
    let (key_id, key) = a.key().await;

    // B caches the key (and starts its BudgetActor) by serving it.
    assert_eq!(
        b.post("/v1/chat/completions", &key, &hello()).await.status,
        402
    );
    a.admin_credit(&key_id, 1000).await;
    assert!(
        eventually(async || b.post("/v1/chat/completions", &key, &hello()).await.status == 200)
            .await,
        "B learns of the credit made through A"
    );

    // Spend through A: B's BudgetActor learns of each settlement as it commits.
    for _ in 0..3 {
        assert_eq!(
            a.post("/v1/chat/completions", &key, &hello()).await.status,
            200
        );
    }
    let (_, on_a) = a.get("/api/wallet/balance", &key).await;
    assert!(
        eventually(
            async || b.get("/api/wallet/balance", &key).await.1["balanceUsd"] == on_a["balanceUsd"]
        )
        .await,
        "B's view of the balance follows A's debits: {on_a}"
    );
    let (_, on_b) = b.get("/api/wallet/balance", &key).await;
    assert_eq!(on_b["dailySpendUsd"], on_a["dailySpendUsd"]);

    let (status, rotated) = a.send("POST", "/api/keys/me/rotate", &key, None).await;
    assert_eq!(status, 200);
    assert!(
        eventually(async || b.post("/v1/chat/completions", &key, &hello()).await.status == 401)
            .await,
        "the old secret stops working on B too"
    );
    let new_key = rotated["key"].as_str().expect("new key").to_owned();
    assert_eq!(
        b.post("/v1/chat/completions", &new_key, &hello())
            .await
            .status,
        200
    );

    assert_eq!(
        a.send("DELETE", "/api/keys/me", &new_key, None).await.0,
        204
    );
    assert!(
        eventually(async || b
            .post("/v1/chat/completions", &new_key, &hello())
            .await
            .status
            == 401)
        .await,
        "a key disabled through A is refused by B"
    );
}

/// Two replicas on one PostgreSQL: an agent whose requests alternate between them (as behind a
/// round-robin balancer) keeps the tier its conversation already used.
#[actix_web::test]
async fn session_pins_are_shared_by_the_replicas() {
    let Ok(url) = std::env::var("PURA_TEST_DATABASE_URL") else {
        eprintln!("PostgreSQL only: PURA_TEST_DATABASE_URL is unset");
        return;
    };
    let cheap = FakeUpstream::start(FakeDialect::Groq);
    let mid = FakeUpstream::start(FakeDialect::OpenAi);
    let premium = FakeUpstream::start(FakeDialect::Anthropic);
    let toml = provider_toml("groq", &cheap, "cheap", "llama-3.3-70b-versatile", 0.0003)
        + &provider_toml("openai", &mid, "mid", "gpt-4o", 0.005)
        + &provider_toml(
            "anthropic",
            &premium,
            "premium",
            "claude-sonnet-4-20250514",
            0.003,
        );
    let env = [("PURA__DATABASE__URL", url.as_str())];
    let a = Gateway::start(&toml, &env);
    let b = Gateway::start(&toml, &env);
    let (_, key) = a.key().await;
    let tier = |r: &common::Reply| r.header("x-pura-tier").unwrap_or("").to_owned();
    let hard = "Prove that for every integer n >= 1 the sum of the first n odd numbers equals \
                n^2, then determine all primes p such that p^2 + 2 is also prime, and justify \
                each step rigorously.";
    // An explicit session (as agents send): the hard turn on A, an easy one on B.
    let ask = async |gw: &Gateway, content: &str, session: &str| {
        let mut resp = gw
            .client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(&key)
            .insert_header(("X-Pura-Session", session))
            .send_json(
                &json!({"model": "auto", "messages": [{"role": "user", "content": content}]}),
            )
            .await
            .expect("request");
        let _ = resp.body().await;
        let t = resp
            .headers()
            .get("x-pura-tier")
            .and_then(|v| v.to_str().ok());
        (resp.status().as_u16(), t.unwrap_or("").to_owned())
    };
    assert_eq!(ask(&a, hard, "run-1").await, (200, "premium".to_owned()));
    assert_eq!(
        ask(&b, "thanks, all good", "run-1").await,
        (200, "premium".to_owned()),
        "replica B keeps the tier the conversation used on A"
    );
    assert_eq!(
        ask(&b, "thanks, all good", "run-2").await,
        (200, "cheap".to_owned()),
        "another conversation is scored afresh"
    );
    // A new conversation on B is scored afresh.
    let fresh = json!({"model": "auto", "messages": [{"role": "user", "content": "ok thanks"}]});
    let r = b.post("/v1/chat/completions", &key, &fresh).await;
    assert_eq!((r.status, tier(&r)), (200, "cheap".to_owned()));
}
