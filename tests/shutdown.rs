//! Graceful shutdown against the real `pura` process: on SIGTERM, streams that finish within
//! `server.shutdown_grace` finish normally; the others end with their protocol's final error
//! event (and `[DONE]` on chat), every stream is billed once for what it streamed, the
//! settlements are committed before the process exits, and it exits 0.

mod common;

use std::time::Duration;

use common::{provider_toml, sse_events, Behavior, FakeDialect, FakeUpstream, Gateway, Reply};
use futures_util::future::join_all;
use serde_json::{json, Value};

const PROMPT: &str = "0123456789012345678901234567890123456789";

/// A fake whose streams send one event every `gap`, answering `words` words.
fn fake(dialect: FakeDialect, gap_ms: u64, words: usize) -> FakeUpstream {
    let f = FakeUpstream::start(dialect);
    f.set_behavior(Behavior::SlowStream(Duration::from_millis(gap_ms)));
    f.set_reply_text(&"word ".repeat(words));
    f
}

fn body(protocol: &str, model: &str) -> (&'static str, Value) {
    match protocol {
        "chat" => (
            "/v1/chat/completions",
            json!({"model": model, "stream": true,
                   "messages": [{"role": "user", "content": PROMPT}]}),
        ),
        "responses" => (
            "/v1/responses",
            json!({"model": model, "stream": true, "store": false, "input": PROMPT}),
        ),
        _ => (
            "/v1/messages",
            json!({"model": model, "stream": true, "max_tokens": 1000,
                   "messages": [{"role": "user", "content": PROMPT}]}),
        ),
    }
}

/// How a stream ended, read in its own protocol: `Some(error message)` when it was cut.
fn ending(protocol: &str, reply: &Reply) -> Result<Option<Value>, String> {
    let events = sse_events(&reply.body);
    let text = reply.text();
    let last = events
        .last()
        .ok_or_else(|| format!("empty stream: {text}"))?;
    match protocol {
        "chat" => {
            if last.1 != "[DONE]" {
                return Err(format!("chat stream without [DONE]: {text}"));
            }
            let before: Value = serde_json::from_str(&events[events.len() - 2].1)
                .map_err(|e| format!("{e}: {text}"))?;
            Ok(before.get("error").cloned())
        }
        "responses" => {
            let created = events
                .iter()
                .filter(|e| e.0.as_deref() == Some("response.created"));
            if created.count() != 1 {
                return Err(format!("one response.created expected: {text}"));
            }
            let v: Value = serde_json::from_str(&last.1).map_err(|e| format!("{e}: {text}"))?;
            match last.0.as_deref() {
                Some("response.completed") => Ok(None),
                Some("response.failed") => Ok(Some(v["response"]["error"].clone())),
                other => Err(format!("responses stream ended with {other:?}: {text}")),
            }
        }
        _ => {
            let v: Value = serde_json::from_str(&last.1).map_err(|e| format!("{e}: {text}"))?;
            match last.0.as_deref() {
                Some("message_stop") => Ok(None),
                Some("error") => Ok(Some(v["error"].clone())),
                other => Err(format!("messages stream ended with {other:?}: {text}")),
            }
        }
    }
}

