//! Streaming load client for `bench/run.sh`: opens many concurrent SSE chat streams (started
//! evenly over a ramp), and per stream measures the time to the first SSE event (time to
//! first chunk, from the moment the request is sent) and counts the content chunks that
//! arrive against those expected. Prints one JSON object with the results on stdout.
//!
//! ```sh
//! cargo run --release --example bench_streams -- --url http://127.0.0.1:8080/v1/chat/completions \
//!     --format openai --key pura_… --model gpt-4o --streams 1000 --ramp-s 2 --expect-chunks 50
//! ```
//!
//! `--format openai` reads `data:` chunks and counts those whose `choices[0].delta.content` is
//! non-empty, and wants `data: [DONE]` at the end; `--format anthropic` counts
//! `content_block_delta` events and wants `message_stop`. A stream that fails, ends early or
//! carries an error event counts as failed, and whatever chunks it did not deliver as lost.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    OpenAi,
    Anthropic,
}

#[derive(Debug, Clone)]
struct Args {
    url: String,
    format: Format,
    key: String,
    model: String,
    streams: usize,
    ramp: Duration,
    expect_chunks: usize,
    timeout: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        url: String::new(),
        format: Format::OpenAi,
        key: "bench".into(),
        model: "bench-model".into(),
        streams: 1000,
        ramp: Duration::from_secs(2),
        expect_chunks: 50,
        timeout: Duration::from_secs(120),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (flag.clone(), None),
        };
        let value = match inline {
            Some(v) => v,
            None => args.next().ok_or_else(|| format!("{name} needs a value"))?,
        };
        let secs = |v: &str| -> Result<Duration, String> {
            v.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| format!("{name}: `{v}` is not a number of seconds"))
        };
        let whole = |v: &str| -> Result<usize, String> {
            v.parse()
                .map_err(|e| format!("{name}: `{v}` is not a whole number: {e}"))
        };
        match name.as_str() {
            "--url" => a.url = value,
            "--format" => {
                a.format = match value.as_str() {
                    "openai" => Format::OpenAi,
                    "anthropic" => Format::Anthropic,
                    other => return Err(format!("--format: `{other}` is not openai|anthropic")),
                }
            }
            "--key" => a.key = value,
            "--model" => a.model = value,
            "--streams" => a.streams = whole(&value)?,
            "--ramp-s" => a.ramp = secs(&value)?,
            "--expect-chunks" => a.expect_chunks = whole(&value)?,
            "--timeout-s" => a.timeout = secs(&value)?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.url.is_empty() {
        return Err("--url is required".into());
    }
    Ok(a)
}

/// What one stream did.
#[derive(Debug, Default)]
struct Outcome {
    ttfc: Option<Duration>,
    total: Option<Duration>,
    chunks: usize,
    error: Option<String>,
}

/// Splits a byte stream into SSE events and keeps the `data:` payload of each.
#[derive(Default)]
struct SseSplitter {
    buf: Vec<u8>,
}

impl SseSplitter {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<String>) {
        self.buf.extend_from_slice(bytes);
        loop {
            let text = &self.buf;
            let end = find(text, b"\n\n")
                .map(|i| (i, 2))
                .into_iter()
                .chain(find(text, b"\r\n\r\n").map(|i| (i, 4)))
                .min_by_key(|(i, _)| *i);
            let Some((at, sep)) = end else { return };
            let block: Vec<u8> = self.buf.drain(..at + sep).collect();
            let block = String::from_utf8_lossy(&block[..at]);
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(d) = line.strip_prefix("data:") {
                    data.push(d.strip_prefix(' ').unwrap_or(d));
                }
            }
            if !data.is_empty() {
                out.push(data.join("\n"));
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads one event's data; returns (is a content chunk, ends the stream, error text).
fn classify(format: Format, data: &str) -> (bool, bool, Option<String>) {
    if format == Format::OpenAi && data.trim() == "[DONE]" {
        return (false, true, None);
    }
    let v: Value = match serde_json::from_str(data) {
        Ok(v) => v,
        Err(e) => return (false, false, Some(format!("malformed event ({e}): {data}"))),
    };
    if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
        return (false, false, Some(format!("error event: {err}")));
    }
    match format {
        Format::OpenAi => {
            let content = v
                .pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
                .is_some_and(|c| !c.is_empty());
            (content, false, None)
        }
        Format::Anthropic => match v.get("type").and_then(Value::as_str) {
            Some("content_block_delta") => (true, false, None),
            Some("message_stop") => (false, true, None),
            _ => (false, false, None),
        },
    }
}

async fn one_stream(client: &awc::Client, args: &Args, body: &Value) -> Outcome {
    let mut out = Outcome::default();
    let started = Instant::now();
    let mut req = client
        .post(&args.url)
        .timeout(args.timeout)
        .insert_header(("content-type", "application/json"));
    req = match args.format {
        Format::OpenAi => req.insert_header(("authorization", format!("Bearer {}", args.key))),
        Format::Anthropic => req
            .insert_header(("x-api-key", args.key.as_str()))
            .insert_header(("anthropic-version", "2023-06-01")),
    };
    let resp = match req.send_json(body).await {
        Ok(r) => r,
        Err(e) => {
            out.error = Some(format!("request failed: {e}"));
            return out;
        }
    };
    if !resp.status().is_success() {
        let status = resp.status();
        let mut resp = resp;
        let text = resp.body().await.unwrap_or_default();
        out.error = Some(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&text)
                .chars()
                .take(200)
                .collect::<String>()
        ));
        return out;
    }
    let mut resp = resp.timeout(args.timeout);
    let mut splitter = SseSplitter::default();
    let mut events = Vec::new();
    let mut done = false;
    while let Some(piece) = resp.next().await {
        let bytes = match piece {
            Ok(b) => b,
            Err(e) => {
                out.error = Some(format!("stream broke: {e}"));
                return out;
            }
        };
        splitter.feed(&bytes, &mut events);
        for data in events.drain(..) {
            if out.ttfc.is_none() {
                out.ttfc = Some(started.elapsed());
            }
            let (content, end, err) = classify(args.format, &data);
            if content {
                out.chunks += 1;
            }
            if let Some(e) = err {
                out.error.get_or_insert(e);
            }
            done |= end;
        }
    }
    out.total = Some(started.elapsed());
    if !done && out.error.is_none() {
        out.error = Some("stream ended without its terminator".into());
    }
    out
}

