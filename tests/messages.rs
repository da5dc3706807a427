//! The Anthropic Messages front end (`/v1/messages`) against the real gateway over fake
//! upstreams: natively to an Anthropic upstream (the body arrives as the client sent it, with
//! only `model` and `stream` set), translated to an OpenAI upstream, tool use, money, errors in
//! Anthropic's shape, `count_tokens`, the Anthropic model list, and the official anthropic SDK.

mod common;

use common::fake_lnd::{FakeLnd, MACAROON};
use common::fake_upstream::{prompt_tokens_for, thinking_signature, FAKE_THINKING};
use common::{provider_toml, FakeDialect, FakeUpstream, Gateway, Reply};
use serde_json::{json, Value};

const NATIVE_MODEL: &str = "claude-sonnet-4-20250514";

/// POSTs `body` to `path` with `headers`; returns the reply.
async fn post(gw: &Gateway, path: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
    let mut req = gw.client().post(format!("{}{path}", gw.url));
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let resp = req.send_json(body).await.expect("request");
    Reply::read(resp).await
}

/// The headers an Anthropic client sends with `key` as `x-api-key`.
fn anthropic_headers(key: &str) -> Vec<(&str, &str)> {
    vec![
        ("x-api-key", key),
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "interleaved-thinking-2025-05-14"),
    ]
}

/// The events of an Anthropic SSE body as (name, data), asserting each `event:` names its
/// data's `type`.
fn events(r: &Reply) -> Vec<(String, Value)> {
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream")),
        "{:?}",
        r.header("content-type")
    );
    r.text()
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = None;
            let mut data = String::new();
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            let name = name.unwrap_or_else(|| panic!("event without a name: {e:?}"));
            let v: Value = serde_json::from_str(&data).unwrap_or_else(|_| panic!("bad data {e:?}"));
            assert_eq!(v["type"], name.as_str(), "event name and type differ: {e}");
            (name, v)
        })
        .collect()
}

/// Rebuilds the final message from a stream, checking the event grammar on the way: one
/// `message_start` first, blocks opened in index order, deltas only into the open block,
/// `message_delta` then `message_stop` last.
fn assemble(evs: &[(String, Value)]) -> Value {
    assert_eq!(evs.first().map(|e| e.0.as_str()), Some("message_start"));
    assert_eq!(evs.last().map(|e| e.0.as_str()), Some("message_stop"));
    let mut message = evs[0].1["message"].clone();
    let mut blocks: Vec<Value> = Vec::new();
    let mut json_parts: Vec<String> = Vec::new();
    let mut open: Option<u64> = None;
    for (name, v) in &evs[1..] {
        match name.as_str() {
            "content_block_start" => {
                assert_eq!(open, None, "a block opened inside another");
                let index = v["index"].as_u64().expect("index");
                assert_eq!(index as usize, blocks.len(), "indices in order");
                blocks.push(v["content_block"].clone());
                json_parts.push(String::new());
                open = Some(index);
            }
            "content_block_delta" => {
                let index = v["index"].as_u64().expect("index");
                assert_eq!(open, Some(index), "delta outside the open block");
                let b = &mut blocks[index as usize];
                let d = &v["delta"];
                match d["type"].as_str().unwrap_or_default() {
                    "text_delta" => {
                        b["text"] = json!(format!("{}{}", str(&b["text"]), str(&d["text"])))
                    }
                    "thinking_delta" => {
                        b["thinking"] =
                            json!(format!("{}{}", str(&b["thinking"]), str(&d["thinking"])))
                    }
                    "signature_delta" => b["signature"] = d["signature"].clone(),
                    "input_json_delta" => {
                        json_parts[index as usize].push_str(str(&d["partial_json"]))
                    }
                    other => panic!("unexpected delta {other}"),
                }
            }
            "content_block_stop" => {
                assert_eq!(open, v["index"].as_u64(), "stop of a block not open");
                open = None;
            }
            "message_delta" => {
                assert_eq!(open, None, "message_delta with a block open");
                message["stop_reason"] = v["delta"]["stop_reason"].clone();
                for (k, n) in v["usage"].as_object().expect("usage") {
                    message["usage"][k] = n.clone();
                }
            }
            "ping" | "message_stop" => {}
            other => panic!("unexpected event {other}"),
        }
    }
    for (b, parts) in blocks.iter_mut().zip(json_parts) {
        if b["type"] == "tool_use" && !parts.is_empty() {
            b["input"] = serde_json::from_str(&parts).expect("tool input JSON");
        }
    }
    message["content"] = json!(blocks);
    message
}

