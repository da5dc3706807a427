//! The OpenAI Responses API (`POST /v1/responses`): natively to an OpenAI upstream, translated
//! to the others, JSON and event streams, tool round trips, stored responses per key, and the
//! same money as chat (one usage row whose cost matches the headers).

mod common;

use common::{provider_toml, FakeDialect, FakeUpstream, Gateway, Reply};
use serde_json::{json, Value};

fn gateway(dialect: FakeDialect, name: &str, model: &str) -> (FakeUpstream, Gateway) {
    let fake = FakeUpstream::start(dialect);
    let gw = Gateway::start(&provider_toml(name, &fake, "mid", model, 0.002), &[]);
    (fake, gw)
}

/// The `event:` names and parsed `data:` of a Responses event stream (no `[DONE]`).
fn events(r: &Reply) -> Vec<(String, Value)> {
    let text = r.text();
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = String::new();
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            let v: Value = serde_json::from_str(&data).unwrap_or_else(|e| panic!("{e}: {data}"));
            assert_eq!(v["type"], name.as_str(), "event name and type agree");
            (name, v)
        })
        .collect()
}

fn usage_cost(gw: &Gateway, key_id: &str) -> i64 {
    let rows = gw.usage_rows(key_id);
    assert_eq!(rows.len(), 1, "one usage row");
    rows[0].cost_micros
}

fn usd_micros(header: Option<&str>) -> i64 {
    let usd: f64 = header.unwrap_or("nan").parse().unwrap_or(f64::NAN);
    (usd * 1e6).round() as i64
}

#[actix_web::test]
async fn json_answers_go_natively_to_openai_and_translated_elsewhere() {
    for (dialect, name, model, native) in [
        (FakeDialect::OpenAi, "openai", "gpt-4o", true),
        (
            FakeDialect::Anthropic,
            "anthropic",
            "claude-sonnet-4-20250514",
            false,
        ),
        (FakeDialect::Gemini, "gemini", "gemini-2.0-flash", false),
    ] {
        let (fake, gw) = gateway(dialect, name, model);
        let (key_id, key) = gw.key().await;
        let body = json!({"model": model, "instructions": "Be terse.", "input": "Say hello",
                          "store": false, "metadata": {"k": "v"}});
        let r = gw.post("/v1/responses", &key, &body).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        let v = r.json();
        assert_eq!(v["object"], "response", "{name}");
        assert_eq!(v["status"], "completed", "{name}");
        let text = v["output"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| i["type"] == "message")
            .flat_map(|i| i["content"].as_array().cloned().unwrap_or_default())
            .filter_map(|c| c["text"].as_str().map(str::to_owned))
            .collect::<String>();
        assert!(text.starts_with("Hello from fake"), "{name}: {v}");
        assert!(
            v["usage"]["input_tokens"].as_u64().unwrap_or(0) > 0,
            "{name}: {v}"
        );
        assert!(v["usage"]["output_tokens_details"]["reasoning_tokens"].is_u64());
        assert_eq!(r.header("x-pura-provider"), Some(name));
        assert_eq!(
            usage_cost(&gw, &key_id),
            usd_micros(r.header("x-pura-cost")),
            "{name}"
        );
        assert_eq!(
            fake.last_path()
                .as_deref()
                .map(|p| p.ends_with("/responses")),
            Some(native),
            "{name}"
        );
        if native {
            let sent = fake.last_request().unwrap_or_default();
            assert_eq!(sent["store"], false, "store is never asked of the upstream");
            assert_eq!(sent["instructions"], "Be terse.");
        }
    }
}

#[actix_web::test]
async fn streams_follow_openais_event_order_and_bill_once() {
    for (dialect, name, model) in [
        (FakeDialect::OpenAi, "openai", "gpt-4o"),
        (
            FakeDialect::Anthropic,
            "anthropic",
            "claude-sonnet-4-20250514",
        ),
    ] {
        let (_fake, gw) = gateway(dialect, name, model);
        let (key_id, key) = gw.key().await;
        let body = json!({"model": model, "input": [{"role": "user", "content": [{"type": "input_text", "text": "Say hello"}]}],
                          "stream": true, "store": false});
        let r = gw.post("/v1/responses", &key, &body).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        let evs = events(&r);
        let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names.first(),
            Some(&"response.created"),
            "{name}: {names:?}"
        );
        assert_eq!(
            names.last(),
            Some(&"response.completed"),
            "{name}: {names:?}"
        );
        let pos = |n: &str| names.iter().position(|x| *x == n).unwrap_or(usize::MAX);
        assert!(
            pos("response.output_item.added") < pos("response.output_text.delta"),
            "{name}: {names:?}"
        );
        assert!(
            pos("response.content_part.added") < pos("response.output_text.delta"),
            "{name}: {names:?}"
        );
        assert!(
            pos("response.output_text.done") < pos("response.output_item.done"),
            "{name}: {names:?}"
        );
        let seq: Vec<u64> = evs
            .iter()
            .filter_map(|(_, v)| v["sequence_number"].as_u64())
            .collect();
        assert_eq!(
            seq,
            (0..evs.len() as u64).collect::<Vec<_>>(),
            "{name}: sequence numbers"
        );
        let done = &evs.last().map(|(_, v)| v.clone()).unwrap_or_default()["response"];
        assert!(
            done["id"].as_str().is_some_and(|i| i.starts_with("resp_")),
            "{name}: {done}"
        );
        assert!(
            done["usage"]["output_tokens_details"]["reasoning_tokens"].is_u64(),
            "{name}: {done}"
        );
        let rows = gw.usage_rows(&key_id);
        assert_eq!(rows.len(), 1, "{name}: one usage row");
        assert_eq!(rows[0].status, "ok", "{name}");
        assert_eq!(
            rows[0].protocol, "responses",
            "{name}: the protocol is recorded"
        );
        let output = done["usage"]["output_tokens"].as_u64().unwrap_or(0);
        assert_eq!(
            rows[0].completion_tokens as u64, output,
            "{name}: billed what was reported"
        );
    }
}

