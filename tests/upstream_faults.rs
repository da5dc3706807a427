//! Nothing lost at the edges: every fault maps to the answer whose fault it is (an upstream's
//! 400 is the client's, a 429 on every upstream is a 429 with `Retry-After`, actix's own
//! errors carry the JSON envelope).

mod common;

use std::io::{Read, Write};

use common::{provider_toml, Behavior, FakeDialect, FakeUpstream, Gateway};
use serde_json::{json, Value};

fn one(dialect: FakeDialect, name: &str, model: &str, extra: &str) -> (FakeUpstream, Gateway) {
    let fake = FakeUpstream::start(dialect);
    let toml = provider_toml(name, &fake, "mid", model, 0.001) + extra;
    let gw = Gateway::start(&toml, &[]);
    (fake, gw)
}

/// `primary` in the mid tier, `backup` in the premium one: `auto:mid` tries `primary` first
/// whatever latencies the router has seen, then steps up to `backup`.
fn pair(primary: FakeDialect, backup: FakeDialect) -> (FakeUpstream, FakeUpstream, Gateway) {
    let a = FakeUpstream::start(primary);
    let b = FakeUpstream::start(backup);
    let toml = provider_toml("primary", &a, "mid", "model-a", 0.001)
        + &provider_toml("backup", &b, "premium", "model-b", 0.002);
    let gw = Gateway::start(&toml, &[]);
    (a, b, gw)
}

fn hello(stream: bool) -> Value {
    json!({"model": "auto:mid", "stream": stream, "messages": [{"role": "user", "content": "hello"}]})
}

#[actix_web::test]
async fn an_upstream_400_is_the_clients_without_fallback_or_circuit_penalty() {
    for dialect in [
        FakeDialect::OpenAi,
        FakeDialect::Anthropic,
        FakeDialect::Gemini,
    ] {
        let (a, b, gw) = pair(dialect, FakeDialect::OpenAi);
        a.set_behavior(Behavior::Status(400));
        let (_, key) = gw.key().await;
        // Three: as many consecutive failures as open a circuit, were they counted as such.
        for stream in [false, true, false] {
            let r = gw.post("/v1/chat/completions", &key, &hello(stream)).await;
            assert_eq!(r.status, 400, "{dialect:?}: {}", r.text());
            let e = &r.json()["error"];
            assert_eq!(e["type"], "invalid_request_error");
            assert_eq!(e["code"], "upstream_rejected");
            assert!(
                e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("Fake upstream error 400")),
                "the upstream's own message: {e}"
            );
        }
        assert_eq!((a.hits(), b.hits()), (3, 0), "{dialect:?}: no fallback");
        // The circuit stayed closed: the same upstream serves the next request.
        a.set_behavior(Behavior::Normal);
        let r = gw.post("/v1/chat/completions", &key, &hello(false)).await;
        assert_eq!(r.status, 200, "{dialect:?}: {}", r.text());
        assert_eq!(r.header("x-pura-provider"), Some("primary"));
    }
}

#[actix_web::test]
async fn a_404_or_403_from_an_upstream_is_the_operators_and_falls_back() {
    for status in [404, 403] {
        let (a, b, gw) = pair(FakeDialect::OpenAi, FakeDialect::Anthropic);
        a.set_behavior(Behavior::Status(status));
        let (_, key) = gw.key().await;
        let r = gw.post("/v1/chat/completions", &key, &hello(false)).await;
        assert_eq!(r.status, 200, "{status}: {}", r.text());
        assert_eq!(r.header("x-pura-provider"), Some("backup"));
        assert_eq!((a.hits(), b.hits()), (1, 1));
    }
}

#[actix_web::test]
async fn an_adapter_that_cannot_express_the_request_is_a_400() {
    let (fake, gw) = one(FakeDialect::Anthropic, "anthropic", "claude-x", "");
    let (_, key) = gw.key().await;
    let body = json!({"model": "claude-x", "messages": [{"role": "user", "content": "hi"},
        {"role": "function", "name": "f", "content": "x"}]});
    let r = gw.post("/v1/chat/completions", &key, &body).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let e = &r.json()["error"];
    assert_eq!(e["type"], "invalid_request_error");
    assert_eq!(e["param"], "messages");
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("`tool` messages")),
        "{e}"
    );
    assert_eq!(fake.hits(), 0);
}

