//! `auto` routing policy: the tier header, tier aliases, session pinning, and the score and
//! savings the client is shown.

mod common;

use common::{provider_toml, FakeDialect, FakeUpstream, Gateway};
use serde_json::{json, Value};

const HARD: &str =
    "Prove that for every integer n >= 1 the sum of the first n odd numbers equals n^2, \
    then determine all primes p such that p^2 + 2 is also prime, and justify each step rigorously.";

struct Tiers {
    _fakes: Vec<FakeUpstream>,
    gw: Gateway,
}

fn three_tiers(env: &[(&str, &str)]) -> Tiers {
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
    let gw = Gateway::start(&toml, env);
    Tiers {
        _fakes: vec![cheap, mid, premium],
        gw,
    }
}

async fn ask(
    gw: &Gateway,
    key: &str,
    model: &str,
    messages: Value,
    headers: &[(&str, &str)],
) -> (u16, Value, Vec<(String, String)>) {
    let mut req = gw
        .client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(key);
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let mut resp = req
        .send_json(&json!({"model": model, "messages": messages}))
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let hs = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, body, hs)
}

fn header<'a>(hs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    hs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

#[actix_web::test]
async fn scorer_picks_the_tier_and_says_why() {
    let t = three_tiers(&[]);
    let (_, key) = t.gw.key().await;
    let (_, _, easy) = ask(&t.gw, &key, "auto", user("hi! how are you?"), &[]).await;
    assert_eq!(header(&easy, "x-pura-tier"), Some("cheap"));
    let (_, _, hard) = ask(&t.gw, &key, "auto", user(HARD), &[]).await;
    assert_eq!(header(&hard, "x-pura-tier"), Some("premium"), "{hard:?}");
    let score = header(&hard, "x-pura-score").expect("score header");
    let value: f64 = score
        .split(';')
        .next()
        .unwrap_or("")
        .parse()
        .expect("score first");
    assert!(value >= 0.6, "{score}");
    assert!(score.contains('='), "top signals follow the score: {score}");
    // Explicit models get no score.
    let (_, _, explicit) = ask(&t.gw, &key, "gpt-4o", user(HARD), &[]).await;
    assert_eq!(header(&explicit, "x-pura-score"), None);
    assert_eq!(header(&explicit, "x-pura-tier"), Some("mid"));
}

/// (model, prompt, request headers, expected tier)
type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a str);

#[actix_web::test]
async fn tier_header_forces_or_bounds_and_aliases_force() {
    let t = three_tiers(&[(
        "PURA__ROUTING__ALIASES",
        "{ reviewer = \"premium\", fast = \"auto:cheap\", writer = \"gpt-4o\" }",
    )]);
    let (_, key) = t.gw.key().await;
    let cases: [Case; 9] = [
        ("auto", "hi", vec![("X-Pura-Tier", "premium")], "premium"),
        ("auto", "hi", vec![("X-Pura-Tier", "min:mid")], "mid"),
        ("auto", HARD, vec![("X-Pura-Tier", "max:mid")], "mid"),
        ("auto", HARD, vec![("X-Pura-Tier", "<=cheap")], "cheap"),
        ("auto:premium", "hi", vec![], "premium"),
        ("auto:cheap", HARD, vec![], "cheap"),
        ("reviewer", "hi", vec![], "premium"),
        ("fast", HARD, vec![], "cheap"),
        ("writer", "hi", vec![], "mid"),
    ];
    for (i, (model, text, headers, want)) in cases.into_iter().enumerate() {
        // A distinct conversation per case, so no case is pinned by an earlier one.
        let text = format!("{text} (case {i})");
        let (status, body, hs) = ask(&t.gw, &key, model, user(&text), &headers).await;
        assert_eq!(status, 200, "{model} {headers:?}: {body}");
        assert_eq!(
            header(&hs, "x-pura-tier"),
            Some(want),
            "{model} {headers:?}"
        );
    }
    let (status, body, _) = ask(
        &t.gw,
        &key,
        "auto",
        user("hi"),
        &[("X-Pura-Tier", "platinum")],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "X-Pura-Tier");
}

