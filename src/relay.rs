//! The way back to the client: OpenAI JSON for a non-stream answer, or an SSE stream of
//! `data:` lines ending in `data: [DONE]`. Either way the usage row is committed (group
//! commit) before the final byte leaves, and the ProviderActor learns the outcome.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use actix_web_lab::sse;
use serde_json::{json, Value};

use crate::actors::budget::Settle;
use crate::actors::budgets::Ticket;
use crate::actors::provider::{Observe, Outcome, ProviderActor};
use crate::api::Usage;
use crate::db::models::usage::UsageRow;
use crate::providers::{ProviderSpec, StreamItem};
use crate::routing::fallback::OpenStream;

/// Everything about one chat request that ends up in headers and its usage row.
#[derive(Clone)]
pub struct Meta {
    pub request_id: String,
    pub key_id: String,
    pub client_request_id: Option<String>,
    pub upstream_request_id: Option<String>,
    pub provider: Arc<ProviderSpec>,
    pub model: String,
    pub started: Instant,
    pub stream: bool,
    pub include_usage: bool,
    /// Prompt tokens estimated from the request, for when the upstream reports none.
    pub prompt_estimate: u64,
    /// The premium tier's default model, whose price is the savings baseline.
    pub premium: Option<Arc<ProviderSpec>>,
}

impl Meta {
    pub fn row(&self, usage: &Usage, status: &str, ttft: Option<Duration>) -> UsageRow {
        UsageRow {
            id: self.request_id.clone(),
            key_id: self.key_id.clone(),
            provider: self.provider.name.clone(),
            model: self.model.clone(),
            tier: self.provider.tier.as_str().to_owned(),
            prompt_tokens: usage.prompt_tokens as i64,
            completion_tokens: usage.completion_tokens as i64,
            cost_micros: self.provider.cost(usage).get(),
            latency_ms: self.started.elapsed().as_millis() as i64,
            ttft_ms: ttft.map(|t| t.as_millis() as i64),
            status: status.to_owned(),
            stream: self.stream,
            upstream_request_id: self.upstream_request_id.clone(),
            client_request_id: self.client_request_id.clone(),
            created_at: crate::time::now(),
            premium_cost_micros: self.premium_cost(usage),
        }
    }

    /// What `usage` would cost at the premium baseline (the actual cost when there is none).
    pub fn premium_cost(&self, usage: &Usage) -> i64 {
        self.premium
            .as_ref()
            .map_or_else(|| self.provider.cost(usage).get(), |p| p.cost(usage).get())
    }

    fn x_pura(&self, cost_micros: i64, premium_micros: i64) -> Value {
        json!({
            "costUsd": cost_micros as f64 / 1_000_000.0,
            "savingsUsd": (premium_micros - cost_micros) as f64 / 1_000_000.0,
            "provider": self.provider.name,
            "model": self.model,
            "tier": self.provider.tier.as_str(),
        })
    }
}

/// USD as a decimal string from micro-dollars (`X-Pura-Cost`, `X-Pura-Budget-Remaining`).
pub fn usd(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    format!("{sign}{}.{:06}", m / 1_000_000, m % 1_000_000)
}

/// Rough token count of text when an upstream reports none (about four bytes a token).
pub fn estimate_tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

/// The SSE relay over an open upstream stream.
pub struct Relay {
    meta: Meta,
    ticket: Ticket,
    actor: Addr<ProviderActor>,
    upstream: OpenStream,
    out: VecDeque<String>,
    held_finish: Vec<Value>,
    usage: Option<Usage>,
    streamed_chars: usize,
    saw_finish: bool,
    /// Set once the usage row is written; `Drop` records an abandoned stream otherwise.
    settled: bool,
}

impl Relay {
    pub fn new(
        meta: Meta,
        ticket: Ticket,
        actor: Addr<ProviderActor>,
        mut upstream: OpenStream,
    ) -> Relay {
        let first = std::mem::take(&mut upstream.first);
        let mut relay = Relay {
            meta,
            ticket,
            actor,
            upstream,
            out: VecDeque::new(),
            held_finish: Vec::new(),
            usage: None,
            streamed_chars: 0,
            saw_finish: false,
            settled: false,
        };
        for item in first {
            relay.take(item);
        }
        relay
    }

    /// The SSE stream to hand to actix-web-lab.
    pub fn into_stream(
        self,
    ) -> impl futures_util::Stream<Item = Result<sse::Event, std::convert::Infallible>> {
        futures_util::stream::unfold(self, |mut relay| async move {
            let line = relay.next_line().await?;
            Some((Ok(sse::Event::Data(sse::Data::new(line))), relay))
        })
    }

    async fn next_line(&mut self) -> Option<String> {
        loop {
            if let Some(line) = self.out.pop_front() {
                return Some(line);
            }
            if self.settled {
                return None;
            }
            self.pump().await;
        }
    }

    /// Reads the next piece of the upstream stream and queues what it produces.
    async fn pump(&mut self) {
        use futures_util::StreamExt;
        let idle = self.meta.provider.timeout;
        let next = tokio::time::timeout(idle, self.upstream.body.next()).await;
        let events = match next {
            Err(_) => {
                return self
                    .finish(Some("upstream stream stalled past its timeout".into()))
                    .await
            }
            Ok(Some(Err(e))) => {
                return self
                    .finish(Some(format!("upstream connection broke: {e}")))
                    .await
            }
            Ok(Some(Ok(bytes))) => self.upstream.parser.feed(&bytes),
            Ok(None) => {
                let last = self.upstream.parser.finish();
                if let Some(ev) = last {
                    self.translate(&ev).await;
                    if self.settled {
                        return;
                    }
                }
                let err = (!self.saw_finish)
                    .then(|| "upstream stream ended before it finished".to_owned());
                return self.finish(err).await;
            }
        };
        for ev in events {
            self.translate(&ev).await;
            if self.settled {
                return;
            }
        }
    }