#[actix_web::test]
async fn sigterm_finishes_short_streams_cuts_long_ones_bills_each_and_exits_0() {
    // Short streams take about a second (well inside the 3 s grace); long ones a minute.
    let short_oa = fake(FakeDialect::OpenAi, 60, 6);
    let long_oa = fake(FakeDialect::OpenAi, 200, 300);
    let short_an = fake(FakeDialect::Anthropic, 60, 6);
    let long_an = fake(FakeDialect::Anthropic, 200, 300);
    let toml = provider_toml("shortoa", &short_oa, "mid", "gpt-short", 1.0)
        + &provider_toml("longoa", &long_oa, "mid", "gpt-long", 1.0)
        // The same long upstream, spoken to in its own Responses API (a native stream).
        + &provider_toml("longnative", &long_oa, "mid", "gpt-long-native", 1.0)
        + "responses_api = true\n\n"
        + &provider_toml("shortan", &short_an, "premium", "claude-short", 1.0)
        + &provider_toml("longan", &long_an, "premium", "claude-long", 1.0);
    let mut gw = Gateway::start(
        &toml,
        &[
            ("PURA__SERVER__SHUTDOWN_GRACE", "3s"),
            ("PURA__FREE_TIER__REQUESTS", "0"),
            ("PURA__LIMITS__RPM", "100000"),
            ("PURA__LIMITS__DEFAULT_DAILY_BUDGET_USD", "1000"),
            ("PURA__LIMITS__DEFAULT_MONTHLY_BUDGET_USD", "1000"),
        ],
    );
    let (key_id, key) = gw.key().await;
    gw.admin_credit(&key_id, 100_000).await; // $40
    let streams = [
        ("chat", "gpt-short", false),
        ("chat", "gpt-long", true),
        ("responses", "gpt-short", false),
        ("responses", "gpt-long", true),
        ("responses", "gpt-long-native", true),
        ("messages", "claude-short", false),
        ("messages", "claude-long", true),
    ];
    let requests = streams.iter().map(|(protocol, model, _)| {
        let (path, body) = body(protocol, model);
        let (gw, key) = (&gw, &key);
        async move { gw.post(path, key, &body).await }
    });
    let terminate = async {
        // Every stream has reached its upstream (so it is in flight), then SIGTERM.
        for _ in 0..200 {
            let hits = [&short_oa, &long_oa, &short_an, &long_an].map(|f| f.hits());
            if hits == [2, 3, 1, 1] {
                break;
            }
            actix_web::rt::time::sleep(Duration::from_millis(25)).await;
        }
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
        gw.signal("TERM");
    };
    let (replies, ()) = futures_util::join!(join_all(requests), terminate);
    let exit = gw.wait_exit(Duration::from_secs(60));

    let (mut finished, mut cut) = (0, 0);
    for ((protocol, model, long), reply) in streams.iter().zip(&replies) {
        assert_eq!(reply.status, 200, "{protocol} {model}: {}", reply.text());
        let end = ending(protocol, reply).unwrap_or_else(|e| panic!("{protocol} {model}: {e}"));
        match (long, end) {
            (false, None) => finished += 1,
            (true, Some(error)) => {
                cut += 1;
                let message = error["message"].as_str().unwrap_or_default();
                assert!(message.contains("shutting down"), "{protocol}: {error}");
                match *protocol {
                    "chat" => assert_eq!(error["code"], "unavailable", "{error}"),
                    "responses" => assert_eq!(error["code"], "server_error", "{error}"),
                    _ => assert_eq!(error["type"], "overloaded_error", "{error}"),
                }
            }
            (long, end) => panic!("{protocol} {model} (long: {long}) ended with {end:?}"),
        }
    }
    let status = exit.expect("pura exits after the grace");
    assert!(status.success(), "exit status {status}\n{}", gw.log());

    // Read after exit: what is in the database is what was committed before it.
    let rows = gw.usage_rows(&key_id);
    let billed = rows.iter().filter(|r| r.cost_micros > 0).count();
    println!(
        "shutdown outcome: {finished} finished, {cut} cut, {billed} of {} billed, exit code {:?}",
        streams.len(),
        status.code()
    );
    assert_eq!(
        rows.len(),
        streams.len(),
        "one usage row per stream: {rows:#?}"
    );
    for (protocol, model, long) in &streams {
        let row = rows
            .iter()
            .find(|r| r.protocol == *protocol && r.model == *model)
            .unwrap_or_else(|| panic!("no row for {protocol} {model}: {rows:#?}"));
        let expected = if *long { "shutdown" } else { "ok" };
        assert_eq!(row.status, expected, "{protocol} {model}");
        assert!(row.completion_tokens > 0, "{protocol} {model}: {row:?}");
        // A cut stream is billed for part of its 300 words, not for all of them, nor nothing.
        if *long {
            assert!(row.completion_tokens < 300, "{protocol} {model}: {row:?}");
        }
        assert!(row.cost_micros > 0, "{protocol} {model}: {row:?}");
    }
    let pool = gw.db();
    let mut conn = pool.get().expect("conn");
    let account = pura::db::models::account::of_key(&mut conn, &key_id)
        .expect("query")
        .expect("account");
    let ledger = pura::db::models::ledger::sum_for_account(&mut conn, &account.id).expect("sum");
    let costs: i64 = rows.iter().map(|r| r.cost_micros).sum();
    assert_eq!(
        account.balance_micros, ledger,
        "balance is the ledger's sum"
    );
    assert_eq!(
        40_000_000 - ledger,
        costs,
        "each stream debited once, for its cost"
    );
    let debits = pura::db::models::ledger::for_account(&mut conn, &account.id).expect("ledger");
    for row in &rows {
        let n = debits.iter().filter(|d| d.reference == row.id).count();
        assert_eq!(n, 1, "one debit for {}", row.id);
    }
    assert!(
        gw.log().contains("every settlement is committed"),
        "{}",
        gw.log()
    );
}

#[actix_web::test]
async fn sigint_stops_an_idle_gateway_with_exit_0() {
    let mut gw = Gateway::start("", &[("PURA__SERVER__SHUTDOWN_GRACE", "30s")]);
    let (status, _) = gw.get("/health", "").await;
    assert_eq!(status, 200);
    gw.signal("INT");
    // Nothing in flight: no need to wait for the grace (bounded generously, not timed).
    let status = gw.wait_exit(Duration::from_secs(25)).expect("pura exits");
    assert!(status.success(), "exit status {status}\n{}", gw.log());
}
