//! A minimal, fast fake LLM upstream for `bench/run.sh`: OpenAI `POST /v1/chat/completions`
//! and Anthropic `POST /v1/messages`, JSON or SSE (`"stream": true`), with correct usage
//! (OpenAI's `include_usage` chunk; Anthropic's `message_start` / `message_delta` usage), so
//! a gateway in front of it bills as it would against the real APIs. Any key is accepted.
//!
//! ```sh
//! cargo run --release --example bench_upstream -- --workers 1 --latency-ms 0 \
//!     --chunks 50 --chunk-delay-ms 100
//! ```
//!
//! Flags (each also read from the environment variable in brackets):
//! `--bind ADDR` [`BENCH_UPSTREAM_BIND`, default `127.0.0.1:0`],
//! `--workers N` [`BENCH_UPSTREAM_WORKERS`, default 1],
//! `--latency-ms F` delay before the response head, JSON and SSE alike [`BENCH_UPSTREAM_LATENCY_MS`, 0],
//! `--chunks N` content chunks of a stream, and words of a JSON answer [`BENCH_UPSTREAM_CHUNKS`, 50],
//! `--chunk-delay-ms F` pause between stream chunks [`BENCH_UPSTREAM_CHUNK_DELAY_MS`, 0].
//! It prints `bench_upstream listening on http://ADDR` on stdout once bound. `GET /bench/stats`
//! tells the responses in progress and the most at once (streams count until they end), and
//! `POST /bench/reset` restarts that peak: a gateway that caps its upstream connections shows.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::http::header::{CacheControl, CacheDirective, ContentType};
use actix_web::{web, App, HttpResponse, HttpServer};
use bytes::Bytes;
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;

/// The text of one content chunk; a stream's answer is this repeated `chunks` times.
const WORD: &str = "tok ";

#[derive(Debug, Clone)]
struct Settings {
    bind: String,
    workers: usize,
    latency: Duration,
    chunks: usize,
    chunk_delay: Duration,
}

/// Only the fields the fake looks at; the rest of the body is accepted as is.
#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

struct Shared {
    settings: Settings,
    next_id: AtomicU64,
    /// Responses in progress (a stream counts until its last byte is handed over or the
    /// client goes), and the most seen at once since the last `POST /bench/reset`.
    active: AtomicUsize,
    peak: AtomicUsize,
}

impl Shared {
    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// Counts one response in progress while it lives.
struct InFlight(web::Data<Shared>);

impl InFlight {
    fn new(shared: &web::Data<Shared>) -> InFlight {
        let now = shared.active.fetch_add(1, Ordering::Relaxed) + 1;
        shared.peak.fetch_max(now, Ordering::Relaxed);
        InFlight(shared.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

fn millis(v: &str, name: &str) -> Result<Duration, String> {
    let ms: f64 = v
        .parse()
        .map_err(|e| format!("{name}: `{v}` is not a number of milliseconds: {e}"))?;
    if !ms.is_finite() || ms < 0.0 {
        return Err(format!("{name}: `{v}` must be a non-negative number"));
    }
    Ok(Duration::from_secs_f64(ms / 1000.0))
}

fn count(v: &str, name: &str) -> Result<usize, String> {
    v.parse()
        .map_err(|e| format!("{name}: `{v}` is not a whole number: {e}"))
}

fn settings() -> Result<Settings, String> {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    let mut s = Settings {
        bind: env("BENCH_UPSTREAM_BIND", "127.0.0.1:0"),
        workers: count(
            &env("BENCH_UPSTREAM_WORKERS", "1"),
            "BENCH_UPSTREAM_WORKERS",
        )?,
        latency: millis(
            &env("BENCH_UPSTREAM_LATENCY_MS", "0"),
            "BENCH_UPSTREAM_LATENCY_MS",
        )?,
        chunks: count(&env("BENCH_UPSTREAM_CHUNKS", "50"), "BENCH_UPSTREAM_CHUNKS")?,
        chunk_delay: millis(
            &env("BENCH_UPSTREAM_CHUNK_DELAY_MS", "0"),
            "BENCH_UPSTREAM_CHUNK_DELAY_MS",
        )?,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (flag.clone(), None),
        };
        if name == "--help" || name == "-h" {
            return Err(
                "usage: bench_upstream [--bind ADDR] [--workers N] [--latency-ms F] \
                        [--chunks N] [--chunk-delay-ms F]"
                    .into(),
            );
        }
        let value = match inline {
            Some(v) => v,
            None => args.next().ok_or_else(|| format!("{name} needs a value"))?,
        };
        match name.as_str() {
            "--bind" => s.bind = value,
            "--workers" => s.workers = count(&value, &name)?,
            "--latency-ms" => s.latency = millis(&value, &name)?,
            "--chunks" => s.chunks = count(&value, &name)?,
            "--chunk-delay-ms" => s.chunk_delay = millis(&value, &name)?,
            other => return Err(format!("unknown flag {other} (try --help)")),
        }
    }
    if s.workers == 0 {
        return Err("--workers must be at least 1".into());
    }
    Ok(s)
}

/// Prompt tokens as a tokenizer would roughly count them: about four bytes a token.
fn prompt_tokens(body: &[u8]) -> usize {
    body.len().div_ceil(4).max(1)
}

fn parse(body: &[u8]) -> Result<Request, Box<HttpResponse>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(HttpResponse::BadRequest().json(json!({"error": {
            "message": format!("invalid JSON body: {e}"),
            "type": "invalid_request_error", "param": null, "code": null}})))
    })
}

