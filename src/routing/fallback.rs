//! The fallback loop: try candidates in order until one answers. For a stream, the first
//! translated chunk is read before the response is committed, so an upstream that fails
//! before its first byte (status, reset, timeout, malformed or error-only stream) still
//! falls back to the next candidate.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use awc::error::SendRequestError;
use bytes::Bytes;
use futures_util::StreamExt;

use super::Candidate;
use crate::actors::provider::{Observe, Outcome, Pick};
use crate::api::ChatRequest;
use crate::error::ApiError;
use crate::providers::sse::SseParser;
use crate::providers::{self, Completion, StreamItem, StreamTranslator};

/// Largest non-streaming upstream body accepted.
const MAX_UPSTREAM_BODY: usize = 32 * 1024 * 1024;

/// The upstream's response body as a byte stream.
pub type UpstreamBody = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, String>>>>;

/// An upstream stream whose first chunk has arrived.
pub struct OpenStream {
    pub body: UpstreamBody,
    pub parser: SseParser,
    pub translator: Box<dyn StreamTranslator>,
    /// Items already read while peeking (at least one chunk, unless the stream is done).
    pub first: Vec<StreamItem>,
    pub ttft: Duration,
}

pub enum Answer {
    Json(Completion),
    Stream(OpenStream),
}

/// A successful attempt: which candidate answered, and how.
pub struct Served {
    pub candidate: Candidate,
    pub upstream_request_id: Option<String>,
    pub started: Instant,
    pub answer: Answer,
}

enum Failure {
    /// The upstream did not answer in time.
    Timeout(String),
    /// Any other failure of the upstream; try the next one.
    Upstream(String),
    /// The upstream rejected the request itself (400/404/413/422): the client's to fix.
    Client(u16, String),
}

/// Tries each candidate in turn. Every attempt is reported to its ProviderActor.
pub async fn run(
    client: &awc::Client,
    candidates: Vec<Candidate>,
    req: &ChatRequest,
    stream: bool,
) -> Result<Served, ApiError> {
    let mut reasons = Vec::new();
    let mut last_timed_out = false;
    for candidate in candidates {
        if candidate.probe && !matches!(candidate.actor.send(Pick).await, Ok(Some(_))) {
            continue; // another request holds the probe
        }
        let started = Instant::now();
        let call = match providers::build_call(&candidate.provider, &candidate.model, req, stream) {
            Ok(c) => c,
            Err(e) => {
                reasons.push(format!("{}: {e}", candidate.provider.name));
                last_timed_out = false;
                continue;
            }
        };
        match attempt(client, &candidate, call, stream).await {
            Ok((upstream_request_id, answer)) => {
                if let Answer::Json(_) = answer {
                    candidate.actor.do_send(Observe {
                        latency: started.elapsed(),
                        ttft: None,
                        outcome: Outcome::Success,
                    });
                }
                return Ok(Served {
                    candidate,
                    upstream_request_id,
                    started,
                    answer,
                });
            }
            Err(failure) => {
                let (outcome, reason) = match failure {
                    Failure::Client(status, msg) => {
                        // The upstream is healthy; the request is not. Tell the client.
                        candidate.actor.do_send(observe(started, Outcome::Success));
                        return Err(ApiError::BadRequest {
                            message: format!(
                                "{} rejected the request (HTTP {status}): {msg}",
                                candidate.provider.name
                            ),
                            param: None,
                            code: "upstream_rejected",
                        });
                    }
                    Failure::Timeout(r) => {
                        last_timed_out = true;
                        (Outcome::Failure, r)
                    }
                    Failure::Upstream(r) => {
                        last_timed_out = false;
                        (Outcome::Failure, r)
                    }
                };
                log::warn!("provider {} failed: {reason}", candidate.provider.name);
                candidate.actor.do_send(observe(started, outcome));
                reasons.push(format!("{}: {reason}", candidate.provider.name));
            }
        }
    }
    let message = format!("Every eligible upstream failed. {}", reasons.join("; "));
    if last_timed_out {
        Err(ApiError::UpstreamTimeout(message))
    } else {
        Err(ApiError::UpstreamFailed(message))
    }
}

