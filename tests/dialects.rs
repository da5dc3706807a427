//! Chat through each upstream dialect: the client always sees OpenAI JSON or OpenAI chunks,
//! with Pura's headers, and every request leaves one usage row.

mod common;

use common::{provider_toml, streamed_text, FakeDialect, FakeUpstream, Gateway};
use serde_json::{json, Value};

const DIALECTS: [(FakeDialect, &str, &str); 4] = [
    (FakeDialect::OpenAi, "openai", "gpt-4o"),
    (FakeDialect::Groq, "groq", "llama-3.3-70b-versatile"),
    (
        FakeDialect::Anthropic,
        "anthropic",
        "claude-sonnet-4-20250514",
    ),
    (FakeDialect::Gemini, "gemini", "gemini-2.0-flash"),
];

fn one_provider(dialect: FakeDialect, name: &str, model: &str) -> (FakeUpstream, Gateway) {
    let fake = FakeUpstream::start(dialect);
    let gw = Gateway::start(&provider_toml(name, &fake, "mid", model, 0.002), &[]);
    (fake, gw)
}

fn ask(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "stream": stream,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello to the tests"}
        ]
    })
}

#[actix_web::test]
async fn non_stream_answers_in_openai_shape_with_headers_and_a_usage_row() {
    for (dialect, name, model) in DIALECTS {
        let (fake, gw) = one_provider(dialect, name, model);
        let (key_id, key) = gw.key().await;
        let r = gw
            .post("/v1/chat/completions", &key, &ask(model, false))
            .await;
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        let v = r.json();
        assert_eq!(v["object"], "chat.completion", "{name}");
        assert_eq!(v["choices"][0]["message"]["role"], "assistant");
        assert!(v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or("")
            .starts_with("Hello from fake"));
        assert_eq!(v["choices"][0]["finish_reason"], "stop", "{name}");
        let usage = &v["usage"];
        assert!(
            usage["prompt_tokens"].as_u64().unwrap_or(0) > 0,
            "{name}: {usage}"
        );
        assert_eq!(r.header("x-pura-provider"), Some(name));
        assert_eq!(r.header("x-pura-model"), Some(model));
        assert_eq!(r.header("x-pura-tier"), Some("mid"));
        assert!(r.header("x-request-id").is_some_and(|v| !v.is_empty()));
        let rows = gw.usage_rows(&key_id);
        assert_eq!(rows.len(), 1, "{name}");
        let row = &rows[0];
        assert_eq!(row.protocol, "chat", "{name}");
        assert_eq!(
            row.prompt_tokens as u64,
            usage["prompt_tokens"].as_u64().unwrap_or(0)
        );
        assert_eq!(
            row.completion_tokens as u64,
            usage["completion_tokens"].as_u64().unwrap_or(0)
        );
        let expected_cost = (row.prompt_tokens + row.completion_tokens) * 2; // $0.002/1K = 2 µ$/token
        assert_eq!(row.cost_micros, expected_cost, "{name}");
        let header_cost: f64 = r
            .header("x-pura-cost")
            .unwrap_or("0")
            .parse()
            .unwrap_or(0.0);
        assert!(
            (header_cost - expected_cost as f64 / 1e6).abs() < 1e-9,
            "{name}"
        );
        assert_eq!(row.status, "ok");
        assert!(!row.stream);
        assert_eq!(fake.hits(), 1);
    }
}

#[actix_web::test]
async fn stream_is_data_only_chunks_with_usage_x_pura_and_done() {
    for (dialect, name, model) in DIALECTS {
        let (_fake, gw) = one_provider(dialect, name, model);
        let (key_id, key) = gw.key().await;
        let mut body = ask(model, true);
        body["stream_options"] = json!({"include_usage": true});
        let r = gw.post("/v1/chat/completions", &key, &body).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        assert!(r
            .header("content-type")
            .unwrap_or("")
            .starts_with("text/event-stream"));
        assert_eq!(r.header("x-pura-provider"), Some(name));
        let chunks = r.chunks();
        assert_eq!(
            chunks[0]["choices"][0]["delta"]["role"], "assistant",
            "{name}"
        );
        assert!(
            streamed_text(&chunks).starts_with("Hello from fake"),
            "{name}"
        );
        for c in &chunks {
            assert_eq!(c["object"], "chat.completion.chunk");
        }
        let finish: Vec<&Value> = chunks
            .iter()
            .filter(|c| {
                c.pointer("/choices/0/finish_reason")
                    .is_some_and(|f| !f.is_null())
            })
            .collect();
        assert_eq!(finish.len(), 1, "{name}");
        assert_eq!(finish[0]["choices"][0]["finish_reason"], "stop");
        assert_eq!(finish[0]["x_pura"]["provider"], name);
        let last = chunks.last().expect("chunks");
        assert_eq!(last["choices"], json!([]), "{name}: usage chunk last");
        let completion = last["usage"]["completion_tokens"].as_i64().unwrap_or(0);
        assert!(completion > 0, "{name}");
        let rows = gw.usage_rows(&key_id);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].completion_tokens, completion);
        assert!(rows[0].stream);
        assert!(rows[0].ttft_ms.is_some());
        let cost = last["x_pura"]["costUsd"].as_f64().unwrap_or(0.0);
        assert!(
            (cost - rows[0].cost_micros as f64 / 1e6).abs() < 1e-9,
            "{name}"
        );
    }
}