async fn head_latency(shared: &Shared) {
    if !shared.settings.latency.is_zero() {
        actix_web::rt::time::sleep(shared.settings.latency).await;
    }
}

fn sse(events: impl Stream<Item = Bytes> + 'static, in_flight: InFlight) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/event-stream; charset=utf-8")
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .streaming(events.map(move |b| {
            let _counted = &in_flight;
            Ok::<_, Infallible>(b)
        }))
}

/// `first`, then each of `middle` after the inter-chunk delay, then `last` at once.
fn paced(
    first: Vec<Bytes>,
    middle: Vec<Bytes>,
    last: Vec<Bytes>,
    delay: Duration,
) -> impl Stream<Item = Bytes> {
    let head = stream::iter(first);
    let body = stream::iter(middle).then(move |b| async move {
        if !delay.is_zero() {
            actix_web::rt::time::sleep(delay).await;
        }
        b
    });
    head.chain(body).chain(stream::iter(last))
}

fn data(v: &serde_json::Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

fn event(name: &str, v: &serde_json::Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {v}\n\n"))
}

async fn openai(shared: web::Data<Shared>, body: Bytes) -> HttpResponse {
    let req = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let in_flight = InFlight::new(&shared);
    head_latency(&shared).await;
    let s = &shared.settings;
    let n = shared.id();
    let id = format!("chatcmpl-bench{n}");
    let request_id = format!("req_bench{n}");
    let model = req.model.unwrap_or_else(|| "bench-model".to_owned());
    let created = chrono::Utc::now().timestamp();
    let prompt = prompt_tokens(&body);
    let usage = json!({"prompt_tokens": prompt, "completion_tokens": s.chunks,
                       "total_tokens": prompt + s.chunks});
    if req.stream != Some(true) {
        return HttpResponse::Ok()
            .insert_header(("x-request-id", request_id))
            .insert_header(ContentType::json())
            .body(
                json!({
                    "id": id, "object": "chat.completion", "created": created, "model": model,
                    "system_fingerprint": null,
                    "choices": [{"index": 0,
                                 "message": {"role": "assistant", "content": WORD.repeat(s.chunks),
                                             "refusal": null},
                                 "logprobs": null, "finish_reason": "stop"}],
                    "usage": usage,
                })
                .to_string(),
            );
    }
    let include_usage = req
        .stream_options
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    let with_usage = |mut v: serde_json::Value| {
        if include_usage {
            v["usage"] = serde_json::Value::Null;
        }
        v
    };
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        with_usage(json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        }))
    };
    let first = vec![data(&chunk(
        json!({"role": "assistant", "content": ""}),
        None,
    ))];
    let middle = (0..s.chunks)
        .map(|_| data(&chunk(json!({"content": WORD}), None)))
        .collect();
    let mut last = vec![data(&chunk(json!({}), Some("stop")))];
    if include_usage {
        last.push(data(&json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": null, "choices": [], "usage": usage,
        })));
    }
    last.push(Bytes::from_static(b"data: [DONE]\n\n"));
    let mut resp = sse(paced(first, middle, last, s.chunk_delay), in_flight);
    if let Ok(v) = request_id.parse() {
        resp.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("x-request-id"),
            v,
        );
    }
    resp
}