#[actix_web::test]
async fn every_upstream_rate_limited_is_a_429_with_retry_after() {
    // OpenAI and Anthropic fakes send `retry-after: 1`, Gemini a RetryInfo of 1 s.
    for (primary, backup) in [
        (FakeDialect::OpenAi, FakeDialect::Anthropic),
        (FakeDialect::Gemini, FakeDialect::Groq),
    ] {
        let (a, b, gw) = pair(primary, backup);
        a.set_behavior(Behavior::Status(429));
        b.set_behavior(Behavior::Status(429));
        let (key_id, key) = gw.key().await;
        for stream in [false, true] {
            let r = gw.post("/v1/chat/completions", &key, &hello(stream)).await;
            assert_eq!(r.status, 429, "{primary:?}: {}", r.text());
            let e = &r.json()["error"];
            assert_eq!(e["type"], "rate_limit_error", "{e}");
            assert_eq!(e["code"], "rate_limit_exceeded", "{e}");
            assert_eq!(r.header("retry-after"), Some("1"), "{primary:?}");
        }
        assert_eq!((a.hits(), b.hits()), (2, 2), "every candidate was tried");
        assert!(
            gw.usage_rows(&key_id).is_empty(),
            "nothing served, nothing billed"
        );
    }
    // One rate limited, the other failing otherwise: still the 502 of failed upstreams.
    let (a, b, gw) = pair(FakeDialect::OpenAi, FakeDialect::Anthropic);
    a.set_behavior(Behavior::Status(429));
    b.set_behavior(Behavior::Status(500));
    let (_, key) = gw.key().await;
    let r = gw.post("/v1/chat/completions", &key, &hello(false)).await;
    assert_eq!(r.status, 502, "{}", r.text());
}

#[actix_web::test]
async fn the_messages_path_answers_these_faults_in_anthropics_shape() {
    let (a, b, gw) = pair(FakeDialect::Anthropic, FakeDialect::OpenAi);
    let (_, key) = gw.key().await;
    let post = |body: Value| {
        let req = gw
            .client()
            .post(format!("{}/v1/messages", gw.url))
            .insert_header(("x-api-key", key.clone()))
            .insert_header(("anthropic-version", "2023-06-01"));
        async move {
            let mut resp = req.send_json(&body).await.expect("request");
            let retry = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            (resp.status().as_u16(), v, retry)
        }
    };
    let body = json!({"model": "auto:mid", "max_tokens": 20,
        "messages": [{"role": "user", "content": "hi"}]});
    a.set_behavior(Behavior::Status(400));
    let (status, v, _) = post(body.clone()).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(
        (v["type"].as_str(), v["error"]["type"].as_str()),
        (Some("error"), Some("invalid_request_error"))
    );
    a.set_behavior(Behavior::Status(429));
    b.set_behavior(Behavior::Status(429));
    let (status, v, retry) = post(body.clone()).await;
    assert_eq!(status, 429, "{v}");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(retry.as_deref(), Some("1"));
}

/// Sends raw bytes and reads the whole answer (the gateway closes the connection after it).
fn raw(url: &str, request: &[u8]) -> String {
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(request).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn enveloped(answer: &str, status: u16) {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer, ""));
    assert!(head.starts_with(&format!("HTTP/1.1 {status}")), "{answer}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{answer}"
    );
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    assert!(
        v["error"]["message"].is_string() && v["error"]["type"].is_string(),
        "{answer}"
    );
}

#[actix_web::test]
async fn actixs_own_errors_carry_the_envelope() {
    let gw = Gateway::start("", &[]);
    let method = raw(
        &gw.url,
        b"DELETE /v1/chat/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    );
    enveloped(&method, 405);
    let head = raw(
        &gw.url,
        b"HEAD /nope HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let known = raw(
        &gw.url,
        b"HEAD /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    );
    assert!(known.starts_with("HTTP/1.1 405"), "{known}");
}