/// A stream that ended well leaves its upstream connection to the next request: awc closes an
/// HTTP/1.1 connection whose body was dropped before its end, so without reading the end each
/// streamed request would pay a new connect (and a TLS handshake against a real provider).
#[actix_web::test]
async fn a_finished_stream_leaves_its_upstream_connection_for_the_next_request() {
    for (dialect, name, model) in DIALECTS {
        let (fake, gw) = one_provider(dialect, name, model);
        let (_, key) = gw.key().await;
        let mut asks = vec![("/v1/chat/completions", ask(model, true))];
        if dialect == FakeDialect::Anthropic {
            // The native relay (Messages to an Anthropic upstream) ends the same way.
            asks.push((
                "/v1/messages",
                json!({"model": model, "max_tokens": 64, "stream": true,
                       "messages": [{"role": "user", "content": "hello"}]}),
            ));
        }
        for (path, body) in asks {
            let before = fake.connections();
            for i in 0..4 {
                let r = gw.post(path, &key, &body).await;
                assert_eq!(r.status, 200, "{name} {path} #{i}: {}", r.text());
                // The end of the upstream body may still be read in the background.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            let opened = fake.connections() - before;
            assert!(
                opened <= 1,
                "{name} {path}: 4 streams opened {opened} upstream connections"
            );
        }
    }
}

#[actix_web::test]
async fn stream_without_include_usage_has_no_usage_chunk() {
    for (dialect, name, model) in DIALECTS {
        let (_fake, gw) = one_provider(dialect, name, model);
        let (key_id, key) = gw.key().await;
        let r = gw
            .post("/v1/chat/completions", &key, &ask(model, true))
            .await;
        let chunks = r.chunks();
        assert!(chunks.iter().all(|c| c["choices"] != json!([])), "{name}");
        assert!(chunks
            .last()
            .is_some_and(|c| c["x_pura"]["costUsd"].as_f64().is_some()));
        // Pura asked the upstream for usage anyway, so the cost is known.
        assert!(gw.usage_rows(&key_id)[0].completion_tokens > 0, "{name}");
    }
}

#[actix_web::test]
async fn tool_calls_translate_in_both_modes() {
    let tools = json!([{
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
    }]);
    for (dialect, name, model) in DIALECTS {
        let (_fake, gw) = one_provider(dialect, name, model);
        let (_, key) = gw.key().await;
        let body = json!({"model": model, "tools": tools,
            "messages": [{"role": "user", "content": "Weather in Paris?"}]});
        let v = gw.post("/v1/chat/completions", &key, &body).await.json();
        assert_eq!(
            v["choices"][0]["finish_reason"], "tool_calls",
            "{name}: {v}"
        );
        let call = &v["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "get_weather");
        let args = call["function"]["arguments"]
            .as_str()
            .expect("arguments is a string");
        assert!(
            serde_json::from_str::<Value>(args).is_ok_and(|a| a.is_object()),
            "{name}"
        );

        let mut body = body.clone();
        body["stream"] = json!(true);
        let chunks = gw.post("/v1/chat/completions", &key, &body).await.chunks();
        let mut args = String::new();
        let mut first = None;
        for c in &chunks {
            for tc in c
                .pointer("/choices/0/delta/tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if first.is_none() {
                    first = Some(tc.clone());
                }
                args.push_str(
                    tc.pointer("/function/arguments")
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                );
            }
        }
        let first = first.unwrap_or_else(|| panic!("{name}: no tool call delta"));
        assert_eq!(first["index"], 0);
        assert!(
            first["id"].as_str().is_some_and(|id| !id.is_empty()),
            "{name}"
        );
        assert_eq!(first["function"]["name"], "get_weather");
        assert!(
            serde_json::from_str::<Value>(&args).is_ok_and(|a| a.is_object()),
            "{name}: {args}"
        );
        let finish = chunks.iter().find_map(|c| {
            c.pointer("/choices/0/finish_reason")
                .filter(|f| !f.is_null())
        });
        assert_eq!(finish, Some(&json!("tool_calls")), "{name}");
    }
}

#[actix_web::test]
async fn anthropic_receives_a_valid_messages_request() {
    let (fake, gw) = one_provider(
        FakeDialect::Anthropic,
        "anthropic",
        "claude-sonnet-4-20250514",
    );
    let (_, key) = gw.key().await;
    let body = json!({"model": "claude-sonnet-4-20250514", "messages": [
        {"role": "system", "content": "Rule one."},
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "21C"},
        {"role": "user", "content": "Thanks, and tomorrow?"}
    ]});
    let r = gw.post("/api/chat/completions", &key, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = fake.last_request().expect("request");
    assert_eq!(sent["system"], "Rule one.");
    assert_eq!(sent["max_tokens"], 4096);
    let roles: Vec<&str> = sent["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["role"].as_str())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    assert_eq!(sent["messages"][2]["content"][0]["type"], "tool_result");
    assert_eq!(
        fake.last_header("anthropic-version").as_deref(),
        Some("2023-06-01")
    );
}

#[actix_web::test]
async fn gemini_receives_system_instruction_and_stream_uses_sse() {
    let (fake, gw) = one_provider(FakeDialect::Gemini, "gemini", "gemini-2.0-flash");
    let (_, key) = gw.key().await;
    let r = gw
        .post("/api/chat", &key, &ask("gemini-2.0-flash", true))
        .await;
    assert_eq!(r.status, 200);
    let sent = fake.last_request().expect("request");
    assert_eq!(
        sent["systemInstruction"]["parts"][0]["text"],
        "You are terse."
    );
    assert_eq!(sent["contents"][0]["role"], "user");
    let path = fake.last_path().expect("path");
    assert!(
        path.contains(":streamGenerateContent") && path.contains("alt=sse"),
        "{path}"
    );
}

#[actix_web::test]
async fn native_api_chat_streams_by_default() {
    let (_fake, gw) = one_provider(FakeDialect::OpenAi, "openai", "gpt-4o");
    let (_, key) = gw.key().await;
    let body = json!({"messages": [{"role": "user", "content": "hi"}]});
    let r = gw.post("/api/chat", &key, &body).await;
    assert!(r
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/event-stream"));
    assert!(!r.chunks().is_empty());
    let r = gw.post("/v1/chat/completions", &key, &body).await;
    assert_eq!(r.json()["object"], "chat.completion");
    let mut no_stream = body.clone();
    no_stream["stream"] = json!(false);
    assert_eq!(
        gw.post("/api/chat", &key, &no_stream).await.json()["object"],
        "chat.completion"
    );
}

#[actix_web::test]
async fn request_ids_are_upstream_or_ours_and_client_id_is_echoed() {
    let (_fake, gw) = one_provider(FakeDialect::Gemini, "gemini", "gemini-2.0-flash");
    let (_, key) = gw.key().await;
    let mut resp = gw
        .client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&key)
        .insert_header(("X-Client-Request-Id", "client-123"))
        .send_json(&ask("gemini-2.0-flash", false))
        .await
        .expect("request");
    assert_eq!(
        resp.headers()
            .get("x-client-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("client-123")
    );
    // Gemini sends no request id, so the id is Pura's own.
    let id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(id.starts_with("req_"), "{id}");
    let _ = resp.body().await;

    let (_fake, gw) = one_provider(FakeDialect::OpenAi, "openai", "gpt-4o");
    let (key_id, key) = gw.key().await;
    let r = gw
        .post("/v1/chat/completions", &key, &ask("gpt-4o", false))
        .await;
    let upstream_id = r.header("x-request-id").unwrap_or("").to_owned();
    assert!(upstream_id.starts_with("req_"));
    assert_eq!(
        gw.usage_rows(&key_id)[0].upstream_request_id.as_deref(),
        Some(upstream_id.as_str())
    );
}
