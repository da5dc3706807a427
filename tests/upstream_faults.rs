//! Nothing lost at the edges: only the fields Pura means reach the upstream (an allow-list per
//! dialect, the key's own end-user id, no priority tier or upstream storage), and every fault
//! maps to the answer whose fault it is (an upstream's 400 is the client's, a 429 on every
//! upstream is a 429 with `Retry-After`, actix's own errors carry the JSON envelope).

mod common;

use std::io::{Read, Write};

use common::{provider_toml, Behavior, FakeDialect, FakeUpstream, Gateway};
use serde_json::{json, Value};

/// A chat body carrying every kind of field a client may add: known ones, ones that change
/// what the operator pays or keeps, and ones no upstream should see.
fn loaded_chat(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": "hello"}],
        "temperature": 0.2, "top_p": 0.9, "max_completion_tokens": 50, "seed": 7,
        "stop": ["END"], "presence_penalty": 0.1, "logprobs": false,
        "response_format": {"type": "text"}, "reasoning_effort": "low",
        "user": "client-chosen-user", "safety_identifier": "client-chosen",
        "metadata": {"team": "x"}, "store": false, "service_tier": "auto",
        "extra_headers": {"x-evil": "1"}, "extra_body": {"a": 1},
        "api_key": "sk-client", "base_url": "http://elsewhere", "audio": {"voice": "alloy"},
        "web_search_options": {}
    })
}

fn keys_of(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.clone())
        .collect();
    k.sort();
    k
}

fn one(dialect: FakeDialect, name: &str, model: &str, extra: &str) -> (FakeUpstream, Gateway) {
    let fake = FakeUpstream::start(dialect);
    let toml = provider_toml(name, &fake, "mid", model, 0.001) + extra;
    let gw = Gateway::start(&toml, &[]);
    (fake, gw)
}