fn str(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// USD string of `X-Pura-Cost` in micro-dollars.
fn micros(usd: &str) -> i64 {
    (usd.parse::<f64>().expect("cost") * 1e6).round() as i64
}

fn cost_usd_micros(v: &Value) -> i64 {
    (v["x_pura"]["costUsd"].as_f64().expect("x_pura.costUsd") * 1e6).round() as i64
}

/// A conversation that hands back a thinking block (with its signature) and uses
/// `cache_control`, as Claude Code does.
fn claude_code_body(model: &str, stream: bool) -> Value {
    json!({
        "model": model, "max_tokens": 300, "stream": stream, "top_k": 5,
        "thinking": {"type": "enabled", "budget_tokens": 200},
        "metadata": {"user_id": "user_abc_account__session_123"},
        "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "What is two plus two?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": FAKE_THINKING, "signature": thinking_signature(FAKE_THINKING)},
                {"type": "text", "text": "Four."}]},
            {"role": "user", "content": [{"type": "text", "text": "And three plus three?",
                "cache_control": {"type": "ephemeral"}}]}
        ]
    })
}

#[actix_web::test]
async fn native_to_anthropic_keeps_the_body_and_bills_what_the_headers_say() {
    let fake = FakeUpstream::start(FakeDialect::Anthropic);
    fake.set_cache_read_tokens(3);
    let gw = Gateway::start(
        &provider_toml("anthropic", &fake, "premium", NATIVE_MODEL, 1.0),
        &[],
    );
    let (key_id, key) = gw.key().await;
    let mut headers = anthropic_headers(&key);
    headers.push(("x-claude-code-session-id", "session-1"));

    // JSON. An unknown claude-* id routes as `auto`, here to the one Anthropic upstream.
    let sent = claude_code_body("claude-sonnet-4-5", false);
    let r = post(&gw, "/v1/messages", &headers, &sent).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let m = r.json();
    assert_eq!(m["type"], "message");
    assert_eq!(m["model"], NATIVE_MODEL);
    assert_eq!(
        m["content"][0],
        json!({"type": "thinking", "thinking": FAKE_THINKING, "signature": thinking_signature(FAKE_THINKING)})
    );
    assert_eq!(m["content"][1]["text"], "Hello from fake Anthropic!");
    assert_eq!(m["usage"]["cache_read_input_tokens"], 3);
    // What reached the upstream is the client's body, only `model` and `stream` set and the
    // end user the key's own id, not the client's.
    let mut expected = sent.clone();
    expected["model"] = json!(NATIVE_MODEL);
    expected["metadata"]["user_id"] = json!(pura::providers::outbound::end_user(&key_id));
    assert_eq!(fake.last_request(), Some(expected));
    let raw = fake.last_raw_request().expect("raw body");
    for exact in [
        &sent["messages"][1]["content"][0],
        &sent["system"][0],
        &sent["messages"][2],
    ] {
        assert!(
            raw.contains(&exact.to_string()),
            "{exact} not byte for byte in {raw}"
        );
    }
    assert_eq!(
        fake.last_header("anthropic-version").as_deref(),
        Some("2023-06-01")
    );
    assert_eq!(
        fake.last_header("anthropic-beta").as_deref(),
        Some("interleaved-thinking-2025-05-14")
    );
    assert_eq!(
        fake.last_header("x-api-key").as_deref(),
        Some(fake.api_key())
    );
    assert_eq!(r.header("x-pura-provider"), Some("anthropic"));
    assert_eq!(r.header("x-pura-model"), Some(NATIVE_MODEL));
    assert_eq!(r.header("x-pura-tier"), Some("premium"));
    assert!(r.header("x-pura-request-id").is_some() || r.header("x-request-id").is_some());
    assert_eq!(r.header("request-id"), r.header("x-request-id"));
    let json_cost = micros(r.header("x-pura-cost").expect("x-pura-cost"));
    let upstream_prompt = prompt_tokens_for(&fake.last_request().expect("request"));

    // Stream.
    let sent = claude_code_body("claude-sonnet-4-5", true);
    let r = post(&gw, "/v1/messages", &headers, &sent).await;
    let evs = events(&r);
    let m = assemble(&evs);
    assert_eq!(m["content"][0]["thinking"], FAKE_THINKING);
    assert_eq!(
        m["content"][0]["signature"],
        thinking_signature(FAKE_THINKING).as_str()
    );
    assert_eq!(m["content"][1]["text"], "Hello from fake Anthropic!");
    assert_eq!(m["stop_reason"], "end_turn");
    assert_eq!(m["usage"]["input_tokens"], upstream_prompt - 3);
    assert!(evs.iter().any(|e| e.0 == "ping"));
    let mut expected = sent.clone();
    expected["model"] = json!(NATIVE_MODEL);
    expected["metadata"]["user_id"] = json!(pura::providers::outbound::end_user(&key_id));
    assert_eq!(fake.last_request(), Some(expected));
    let stream_cost = cost_usd_micros(&evs.last().expect("message_stop").1);

    // One row per request, each costing what its headers or final event said.
    let rows = gw.usage_rows(&key_id);
    assert_eq!(rows.len(), 2);
    let json_row = rows.iter().find(|r| !r.stream).expect("json row");
    let stream_row = rows.iter().find(|r| r.stream).expect("stream row");
    assert_eq!(json_row.cost_micros, json_cost);
    assert_eq!(stream_row.cost_micros, stream_cost);
    assert!(
        rows.iter().all(|r| r.protocol == "messages"),
        "the protocol is recorded"
    );
    assert!(stream_cost > 0);
    let thinking_words = FAKE_THINKING.split_whitespace().count() as i64;
    for row in [json_row, stream_row] {
        assert_eq!(row.prompt_tokens, upstream_prompt as i64);
        assert_eq!(row.completion_tokens, 4 + thinking_words);
        assert_eq!(row.status, "ok");
    }
}