#[actix_web::test]
async fn a_tool_round_trip_and_previous_response_id_work_per_key() {
    for (dialect, name, model) in [
        (FakeDialect::OpenAi, "openai", "gpt-4o"),
        (FakeDialect::Gemini, "gemini", "gemini-2.0-flash"),
    ] {
        let (fake, gw) = gateway(dialect, name, model);
        let (_, key) = gw.key().await;
        let tools = json!([{"type": "function", "name": "get_weather", "description": "Weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
        let first = gw
            .post(
                "/v1/responses",
                &key,
                &json!({"model": model, "input": "Weather in Paris?", "tools": tools}),
            )
            .await;
        assert_eq!(first.status, 200, "{name}: {}", first.text());
        let v = first.json();
        let call = v["output"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["type"] == "function_call")
            .cloned()
            .unwrap_or_else(|| panic!("{name}: no function call in {v}"));
        assert_eq!(call["name"], "get_weather");
        assert!(call["call_id"].as_str().is_some_and(|c| !c.is_empty()));
        let follow = json!({"model": model, "previous_response_id": v["id"], "tools": tools,
            "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "{\"temp_c\":21}"}]});
        let second = gw.post("/v1/responses", &key, &follow).await;
        assert_eq!(second.status, 200, "{name}: {}", second.text());
        assert_eq!(second.json()["status"], "completed");
        let sent = fake.last_request().unwrap_or_default().to_string();
        assert!(
            sent.contains("Weather in Paris?"),
            "{name}: history expanded upstream: {sent}"
        );
        assert!(sent.contains("temp_c"), "{name}: {sent}");
        assert!(!sent.contains("previous_response_id"), "{name}: {sent}");
        // Another key cannot continue this conversation.
        let (_, other) = gw.key().await;
        let r = gw.post("/v1/responses", &other, &follow).await;
        assert_eq!(r.status, 404, "{name}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], "previous_response_not_found");
    }
}

#[actix_web::test]
async fn built_in_tools_are_refused_by_name_and_bad_input_is_a_400() {
    let (fake, gw) = gateway(FakeDialect::OpenAi, "openai", "gpt-4o");
    let (_, key) = gw.key().await;
    let r = gw
        .post(
            "/v1/responses",
            &key,
            &json!({"model": "gpt-4o", "input": "hi",
            "tools": [{"type": "web_search"}, {"type": "file_search"}]}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let msg = r.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        msg.contains("web_search") && msg.contains("file_search"),
        "{msg}"
    );
    let r = gw
        .post(
            "/v1/responses",
            &key,
            &json!({"model": "gpt-4o", "input": 5}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(fake.hits(), 0, "nothing reached the upstream");
}

#[actix_web::test]
async fn with_the_free_tier_spent_an_unfunded_key_gets_a_402_in_openai_shape() {
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    let gw = Gateway::start(
        &provider_toml("openai", &fake, "mid", "gpt-4o", 0.002),
        &[("PURA__FREE_TIER__REQUESTS", "0")],
    );
    let (key_id, key) = gw.key().await;
    for stream in [false, true] {
        let r = gw
            .post(
                "/v1/responses",
                &key,
                &json!({"model": "gpt-4o", "input": "hi", "stream": stream}),
            )
            .await;
        assert_eq!(r.status, 402, "{}", r.text());
        let v = r.json();
        assert_eq!(v["error"]["type"], "payment_required");
        assert_eq!(v["error"]["code"], "payment_required");
    }
    assert_eq!(fake.hits(), 0, "nothing unpaid reached the upstream");
    assert!(gw.usage_rows(&key_id).is_empty());
}
