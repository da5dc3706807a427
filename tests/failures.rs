//! Upstream failures: fallback before the first byte, one error line after it, timeouts,
//! the circuit breaker, and client disconnects.

mod common;

use std::time::Duration;

use common::{provider_toml, streamed_text, Behavior, FakeDialect, FakeUpstream, Gateway};
use serde_json::{json, Value};

fn hello(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello"}]})
}

/// Two mid-tier providers; `primary` is cheaper so it is tried first.
fn pair(primary: FakeDialect, backup: FakeDialect) -> (FakeUpstream, FakeUpstream, Gateway) {
    let a = FakeUpstream::start(primary);
    let b = FakeUpstream::start(backup);
    let toml = provider_toml("primary", &a, "mid", "model-a", 0.001)
        + &provider_toml("backup", &b, "mid", "model-b", 0.002);
    let gw = Gateway::start(&toml, &[]);
    (a, b, gw)
}

#[actix_web::test]
async fn failure_before_first_byte_falls_back() {
    let behaviors = [
        Behavior::Status(500),
        Behavior::Status(503),
        Behavior::Status(429),
        Behavior::Status(401),
        Behavior::Malformed,
    ];
    for behavior in behaviors {
        for stream in [false, true] {
            let (a, b, gw) = pair(FakeDialect::Anthropic, FakeDialect::OpenAi);
            a.set_behavior(behavior.clone());
            let (key_id, key) = gw.key().await;
            let r = gw
                .post("/v1/chat/completions", &key, &hello("auto:mid", stream))
                .await;
            assert_eq!(r.status, 200, "{behavior:?} stream={stream}: {}", r.text());
            assert_eq!(r.header("x-pura-provider"), Some("backup"), "{behavior:?}");
            if stream {
                assert!(streamed_text(&r.chunks()).starts_with("Hello from fake"));
            }
            assert_eq!((a.hits(), b.hits()), (1, 1), "{behavior:?}");
            let rows = gw.usage_rows(&key_id);
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].provider, "backup");
        }
    }
}

#[actix_web::test]
async fn every_upstream_failing_is_502_listing_each_reason() {
    let (a, b, gw) = pair(FakeDialect::Gemini, FakeDialect::Groq);
    a.set_behavior(Behavior::Status(500));
    b.set_behavior(Behavior::Status(503));
    let (key_id, key) = gw.key().await;
    let r = gw
        .post("/v1/chat/completions", &key, &hello("auto:mid", false))
        .await;
    assert_eq!(r.status, 502);
    let v = r.json();
    assert_eq!(v["error"]["type"], "upstream_error");
    assert_eq!(v["error"]["code"], "upstream_failed");
    let msg = v["error"]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("primary")
            && msg.contains("backup")
            && msg.contains("500")
            && msg.contains("503"),
        "{msg}"
    );
    assert!(
        gw.usage_rows(&key_id).is_empty(),
        "nothing was served, nothing is billed"
    );
}

#[actix_web::test]
async fn unreachable_upstream_falls_back_and_connection_errors_are_502() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = dead.local_addr().expect("addr").port();
    drop(dead);
    let b = FakeUpstream::start(FakeDialect::OpenAi);
    let toml = format!(
        "[providers.dead]\ndialect = \"openai\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\napi_key = \"x\"\n\
         tier = \"mid\"\nmodels = [\"model-a\"]\nprice_per_1k = 0.001\ntimeout = \"3s\"\n\n"
    ) + &provider_toml("backup", &b, "mid", "model-b", 0.002);
    let gw = Gateway::start(&toml, &[]);
    let (_, key) = gw.key().await;
    let r = gw
        .post("/v1/chat/completions", &key, &hello("auto:mid", false))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-pura-provider"), Some("backup"));
    let r = gw
        .post("/v1/chat/completions", &key, &hello("model-a", false))
        .await;
    assert_eq!(
        r.status, 502,
        "an explicit model tries only its own provider"
    );
    assert_eq!(r.json()["error"]["code"], "upstream_failed");
}