#[actix_web::test]
async fn translated_to_openai_json_and_stream() {
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    let gw = Gateway::start(&provider_toml("openai", &fake, "mid", "gpt-4o", 1.0), &[]);
    let (key_id, key) = gw.key().await;
    let headers = anthropic_headers(&key);

    let sent = claude_code_body("claude-3-5-haiku-latest", false);
    let r = post(&gw, "/v1/messages", &headers, &sent).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let m = r.json();
    assert_eq!(m["type"], "message");
    assert_eq!(m["role"], "assistant");
    assert_eq!(m["model"], "gpt-4o");
    assert_eq!(
        m["content"],
        json!([{"type": "text", "text": "Hello from fake OpenAI!"}])
    );
    assert_eq!(m["stop_reason"], "end_turn");
    let up = fake.last_request().expect("upstream request");
    let prompt = prompt_tokens_for(&up);
    assert_eq!(m["usage"]["input_tokens"], prompt);
    assert_eq!(m["usage"]["output_tokens"], 4);
    // The canonical translation: system first, the thinking block dropped, text kept.
    assert_eq!(up["model"], "gpt-4o");
    assert_eq!(up["max_tokens"], 300);
    assert_eq!(
        up["messages"],
        json!([
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "What is two plus two?"},
            {"role": "assistant", "content": "Four."},
            {"role": "user", "content": "And three plus three?"},
        ])
    );
    assert!(up.get("top_k").is_none() && up.get("thinking").is_none());
    assert_eq!(r.header("x-pura-provider"), Some("openai"));
    let json_cost = micros(r.header("x-pura-cost").expect("cost"));

    let r = post(
        &gw,
        "/v1/messages",
        &headers,
        &claude_code_body("claude-3-5-haiku-latest", true),
    )
    .await;
    assert_eq!(r.header("x-pura-model"), Some("gpt-4o"));
    let evs = events(&r);
    let start_usage = &evs[0].1["message"]["usage"];
    assert!(
        start_usage["input_tokens"].as_u64().unwrap_or(0) > 0,
        "message_start carries the input estimate"
    );
    let m = assemble(&evs);
    assert_eq!(
        m["content"],
        json!([{"type": "text", "text": "Hello from fake OpenAI!"}])
    );
    assert_eq!(m["stop_reason"], "end_turn");
    assert_eq!(m["usage"]["input_tokens"], prompt);
    assert_eq!(m["usage"]["output_tokens"], 4);
    let stream_cost = cost_usd_micros(&evs.last().expect("stop").1);

    let rows = gw.usage_rows(&key_id);
    assert_eq!(rows.len(), 2);
    let json_row = rows.iter().find(|r| !r.stream).expect("json row");
    let stream_row = rows.iter().find(|r| r.stream).expect("stream row");
    assert_eq!(json_row.cost_micros, json_cost);
    assert_eq!(stream_row.cost_micros, stream_cost);
    assert_eq!(stream_row.prompt_tokens, prompt as i64);

    // A catalogue Claude model whose provider is not enabled is routed as auto too.
    let r = post(
        &gw,
        "/v1/messages",
        &headers,
        &claude_code_body(NATIVE_MODEL, false),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-pura-model"), Some("gpt-4o"));
    assert_eq!(stream_row.completion_tokens, 4);
}

