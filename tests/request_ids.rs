//! `X-Pura-Request-Id` and `X-Pura-Body-Sha256` on every answer of the chat, Responses and
//! Messages paths, JSON and stream, errors after the body was read (402 included): the id is
//! the usage row's, the hash is the SHA-256 of the exact bytes sent, also on the usage row.

mod common;

use common::{provider_toml, FakeDialect, FakeUpstream, Gateway, Reply};
use sha2::{Digest, Sha256};

/// POSTs these exact bytes as JSON with `key` as a bearer (and `x-api-key`).
async fn post_raw(gw: &Gateway, path: &str, key: &str, body: &'static str) -> Reply {
    let resp = gw
        .client()
        .post(format!("{}{path}", gw.url))
        .bearer_auth(key)
        .insert_header(("x-api-key", key))
        .insert_header(("anthropic-version", "2023-06-01"))
        .insert_header(("content-type", "application/json"))
        .send_body(body)
        .await
        .expect("request");
    Reply::read(resp).await
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks both headers of `r` against the bytes sent; returns the request id.
fn ids(what: &str, r: &Reply, sent: &str) -> String {
    assert_eq!(
        r.header("x-pura-body-sha256"),
        Some(sha256_hex(sent.as_bytes()).as_str()),
        "{what}: status {} {}",
        r.status,
        r.text()
    );
    let id = r
        .header("x-pura-request-id")
        .unwrap_or_else(|| panic!("{what}: no X-Pura-Request-Id"));
    assert!(id.starts_with("req_"), "{what}: {id}");
    id.to_owned()
}

// Odd spacing on purpose: a hash of re-serialised JSON would not match these bytes.
const CHAT: &str = r#"{ "model":"gpt-4o",  "messages":[{"role":"user","content":"hash me"}] }"#;
const CHAT_STREAM: &str =
    r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hash me too"}]}"#;
const RESPONSES: &str = r#"{"model":"gpt-4o", "input":"hash the responses path"}"#;
const RESPONSES_STREAM: &str = r#"{"model":"gpt-4o","stream":true, "input":"and its stream"}"#;
const MESSAGES: &str = r#"{"model":"claude-sonnet-4-20250514","max_tokens":64,
  "messages":[{"role":"user","content":"hash the messages path"}]}"#;
const MESSAGES_STREAM: &str = r#"{"model":"claude-sonnet-4-20250514","max_tokens":64,"stream":true,
  "messages":[{"role":"user","content":"and the anthropic stream"}]}"#;

#[actix_web::test]
async fn every_protocol_answers_with_its_request_id_and_body_hash() {
    let openai = FakeUpstream::start(FakeDialect::OpenAi);
    let anthropic = FakeUpstream::start(FakeDialect::Anthropic);
    let toml = provider_toml("openai", &openai, "mid", "gpt-4o", 0.005)
        + &provider_toml(
            "anthropic",
            &anthropic,
            "premium",
            "claude-sonnet-4-20250514",
            0.003,
        );
    let gw = Gateway::start(&toml, &[]);
    let (key_id, key) = gw.key().await;
    let cases = [
        ("chat", "/v1/chat/completions", CHAT),
        ("chat stream", "/v1/chat/completions", CHAT_STREAM),
        ("pura chat stream", "/api/chat", CHAT_STREAM),
        ("responses", "/v1/responses", RESPONSES),
        ("responses stream", "/v1/responses", RESPONSES_STREAM),
        ("messages", "/v1/messages", MESSAGES),
        ("messages stream", "/v1/messages", MESSAGES_STREAM),
    ];
    let mut served = Vec::new();
    for (what, path, body) in cases {
        let r = post_raw(&gw, path, &key, body).await;
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        // The whole body is read above: a stream is settled before its last event.
        served.push((what, ids(what, &r, body), sha256_hex(body.as_bytes())));
    }
    let rows = gw.usage_rows(&key_id);
    assert_eq!(rows.len(), served.len(), "one usage row per request");
    for (what, id, hash) in &served {
        let row = rows
            .iter()
            .find(|r| &r.id == id)
            .unwrap_or_else(|| panic!("{what}: no usage row with id {id}"));
        assert_eq!(row.body_sha256.as_deref(), Some(hash.as_str()), "{what}");
    }
    let mut distinct: Vec<&String> = served.iter().map(|(_, id, _)| id).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), served.len(), "request ids are unique");
}

#[actix_web::test]
async fn errors_after_the_body_was_read_carry_both_headers_too() {
    let openai = FakeUpstream::start(FakeDialect::OpenAi);
    let toml = provider_toml("openai", &openai, "mid", "gpt-4o", 0.005);
    let gw = Gateway::start(&toml, &[("PURA__FREE_TIER__REQUESTS", "0")]);
    let (key_id, key) = gw.key().await;
    let bad_json = r#"{"messages": [ oops"#;
    let unknown_model = r#"{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}"#;
    let cases = [
        ("402 chat", "/v1/chat/completions", CHAT, 402),
        ("402 responses", "/v1/responses", RESPONSES, 402),
        ("402 messages", "/v1/messages", MESSAGES, 402),
        ("400 chat", "/v1/chat/completions", bad_json, 400),
        ("400 responses", "/v1/responses", bad_json, 400),
        ("400 messages", "/v1/messages", bad_json, 400),
        ("404 chat", "/v1/chat/completions", unknown_model, 404),
    ];
    for (what, path, body, status) in cases {
        let r = post_raw(&gw, path, &key, body).await;
        assert_eq!(r.status, status, "{what}: {}", r.text());
        ids(what, &r, body);
        assert!(r.json()["error"].is_object(), "{what}: {}", r.text());
    }
    assert!(gw.usage_rows(&key_id).is_empty(), "nothing was served");
    assert_eq!(openai.hits(), 0);
}