    async fn translate(&mut self, ev: &crate::providers::sse::SseEvent) {
        match self.upstream.translator.on_event(ev) {
            Ok(items) => {
                for item in items {
                    if let Some(err) = self.take(item) {
                        return self.finish(err).await;
                    }
                }
            }
            Err(e) => {
                self.finish(Some(format!("malformed upstream stream: {e}")))
                    .await
            }
        }
    }

    /// Queues one item. Returns `Some(outcome)` when the item ends the stream.
    fn take(&mut self, item: StreamItem) -> Option<Option<String>> {
        match item {
            StreamItem::Chunk(chunk) => {
                let finishing = chunk
                    .pointer("/choices/0/finish_reason")
                    .is_some_and(|f| !f.is_null());
                self.streamed_chars += delta_chars(&chunk);
                if finishing {
                    // Held back until the stream ends, when the final cost is known.
                    self.saw_finish = true;
                    self.held_finish.push(chunk);
                } else {
                    self.out.push_back(chunk.to_string());
                }
                None
            }
            StreamItem::Usage(u) => {
                self.usage = Some(u);
                None
            }
            StreamItem::Error(e) => {
                let msg = e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("upstream error")
                    .to_owned();
                Some(Some(msg))
            }
            StreamItem::Done => Some(None),
        }
    }

    fn final_usage(&self) -> Usage {
        self.usage.unwrap_or_else(|| {
            Usage::new(
                self.meta.prompt_estimate,
                estimate_tokens(self.streamed_chars),
            )
        })
    }

    /// Ends the stream: finish chunks with `x_pura`, the usage chunk when asked for, the error
    /// line when the upstream failed, the committed usage row, then `[DONE]`.
    async fn finish(&mut self, error: Option<String>) {
        if self.settled {
            return;
        }
        let usage = self.final_usage();
        let cost = self.meta.provider.cost(&usage).get();
        let x_pura = self.meta.x_pura(cost, self.meta.premium_cost(&usage));
        let template = self.held_finish.first().cloned();
        for mut chunk in std::mem::take(&mut self.held_finish) {
            chunk["x_pura"] = x_pura.clone();
            self.out.push_back(chunk.to_string());
        }
        if self.meta.include_usage && error.is_none() {
            let mut chunk = template.unwrap_or_else(|| json!({"object": "chat.completion.chunk"}));
            chunk["choices"] = json!([]);
            chunk["usage"] = json!(usage);
            chunk["x_pura"] = x_pura;
            self.out.push_back(chunk.to_string());
        }
        let status = match &error {
            Some(msg) => {
                let body = json!({"error": {"message": msg, "type": "upstream_error", "param": null, "code": "upstream_failed"}});
                self.out.push_back(body.to_string());
                "upstream_error"
            }
            None => "ok",
        };
        let row = self.meta.row(&usage, status, Some(self.upstream.ttft));
        self.settled = true;
        if !settle(&self.ticket, row).await {
            log::error!("request {}: usage row not committed", self.meta.request_id);
        }
        self.actor.do_send(Observe {
            latency: self.meta.started.elapsed(),
            ttft: Some(self.upstream.ttft),
            outcome: if error.is_some() {
                Outcome::Failure
            } else {
                Outcome::Success
            },
        });
        self.out.push_back("[DONE]".to_owned());
    }
}

impl Drop for Relay {
    /// The client went away mid-stream: dropping the relay drops the upstream response (which
    /// closes that connection) and bills what was streamed so far.
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let usage = self.final_usage();
        self.ticket.actor.do_send(Settle {
            reservation: self.ticket.reservation.id,
            row: self
                .meta
                .row(&usage, "client_closed", Some(self.upstream.ttft)),
        });
        self.actor.do_send(Observe {
            latency: self.meta.started.elapsed(),
            ttft: Some(self.upstream.ttft),
            outcome: Outcome::Success,
        });
    }
}

/// Settles the reservation with the served request's row and waits until it is committed.
/// Returns false when the commit failed (logged by the writer).
pub async fn settle(ticket: &Ticket, row: UsageRow) -> bool {
    let msg = Settle {
        reservation: ticket.reservation.id,
        row,
    };
    match ticket.actor.send(msg).await {
        Ok(settled) => settled.committed.await.unwrap_or(false),
        Err(_) => false,
    }
}

/// Characters of content and tool arguments in a chunk, for estimating unreported usage.
fn delta_chars(chunk: &Value) -> usize {
    let Some(choices) = chunk.get("choices").and_then(Value::as_array) else {
        return 0;
    };
    choices
        .iter()
        .filter_map(|c| c.get("delta"))
        .map(|d| {
            let content = d.get("content").and_then(Value::as_str).map_or(0, str::len);
            let args: usize = d
                .get("tool_calls")
                .and_then(Value::as_array)
                .map_or(0, |calls| {
                    calls
                        .iter()
                        .filter_map(|c| c.pointer("/function/arguments").and_then(Value::as_str))
                        .map(str::len)
                        .sum()
                });
            content + args
        })
        .sum()
}
