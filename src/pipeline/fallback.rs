//! Call with fallback: try the planned candidates in order until one answers. A stream is
//! peeked at (by the transport) before the response is committed, so an upstream that fails
//! before its first byte (status, reset, timeout, malformed or error-only stream) still falls
//! back to the next candidate. Every attempt is reported to its ProviderActor.

use std::time::Instant;

use crate::actors::provider::{Observe, Outcome, Pick};
use crate::api::ChatRequest;
use crate::error::ApiError;
use crate::providers::transport::{self, Answer, Failure};
use crate::providers::{adapter, NativeBody};
use crate::routing::Candidate;

/// A successful attempt: which candidate answered, and how.
pub struct Served {
    pub candidate: Candidate,
    pub upstream_request_id: Option<String>,
    pub answer: Answer,
}

pub async fn run(
    client: &awc::Client,
    candidates: Vec<Candidate>,
    req: &ChatRequest,
    native: Option<&NativeBody>,
    stream: bool,
) -> Result<Served, ApiError> {
    let mut reasons = Vec::new();
    let mut last_timed_out = false;
    let mut failed_before = false;
    for candidate in candidates {
        if candidate.probe && !matches!(candidate.actor.send(Pick).await, Ok(Some(_))) {
            continue; // another request holds the probe
        }
        let started = Instant::now();
        let spec = &candidate.provider;
        let adapter = adapter(spec.dialect);
        // The client's own protocol goes through natively to an upstream that speaks it.
        let call = match native.filter(|n| spec.takes_native(n)) {
            Some(n) => adapter.build_native(spec, &candidate.model, n, stream),
            None => adapter.build(spec, &candidate.model, req, stream),
        };
        let call = match call {
            Ok(c) => c,
            Err(e) => {
                reasons.push(format!("{}: {e}", spec.name));
                last_timed_out = false;
                failed_before = true;
                continue;
            }
        };
        crate::metrics::attempt(&spec.name);
        let failure = match transport::send(client, spec, &candidate.model, call, stream).await {
            Ok((upstream_request_id, answer)) => {
                if let Answer::Json(_) = answer {
                    candidate.actor.do_send(observe(started, Outcome::Success));
                }
                if failed_before {
                    crate::metrics::fallback(&spec.name);
                }
                return Ok(Served {
                    candidate,
                    upstream_request_id,
                    answer,
                });
            }
            Err(f) => f,
        };
        crate::metrics::failure(&spec.name, failure.kind());
        failed_before = true;
        let reason = match failure {
            Failure::Client(status, msg) => {
                // The upstream is healthy; the request is not. Tell the client.
                candidate.actor.do_send(observe(started, Outcome::Success));
                return Err(ApiError::BadRequest {
                    message: format!("{} rejected the request (HTTP {status}): {msg}", spec.name),
                    param: None,
                    code: "upstream_rejected",
                });
            }
            Failure::Timeout(r) => {
                last_timed_out = true;
                r
            }
            Failure::Upstream(r) => {
                last_timed_out = false;
                r
            }
        };
        log::warn!("provider {} failed: {reason}", spec.name);
        candidate.actor.do_send(observe(started, Outcome::Failure));
        reasons.push(format!("{}: {reason}", spec.name));
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
