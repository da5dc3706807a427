//! `GET /metrics` and `GET /ready`: scrape the Prometheus text format after real requests
//! (success, stream, fallback, circuit, budget denials, key-mint refusal, invoices) and see
//! the series move; `/ready` answers 200 with a usable provider and 503 without one.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::fake_lnd::{FakeLnd, MACAROON};
use common::{provider_toml, Behavior, FakeDialect, FakeUpstream, Gateway};
use serde_json::{json, Value};

/// One sample of the text format: its labels and value.
#[derive(Debug)]
struct Sample {
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A scrape, parsed: samples by metric name, and the names announced by `# TYPE`.
#[derive(Debug, Default)]
struct Scrape {
    samples: BTreeMap<String, Vec<Sample>>,
    types: BTreeMap<String, String>,
}

impl Scrape {
    /// A small parser of the Prometheus text format (0.0.4): `# TYPE` lines, and samples
    /// `name{label="value",…} number`, with `\"`, `\\` and `\n` escapes in label values.
    fn parse(text: &str) -> Scrape {
        let mut scrape = Scrape::default();
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE line");
                scrape.types.insert(name.to_owned(), kind.to_owned());
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let name_end = line.find(['{', ' ']).expect("sample name");
            let name = &line[..name_end];
            let mut labels = BTreeMap::new();
            let mut rest = &line[name_end..];
            if let Some(body) = rest.strip_prefix('{') {
                let mut chars = body.char_indices();
                let mut key = String::new();
                let end = loop {
                    let (i, c) = chars.next().expect("unterminated labels");
                    match c {
                        '}' => break i,
                        ',' => {}
                        '=' => {
                            assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                            let mut value = String::new();
                            loop {
                                match chars.next().expect("unterminated value").1 {
                                    '\\' => match chars.next().expect("escape").1 {
                                        'n' => value.push('\n'),
                                        other => value.push(other),
                                    },
                                    '"' => break,
                                    other => value.push(other),
                                }
                            }
                            labels.insert(std::mem::take(&mut key), value);
                        }
                        other => key.push(other),
                    }
                };
                rest = &body[end + 1..];
            }
            let value = rest.split_whitespace().next().expect("sample value");
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
            };
            scrape
                .samples
                .entry(name.to_owned())
                .or_default()
                .push(Sample { labels, value });
        }
        scrape
    }

    /// The sum of `name` over the samples whose labels include all of `want` (0 when none).
    fn sum(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.samples.get(name).map_or(0.0, |samples| {
            samples
                .iter()
                .filter(|s| {
                    want.iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
                })
                .map(|s| s.value)
                .sum()
        })
    }
}

async fn scrape(gw: &Gateway) -> Scrape {
    let mut resp = gw
        .client()
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .expect("scrape");
    assert_eq!(resp.status().as_u16(), 200);
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let body = resp.body().limit(16 * 1024 * 1024).await.expect("body");
    let text = String::from_utf8(body.to_vec()).expect("utf-8");
    if std::env::var_os("PURA_TEST_PRINT_METRICS").is_some() {
        println!("{text}");
    }
    Scrape::parse(&text)
}