fn weather_tool() -> Value {
    json!({"name": "get_weather", "description": "Weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}})
}

#[actix_web::test]
async fn tool_use_round_trips_natively_and_translated() {
    let anthropic = FakeUpstream::start(FakeDialect::Anthropic);
    let openai = FakeUpstream::start(FakeDialect::OpenAi);
    let toml = [
        provider_toml("anthropic", &anthropic, "premium", NATIVE_MODEL, 1.0),
        provider_toml("openai", &openai, "mid", "gpt-4o", 1.0),
    ]
    .concat();
    let gw = Gateway::start(&toml, &[]);
    let (_, key) = gw.key().await;
    // Bearer works as well as x-api-key.
    let bearer = format!("Bearer {key}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("anthropic-version", "2023-06-01"),
    ];
    for (model, provider) in [(NATIVE_MODEL, "anthropic"), ("gpt-4o", "openai")] {
        for stream in [false, true] {
            let question = json!({"role": "user", "content": "Weather in Paris?"});
            let body = json!({"model": model, "max_tokens": 100, "stream": stream,
                "tools": [weather_tool()], "tool_choice": {"type": "auto"}, "messages": [question]});
            let r = post(&gw, "/v1/messages", &headers, &body).await;
            assert_eq!(r.header("x-pura-provider"), Some(provider));
            let m = if stream {
                assemble(&events(&r))
            } else {
                r.json()
            };
            assert_eq!(m["stop_reason"], "tool_use", "{model} {stream}: {m}");
            let call = m["content"]
                .as_array()
                .and_then(|c| c.iter().find(|b| b["type"] == "tool_use"))
                .cloned()
                .unwrap_or_else(|| panic!("no tool_use in {m}"));
            assert_eq!(call["name"], "get_weather");
            assert_eq!(call["input"], json!({"city": "fake"}));
            let id = str(&call["id"]).to_owned();
            assert!(!id.is_empty());

            // The tool result goes back; the upstream (which checks the pairing) answers text.
            let body = json!({"model": model, "max_tokens": 100, "stream": stream,
                "tools": [weather_tool()], "messages": [question,
                    {"role": "assistant", "content": m["content"]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id,
                        "content": [{"type": "text", "text": "21C and sunny"}]}]}]});
            let r = post(&gw, "/v1/messages", &headers, &body).await;
            let m = if stream {
                assemble(&events(&r))
            } else {
                r.json()
            };
            assert_eq!(m["stop_reason"], "end_turn", "{model} {stream}: {m}");
            assert!(str(&m["content"][0]["text"]).starts_with("Hello from fake"));
        }
    }
    // The translated tool result reached OpenAI as a tool message answering the call.
    let up = openai.last_request().expect("openai request");
    let msgs = up["messages"].as_array().expect("messages");
    assert_eq!(msgs[1]["role"], "assistant");
    assert_eq!(msgs[2]["role"], "tool");
    assert_eq!(msgs[2]["content"], "21C and sunny");
    assert_eq!(msgs[2]["tool_call_id"], msgs[1]["tool_calls"][0]["id"]);
    assert_eq!(up["tools"][0]["function"]["name"], "get_weather");
}

fn anthropic_error(r: &Reply, status: u16, kind: &str) -> Value {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], kind, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    v
}