fn observe(started: Instant, outcome: Outcome) -> Observe {
    Observe {
        latency: started.elapsed(),
        ttft: None,
        outcome,
    }
}

async fn attempt(
    client: &awc::Client,
    candidate: &Candidate,
    call: providers::UpstreamCall,
    stream: bool,
) -> Result<(Option<String>, Answer), Failure> {
    let spec = &candidate.provider;
    let deadline = Instant::now() + spec.timeout;
    let mut request = client
        .post(&call.url)
        .timeout(spec.timeout)
        .insert_header(("content-type", "application/json"));
    for (name, value) in &call.headers {
        request = request.insert_header((*name, value.as_str()));
    }
    let mut resp = request.send_body(call.body).await.map_err(|e| match e {
        SendRequestError::Timeout => {
            Failure::Timeout(format!("no response within {:?}", spec.timeout))
        }
        other => Failure::Upstream(format!("request failed: {other}")),
    })?;
    let request_id = providers::request_id_header(spec.dialect)
        .and_then(|h| resp.headers().get(h))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let status = resp.status();
    if !status.is_success() {
        let body = resp.body().limit(64 * 1024).await.unwrap_or_default();
        let msg = providers::error_message(&body);
        return Err(classify(status, msg));
    }
    if !stream {
        let left = deadline.saturating_duration_since(Instant::now());
        let body = match tokio::time::timeout(left, resp.body().limit(MAX_UPSTREAM_BODY)).await {
            Err(_) => {
                return Err(Failure::Timeout(format!(
                    "answer not complete within {:?}",
                    spec.timeout
                )))
            }
            Ok(Err(e)) => return Err(Failure::Upstream(format!("reading answer: {e}"))),
            Ok(Ok(b)) => b,
        };
        let completion = providers::parse_completion(spec.dialect, body, &candidate.model)
            .map_err(Failure::Upstream)?;
        return Ok((request_id, Answer::Json(completion)));
    }
    let started = Instant::now();
    let body: UpstreamBody = Box::pin(resp.map(|r| r.map_err(|e| e.to_string())));
    let open = peek(body, spec.dialect, &candidate.model, deadline, started).await?;
    Ok((request_id, Answer::Stream(open)))
}

fn classify(status: StatusCode, msg: String) -> Failure {
    match status.as_u16() {
        400 | 404 | 413 | 422 => Failure::Client(status.as_u16(), msg),
        408 | 504 => Failure::Timeout(format!("HTTP {status}: {msg}")),
        _ => Failure::Upstream(format!("HTTP {}: {msg}", status.as_u16())),
    }
}

/// Reads until the first content chunk (or the end) so a failure can still fall back.
async fn peek(
    mut body: UpstreamBody,
    dialect: providers::Dialect,
    model: &str,
    deadline: Instant,
    started: Instant,
) -> Result<OpenStream, Failure> {
    let mut parser = SseParser::default();
    let mut translator = providers::translator(dialect, model);
    let mut first = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = tokio::time::timeout(left, body.next())
            .await
            .map_err(|_| Failure::Timeout("no stream data before the timeout".into()))?;
        let events = match next {
            Some(Ok(bytes)) => parser.feed(&bytes),
            Some(Err(e)) => {
                return Err(Failure::Upstream(format!(
                    "stream broke before its first chunk: {e}"
                )))
            }
            None => match parser.finish() {
                Some(ev) => vec![ev],
                None => {
                    return Err(Failure::Upstream(
                        "stream ended before its first chunk".into(),
                    ))
                }
            },
        };
        for ev in &events {
            let items = translator.on_event(ev).map_err(Failure::Upstream)?;
            for item in items {
                if let StreamItem::Error(e) = &item {
                    let msg = e
                        .get("message")
                        .and_then(|m| m.as_str())
                        .unwrap_or("error event");
                    return Err(Failure::Upstream(format!(
                        "stream error before first chunk: {msg}"
                    )));
                }
                first.push(item);
            }
        }
        let ready = first
            .iter()
            .any(|i| matches!(i, StreamItem::Chunk(_) | StreamItem::Done));
        if ready {
            return Ok(OpenStream {
                body,
                parser,
                translator,
                first,
                ttft: started.elapsed(),
            });
        }
    }
}
