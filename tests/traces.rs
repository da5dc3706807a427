//! OpenTelemetry traces: with `telemetry.otlp_endpoint` set, a request's spans (the request,
//! the routing decision, each upstream attempt, the settlement) reach an OTLP/HTTP receiver
//! (a small actix server here) in the client's trace, under the client's `traceparent` span.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use common::{provider_toml, Behavior, FakeDialect, FakeUpstream, Gateway};
use serde_json::{json, Value};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

type Received = Arc<Mutex<Vec<Value>>>;

/// An OTLP/HTTP JSON receiver on its own thread; returns its base URL and what it received.
fn receiver() -> (String, Received) {
    let spans: Received = Arc::default();
    let store = spans.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                let store = store.clone();
                App::new().route(
                    "/v1/traces",
                    web::post().to(move |body: web::Json<Value>| {
                        let store = store.clone();
                        async move {
                            let body = body.into_inner();
                            let mut all = store.lock().expect("lock");
                            for rs in body["resourceSpans"].as_array().into_iter().flatten() {
                                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                                    all.extend(
                                        ss["spans"].as_array().into_iter().flatten().cloned(),
                                    );
                                }
                            }
                            HttpResponse::Ok().json(json!({}))
                        }
                    }),
                )
            })
            .workers(1)
            .bind(("127.0.0.1", 0))
            .expect("bind");
            tx.send(server.addrs()[0]).expect("send addr");
            server.run().await
        })
    });
    let addr = rx.recv().expect("receiver address");
    (format!("http://{addr}"), spans)
}

/// The spans of trace `TRACE_ID` once `names` have all arrived (the exporter sends them as
/// they end; this only waits for them, up to a generous bound).
fn spans_named(spans: &Received, names: &[&str]) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ours: Vec<Value> = spans
            .lock()
            .expect("lock")
            .iter()
            .filter(|s| s["traceId"] == TRACE_ID)
            .cloned()
            .collect();
        if names.iter().all(|n| ours.iter().any(|s| s["name"] == *n)) || Instant::now() > deadline {
            return ours;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[actix_web::test]
async fn a_requests_spans_reach_the_collector_in_the_clients_trace() {
    let (endpoint, spans) = receiver();
    // The cheap provider a short `auto` request goes to fails, so the request falls back to
    // the next tier up: two upstream attempts.
    let broken = FakeUpstream::start(FakeDialect::OpenAi);
    broken.set_behavior(Behavior::Status(500));
    let good = FakeUpstream::start(FakeDialect::OpenAi);
    let toml = provider_toml("broken", &broken, "cheap", "small-model", 0.001)
        + &provider_toml("good", &good, "mid", "gpt-4o", 0.005);
    let gw = Gateway::start(
        &toml,
        &[("PURA__TELEMETRY__OTLP_ENDPOINT", endpoint.as_str())],
    );
    let (_, key) = gw.key().await;
    let mut resp = gw
        .client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&key)
        .insert_header(("traceparent", format!("00-{TRACE_ID}-{CLIENT_SPAN}-01")))
        .send_json(&json!({"model": "auto", "messages": [{"role": "user", "content": "trace me"}]}))
        .await
        .expect("chat");
    assert_eq!(resp.status().as_u16(), 200);
    let _ = resp.body().await;
    let request_id = resp
        .headers()
        .get("x-pura-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("request id")
        .to_owned();

    let names = [
        "pura.request",
        "pura.routing",
        "pura.upstream_attempt",
        "pura.settlement",
    ];
    let ours = spans_named(&spans, &names);
    let request = ours
        .iter()
        .find(|s| s["name"] == "pura.request")
        .unwrap_or_else(|| panic!("no request span in {ours:#?}"));
    assert_eq!(request["parentSpanId"], CLIENT_SPAN, "{request}");
    let attribute = |span: &Value, key: &str| {
        span["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["key"] == key)
            .map(|a| a["value"]["stringValue"].clone())
    };
    assert_eq!(
        attribute(request, "pura.request_id"),
        Some(json!(request_id))
    );
    let request_span = request["spanId"].as_str().expect("span id");
    assert_eq!(request_span.len(), 16);
    for name in &names[1..] {
        let span = ours
            .iter()
            .find(|s| s["name"] == *name)
            .unwrap_or_else(|| panic!("no {name} span in {ours:#?}"));
        assert_eq!(span["parentSpanId"], request_span, "{span}");
    }
    let mut attempts: Vec<(Value, Value)> = ours
        .iter()
        .filter(|s| s["name"] == "pura.upstream_attempt")
        .map(|s| {
            (
                attribute(s, "pura.provider").unwrap_or_default(),
                attribute(s, "pura.outcome").unwrap_or_default(),
            )
        })
        .collect();
    attempts.sort_by_key(|(p, _)| p.to_string());
    assert_eq!(
        attempts,
        vec![
            (json!("broken"), json!("status")),
            (json!("good"), json!("ok"))
        ],
        "one span per attempt"
    );
    for s in &ours {
        let start: u128 = s["startTimeUnixNano"]
            .as_str()
            .expect("start")
            .parse()
            .expect("n");
        let end: u128 = s["endTimeUnixNano"]
            .as_str()
            .expect("end")
            .parse()
            .expect("n");
        assert!(start > 0 && start <= end, "{s}");
    }
}