#[actix_web::test]
async fn a_conversation_never_drops_below_the_tier_it_used() {
    let t = three_tiers(&[]);
    let (_, key) = t.gw.key().await;
    let (_, fresh) = t.gw.key().await;
    let turn1 = json!([{"role": "system", "content": "You are a careful mathematician."}, {"role": "user", "content": HARD}]);
    let (_, _, hs) = ask(&t.gw, &key, "auto", turn1, &[]).await;
    assert_eq!(header(&hs, "x-pura-tier"), Some("premium"));
    let turn2 = json!([
        {"role": "system", "content": "You are a careful mathematician."},
        {"role": "user", "content": HARD},
        {"role": "assistant", "content": "Here is the proof."},
        {"role": "user", "content": "ok thanks"}
    ]);
    let (_, _, hs) = ask(&t.gw, &key, "auto", turn2.clone(), &[]).await;
    assert_eq!(
        header(&hs, "x-pura-tier"),
        Some("premium"),
        "pinned to the tier it already used"
    );
    // The pin belongs to the key: another key's identical conversation is scored afresh.
    let (_, _, other) = ask(
        &t.gw,
        &fresh,
        "auto",
        json!([{"role": "user", "content": "ok thanks"}]),
        &[],
    )
    .await;
    assert_eq!(header(&other, "x-pura-tier"), Some("cheap"));

    // An explicit session pins across different prefixes.
    let session = [("X-Pura-Session", "agent-run-7")];
    let (_, _, hs) = ask(&t.gw, &fresh, "auto", user(HARD), &session).await;
    assert_eq!(header(&hs, "x-pura-tier"), Some("premium"));
    let (_, _, hs) = ask(&t.gw, &fresh, "auto", user("thanks, all good"), &session).await;
    assert_eq!(header(&hs, "x-pura-tier"), Some("premium"));
    let (_, _, hs) = ask(
        &t.gw,
        &fresh,
        "auto",
        user("thanks, all good"),
        &[("X-Pura-Session", "another")],
    )
    .await;
    assert_eq!(header(&hs, "x-pura-tier"), Some("cheap"));
}

#[actix_web::test]
async fn savings_against_premium_in_headers_and_report() {
    let t = three_tiers(&[]);
    let (key_id, key) = t.gw.key().await;
    for text in ["hi", "thanks!", HARD] {
        let (status, body, hs) = ask(&t.gw, &key, "auto", user(text), &[]).await;
        assert_eq!(status, 200);
        let usage = &body["usage"];
        let (p, c) = (
            usage["prompt_tokens"].as_i64().unwrap_or(0),
            usage["completion_tokens"].as_i64().unwrap_or(0),
        );
        let cost: f64 = header(&hs, "x-pura-cost")
            .unwrap_or("0")
            .parse()
            .unwrap_or(-1.0);
        let savings: f64 = header(&hs, "x-pura-savings")
            .unwrap_or("x")
            .parse()
            .expect("savings header");
        let premium = (p + c) as f64 * 0.003 / 1000.0;
        assert!(
            (savings - (premium - cost)).abs() < 2e-6,
            "{text}: savings {savings}, premium {premium}, cost {cost}"
        );
    }
    let rows = t.gw.usage_rows(&key_id);
    let expected: i64 = rows
        .iter()
        .map(|r| r.premium_cost_micros - r.cost_micros)
        .sum();
    assert!(expected > 0, "cheap routing saved money");
    let (_, report) = t.gw.get("/api/report?period=1h", &key).await;
    let total = report["totalSavingsUsd"].as_f64().expect("totalSavingsUsd");
    assert!((total - expected as f64 / 1e6).abs() < 1e-9, "{report}");
    assert!(report["perModel"]["groq"]["savingsUsd"]
        .as_f64()
        .is_some_and(|s| s > 0.0));
}
