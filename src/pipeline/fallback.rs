//! Call with fallback: try the planned candidates in order until one answers. A stream is
//! peeked at (by the transport) before the response is committed, so an upstream that fails
//! before its first byte (status, 429, reset, timeout, malformed or error-only stream) still
//! falls back to the next candidate. Every attempt is reported to its ProviderActor. What the
//! client gets when none serves follows whose fault it is: an upstream's 400/413/422 at once
//! (a 400 with its message, no fallback, no circuit penalty), 429 when every upstream called
//! was rate limited, an adapter's refusal (400) when no upstream could be called, else 502/504.

use std::time::Instant;

use crate::actors::provider::{self, Observe, Outcome, Pick};
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

/// Seconds a client is told to wait when every upstream said 429 without saying how long.
const DEFAULT_RETRY_AFTER_SECS: u64 = 5;
/// The longest wait passed on: OpenAI's 1.x SDKs ignore a longer `Retry-After` (and give up),
/// Anthropic's 2.x would sleep however long it says (an upstream's daily quota, say).
const MAX_RETRY_AFTER_SECS: u64 = 60;

pub async fn run(
    client: &awc::Client,
    candidates: Vec<Candidate>,
    req: &ChatRequest,
    native: Option<&NativeBody>,
    stream: bool,
    trace: Option<&crate::telemetry::Trace>,
) -> Result<Served, ApiError> {
    let mut failed = Failed::default();
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
                // Another dialect may express what this one cannot: try the next candidate.
                failed.refused(&spec.name, e);
                continue;
            }
        };
        crate::metrics::attempt(&spec.name);
        let attempt_started = trace.map(|_| std::time::SystemTime::now());
        let sent = transport::send(client, spec, &candidate.model, call, stream).await;
        if let (Some(t), Some(s)) = (trace, attempt_started) {
            let mut attributes = super::meta::upstream_attributes(&spec.name, &candidate.model);
            let outcome = sent.as_ref().map_or_else(|f| f.kind(), |_| "ok");
            attributes.push(("pura.outcome", outcome.to_owned()));
            t.child("pura.upstream_attempt", s, attributes);
        }
        let failure = match sent {
            Ok((upstream_request_id, answer)) => {
                if let Answer::Json(_) = answer {
                    provider::observe(
                        &candidate.actor,
                        observe(started, Outcome::Success),
                        candidate.probe,
                    );
                }
                if failed.any() {
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
        if let Failure::Client(status, msg) = failure {
            // The upstream is healthy (no circuit penalty); the request is not, and would be
            // refused by the next upstream too. Tell the client.
            provider::observe(
                &candidate.actor,
                observe(started, Outcome::Success),
                candidate.probe,
            );
            return Err(ApiError::BadRequest {
                message: format!("{} rejected the request (HTTP {status}): {msg}", spec.name),
                param: None,
                code: "upstream_rejected",
            });
        }
        provider::observe(
            &candidate.actor,
            observe(started, Outcome::Failure),
            candidate.probe,
        );
        failed.called(&spec.name, failure);
    }
    Err(failed.into_error())
}

/// The attempts that did not serve, which decide the answer when none did.
#[derive(Default)]
struct Failed {
    reasons: Vec<String>,
    /// The first adapter's refusal of a request it cannot express (its own 400).
    refusal: Option<ApiError>,
    /// Upstreams called that failed.
    called: usize,
    /// The `Retry-After` of each 429 among them (`None`: it gave none).
    rate_limited: Vec<Option<u64>>,
    last_timed_out: bool,
}

impl Failed {
    fn any(&self) -> bool {
        !self.reasons.is_empty()
    }

    fn refused(&mut self, provider: &str, e: ApiError) {
        self.reasons.push(format!("{provider}: {e}"));
        self.last_timed_out = false;
        if matches!(e, ApiError::BadRequest { .. }) && self.refusal.is_none() {
            self.refusal = Some(e);
        }
    }

    fn called(&mut self, provider: &str, failure: Failure) {
        self.called += 1;
        let reason = match failure {
            Failure::Timeout(r) => {
                self.last_timed_out = true;
                r
            }
            Failure::RateLimited {
                retry_after,
                message,
            } => {
                self.rate_limited.push(retry_after);
                self.last_timed_out = false;
                message
            }
            Failure::Upstream(r) | Failure::Client(_, r) => {
                self.last_timed_out = false;
                r
            }
        };
        log::warn!("provider {provider} failed: {reason}");
        self.reasons.push(format!("{provider}: {reason}"));
    }

    /// Every upstream called said 429: the client may retry after the soonest wait any gave.
    /// No upstream called because every adapter refused: the refusal (a 400). Otherwise 502,
    /// or 504 when the last one timed out.
    fn into_error(self) -> ApiError {
        let reasons = self.reasons.join("; ");
        if self.called > 0 && self.rate_limited.len() == self.called {
            let secs = (self.rate_limited.iter().flatten().min().copied())
                .unwrap_or(DEFAULT_RETRY_AFTER_SECS)
                .clamp(1, MAX_RETRY_AFTER_SECS);
            return ApiError::RateLimited {
                message: format!(
                    "Every eligible upstream is rate limited; retry after {secs} s. {reasons}"
                ),
                retry_after_secs: secs,
                limit: None,
            };
        }
        if let (0, Some(refusal)) = (self.called, self.refusal) {
            return refusal;
        }
        let message = format!("Every eligible upstream failed. {reasons}");
        if self.last_timed_out {
            ApiError::UpstreamTimeout(message)
        } else {
            ApiError::UpstreamFailed(message)
        }
    }
}

fn observe(started: Instant, outcome: Outcome) -> Observe {
    Observe {
        latency: started.elapsed(),
        ttft: None,
        outcome,
    }
}
