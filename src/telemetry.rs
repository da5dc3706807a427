//! OpenTelemetry traces over OTLP/HTTP, when `telemetry.otlp_endpoint` is set: a span for the
//! request, the routing decision, each upstream attempt and the settlement, in the client's
//! trace when it sent a W3C `traceparent` (same trace id, its span as the parent).
//!
//! Hand-written rather than the `opentelemetry` + `opentelemetry-otlp` crates: those bring a
//! second HTTP stack (reqwest or hyper + tonic), their own runtime glue and ~100 crates to a
//! build shared by several builders, for what is here a struct, a channel and one JSON POST
//! (OTLP/HTTP accepts `application/json`). The exporter is a thread of its own running an
//! actix System with its own `awc::Client` (awc is `!Send`; no worker's client is shared): it
//! drains the channel and POSTs every batch to `<endpoint>/v1/traces`.
//!
//! Off (the default), [`enabled`] is false and the request path makes no span, no allocation.
//! A leaf module, like `metrics`: any layer may call it.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

static EXPORTER: OnceLock<UnboundedSender<Span>> = OnceLock::new();

/// Most spans in one export request.
const BATCH: usize = 512;
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether spans are exported (`telemetry.otlp_endpoint` set).
pub fn enabled() -> bool {
    EXPORTER.get().is_some()
}

/// Starts the exporter thread when `endpoint` is set (e.g. `http://127.0.0.1:4318`).
pub fn init(endpoint: &str) {
    if endpoint.is_empty() {
        return;
    }
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let (tx, rx) = unbounded_channel();
    if EXPORTER.set(tx).is_err() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("pura-otlp".into())
        .spawn(move || actix_web::rt::System::new().block_on(export(url, rx)));
    if let Err(e) = spawned {
        log::error!("telemetry: cannot start the OTLP exporter: {e}");
    }
}

async fn export(url: String, mut rx: UnboundedReceiver<Span>) {
    let client = awc::Client::builder().timeout(EXPORT_TIMEOUT).finish();
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(span) = rx.recv().await {
        batch.push(span);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(s) => batch.push(s),
                Err(_) => break,
            }
        }
        let body = Export::of(std::mem::take(&mut batch));
        match client.post(&url).send_json(&body).await {
            Ok(resp) if resp.status().is_success() => {}
            Ok(resp) => log::warn!("telemetry: {url} answered {}", resp.status()),
            Err(e) => log::warn!("telemetry: export to {url} failed: {e}"),
        }
    }
}

/// Where a request's spans belong: its trace, and its own span (the parent of the others).
#[derive(Debug, Clone, Copy)]
pub struct Trace {
    pub trace_id: [u8; 16],
    /// The client's span from `traceparent`, parent of the request span.
    pub remote_parent: Option<[u8; 8]>,
    /// The request span's id.
    pub span_id: [u8; 8],
    started: SystemTime,
}

impl Trace {
    /// The request's trace, from its `traceparent` header when valid; `None` when traces are off.
    pub fn begin(traceparent: Option<&str>) -> Option<Trace> {
        if !enabled() {
            return None;
        }
        let remote = traceparent.and_then(parse_traceparent);
        Some(Trace {
            trace_id: remote.map_or_else(rand::random, |(t, _)| t),
            remote_parent: remote.map(|(_, p)| p),
            span_id: rand::random(),
            started: SystemTime::now(),
        })
    }

    /// Ends the request span.
    pub fn finish(&self, name: &'static str, attributes: Vec<(&'static str, String)>) {
        send(Span {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent: self.remote_parent,
            name,
            start: self.started,
            end: SystemTime::now(),
            attributes,
        });
    }

    /// A child span of the request, from `started` to now.
    pub fn child(
        &self,
        name: &'static str,
        started: SystemTime,
        attributes: Vec<(&'static str, String)>,
    ) {
        send(Span {
            trace_id: self.trace_id,
            span_id: rand::random(),
            parent: Some(self.span_id),
            name,
            start: started,
            end: SystemTime::now(),
            attributes,
        });
    }
}

/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`; all-zero ids are invalid.
fn parse_traceparent(v: &str) -> Option<([u8; 16], [u8; 8])> {
    let mut parts = v.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || version == "ff" || flags.len() != 2 {
        return None;
    }
    let mut t = [0u8; 16];
    let mut p = [0u8; 8];
    hex::decode_to_slice(trace, &mut t).ok()?;
    hex::decode_to_slice(parent, &mut p).ok()?;
    (t != [0; 16] && p != [0; 8]).then_some((t, p))
}

fn send(span: Span) {
    if let Some(tx) = EXPORTER.get() {
        let _ = tx.send(span);
    }
}

pub struct Span {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    name: &'static str,
    start: SystemTime,
    end: SystemTime,
    attributes: Vec<(&'static str, String)>,
}

// The OTLP/HTTP JSON encoding of `ExportTraceServiceRequest`: ids in hex, times as decimal
// strings (protobuf's JSON mapping of uint64).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Export {
    resource_spans: [ResourceSpans; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans {
    resource: Resource,
    scope_spans: [ScopeSpans; 1],
}

#[derive(Serialize)]
struct Resource {
    attributes: Vec<KeyValue>,
}

#[derive(Serialize)]
struct ScopeSpans {
    scope: Scope,
    spans: Vec<OtlpSpan>,
}

#[derive(Serialize)]
struct Scope {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OtlpSpan {
    trace_id: String,
    span_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_span_id: Option<String>,
    name: &'static str,
    /// SPAN_KIND_SERVER for the request, INTERNAL for its parts.
    kind: u8,
    start_time_unix_nano: String,
    end_time_unix_nano: String,
    attributes: Vec<KeyValue>,
}

#[derive(Serialize)]
struct KeyValue {
    key: &'static str,
    value: AnyValue,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AnyValue {
    string_value: String,
}

fn nanos(t: SystemTime) -> String {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .to_string()
}

impl Export {
    fn of(spans: Vec<Span>) -> Export {
        let spans = spans
            .into_iter()
            .map(|s| OtlpSpan {
                trace_id: hex::encode(s.trace_id),
                span_id: hex::encode(s.span_id),
                kind: if s.name.starts_with("pura.request") {
                    2
                } else {
                    1
                },
                parent_span_id: s.parent.map(hex::encode),
                name: s.name,
                start_time_unix_nano: nanos(s.start),
                end_time_unix_nano: nanos(s.end),
                attributes: s
                    .attributes
                    .into_iter()
                    .map(|(key, v)| KeyValue {
                        key,
                        value: AnyValue { string_value: v },
                    })
                    .collect(),
            })
            .collect();
        Export {
            resource_spans: [ResourceSpans {
                resource: Resource {
                    attributes: vec![KeyValue {
                        key: "service.name",
                        value: AnyValue {
                            string_value: "pura".into(),
                        },
                    }],
                },
                scope_spans: [ScopeSpans {
                    scope: Scope {
                        name: "pura",
                        version: env!("CARGO_PKG_VERSION"),
                    },
                    spans,
                }],
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_parsed_and_invalid_ones_refused() {
        let (t, p) = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .expect("valid");
        assert_eq!(hex::encode(t), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex::encode(p), "00f067aa0ba902b7");
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
            "garbage",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
    }
}