#[actix_web::test]
async fn an_openai_upstream_gets_only_the_fields_it_knows_and_the_keys_own_user() {
    let (fake, gw) = one(FakeDialect::OpenAi, "openai", "gpt-4o", "");
    let (_, key) = gw.key().await;
    let (_, other) = gw.key().await;
    for stream in [false, true] {
        let mut body = loaded_chat("gpt-4o");
        body["stream"] = json!(stream);
        if stream {
            body["stream_options"] = json!({"include_usage": true, "evil": 1});
        }
        let r = gw.post("/v1/chat/completions", &key, &body).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let sent = fake.requests();
    assert_eq!(sent.len(), 2);
    let mut expected = [
        "max_completion_tokens",
        "messages",
        "model",
        "presence_penalty",
        "reasoning_effort",
        "response_format",
        "seed",
        "stop",
        "stream",
        "temperature",
        "top_p",
        "user",
        "logprobs",
    ]
    .map(str::to_owned)
    .to_vec();
    expected.sort();
    assert_eq!(keys_of(&sent[0]), expected, "{}", sent[0]);
    expected.push("stream_options".into());
    expected.sort();
    assert_eq!(keys_of(&sent[1]), expected, "{}", sent[1]);
    assert_eq!(sent[1]["stream_options"], json!({"include_usage": true}));
    // The end user is the key's stable id, never the client's.
    let user = sent[0]["user"].as_str().expect("user").to_owned();
    assert_ne!(user, "client-chosen-user");
    assert_eq!(
        sent[1]["user"],
        json!(user),
        "stable across requests of a key"
    );
    let r = gw
        .post("/v1/chat/completions", &other, &loaded_chat("gpt-4o"))
        .await;
    assert_eq!(r.status, 200);
    let third = fake.last_request().expect("request");
    assert!(third["user"].as_str().is_some_and(|u| u != user), "{third}");
}

#[actix_web::test]
async fn priority_tier_and_upstream_storage_are_refused_before_any_upstream_call() {
    let (fake, gw) = one(FakeDialect::OpenAi, "openai", "gpt-4o", "");
    let (_, key) = gw.key().await;
    for (field, value, param) in [
        ("service_tier", json!("priority"), "service_tier"),
        ("service_tier", json!("flex"), "service_tier"),
        ("store", json!(true), "store"),
    ] {
        let mut body = loaded_chat("gpt-4o");
        body[field] = value.clone();
        let r = gw.post("/v1/chat/completions", &key, &body).await;
        assert_eq!(r.status, 400, "{field}={value}: {}", r.text());
        let e = &r.json()["error"];
        assert_eq!(e["type"], "invalid_request_error", "{e}");
        assert_eq!(e["param"], param, "{e}");
        assert!(
            e["message"].as_str().is_some_and(|m| m.contains(field)),
            "{e}"
        );
    }
    // Responses: Pura's own storage (store:true) is fine, a priority tier is not.
    let r = gw
        .post(
            "/v1/responses",
            &key,
            &json!({"model": "gpt-4o", "input": "hi", "service_tier": "priority"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["param"], "service_tier");
    assert_eq!(fake.hits(), 0, "nothing refused reached the upstream");
    let r = gw
        .post(
            "/v1/responses",
            &key,
            &json!({"model": "gpt-4o", "input": "hi", "store": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(fake.last_request().expect("request")["store"], false);
}

#[actix_web::test]
async fn a_provider_may_allow_service_tiers() {
    let (fake, gw) = one(FakeDialect::OpenAi, "openai", "gpt-4o", "");
    drop(gw);
    let toml = provider_toml("openai", &fake, "mid", "gpt-4o", 0.001)
        .replace("\n\n", "\nallow_service_tier = true\n\n");
    let gw = Gateway::start(&toml, &[]);
    let (_, key) = gw.key().await;
    let mut body = loaded_chat("gpt-4o");
    body["service_tier"] = json!("priority");
    let r = gw.post("/v1/chat/completions", &key, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        fake.last_request().expect("request")["service_tier"],
        "priority"
    );
}

#[actix_web::test]
async fn native_bodies_keep_their_protocols_fields_only() {
    // Responses → OpenAI, natively.
    let (fake, gw) = one(FakeDialect::OpenAi, "openai", "gpt-4o", "");
    let (_, key) = gw.key().await;
    let body = json!({"model": "gpt-4o", "input": "hi", "instructions": "Be terse.",
        "store": false, "include": ["reasoning.encrypted_content"], "prompt_cache_key": "s1",
        "reasoning": {"effort": "low"}, "text": {"format": {"type": "text"}},
        "metadata": {"k": "v"}, "user": "me", "conversation": "conv_1", "extra_body": {}});
    let r = gw.post("/v1/responses", &key, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = fake.last_request().expect("request");
    assert_eq!(
        keys_of(&sent),
        [
            "include",
            "input",
            "instructions",
            "model",
            "prompt_cache_key",
            "reasoning",
            "store",
            "stream",
            "text",
            "user"
        ]
    );
    assert_eq!(sent["store"], false);
    assert_ne!(sent["user"], "me");

    // Messages → Anthropic, natively.
    let (fake, gw) = one(
        FakeDialect::Anthropic,
        "anthropic",
        "claude-sonnet-4-20250514",
        "",
    );
    let (_, key) = gw.key().await;
    let body = json!({"model": "claude-sonnet-4-20250514", "max_tokens": 50,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi",
            "cache_control": {"type": "ephemeral"}}]}],
        "thinking": {"type": "enabled", "budget_tokens": 20}, "service_tier": "standard_only",
        "metadata": {"user_id": "client-chosen"}, "mcp_servers": [{"url": "http://x"}],
        "inference_geo": "us", "extra_body": {}});
    let r = gw
        .client()
        .post(format!("{}/v1/messages", gw.url))
        .insert_header(("x-api-key", key.as_str()))
        .insert_header(("anthropic-version", "2023-06-01"))
        .send_json(&body)
        .await
        .expect("request")
        .status();
    assert_eq!(r.as_u16(), 200);
    let sent = fake.last_request().expect("request");
    assert_eq!(
        keys_of(&sent),
        [
            "max_tokens",
            "messages",
            "metadata",
            "model",
            "stream",
            "thinking"
        ]
    );
    assert_eq!(
        sent["messages"], body["messages"],
        "content passes untouched"
    );
    let user_id = sent["metadata"]["user_id"].as_str().unwrap_or_default();
    assert!(!user_id.is_empty() && user_id != "client-chosen", "{sent}");
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
    let mut priority = body;
    priority["service_tier"] = json!("priority");
    let (status, v, _) = post(priority).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error");
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

/// Reads one HTTP/1.1 request (head and `content-length` body); false at the end of the
/// connection.
fn read_request(s: &mut std::net::TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return false,
        }
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).is_ok()
}

/// An OpenAI upstream that answers the first request of each connection, keeps the connection
/// open, and closes it on the next request without answering: a kept-alive connection closed
/// at its idle timeout just as a request reused it. Returns its port and the connections it
/// accepted.
fn closing_upstream() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            counted.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut s = conn;
                if !read_request(&mut s) {
                    return;
                }
                let body = json!({
                    "id": "chatcmpl-closing", "object": "chat.completion", "created": 1,
                    "model": "gpt-4o",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": "hi"}}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
                })
                .to_string();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(answer.as_bytes());
                // The next request on this connection is read and not answered.
                let _ = read_request(&mut s);
            });
        }
    });
    (port, accepted)
}

/// A request sent on a pooled connection that the upstream closes without a byte of answer
/// was not served: it goes again on another connection, and the upstream is not blamed.
#[actix_web::test]
async fn a_request_on_a_connection_the_upstream_closed_goes_again() {
    let (port, accepted) = closing_upstream();
    let toml = format!(
        "[providers.closing]\ndialect = \"openai\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\n\
         api_key = \"k\"\ntier = \"mid\"\nmodels = [\"gpt-4o\"]\nprice_per_1k = 0.001\n\
         timeout = \"3s\"\n"
    );
    let gw = Gateway::start(&toml, &[]);
    let (key_id, key) = gw.key().await;
    for i in 0..4 {
        let r = gw
            .post(
                "/v1/chat/completions",
                &key,
                &json!({"model": "gpt-4o",
                "messages": [{"role": "user", "content": "hello"}]}),
            )
            .await;
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.json()["choices"][0]["message"]["content"], "hi");
    }
    assert_eq!(gw.usage_rows(&key_id).len(), 4);
    // Each request after the first was sent on the previous one's connection, closed, and sent
    // again on a new one.
    let opened = accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(opened, 4, "connections accepted");
}

