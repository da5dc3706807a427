//! Logs an operator can ship: with `log.format = "json"` every line the gateway writes is a
//! JSON object and every request has one access line with its ids and figures; and at
//! `RUST_LOG=trace`, with Lightning and the admin API configured, no secret (a key, the
//! upstream's API key, the admin token, the LNbits key) appears in any line.

mod common;

use common::{provider_toml, FakeDialect, FakeUpstream, Gateway, ADMIN_TOKEN};
use serde_json::{json, Value};

const LNBITS_KEY: &str = "lnbits-invoice-key-0123456789abcdef";

/// One chat completion and one streamed: the body sent, and both answers (each a 200).
async fn chat_and_stream(gw: &Gateway, key: &str) -> (Value, common::Reply, common::Reply) {
    let chat = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    let served = gw.post("/v1/chat/completions", key, &chat).await;
    assert_eq!(served.status, 200, "{}", served.text());
    let mut stream = chat.clone();
    stream["stream"] = json!(true);
    let streamed = gw.post("/v1/chat/completions", key, &stream).await;
    assert_eq!(streamed.status, 200, "{}", streamed.text());
    (chat, served, streamed)
}

#[actix_web::test]
async fn json_logs_have_one_access_line_per_request_and_no_secret_at_trace_level() {
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    // LNbits-like: a backend whose key is a secret (nothing listens there: funding fails,
    // which is one more path to log).
    let toml = provider_toml("openai", &fake, "mid", "gpt-4o", 0.005)
        + "[lightning]\nbackend = \"lnbits\"\nurl = \"http://127.0.0.1:9\"\n\
           invoice_key_env = \"LNBITS_INVOICE_KEY\"\n\n[log]\nformat = \"json\"\n";
    let gw = Gateway::start(
        &toml,
        &[
            ("RUST_LOG", "trace"),
            ("LNBITS_INVOICE_KEY", LNBITS_KEY),
            ("PURA__FREE_TIER__REQUESTS", "2"),
        ],
    );
    let (key_id, key) = gw.key().await;
    let (chat, served, streamed) = chat_and_stream(&gw, &key).await;
    // The free tier is used up and nothing is funded: the 402 path (its invoice fails).
    let refused = gw.post("/v1/chat/completions", &key, &chat).await;
    assert!(
        [402, 502, 503].contains(&refused.status),
        "{}",
        refused.text()
    );
    let (status, _) = gw
        .send(
            "POST",
            "/api/wallet/fund",
            &key,
            Some(json!({"amount": 1000})),
        )
        .await;
    assert!(status >= 500, "funding with LNbits down: {status}");
    let (status, minted) = gw
        .send("POST", "/api/keys", &key, Some(json!({"label": "tool"})))
        .await;
    assert_eq!(status, 201, "{minted}");
    let tool_key = minted["key"].as_str().expect("minted key").to_owned();
    let (status, rotated) = gw
        .send("POST", "/api/keys/me/rotate", &tool_key, None)
        .await;
    assert_eq!(status, 200, "{rotated}");
    let rotated_key = rotated["key"].as_str().expect("rotated key").to_owned();
    let (status, _) = gw.get("/api/admin/keys", ADMIN_TOKEN).await;
    assert_eq!(status, 200);
    let credit = json!({"sats": 10, "memo": "log test"});
    let path = format!("/api/admin/keys/{key_id}/credit");
    let (status, _) = gw.send("POST", &path, ADMIN_TOKEN, Some(credit)).await;
    assert_eq!(status, 200);
    let (status, _) = gw
        .get("/api/keys/me", "pura_notarealkeybutonethatlookslikeone00")
        .await;
    assert_eq!(status, 401);

    let log = gw.log();
    let secrets = [
        ("the key", key.as_str()),
        ("a minted key", tool_key.as_str()),
        ("a rotated key", rotated_key.as_str()),
        ("the upstream API key", fake.api_key()),
        ("the admin token", ADMIN_TOKEN),
        ("the LNbits key", LNBITS_KEY),
        ("a refused key", "pura_notarealkeybutonethatlookslikeone00"),
    ];
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() > 20, "trace level logs a lot: {}", lines.len());
    for line in &lines {
        for (what, secret) in secrets {
            assert!(!line.contains(secret), "{what} in a log line: {line}");
        }
    }
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let access: Vec<&Value> = parsed.iter().filter(|v| v["kind"] == "access").collect();
    let line_of = |request_id: &str| {
        access
            .iter()
            .find(|v| v["requestId"] == request_id)
            .unwrap_or_else(|| panic!("no access line for {request_id}: {access:?}"))
    };
    for (reply, ttft) in [(&served, false), (&streamed, true)] {
        let id = reply.header("x-pura-request-id").expect("request id");
        let line = line_of(id);
        assert_eq!(line["keyId"], key_id.as_str(), "{line}");
        assert!(line["accountId"].is_string(), "{line}");
        assert_eq!(line["route"], "/v1/chat/completions", "{line}");
        assert_eq!(line["protocol"], "chat", "{line}");
        assert_eq!(line["status"], 200, "{line}");
        assert_eq!(line["provider"], "openai", "{line}");
        assert_eq!(line["model"], "gpt-4o", "{line}");
        assert_eq!(line["tier"], "mid", "{line}");
        assert!(
            line["promptTokens"].as_i64().is_some_and(|t| t > 0),
            "{line}"
        );
        assert!(
            line["completionTokens"].as_i64().is_some_and(|t| t > 0),
            "{line}"
        );
        assert!(line["costUsd"].as_f64().is_some_and(|c| c > 0.0), "{line}");
        assert!(line["latencyMs"].is_number(), "{line}");
        assert_eq!(line["ttftMs"].is_number(), ttft, "{line}");
    }
    let refused_line = line_of(refused.header("x-pura-request-id").expect("id"));
    assert_eq!(refused_line["status"], refused.status, "{refused_line}");
    assert!(refused_line["provider"].is_null(), "{refused_line}");
    let routes: Vec<&str> = access.iter().filter_map(|v| v["route"].as_str()).collect();
    for route in [
        "/api/keys",
        "/api/wallet/fund",
        "/api/keys/me/rotate",
        "/api/admin/keys",
        "/api/admin/keys/{id}/credit",
        "/api/keys/me",
    ] {
        assert!(
            routes.contains(&route),
            "no access line for {route}: {routes:?}"
        );
    }
    // One line per request: the first key's mint in `gw.key()` and the 9 made above.
    assert_eq!(access.len(), 10, "{routes:?}");
}