/// Nearest-rank percentile of sorted milliseconds.
fn pct(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn summary(mut ms: Vec<f64>) -> Value {
    ms.sort_by(f64::total_cmp);
    json!({
        "p50": pct(&ms, 50.0), "p90": pct(&ms, 90.0), "p99": pct(&ms, 99.0),
        "max": ms.last(), "n": ms.len(),
    })
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args = parse_args().map_err(std::io::Error::other)?;
    let body = match args.format {
        Format::OpenAi => json!({
            "model": args.model, "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "Say hello, briefly."}],
        }),
        Format::Anthropic => json!({
            "model": args.model, "max_tokens": 256, "stream": true,
            "messages": [{"role": "user", "content": "Say hello, briefly."}],
        }),
    };
    let client = awc::Client::builder()
        .connector(
            awc::Connector::new()
                .limit(0)
                .timeout(Duration::from_secs(10)),
        )
        .disable_timeout()
        .finish();
    let open = Rc::new(Cell::new(0usize));
    let peak = Rc::new(Cell::new(0usize));
    let outcomes = Rc::new(RefCell::new(Vec::with_capacity(args.streams)));
    let start = Instant::now();
    let step = if args.streams > 1 {
        args.ramp / (args.streams as u32)
    } else {
        Duration::ZERO
    };
    let mut tasks = Vec::with_capacity(args.streams);
    for i in 0..args.streams {
        let (client, args, body) = (client.clone(), args.clone(), body.clone());
        let (open, peak, outcomes) = (open.clone(), peak.clone(), outcomes.clone());
        tasks.push(actix_web::rt::spawn(async move {
            let at = start + step * (i as u32);
            actix_web::rt::time::sleep_until(at.into()).await;
            open.set(open.get() + 1);
            peak.set(peak.get().max(open.get()));
            let o = one_stream(&client, &args, &body).await;
            open.set(open.get() - 1);
            outcomes.borrow_mut().push(o);
        }));
    }
    for t in tasks {
        t.await.map_err(std::io::Error::other)?;
    }
    let wall = start.elapsed();
    let outcomes = std::mem::take(&mut *outcomes.borrow_mut());
    let ok = outcomes.iter().filter(|o| o.error.is_none()).count();
    let received: usize = outcomes.iter().map(|o| o.chunks).sum();
    let expected = args.streams * args.expect_chunks;
    let mut errors: Vec<&str> = outcomes.iter().filter_map(|o| o.error.as_deref()).collect();
    errors.sort_unstable();
    errors.dedup();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let result = json!({
        "url": args.url,
        "format": format!("{:?}", args.format).to_lowercase(),
        "streams": args.streams,
        "ok": ok,
        "failed": args.streams - ok,
        "peak_concurrent": peak.get(),
        "ttfc_ms": summary(outcomes.iter().filter_map(|o| o.ttfc).map(ms).collect()),
        "duration_ms": summary(outcomes.iter().filter_map(|o| o.total).map(ms).collect()),
        "chunks_expected": expected,
        "chunks_received": received,
        "chunks_lost": expected.saturating_sub(received),
        "wall_s": wall.as_secs_f64(),
        "errors": errors.iter().take(5).collect::<Vec<_>>(),
    });
    println!("{result}");
    Ok(())
}