#[actix_web::test]
async fn errors_have_anthropic_shape() {
    let fake = FakeUpstream::start(FakeDialect::Anthropic);
    let gw = Gateway::start(
        &provider_toml("anthropic", &fake, "premium", NATIVE_MODEL, 1.0),
        &[],
    );
    let (_, key) = gw.key().await;
    let body = json!({"model": NATIVE_MODEL, "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}]});
    let version = ("anthropic-version", "2023-06-01");

    let r = post(&gw, "/v1/messages", &[version], &body).await;
    anthropic_error(&r, 401, "authentication_error");
    let r = post(
        &gw,
        "/v1/messages",
        &[("x-api-key", "pura_wrong"), version],
        &body,
    )
    .await;
    anthropic_error(&r, 401, "authentication_error");

    let headers = [("x-api-key", key.as_str()), version];
    let mut no_cap = body.clone();
    no_cap.as_object_mut().map(|o| o.remove("max_tokens"));
    let r = post(&gw, "/v1/messages", &headers, &no_cap).await;
    let v = anthropic_error(&r, 400, "invalid_request_error");
    assert!(str(&v["error"]["message"]).contains("max_tokens"));
    let r = post(&gw, "/v1/messages", &headers, &json!({"model": 5})).await;
    anthropic_error(&r, 400, "invalid_request_error");
    let r = post(
        &gw,
        "/v1/messages",
        &headers,
        &json!({"model": "x", "max_tokens": 5, "messages": "hi"}),
    )
    .await;
    anthropic_error(&r, 400, "invalid_request_error");
    let mut unknown = body.clone();
    unknown["model"] = json!("not-a-model");
    let r = post(&gw, "/v1/messages", &headers, &unknown).await;
    anthropic_error(&r, 404, "not_found_error");
    assert_eq!(fake.hits(), 0, "nothing invalid reached the upstream");

    // Upstream failures before the first byte: 502 as an api_error.
    fake.set_behavior(common::Behavior::Status(500));
    let r = post(&gw, "/v1/messages", &headers, &body).await;
    anthropic_error(&r, 502, "api_error");
}

#[actix_web::test]
async fn payment_required_carries_the_invoice_in_anthropic_shape() {
    let lnd = FakeLnd::start();
    let fake = FakeUpstream::start(FakeDialect::Anthropic);
    let cert = lnd.cert_path.display().to_string();
    let env = [
        ("PURA__LIGHTNING__BACKEND", "lnd"),
        ("PURA__LIGHTNING__URL", lnd.url.as_str()),
        ("PURA__LIGHTNING__TLS_CERT_PATH", cert.as_str()),
        ("LND_MACAROON_HEX", MACAROON),
        ("PURA__FREE_TIER__REQUESTS", "0"),
    ];
    let gw = Gateway::start(
        &provider_toml("anthropic", &fake, "premium", NATIVE_MODEL, 1.0),
        &env,
    );
    let (key_id, key) = gw.key().await;
    let headers = anthropic_headers(&key);
    for stream in [false, true] {
        let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]});
        let r = post(&gw, "/v1/messages", &headers, &body).await;
        let v = anthropic_error(&r, 402, "billing_error");
        let bolt11 = str(&v["invoice"]["paymentRequest"]).to_owned();
        assert!(bolt11.starts_with("ln"), "{v}");
        assert_eq!(v["invoice"]["status"], "pending");
        assert_eq!(
            r.header("www-authenticate"),
            Some(format!("L402 invoice=\"{bolt11}\"").as_str())
        );
    }
    assert_eq!(fake.hits(), 0);
    assert!(gw.usage_rows(&key_id).is_empty());
}