/// Scrapes until `ok` holds (the gateway reports some events a moment after answering).
async fn scrape_until(gw: &Gateway, what: &str, ok: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = scrape(gw).await;
        if ok(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "never saw {what}: {s:#?}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get(gw: &Gateway, path: &str) -> (u16, Value) {
    let mut resp = gw
        .client()
        .get(format!("{}{path}", gw.url))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn hello(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello"}]})
}

fn served(protocol: &str, provider: &str, model: &str) -> Vec<(&'static str, String)> {
    vec![
        ("protocol", protocol.to_owned()),
        ("status", "200".to_owned()),
        ("provider", provider.to_owned()),
        ("model", model.to_owned()),
        ("tier", "mid".to_owned()),
    ]
}

fn labels<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[actix_web::test]
async fn series_of_a_fixed_vocabulary_are_listed_at_zero_before_any_traffic() {
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    let gw = Gateway::start(&provider_toml("solo", &fake, "mid", "model-a", 0.001), &[]);
    let s = scrape(&gw).await;
    for (name, kind, label, values) in [
        (
            "pura_budget_denials_total",
            "counter",
            "reason",
            &["payment", "daily", "monthly", "rpm", "unavailable"][..],
        ),
        (
            "pura_invoices_total",
            "counter",
            "event",
            &["created", "paid", "expired"],
        ),
        (
            "pura_key_mint_refusals_total",
            "counter",
            "reason",
            &["admin_only", "rate_limited"],
        ),
        (
            "pura_settlements_total",
            "counter",
            "result",
            &["committed", "failed"],
        ),
        ("pura_circuit_state", "gauge", "provider", &["solo"]),
    ] {
        assert_eq!(s.types.get(name).map(String::as_str), Some(kind), "{name}");
        for v in values {
            let found = s.samples[name].iter().find(|x| x.labels[label] == *v);
            assert_eq!(found.map(|x| x.value), Some(0.0), "{name} {label}={v}");
        }
    }
    for name in ["pura_active_streams", "pura_settlement_queue_depth"] {
        assert_eq!(s.types.get(name).map(String::as_str), Some("gauge"));
        assert_eq!(s.sum(name, &[]), 0.0);
    }
    assert_eq!(
        s.types
            .get("pura_settlement_commit_seconds")
            .map(String::as_str),
        Some("histogram")
    );
    // Labelled by provider and model, these appear with the first request.
    assert!(!s.samples.contains_key("pura_requests_total"));
}

#[actix_web::test]
async fn a_served_request_and_a_stream_move_counts_histograms_tokens_and_spend() {
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    let gw = Gateway::start(&provider_toml("solo", &fake, "mid", "model-a", 0.001), &[]);
    let (_, key) = gw.key().await;
    let chat = served("chat", "solo", "model-a");

    let r = gw
        .post("/v1/chat/completions", &key, &hello("model-a", false))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The settlement is journalled; a committed one is one folded into the database.
    gw.settle();
    let s = scrape(&gw).await;
    assert_eq!(s.sum("pura_requests_total", &labels(&chat)), 1.0);
    let by_provider = [("provider", "solo")];
    assert_eq!(
        s.sum("pura_request_duration_seconds_count", &by_provider),
        1.0
    );
    assert!(s.sum("pura_request_duration_seconds_sum", &by_provider) > 0.0);
    assert_eq!(
        s.sum(
            "pura_request_duration_seconds_bucket",
            &[("provider", "solo"), ("le", "+Inf")]
        ),
        1.0
    );
    assert_eq!(s.sum("pura_upstream_attempts_total", &by_provider), 1.0);
    assert_eq!(s.sum("pura_upstream_failures_total", &by_provider), 0.0);
    let prompt = s.sum(
        "pura_tokens_total",
        &[("model", "model-a"), ("kind", "prompt")],
    );
    let completion = s.sum(
        "pura_tokens_total",
        &[("model", "model-a"), ("kind", "completion")],
    );
    assert!(prompt > 0.0 && completion > 0.0, "{prompt} {completion}");
    assert!(s.sum("pura_spend_micros_total", &by_provider) > 0.0);
    // Folded: committed, and nothing left in the queue.
    assert_eq!(
        s.sum("pura_settlements_total", &[("result", "committed")]),
        1.0
    );
    assert_eq!(s.sum("pura_settlement_queue_depth", &[]), 0.0);
    // One commit timed per batch that wrote something: never more batches than settlements.
    let commits = s.sum("pura_settlement_commit_seconds_count", &[]);
    assert!(
        (1.0..=s.sum("pura_settlements_total", &[("result", "committed")])).contains(&commits),
        "{commits} commits timed"
    );
    assert_eq!(s.sum("pura_time_to_first_token_seconds_count", &[]), 0.0);

    let r = gw
        .post("/v1/chat/completions", &key, &hello("model-a", true))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let s = scrape(&gw).await;
    assert_eq!(s.sum("pura_requests_total", &labels(&chat)), 2.0);
    assert_eq!(
        s.sum(
            "pura_time_to_first_token_seconds_count",
            &[("provider", "solo"), ("model", "model-a")]
        ),
        1.0
    );
    assert_eq!(s.sum("pura_active_streams", &[]), 0.0, "the stream ended");
    assert!(
        s.sum("pura_tokens_total", &[("kind", "completion")]) > completion,
        "the stream's tokens are counted"
    );

    // Another protocol is its own series.
    let body = json!({"model": "model-a", "max_tokens": 50,
        "messages": [{"role": "user", "content": "hello"}]});
    let r = gw.post("/v1/messages", &key, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let s = scrape(&gw).await;
    let messages = served("messages", "solo", "model-a");
    assert_eq!(s.sum("pura_requests_total", &labels(&messages)), 1.0);
    assert_eq!(s.sum("pura_requests_total", &labels(&chat)), 2.0);
}

#[actix_web::test]
async fn fallback_failures_by_kind_and_the_circuit_gauge() {
    let a = FakeUpstream::start(FakeDialect::OpenAi);
    let b = FakeUpstream::start(FakeDialect::OpenAi);
    let toml = provider_toml("primary", &a, "mid", "model-a", 0.001)
        + &provider_toml("backup", &b, "mid", "model-b", 0.002);
    // A long cool-down, so the open circuit is still open when scraped.
    let gw = Gateway::start(&toml, &[("PURA__ROUTING__CIRCUIT_COOLDOWN", "60s")]);
    let (_, key) = gw.key().await;

    a.set_behavior(Behavior::Status(500));
    let r = gw
        .post("/v1/chat/completions", &key, &hello("auto:mid", false))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-pura-provider"), Some("backup"));
    let s = scrape(&gw).await;
    let primary = [("provider", "primary")];
    assert_eq!(s.sum("pura_upstream_attempts_total", &primary), 1.0);
    assert_eq!(
        s.sum(
            "pura_upstream_failures_total",
            &[("provider", "primary"), ("kind", "status")]
        ),
        1.0
    );
    assert_eq!(
        s.sum("pura_fallbacks_total", &[("provider", "backup")]),
        1.0
    );
    assert_eq!(
        s.sum(
            "pura_requests_total",
            &labels(&served("chat", "backup", "model-b"))
        ),
        1.0
    );

    a.set_behavior(Behavior::Malformed);
    let r = gw
        .post("/v1/chat/completions", &key, &hello("auto:mid", true))
        .await;
    assert_eq!(r.header("x-pura-provider"), Some("backup"));
    a.set_behavior(Behavior::Status(503));
    let r = gw
        .post("/v1/chat/completions", &key, &hello("auto:mid", false))
        .await;
    assert_eq!(r.header("x-pura-provider"), Some("backup"));
    // Three failures in a row open the primary's circuit (published a moment after).
    let s = scrape_until(&gw, "the primary's circuit open", |s| {
        s.sum("pura_circuit_state", &primary) == 1.0
    })
    .await;
    assert_eq!(
        s.sum(
            "pura_upstream_failures_total",
            &[("provider", "primary"), ("kind", "malformed")]
        ),
        1.0
    );
    assert_eq!(s.sum("pura_upstream_failures_total", &primary), 3.0);
    assert_eq!(s.sum("pura_fallbacks_total", &[]), 3.0);
    assert_eq!(s.sum("pura_circuit_state", &[("provider", "backup")]), 0.0);
    // The backup still serves, so the gateway is ready.
    let (status, body) = get(&gw, "/ready").await;
    assert_eq!((status, &body), (200, &json!({"status": "ready"})));

    // Both failing: a 502 with no provider, counted as such.
    b.set_behavior(Behavior::Status(500));
    let r = gw
        .post("/v1/chat/completions", &key, &hello("auto:mid", false))
        .await;
    assert_eq!(r.status, 502, "{}", r.text());
    let s = scrape(&gw).await;
    assert_eq!(
        s.sum(
            "pura_requests_total",
            &[
                ("status", "502"),
                ("provider", "none"),
                ("protocol", "chat")
            ]
        ),
        1.0
    );
}

#[actix_web::test]
async fn budget_denials_by_reason() {
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    let toml = provider_toml("solo", &fake, "mid", "model-a", 0.001);
    let gw = Gateway::start(&toml, &[("PURA__FREE_TIER__REQUESTS", "0")]);
    let (_, key) = gw.key().await;
    let r = gw
        .post("/v1/chat/completions", &key, &hello("model-a", false))
        .await;
    assert_eq!(r.status, 402, "{}", r.text());
    let s = scrape(&gw).await;
    assert_eq!(
        s.sum("pura_budget_denials_total", &[("reason", "payment")]),
        1.0
    );
    assert_eq!(
        s.sum(
            "pura_requests_total",
            &[
                ("status", "402"),
                ("provider", "none"),
                ("protocol", "chat")
            ]
        ),
        1.0
    );
    assert_eq!(s.sum("pura_upstream_attempts_total", &[]), 0.0);

    // An RPM limit of one: the second request of the minute is refused.
    let gw = Gateway::start(&toml, &[]);
    let (_, key) = gw.key().await;
    let (status, body) = gw
        .send("PATCH", "/api/keys/me", &key, Some(json!({"rpmLimit": 1})))
        .await;
    assert_eq!(status, 200, "{body}");
    let statuses = [
        gw.post("/v1/chat/completions", &key, &hello("model-a", false))
            .await
            .status,
        gw.post("/v1/chat/completions", &key, &hello("model-a", false))
            .await
            .status,
    ];
    assert_eq!(statuses, [200, 429]);
    let s = scrape(&gw).await;
    assert_eq!(
        s.sum("pura_budget_denials_total", &[("reason", "rpm")]),
        1.0
    );
    assert_eq!(s.sum("pura_budget_denials_total", &[]), 1.0);
    assert_eq!(s.sum("pura_requests_total", &[("status", "429")]), 1.0);
}

#[actix_web::test]
async fn key_mint_refusals_are_counted() {
    // Mints are counted per address in the database: on PostgreSQL the other tests' mints
    // would count too, so this gateway gets a database of its own.
    let gw = Gateway::start_isolated("", &[("PURA__SERVER__KEY_MINT_PER_IP_PER_HOUR", "1")]);
    gw.key().await;
    let s = scrape(&gw).await;
    assert_eq!(s.sum("pura_key_mint_refusals_total", &[]), 0.0);
    let (status, _) = gw
        .send("POST", "/api/keys", "", Some(json!({"label": "again"})))
        .await;
    assert_eq!(status, 429);
    let s = scrape(&gw).await;
    assert_eq!(
        s.sum(
            "pura_key_mint_refusals_total",
            &[("reason", "rate_limited")]
        ),
        1.0
    );

    let gw = Gateway::start("", &[("PURA__SERVER__OPEN_KEY_MINTING", "false")]);
    let (status, _) = gw.send("POST", "/api/keys", "", Some(json!({}))).await;
    assert_eq!(status, 401);
    let s = scrape(&gw).await;
    assert_eq!(
        s.sum("pura_key_mint_refusals_total", &[("reason", "admin_only")]),
        1.0
    );
}

#[actix_web::test]
async fn invoices_created_paid_and_expired() {
    let lnd = FakeLnd::start();
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    let cert = lnd.cert_path.display().to_string();
    let env = [
        ("PURA__LIGHTNING__BACKEND", "lnd"),
        ("PURA__LIGHTNING__URL", lnd.url.as_str()),
        ("PURA__LIGHTNING__TLS_CERT_PATH", cert.as_str()),
        ("LND_MACAROON_HEX", MACAROON),
        ("PURA__LIGHTNING__POLL_INTERVAL", "100ms"),
        ("PURA__LIGHTNING__INVOICE_EXPIRY", "2s"),
    ];
    // A database of its own: on a shared PostgreSQL the watcher would also poll the pending
    // invoices earlier test binaries left behind, on backends that are gone.
    let gw = Gateway::start_isolated(&provider_toml("solo", &fake, "mid", "model-a", 0.001), &env);
    let (_, key) = gw.key().await;
    let fund = json!({"amount": 1234});
    let (status, inv) = gw
        .send("POST", "/api/wallet/fund", &key, Some(fund.clone()))
        .await;
    assert_eq!(status, 201, "{inv}\n{}", gw.log());
    let s = scrape(&gw).await;
    assert_eq!(s.sum("pura_invoices_total", &[("event", "created")]), 1.0);
    assert_eq!(s.sum("pura_invoices_total", &[("event", "paid")]), 0.0);
    lnd.settle_all();
    scrape_until(&gw, "the invoice paid", |s| {
        s.sum("pura_invoices_total", &[("event", "paid")]) == 1.0
    })
    .await;

    // One left unpaid expires.
    let (status, _) = gw.send("POST", "/api/wallet/fund", &key, Some(fund)).await;
    assert_eq!(status, 201);
    let s = scrape_until(&gw, "the second invoice expired", |s| {
        s.sum("pura_invoices_total", &[("event", "expired")]) == 1.0
    })
    .await;
    assert_eq!(s.sum("pura_invoices_total", &[("event", "created")]), 2.0);
    assert_eq!(s.sum("pura_invoices_total", &[("event", "paid")]), 1.0);
}

#[actix_web::test]
async fn ready_needs_the_database_and_a_provider_whose_circuit_is_not_open() {
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    let gw = Gateway::start(
        &provider_toml("solo", &fake, "mid", "model-a", 0.001),
        &[("PURA__ROUTING__CIRCUIT_COOLDOWN", "60s")],
    );
    let (status, body) = get(&gw, "/ready").await;
    assert_eq!((status, &body), (200, &json!({"status": "ready"})));

    fake.set_behavior(Behavior::Status(500));
    let (_, key) = gw.key().await;
    for _ in 0..3 {
        let r = gw
            .post("/v1/chat/completions", &key, &hello("model-a", false))
            .await;
        assert_eq!(r.status, 502, "{}", r.text());
    }
    // The circuit opens when the provider's actor has taken in the third failure.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (status, body) = loop {
        let (status, body) = get(&gw, "/ready").await;
        if status != 200 || Instant::now() > deadline {
            break (status, body);
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert_eq!(body["error"]["type"], "api_error", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("circuit")),
        "{body}"
    );
    // /health does not look at providers.
    let (status, body) = get(&gw, "/health").await;
    assert_eq!((status, &body), (200, &json!({"status": "ok"})));
    let s = scrape(&gw).await;
    assert_eq!(s.sum("pura_circuit_state", &[("provider", "solo")]), 1.0);

    // No provider at all.
    let gw = Gateway::start("", &[]);
    let (status, body) = get(&gw, "/ready").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    let (status, _) = get(&gw, "/health").await;
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn metrics_bind_moves_metrics_off_the_main_port() {
    // A port that was free a moment ago, for the metrics server's own bind address.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let bind = format!("127.0.0.1:{port}");
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    let gw = Gateway::start(
        &provider_toml("solo", &fake, "mid", "model-a", 0.001),
        &[("PURA__SERVER__METRICS_BIND", bind.as_str())],
    );
    let (status, body) = get(&gw, "/metrics").await;
    assert_eq!(status, 404, "{body}");
    let (_, key) = gw.key().await;
    let r = gw
        .post("/v1/chat/completions", &key, &hello("model-a", false))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut resp = gw
        .client()
        .get(format!("http://{bind}/metrics"))
        .send()
        .await
        .expect("scrape the metrics bind");
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.body().limit(16 * 1024 * 1024).await.expect("body");
    let s = Scrape::parse(std::str::from_utf8(&body).expect("utf-8"));
    let chat = served("chat", "solo", "model-a");
    assert_eq!(s.sum("pura_requests_total", &labels(&chat)), 1.0);
    assert_eq!(s.sum("pura_circuit_state", &[("provider", "solo")]), 0.0);
}

#[actix_web::test]
async fn requests_refused_for_their_key_are_counted_by_protocol_with_no_provider() {
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    let gw = Gateway::start(&provider_toml("solo", &fake, "mid", "model-a", 0.001), &[]);
    let wrong = "sk-pura-not-a-key-of-this-gateway";
    let messages = json!({"model": "model-a", "max_tokens": 10,
                          "messages": [{"role": "user", "content": "hello"}]});
    let calls = [
        ("/v1/chat/completions", hello("model-a", false)),
        (
            "/v1/responses",
            json!({"model": "model-a", "input": "hello"}),
        ),
        ("/v1/messages", messages.clone()),
        // Not a pipeline path: no request of the LLM series.
        ("/v1/messages/count_tokens", messages),
    ];
    for (path, body) in &calls {
        let r = gw.post(path, wrong, body).await;
        assert_eq!(r.status, 401, "{path}: {}", r.text());
    }
    let s = scrape(&gw).await;
    for protocol in ["chat", "responses", "messages"] {
        let refused = [
            ("protocol", protocol),
            ("status", "401"),
            ("provider", "none"),
            ("model", "none"),
            ("tier", "none"),
        ];
        assert_eq!(s.sum("pura_requests_total", &refused), 1.0, "{protocol}");
    }
    assert_eq!(s.sum("pura_requests_total", &[]), 3.0);
    // Nothing was served: no latency observed.
    assert_eq!(s.sum("pura_request_duration_seconds_count", &[]), 0.0);
}

#[actix_web::test]
async fn requests_refused_for_their_body_are_counted_by_protocol_with_no_provider() {
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    let gw = Gateway::start(
        &provider_toml("solo", &fake, "mid", "model-a", 0.001),
        &[("PURA__SERVER__MAX_BODY_BYTES", "2048")],
    );
    let (_, key) = gw.key().await;
    let raw = |path: &str, body: String| {
        gw.client()
            .post(format!("{}{path}", gw.url))
            .bearer_auth(&key)
            .insert_header(("x-api-key", key.as_str()))
            .insert_header(("content-type", "application/json"))
            .send_body(body)
    };
    // Not JSON at all.
    for path in ["/v1/chat/completions", "/v1/responses", "/v1/messages"] {
        let resp = raw(path, "{\"model\": ".into()).await.expect("sent");
        assert_eq!(resp.status().as_u16(), 400, "{path}");
    }
    // JSON that does not validate: no messages.
    let r = gw
        .post(
            "/v1/chat/completions",
            &key,
            &json!({"model": "model-a", "messages": []}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    // Over the body limit.
    let big = serde_json::to_string(&hello(&"x".repeat(4096), false)).expect("json");
    let resp = raw("/v1/chat/completions", big).await.expect("sent");
    assert_eq!(resp.status().as_u16(), 413);
    let s = scrape(&gw).await;
    let refused = |protocol: &'static str, status: &'static str| {
        s.sum(
            "pura_requests_total",
            &[
                ("protocol", protocol),
                ("status", status),
                ("provider", "none"),
                ("model", "none"),
                ("tier", "none"),
            ],
        )
    };
    assert_eq!(refused("chat", "400"), 2.0);
    assert_eq!(refused("responses", "400"), 1.0);
    assert_eq!(refused("messages", "400"), 1.0);
    assert_eq!(refused("chat", "413"), 1.0);
    assert_eq!(s.sum("pura_requests_total", &[]), 5.0, "each once");
    // Nothing was served: no latency observed.
    assert_eq!(s.sum("pura_request_duration_seconds_count", &[]), 0.0);
}