async fn anthropic(shared: web::Data<Shared>, body: Bytes) -> HttpResponse {
    let req = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let in_flight = InFlight::new(&shared);
    head_latency(&shared).await;
    let s = &shared.settings;
    let n = shared.id();
    let id = format!("msg_bench{n}");
    let request_id = format!("req_bench{n}");
    let model = req.model.unwrap_or_else(|| "bench-model".to_owned());
    let prompt = prompt_tokens(&body);
    if req.stream != Some(true) {
        return HttpResponse::Ok()
            .insert_header(("request-id", request_id))
            .insert_header(ContentType::json())
            .body(
                json!({
                    "id": id, "type": "message", "role": "assistant", "model": model,
                    "content": [{"type": "text", "text": WORD.repeat(s.chunks)}],
                    "stop_reason": "end_turn", "stop_sequence": null,
                    "usage": {"input_tokens": prompt, "cache_creation_input_tokens": 0,
                              "cache_read_input_tokens": 0, "output_tokens": s.chunks},
                })
                .to_string(),
            );
    }
    let first = vec![
        event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": prompt, "cache_creation_input_tokens": 0,
                          "cache_read_input_tokens": 0, "output_tokens": 1}}}),
        ),
        event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
        ),
    ];
    let delta = event(
        "content_block_delta",
        &json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": WORD}}),
    );
    let middle = vec![delta; s.chunks];
    let last = vec![
        event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 0}),
        ),
        event(
            "message_delta",
            &json!({"type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                    "usage": {"output_tokens": s.chunks}}),
        ),
        event("message_stop", &json!({"type": "message_stop"})),
    ];
    let mut resp = sse(paced(first, middle, last, s.chunk_delay), in_flight);
    if let Ok(v) = request_id.parse() {
        resp.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("request-id"),
            v,
        );
    }
    resp
}

/// `GET /bench/stats`: responses in progress now, the peak, and requests served.
async fn stats(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "active": shared.active.load(Ordering::Relaxed),
        "peak": shared.peak.load(Ordering::Relaxed),
        "requests": shared.next_id.load(Ordering::Relaxed) - 1,
    }))
}

/// `POST /bench/reset`: the peak starts again from what is in progress now.
async fn reset(shared: web::Data<Shared>) -> HttpResponse {
    shared
        .peak
        .store(shared.active.load(Ordering::Relaxed), Ordering::Relaxed);
    stats(shared).await
}

async fn models() -> HttpResponse {
    HttpResponse::Ok().json(json!({"object": "list", "data": [
        {"id": "bench-model", "object": "model", "created": 0, "owned_by": "bench"}]}))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let settings = settings().map_err(std::io::Error::other)?;
    let shared = web::Data::new(Shared {
        settings: settings.clone(),
        next_id: AtomicU64::new(1),
        active: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(shared.clone())
            .app_data(web::PayloadConfig::default().limit(16 * 1024 * 1024))
            .route("/v1/chat/completions", web::post().to(openai))
            .route("/chat/completions", web::post().to(openai))
            .route("/v1/messages", web::post().to(anthropic))
            .route("/v1/models", web::get().to(models))
            .route("/bench/stats", web::get().to(stats))
            .route("/bench/reset", web::post().to(reset))
    })
    .workers(settings.workers)
    .backlog(4096)
    .max_connections(100_000)
    .bind(&settings.bind)?;
    for addr in server.addrs() {
        println!("bench_upstream listening on http://{addr}");
    }
    eprintln!(
        "bench_upstream: {} worker(s), latency {:?}, {} chunks, {:?} between chunks",
        settings.workers, settings.latency, settings.chunks, settings.chunk_delay
    );
    server.run().await
}