#[actix_web::test]
async fn count_tokens_models_and_head() {
    let fake = FakeUpstream::start(FakeDialect::Anthropic);
    let gw = Gateway::start(
        &provider_toml("anthropic", &fake, "premium", NATIVE_MODEL, 1.0),
        &[],
    );
    let (key_id, key) = gw.key().await;
    let headers = anthropic_headers(&key);
    let short = json!({"model": "claude-sonnet-4-5", "system": "Be brief.",
        "messages": [{"role": "user", "content": "hi"}]});
    let r = post(&gw, "/v1/messages/count_tokens", &headers, &short).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let few = r.json()["input_tokens"].as_u64().expect("input_tokens");
    assert!(few > 0);
    let mut long = short.clone();
    long["messages"][0]["content"] = json!("word ".repeat(400));
    long["tools"] = json!([weather_tool()]);
    let r = post(&gw, "/v1/messages/count_tokens", &headers, &long).await;
    let many = r.json()["input_tokens"].as_u64().expect("input_tokens");
    assert!(many > few + 400, "{few} vs {many}");
    let r = post(&gw, "/v1/messages/count_tokens", &[], &short).await;
    anthropic_error(&r, 401, "authentication_error");
    assert_eq!(fake.hits(), 0, "count_tokens is a local estimate");
    assert!(gw.usage_rows(&key_id).is_empty(), "and bills nothing");

    // Anthropic's model list for Anthropic clients, OpenAI's for everyone else.
    let mut resp = gw
        .client()
        .get(format!("{}/v1/models?limit=1000", gw.url))
        .insert_header(("x-api-key", key.as_str()))
        .insert_header(("anthropic-version", "2023-06-01"))
        .send()
        .await
        .expect("models");
    assert_eq!(resp.status().as_u16(), 200);
    let list: Value = resp.json().await.expect("json");
    let data = list["data"].as_array().expect("data");
    assert!(data.iter().all(|m| m["type"] == "model"
        && m["display_name"].is_string()
        && m["created_at"].is_string()));
    let ids: Vec<&str> = data.iter().map(|m| str(&m["id"])).collect();
    assert!(
        ids.contains(&NATIVE_MODEL) && ids.contains(&"auto"),
        "{ids:?}"
    );
    assert_eq!(list["has_more"], false);
    assert_eq!(list["first_id"], "auto");
    let (status, openai) = gw.get("/v1/models", &key).await;
    assert_eq!(status, 200);
    assert_eq!(openai["object"], "list");

    let resp = gw
        .client()
        .head(format!("{}/", gw.url))
        .send()
        .await
        .expect("head");
    assert_eq!(resp.status().as_u16(), 200);
}

#[actix_web::test]
async fn translated_reasoning_becomes_a_thinking_block() {
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    let reasoning = "First add the numbers, then answer.";
    fake.set_reasoning(reasoning);
    let gw = Gateway::start(&provider_toml("openai", &fake, "mid", "gpt-4o", 1.0), &[]);
    let (_, key) = gw.key().await;
    let headers = anthropic_headers(&key);
    for stream in [false, true] {
        let body = json!({"model": "gpt-4o", "max_tokens": 100, "stream": stream,
            "messages": [{"role": "user", "content": "What is 2+2?"}]});
        let r = post(&gw, "/v1/messages", &headers, &body).await;
        let m = if stream {
            assemble(&events(&r))
        } else {
            r.json()
        };
        assert_eq!(m["content"][0]["type"], "thinking", "{m}");
        assert_eq!(m["content"][0]["thinking"], reasoning);
        assert_eq!(
            m["content"][1],
            json!({"type": "text", "text": "Hello from fake OpenAI!"})
        );
        assert_eq!(m["stop_reason"], "end_turn");
    }
}