#[actix_web::test]
async fn last_upstream_timing_out_is_504() {
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    fake.set_behavior(Behavior::HangBeforeHeaders);
    let gw = Gateway::start(&provider_toml("slow", &fake, "mid", "model-a", 0.001), &[]);
    let (_, key) = gw.key().await;
    for stream in [false, true] {
        let r = gw
            .post("/v1/chat/completions", &key, &hello("model-a", stream))
            .await;
        assert_eq!(r.status, 504, "{}", r.text());
        assert_eq!(r.json()["error"]["code"], "upstream_timeout");
        assert_eq!(r.json()["error"]["type"], "upstream_error");
    }
}

#[actix_web::test]
async fn failure_after_first_byte_ends_with_one_error_line_then_done() {
    for dialect in [FakeDialect::OpenAi, FakeDialect::Anthropic] {
        for behavior in [Behavior::MidStreamError, Behavior::MidStreamReset] {
            let (a, b, gw) = pair(dialect, FakeDialect::OpenAi);
            a.set_behavior(behavior.clone());
            let (key_id, key) = gw.key().await;
            let r = gw
                .post("/v1/chat/completions", &key, &hello("model-a", true))
                .await;
            assert_eq!(r.status, 200);
            let data = r.sse_data();
            assert_eq!(
                data.last().map(String::as_str),
                Some("[DONE]"),
                "{dialect:?} {behavior:?}"
            );
            let errors: Vec<Value> = data
                .iter()
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .filter(|v| v.get("error").is_some())
                .collect();
            assert_eq!(errors.len(), 1, "{dialect:?} {behavior:?}: {data:?}");
            assert!(errors[0]["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()));
            assert_eq!(b.hits(), 0, "no fallback once bytes went out");
            let rows = gw.usage_rows(&key_id);
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].status, "upstream_error");
            assert!(rows[0].completion_tokens > 0, "what was streamed is billed");
        }
    }
}