/// The default text format: one line per request, actix's `%a "%r" %s %b %Dms`, written when
/// the body has been sent, with the bytes the client received (a stream's too).
#[actix_web::test]
async fn text_logs_have_one_access_line_per_request_with_its_size() {
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    let toml = provider_toml("openai", &fake, "mid", "gpt-4o", 0.005);
    let gw = Gateway::start(&toml, &[("RUST_LOG", "info")]);
    let (_, key) = gw.key().await;
    let (_, served, streamed) = chat_and_stream(&gw, &key).await;
    let (status, _) = gw.get("/api/report?period=24h", &key).await;
    assert_eq!(status, 200);
    let (status, _) = gw.get("/api/keys/me", "pura_notarealkey").await;
    assert_eq!(status, 401);
    // The line of a stream is written when it ends, after the client has read it all.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let access = loop {
        let log = gw.log();
        let access: Vec<String> = log
            .lines()
            .filter(|l| l.contains(" INFO  pura::access] "))
            .map(|l| l.split_once("pura::access] ").unwrap().1.to_owned())
            .collect();
        if access.len() >= 5 || std::time::Instant::now() > deadline {
            break access;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    // The mint in `gw.key()`, then the four above, in order.
    assert_eq!(access.len(), 5, "{access:?}");
    let expect = [
        ("POST /api/keys", 201, None),
        ("POST /v1/chat/completions", 200, Some(served.body.len())),
        ("POST /v1/chat/completions", 200, Some(streamed.body.len())),
        ("GET /api/report?period=24h", 200, None),
        ("GET /api/keys/me", 401, None),
    ];
    for (line, (request, status, size)) in access.iter().zip(expect) {
        let prefix = format!("127.0.0.1 \"{request} HTTP/1.1\" {status} ");
        let rest = line
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{line:?} does not start with {prefix:?}"));
        let (bytes, ms) = rest.split_once(' ').expect("size and time");
        let bytes: usize = bytes.parse().expect("a size");
        if let Some(size) = size {
            assert_eq!(bytes, size, "{line}");
        }
        assert!(bytes > 0, "{line}");
        let ms = ms.strip_suffix("ms").expect("ms");
        let (whole, frac) = ms.split_once('.').expect("a decimal");
        assert!(whole.parse::<u64>().is_ok() && frac.len() == 6, "{line}");
    }
}
