//! Access logs an operator can ship: with `log.format = "json"` every log line is one JSON
//! object, and every request gets one access line (target `pura::access`) with its ids, route,
//! protocol, status, provider, model, tier, tokens, cost, latency and time to first token.
//! A request served by the pipeline is logged where it settles (its usage row has every
//! figure, a stream's only at its end); any other request, by [`middleware`]. Key secrets
//! never reach a line: only key and account ids do. With `text` (the default) the access log
//! is actix's usual line. A leaf module, like `metrics`: any layer may call it.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use serde::Serialize;

static JSON: AtomicBool = AtomicBool::new(false);

/// Whether access lines are JSON (`log.format = "json"`).
pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Sets up `env_logger`: JSON lines when `json` (`log.format = "json"`).
pub fn init(json: bool) {
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if json {
        JSON.store(true, Ordering::Relaxed);
        b.format(|buf, record| {
            if record.target() == TARGET {
                // Already a JSON object (see `write`).
                return writeln!(buf, "{}", record.args());
            }
            let line = LogLine {
                ts: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                level: record.level().as_str(),
                target: record.target(),
                message: record.args().to_string(),
            };
            writeln!(buf, "{}", serde_json::to_string(&line).unwrap_or_default())
        });
    } else {
        // env_logger's own layout (`[time LEVEL target] message`, uncoloured), with the time
        // formatted once a second per thread: formatting it for every access line, and
        // scanning each line for colour codes to strip, were most of the line's cost. The
        // crate is built without colour, so no line asks the kernel whether stderr is a
        // terminal either (an `ioctl` per line).
        b.format(|buf, record| {
            STAMP.with_borrow_mut(|stamp| {
                writeln!(
                    buf,
                    "[{} {:<5} {}] {}",
                    stamp.now(),
                    record.level(),
                    record.target(),
                    record.args()
                )
            })
        });
    }
    b.init();
}

thread_local! {
    static STAMP: std::cell::RefCell<Stamp> = const {
        std::cell::RefCell::new(Stamp { second: u64::MAX, text: String::new() })
    };
}

/// A UTC timestamp to the second (`2026-11-30T09:36:28Z`), remade when the second changes.
struct Stamp {
    second: u64,
    text: String,
}

impl Stamp {
    fn now(&mut self) -> &str {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        if now != self.second {
            self.second = now;
            self.text = chrono::DateTime::from_timestamp(now as i64, 0)
                .unwrap_or_default()
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
        }
        &self.text
    }
}

const TARGET: &str = "pura::access";

/// Any log line other than an access line, in JSON mode.
#[derive(Serialize)]
struct LogLine<'a> {
    ts: String,
    level: &'a str,
    target: &'a str,
    message: String,
}

/// One request's access line.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Access<'a> {
    pub ts: String,
    pub kind: &'static str,
    pub request_id: Option<&'a str>,
    pub key_id: Option<&'a str>,
    pub account_id: Option<&'a str>,
    pub method: &'a str,
    pub route: &'a str,
    pub protocol: Option<&'a str>,
    pub status: u16,
    /// How a served request ended (`ok`, `upstream_error`, `client_closed`, `shutdown`).
    pub outcome: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub model: Option<&'a str>,
    pub tier: Option<&'a str>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    pub latency_ms: f64,
    pub ttft_ms: Option<i64>,
}

/// Writes `line` as one JSON line (JSON mode only).
pub fn write(mut line: Access<'_>) {
    if !json() {
        return;
    }
    line.ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    line.kind = "access";
    if let Ok(text) = serde_json::to_string(&line) {
        log::info!(target: TARGET, "{text}");
    }
}

/// Access lines for requests the pipeline does not log itself: those without our
/// `X-Pura-Request-Id` (the pipeline's paths log theirs when they settle or fail). The route
/// is the matched pattern (`/api/account/keys/{id}`), so ids in paths stay out of the log.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let route = req.match_pattern();
    let res = next.call(req).await?;
    if json() && !res.headers().contains_key("x-pura-request-id") {
        write(Access {
            method: method.as_str(),
            route: route.as_deref().unwrap_or("(unmatched)"),
            status: res.status().as_u16(),
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            ..Access::default()
        });
    }
    Ok(res)
}