#[actix_web::test]
async fn a_stream_failing_after_its_first_byte_ends_with_an_error_event_billed_once() {
    for (dialect, model) in [
        (FakeDialect::Anthropic, NATIVE_MODEL),
        (FakeDialect::OpenAi, "gpt-4o"),
    ] {
        let fake = FakeUpstream::start(dialect);
        let name = if dialect == FakeDialect::Anthropic {
            "anthropic"
        } else {
            "openai"
        };
        let gw = Gateway::start(&provider_toml(name, &fake, "mid", model, 1.0), &[]);
        let (key_id, key) = gw.key().await;
        fake.set_behavior(common::Behavior::MidStreamError);
        let body = json!({"model": model, "max_tokens": 100, "stream": true,
            "messages": [{"role": "user", "content": "Say hello"}]});
        let r = post(&gw, "/v1/messages", &anthropic_headers(&key), &body).await;
        let evs = events(&r);
        assert_eq!(evs[0].0, "message_start", "{dialect:?}");
        let (last, data) = evs.last().expect("events");
        assert_eq!(last, "error", "{dialect:?}: {}", r.text());
        assert!(data["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert!(!evs.iter().any(|e| e.0 == "message_stop"));
        assert_eq!(evs.iter().filter(|e| e.0 == "error").count(), 1);
        let rows = gw.usage_rows(&key_id);
        assert_eq!(rows.len(), 1, "{dialect:?}");
        assert_eq!(rows[0].status, "upstream_error");
    }
}

#[actix_web::test]
async fn an_abandoned_native_stream_is_billed_for_what_streamed() {
    let fake = FakeUpstream::start(FakeDialect::Anthropic);
    fake.set_behavior(common::Behavior::SlowStream(
        std::time::Duration::from_millis(150),
    ));
    fake.set_reply_text(&"word ".repeat(60));
    let gw = Gateway::start(
        &provider_toml("anthropic", &fake, "premium", NATIVE_MODEL, 1.0),
        &[],
    );
    let (key_id, key) = gw.key().await;
    {
        let body = json!({"model": NATIVE_MODEL, "max_tokens": 100, "stream": true,
            "messages": [{"role": "user", "content": "Count words"}]});
        let mut resp = gw
            .client()
            .post(format!("{}/v1/messages", gw.url))
            .insert_header(("x-api-key", key.as_str()))
            .insert_header(("anthropic-version", "2023-06-01"))
            .send_json(&body)
            .await
            .expect("stream");
        use futures_util::StreamExt;
        for _ in 0..5 {
            assert!(resp.next().await.is_some_and(|c| c.is_ok()));
        }
    }
    let mut rows = Vec::new();
    for _ in 0..50 {
        rows = gw.usage_rows(&key_id);
        if !rows.is_empty() {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, "client_closed");
    assert!(
        rows[0].completion_tokens > 0 && rows[0].completion_tokens < 60,
        "{}",
        rows[0].completion_tokens
    );
}

#[actix_web::test]
async fn rate_limited_in_anthropic_shape_with_retry_after() {
    let fake = FakeUpstream::start(FakeDialect::Anthropic);
    let gw = Gateway::start(
        &provider_toml("anthropic", &fake, "premium", NATIVE_MODEL, 1.0),
        &[("PURA__LIMITS__RPM", "1")],
    );
    let (_, key) = gw.key().await;
    let body = json!({"model": NATIVE_MODEL, "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}]});
    let headers = anthropic_headers(&key);
    assert_eq!(post(&gw, "/v1/messages", &headers, &body).await.status, 200);
    let r = post(&gw, "/v1/messages", &headers, &body).await;
    anthropic_error(&r, 429, "rate_limit_error");
    assert!(r
        .header("retry-after")
        .is_some_and(|s| s.parse::<u64>().is_ok()));
}

/// The official `anthropic` Python SDK (tests/sdk/test_anthropic_sdk.py) against the gateway:
/// messages.create, messages.stream, count_tokens, tool use, and thinking blocks handed back to
/// an Anthropic upstream that checks their signatures. Needs PURA_TEST_PYTHON (scripts/test.sh).
#[actix_web::test]
async fn anthropic_python_sdk_is_a_happy_client() {
    let Ok(python) = std::env::var("PURA_TEST_PYTHON") else {
        eprintln!("PURA_TEST_PYTHON unset: run scripts/test.sh, which creates the SDK venv");
        return;
    };
    let anthropic = FakeUpstream::start(FakeDialect::Anthropic);
    let openai = FakeUpstream::start(FakeDialect::OpenAi);
    let toml = [
        provider_toml("anthropic", &anthropic, "premium", NATIVE_MODEL, 0.003),
        provider_toml("openai", &openai, "mid", "gpt-4o", 0.005),
    ]
    .concat();
    let gw = Gateway::start(&toml, &[]);
    let (_, key) = gw.key().await;
    let out = std::process::Command::new(python)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/sdk/test_anthropic_sdk.py",
        ])
        .env("PURA_BASE", &gw.url)
        .env("PURA_KEY", &key)
        .env("PURA_NATIVE_MODEL", NATIVE_MODEL)
        .env("PURA_TRANSLATED_MODEL", "gpt-4o")
        .env("PURA_FAKE_THINKING", FAKE_THINKING)
        .env("PURA_FAKE_SIGNATURE", thinking_signature(FAKE_THINKING))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run pytest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "the anthropic SDK suite failed:\n{stdout}\ngateway log:\n{}",
        gw.log()
    );
}

/// One run of a real agent: what was run, how it ended, what it said.
struct Transcript {
    command: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Transcript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$ {}\nexit code: {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.command,
            self.code,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// Runs `claude -p PROMPT ARGS…` in `repo` with a fresh HOME, pointed at the gateway, kept
/// off the internet (no telemetry, no updates, no nonessential traffic).
fn claude(bin: &str, gw: &Gateway, key: &str, repo: &std::path::Path, args: &[&str]) -> Transcript {
    let home = tempfile::tempdir().expect("home");
    let mut cmd = std::process::Command::new("timeout");
    cmd.arg("300").arg(bin).arg("-p").args(args);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("ANTHROPIC_BASE_URL", &gw.url)
        .env("ANTHROPIC_API_KEY", key)
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        .current_dir(repo);
    let out = cmd.output().expect("run claude");
    let quoted: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    Transcript {
        command: format!(
            "ANTHROPIC_BASE_URL={} ANTHROPIC_API_KEY=pura_… CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_TELEMETRY=1 HOME=$(mktemp -d) claude -p {}",
            gw.url,
            quoted.join(" ")
        ),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Whether a request body hands a tool result back (Anthropic `tool_result` block or OpenAI
/// `tool` message).
fn has_tool_result(body: &Value) -> bool {
    body["messages"].as_array().into_iter().flatten().any(|m| {
        m["role"] == "tool"
            || m["content"]
                .as_array()
                .is_some_and(|c| c.iter().any(|b| b["type"] == "tool_result"))
    })
}

/// The real Claude Code (`claude -p`, from npm) against the gateway, with an Anthropic and
/// with an OpenAI upstream behind its default model id (an unknown claude-* id, routed as
/// `auto`): a plain answer, and a turn where the upstream calls Bash, Claude Code runs it and
/// hands the result back. Needs PURA_TEST_CLAUDE (the binary; scripts/test.sh installs it).
#[actix_web::test]
async fn claude_code_answers_and_runs_a_tool_through_pura() {
    let Ok(bin) = std::env::var("PURA_TEST_CLAUDE") else {
        eprintln!("PURA_TEST_CLAUDE unset: run scripts/test.sh, which installs Claude Code");
        return;
    };
    for dialect in [FakeDialect::Anthropic, FakeDialect::OpenAi] {
        let fake = FakeUpstream::start(dialect);
        let toml = match dialect {
            FakeDialect::Anthropic => {
                provider_toml("anthropic", &fake, "premium", NATIVE_MODEL, 0.003)
            }
            _ => provider_toml("openai", &fake, "mid", "gpt-4o", 0.005),
        };
        let gw = Gateway::start(&toml, &[]);
        let (key_id, key) = gw.key().await;
        let repo = tempfile::tempdir().expect("repo");

        let plain = claude(&bin, &gw, &key, repo.path(), &["Say hello", "--tools", ""]);
        println!("=== {dialect:?} upstream, plain answer\n{plain}\n");
        assert_eq!(plain.code, Some(0), "{plain}\ngateway log:\n{}", gw.log());
        assert!(plain.stdout.contains("Hello from fake"), "{plain}");

        fake.set_tool_input(json!({"command": "echo pura-tool-ok > tool-ran.txt",
            "description": "Write a marker file"}));
        let tool = claude(
            &bin,
            &gw,
            &key,
            repo.path(),
            &[
                "Write the marker file",
                "--tools",
                "Bash",
                "--allowedTools",
                "Bash",
            ],
        );
        println!("=== {dialect:?} upstream, tool-use turn\n{tool}\n");
        assert_eq!(tool.code, Some(0), "{tool}\ngateway log:\n{}", gw.log());
        assert!(tool.stdout.contains("Hello from fake"), "{tool}");
        let marker = std::fs::read_to_string(repo.path().join("tool-ran.txt")).unwrap_or_default();
        assert_eq!(
            marker.trim(),
            "pura-tool-ok",
            "Claude Code ran the upstream's Bash call"
        );
        assert!(
            fake.requests().iter().any(has_tool_result),
            "the tool result went back upstream"
        );
        let rows = gw.usage_rows(&key_id);
        assert!(
            rows.iter().all(|r| r.status == "ok"),
            "{:?}",
            rows.iter().map(|r| &r.status).collect::<Vec<_>>()
        );
        println!(
            "{dialect:?}: {} upstream requests, {} usage rows",
            fake.hits(),
            rows.len()
        );
        for r in fake.requests() {
            let tools = r["tools"].as_array().map_or(0, Vec::len);
            println!(
                "  upstream got model={} stream={} messages={} tools={tools} tool_result={}",
                r["model"],
                r["stream"],
                r["messages"].as_array().map_or(0, Vec::len),
                has_tool_result(&r)
            );
        }
        for line in gw
            .log()
            .lines()
            .filter(|l| l.contains("\" 2") || l.contains("\" 4") || l.contains("\" 5"))
        {
            println!("  gateway: {}", line.rsplit("] ").next().unwrap_or(line));
        }
        if dialect == FakeDialect::Anthropic {
            println!(
                "  anthropic-version={:?} anthropic-beta={:?}",
                fake.last_header("anthropic-version"),
                fake.last_header("anthropic-beta")
            );
        }
    }
}