#[actix_web::test]
async fn circuit_opens_after_repeated_failures_and_probes_after_cooldown() {
    let (a, b, gw) = pair(FakeDialect::OpenAi, FakeDialect::OpenAi);
    a.set_behavior(Behavior::Status(500));
    let (_, key) = gw.key().await;
    for _ in 0..3 {
        let r = gw
            .post("/v1/chat/completions", &key, &hello("auto:mid", false))
            .await;
        assert_eq!(r.header("x-pura-provider"), Some("backup"));
    }
    assert_eq!(a.hits(), 3);
    for _ in 0..3 {
        let r = gw
            .post("/v1/chat/completions", &key, &hello("auto:mid", false))
            .await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(
        a.hits(),
        3,
        "an open circuit sends nothing to the failing upstream"
    );
    a.set_behavior(Behavior::Normal);
    actix_web::rt::time::sleep(Duration::from_millis(1600)).await;
    let r = gw
        .post("/v1/chat/completions", &key, &hello("auto:mid", false))
        .await;
    assert_eq!(
        r.header("x-pura-provider"),
        Some("primary"),
        "the half-open probe goes to the recovered upstream"
    );
    assert_eq!(a.hits(), 4);
    // Closed again: the primary is back in the rotation (which of the two leads now depends
    // on their measured latency times price, so only its eligibility is asserted).
    let r = gw
        .post("/v1/chat/completions", &key, &hello("auto:mid", false))
        .await;
    assert_eq!(r.status, 200);
    assert!(b.hits() >= 6);
}

#[actix_web::test]
async fn auto_steps_to_the_next_tier_when_its_tier_fails() {
    let cheap = FakeUpstream::start(FakeDialect::Groq);
    let mid = FakeUpstream::start(FakeDialect::OpenAi);
    let toml = provider_toml("groq", &cheap, "cheap", "llama", 0.0003)
        + &provider_toml("openai", &mid, "mid", "gpt-4o", 0.005);
    let gw = Gateway::start(&toml, &[]);
    let (_, key) = gw.key().await;
    let r = gw
        .post("/v1/chat/completions", &key, &hello("auto", false))
        .await;
    assert_eq!(
        r.header("x-pura-tier"),
        Some("cheap"),
        "a greeting is cheap"
    );
    cheap.set_behavior(Behavior::Status(503));
    let r = gw
        .post("/v1/chat/completions", &key, &hello("auto", false))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-pura-provider"), Some("openai"));
    assert_eq!(r.header("x-pura-tier"), Some("mid"));
}

#[actix_web::test]
async fn upstream_rejecting_the_request_is_a_400_without_fallback() {
    let (a, b, gw) = pair(FakeDialect::OpenAi, FakeDialect::OpenAi);
    a.set_behavior(Behavior::Status(400));
    let (_, key) = gw.key().await;
    let r = gw
        .post("/v1/chat/completions", &key, &hello("auto:mid", false))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    assert_eq!(b.hits(), 0);
}

#[actix_web::test]
async fn client_disconnect_mid_stream_stops_the_upstream_and_bills_what_was_sent() {
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    fake.set_behavior(Behavior::SlowStream(Duration::from_millis(200)));
    fake.set_reply_text(&"word ".repeat(100));
    let gw = Gateway::start(&provider_toml("openai", &fake, "mid", "gpt-4o", 0.005), &[]);
    let (key_id, key) = gw.key().await;
    {
        let mut resp = gw
            .client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(&key)
            .send_json(&hello("gpt-4o", true))
            .await
            .expect("stream");
        use futures_util::StreamExt;
        let first = resp.next().await;
        assert!(first.is_some_and(|c| c.is_ok()));
    } // dropped: the client hangs up after the first piece
    let mut rows = Vec::new();
    for _ in 0..50 {
        rows = gw.usage_rows(&key_id);
        if !rows.is_empty() {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rows.len(), 1, "the abandoned stream is recorded");
    assert_eq!(rows[0].status, "client_closed");
    assert!(
        rows[0].completion_tokens < 100,
        "billed on what was streamed, not the whole answer"
    );
    actix_web::rt::time::sleep(Duration::from_millis(600)).await;
    assert!(
        fake.streams_cancelled() >= 1,
        "the upstream stream was dropped"
    );
}

/// A provider's `timeout` bounds the wait for its answer and each silence in a stream, not a
/// stream's whole length: a generation that keeps sending outlives it (here 1.2 s between
/// events against a 3 s timeout, about 7 s in all).
#[actix_web::test]
async fn a_stream_that_keeps_sending_outlives_the_provider_timeout() {
    // One dialect: what is checked (the upstream connection's own timeout) is the same for all.
    for dialect in [FakeDialect::OpenAi] {
        let fake = FakeUpstream::start(dialect);
        fake.set_behavior(Behavior::SlowStream(Duration::from_millis(1200)));
        let gw = Gateway::start(&provider_toml("slow", &fake, "mid", "model-a", 0.001), &[]);
        let (key_id, key) = gw.key().await;
        let started = std::time::Instant::now();
        let r = gw
            .post("/v1/chat/completions", &key, &hello("model-a", true))
            .await;
        assert!(
            started.elapsed() > Duration::from_secs(3),
            "{dialect:?}: longer than the timeout"
        );
        assert_eq!(r.status, 200);
        let data = r.sse_data();
        let errors: Vec<&String> = data.iter().filter(|d| d.contains("\"error\"")).collect();
        assert!(errors.is_empty(), "{dialect:?}: {errors:?}");
        assert_eq!(
            data.last().map(String::as_str),
            Some("[DONE]"),
            "{dialect:?}"
        );
        assert!(streamed_text(&r.chunks()).starts_with("Hello from fake"));
        let rows = gw.usage_rows(&key_id);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].status, "ok", "{dialect:?}");
    }
}
