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
