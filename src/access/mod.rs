//! Access logs an operator can ship: with `log.format = "json"` every log line is one JSON
//! object, and every request gets one access line (target `pura::access`) with its ids, route,
//! protocol, status, provider, model, tier, tokens, cost, latency and time to first token.
//! A request served by the pipeline is logged where it settles (its usage row has every
//! figure, a stream's only at its end); any other request, by [`AccessLog`]. Key secrets
//! never reach a line: only key and account ids do. With `text` (the default) the access
//! line is actix's usual one (`%a "%r" %s %b %Dms`), written by [`AccessLog`] as well. A leaf
//! module, like `metrics`: any layer may call it.

mod layer;

pub use layer::AccessLog;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

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
        // The fixed parts go in as bytes: `{:<5}` padding and one formatter per piece cost
        // more than the access line itself.
        b.format(|buf, record| STAMP.with_borrow_mut(|stamp| text_line(buf, stamp.now(), record)));
    }
    b.init();
}

/// `[time LEVEL target] message` and a newline.
fn text_line(out: &mut impl Write, time: &str, record: &log::Record) -> std::io::Result<()> {
    out.write_all(b"[")?;
    out.write_all(time.as_bytes())?;
    out.write_all(padded_level(record.level()).as_bytes())?;
    out.write_all(record.target().as_bytes())?;
    out.write_all(b"] ")?;
    match record.args().as_str() {
        Some(text) => out.write_all(text.as_bytes())?,
        None => out.write_fmt(*record.args())?,
    }
    out.write_all(b"\n")
}

/// ` LEVEL ` as env_logger lays it out (`{:<5}` between spaces).
fn padded_level(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => " ERROR ",
        log::Level::Warn => " WARN  ",
        log::Level::Info => " INFO  ",
        log::Level::Debug => " DEBUG ",
        log::Level::Trace => " TRACE ",
    }
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

/// The access lines' log target, in both formats.
pub const TARGET: &str = "pura::access";

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_line_is_laid_out_as_env_logger_wrote_it() {
        let levels = [
            log::Level::Error,
            log::Level::Warn,
            log::Level::Info,
            log::Level::Debug,
            log::Level::Trace,
        ];
        let line = "127.0.0.1 \"POST /v1/chat/completions HTTP/1.1\" 200 507 0.354313ms";
        for level in levels {
            for target in ["pura::access", "actix_server::worker"] {
                let mut ours = Vec::new();
                let args = format_args!("{line}");
                let record = log::Record::builder()
                    .level(level)
                    .target(target)
                    .args(args)
                    .build();
                text_line(&mut ours, "2026-11-30T09:36:28Z", &record).unwrap();
                let theirs = format!("[2026-11-30T09:36:28Z {level:<5} {target}] {line}\n");
                assert_eq!(String::from_utf8(ours).unwrap(), theirs);
                // A message with no arguments takes the other branch.
                let mut ours = Vec::new();
                let record = log::Record::builder()
                    .level(level)
                    .target(target)
                    .args(format_args!("stopped"))
                    .build();
                text_line(&mut ours, "t", &record).unwrap();
                assert_eq!(
                    String::from_utf8(ours).unwrap(),
                    format!("[t {level:<5} {target}] stopped\n")
                );
            }
        }
    }
}