/// Hundreds of pooled connections that the upstream closed at its idle timeout (actix's 5 s):
/// taking one, awc reads past every closed one; past tokio's cooperative budget those reads
/// said "not ready" and closed connections passed as open, so the first request after the
/// pause went to closed ones, more than its retries could absorb, and was a 502.
#[actix_web::test]
async fn after_a_pause_the_first_request_finds_an_open_connection_past_hundreds_of_closed_ones() {
    after_a_pause(false).await;
}

/// The same with streams: a stream read to its end leaves its connection in the pool (the
/// relay's `transport::release`), so a burst of streams pools as many connections as a burst of
/// plain requests, and they are closed by the upstream the same way.
#[actix_web::test]
async fn after_a_pause_the_first_stream_finds_an_open_connection_past_hundreds_of_closed_ones() {
    after_a_pause(true).await;
}

async fn after_a_pause(stream: bool) {
    // Gathering 1,600 requests takes longer than `one`'s 3 s provider timeout on a loaded
    // machine (on PostgreSQL each request is admitted through the database first).
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    let provider = provider_toml("openai", &fake, "mid", "gpt-4o", 0.001)
        .replace("timeout = \"3s\"", "timeout = \"60s\"");
    let gw = Gateway::start(
        &(provider
            + "[limits]\nrpm = 100000\ndefault_daily_budget_usd = 1000000.0\n\
         default_monthly_budget_usd = 1000000.0\n\n[free_tier]\nmax_request_usd = 1000.0\n\
         daily_budget_usd = 1000000.0\n"),
        &[],
    );
    let (_, key) = gw.key().await;
    // 1,600 requests held at the upstream at once: each of the 2 workers pools about 800
    // connections, more than the 5 attempts (4 retries) at 128 reads each could pass.
    fake.set_behavior(Behavior::Gather(1_600));
    let body = hello(stream);
    let burst = (0..1600).map(|_| gw.post("/v1/chat/completions", &key, &body));
    for r in futures_util::future::join_all(burst).await {
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert!(
        fake.connections() >= 1_600,
        "only {} upstream connections were opened",
        fake.connections()
    );
    fake.set_behavior(Behavior::Normal);
    // The burst's connections went back to the pool: one more request opens none (a stream's
    // end may still be read in the background for a moment).
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let before = fake.connections();
    let r = gw.post("/v1/chat/completions", &key, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        fake.connections(),
        before,
        "the burst's connections were not pooled"
    );
    // The fake upstream closes a connection idle for 5 s.
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    // A new client: the test's own pooled connections to the gateway were closed too (and awc
    // on this side has the same walk to make).
    let client = awc::Client::default();
    for i in 0..4 {
        let resp = client
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(&key)
            .send_json(&body)
            .await
            .expect("request");
        let r = common::Reply::read(resp).await;
        assert_eq!(r.status, 200, "request {i} after the pause: {}", r.text());
        if stream {
            assert_eq!(
                r.sse_data().last().map(String::as_str),
                Some("[DONE]"),
                "stream {i} after the pause: {}",
                r.text()
            );
        }
    }
}

/// An OpenAI upstream that sends an answer's head and half its body, then nothing: the answer
/// never completes.
fn stalling_upstream() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = conn;
                if !read_request(&mut s) {
                    return;
                }
                let body = r#"{"id":"chatcmpl-stall","object":"chat.completion","model":"gpt-4o","choices":[]}"#;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(&body.as_bytes()[..body.len() / 2]);
                std::thread::sleep(std::time::Duration::from_secs(30));
            });
        }
    });
    port
}

/// The provider's timeout bounds the whole answer, its body included: an answer whose body
/// stops halfway is a 504 once the timeout has passed, and nothing is billed.
#[actix_web::test]
async fn an_answer_whose_body_stalls_is_a_504_at_the_providers_timeout() {
    let port = stalling_upstream();
    let toml = format!(
        "[providers.stalling]\ndialect = \"openai\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\n\
         api_key = \"k\"\ntier = \"mid\"\nmodels = [\"gpt-4o\"]\nprice_per_1k = 0.001\n\
         timeout = \"1s\"\n"
    );
    let gw = Gateway::start(&toml, &[]);
    let (key_id, key) = gw.key().await;
    let r = gw
        .post(
            "/v1/chat/completions",
            &key,
            &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}),
        )
        .await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(
        r.json()["error"]["code"],
        "upstream_timeout",
        "{}",
        r.text()
    );
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("answer not complete")),
        "{}",
        r.text()
    );
    assert!(
        gw.usage_rows(&key_id).is_empty(),
        "nothing served, nothing billed"
    );
}
