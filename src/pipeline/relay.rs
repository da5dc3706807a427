//! The relay over an open upstream stream: it turns upstream bytes into canonical events
//! (OpenAI chunks, then one [`End`]), and settles the request before handing out the `End`,
//! so the usage row is committed before the final byte leaves whatever the client protocol.
//! A client that goes away drops the relay, which closes the upstream connection and bills
//! what was streamed (`Drop`). When the shutdown grace is over ([`CutSignal`]), a live relay
//! ends the same way an upstream failure does: settled, then an `End` carrying the error.

use std::collections::VecDeque;
use std::pin::pin;

use actix::Addr;
use futures_util::future::{self, Either};
use futures_util::StreamExt;
use serde_json::Value;

use super::meta::{Meta, XPura};
use crate::actors::budgets::Ticket;
use crate::actors::provider::{self, Observe, Outcome, ProviderActor};
use crate::api::Usage;
use crate::db::models::usage::UsageRow;
use crate::db::usage_writer;
use crate::error::ApiError;
use crate::money::{estimate_tokens, Micros};
use crate::providers::sse::SseEvent;
use crate::providers::transport::{self, OpenStream};
use crate::providers::{RawChunk, StreamItem};
use crate::shutdown::CutSignal;

/// One canonical stream event.
pub enum Event {
    /// An OpenAI `chat.completion.chunk` with at least one choice.
    Chunk(Value),
    /// An event of a native stream (the client's own protocol), to relay as it came.
    Native(SseEvent),
    /// An OpenAI chunk as the upstream wrote it (see [`RawChunk`]).
    Raw(RawChunk),
    /// The stream is over and settled.
    End(End),
}

/// Why a stream ended before the upstream finished it.
enum Cut {
    Upstream(String),
    Shutdown,
    /// The stream finished but its settlement could not be committed in time.
    Unrecorded,
}

impl Cut {
    fn upstream(message: impl Into<String>) -> Option<Cut> {
        Some(Cut::Upstream(message.into()))
    }
}

/// How a stream ended, with its final money.
pub struct End {
    pub usage: Usage,
    pub cost: Micros,
    /// Set when the stream is cut short after the first byte: the upstream failed
    /// (`UpstreamFailed`) or the gateway is shutting down (`Unavailable`).
    pub error: Option<ApiError>,
    pub x_pura: XPura,
}

pub struct Relay {
    meta: Meta,
    ticket: Ticket,
    actor: Addr<ProviderActor>,
    /// The stream is a half-open circuit's probe: its result goes to the actor at once.
    probe: bool,
    upstream: OpenStream,
    /// Items read while peeking, still to be handed out.
    backlog: VecDeque<StreamItem>,
    chunks: VecDeque<Event>,
    end: Option<End>,
    usage: Option<Usage>,
    streamed_chars: usize,
    saw_finish: bool,
    /// Set once the usage row is written; `Drop` records an abandoned stream otherwise.
    settled: bool,
    /// Resolves when the shutdown grace is over: the stream ends then.
    cut: CutSignal,
    /// Keeps the active-streams gauge up while the relay lives.
    _active: crate::metrics::ActiveStream,
}

impl Relay {
    pub fn new(
        meta: Meta,
        ticket: Ticket,
        (actor, probe): (Addr<ProviderActor>, bool),
        mut upstream: OpenStream,
        cut: CutSignal,
    ) -> Relay {
        let backlog = std::mem::take(&mut upstream.first).into();
        Relay {
            meta,
            ticket,
            actor,
            probe,
            upstream,
            backlog,
            chunks: VecDeque::new(),
            end: None,
            usage: None,
            streamed_chars: 0,
            saw_finish: false,
            settled: false,
            cut,
            _active: crate::metrics::ActiveStream::start(),
        }
    }

    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The next canonical event; `None` after the `End`.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(ev) = self.chunks.pop_front() {
                return Some(ev);
            }
            if let Some(end) = self.end.take() {
                return Some(Event::End(end));
            }
            if self.settled {
                return None;
            }
            if let Some(item) = self.backlog.pop_front() {
                if let Some(outcome) = self.take(item) {
                    self.finish(outcome).await;
                }
                continue;
            }
            self.pump().await;
        }
    }

    /// Reads the next piece of the upstream stream and queues what it produces, unless the
    /// shutdown grace ends first.
    async fn pump(&mut self) {
        let idle = self.meta.provider.timeout;
        let raced = {
            let read = pin!(tokio::time::timeout(idle, self.upstream.body.next()));
            match future::select(read, pin!(self.cut.cut())).await {
                Either::Left((next, _)) => Some(next),
                Either::Right(_) => None,
            }
        };
        let Some(next) = raced else {
            return self.finish(Some(Cut::Shutdown)).await;
        };
        let events = match next {
            Err(_) => {
                return self
                    .finish(Cut::upstream("upstream stream stalled past its timeout"))
                    .await
            }
            Ok(Some(Err(e))) => {
                return self
                    .finish(Cut::upstream(format!("upstream connection broke: {e}")))
                    .await
            }
            Ok(Some(Ok(bytes))) => self.upstream.parser.feed(&bytes),
            Ok(None) => {
                // Ended: awc's body must not be polled again (see `finish`).
                self.upstream.body = transport::ended();
                if let Some(ev) = self.upstream.parser.finish() {
                    self.translate(ev).await;
                    if self.settled {
                        return;
                    }
                }
                let cut = (!self.saw_finish)
                    .then(|| Cut::Upstream("upstream stream ended before it finished".into()));
                return self.finish(cut).await;
            }
        };
        for ev in events {
            self.translate(ev).await;
            if self.settled {
                return;
            }
        }
    }

    async fn translate(&mut self, ev: SseEvent) {
        match self.upstream.translator.take_event(ev) {
            Ok(items) => {
                for item in items {
                    if let Some(outcome) = self.take(item) {
                        return self.finish(outcome).await;
                    }
                }
            }
            Err(e) => {
                self.finish(Cut::upstream(format!("malformed upstream stream: {e}")))
                    .await
            }
        }
    }

    /// Queues one item. Returns `Some(how it ended)` when the item ends the stream.
    /// A native stream's terminal event comes with `Done` in the same batch, so it is queued
    /// here and handed out after the settlement that `Done` triggers.
    fn take(&mut self, item: StreamItem) -> Option<Option<Cut>> {
        match item {
            StreamItem::Chunk(chunk) => {
                self.saw_finish |= crate::api::chat::chunk_finishes(&chunk);
                self.streamed_chars += delta_chars(&chunk);
                self.chunks.push_back(Event::Chunk(chunk));
                None
            }
            StreamItem::Raw(raw) => {
                self.saw_finish |= raw.finishing;
                self.streamed_chars += raw.text_chars;
                self.chunks.push_back(Event::Raw(raw));
                None
            }
            StreamItem::Native { event, text_chars } => {
                self.streamed_chars += text_chars;
                self.chunks.push_back(Event::Native(event));
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
                    .unwrap_or("upstream error");
                Some(Cut::upstream(msg))
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

    /// Ends the stream: commits the usage row, tells the ProviderActor, queues the `End`.
    async fn finish(&mut self, cut: Option<Cut>) {
        if self.settled {
            return;
        }
        if cut.is_none() {
            // The upstream said its last event: what follows is the body's end, read so that
            // the connection goes back to the pool instead of being closed.
            transport::release(std::mem::replace(
                &mut self.upstream.body,
                transport::ended(),
            ));
        }
        let usage = self.final_usage();
        let cost = self.meta.provider.cost(&usage);
        let x_pura = self.meta.x_pura(cost, self.meta.premium_cost(&usage));
        let status = match cut {
            None => "ok",
            Some(Cut::Upstream(_)) => "upstream_error",
            Some(Cut::Shutdown) => "shutdown",
            Some(Cut::Unrecorded) => "ok",
        };
        // The upstream is to blame only for its own failures, not for the gateway stopping.
        let failed = matches!(cut, Some(Cut::Upstream(_)));
        let row = self.meta.row(&usage, status, Some(self.upstream.ttft));
        self.settled = true;
        let settling = self.meta.trace.map(|_| std::time::SystemTime::now());
        let recorded = settle(&self.ticket, row, false).await == usage_writer::Outcome::Committed;
        if !recorded {
            log::error!(
                "request {}: usage row not committed yet (database away, or shutting down); held for retry",
                self.meta.request_id
            );
        }
        if let (Some(t), Some(s)) = (&self.meta.trace, settling) {
            t.child(
                "pura.settlement",
                s,
                vec![("pura.cost_usd", cost.usd().to_string())],
            );
        }
        self.meta.observe(&usage, cost, Some(self.upstream.ttft));
        if failed {
            crate::metrics::failure(&self.meta.provider.name, "midstream");
        }
        provider::observe(
            &self.actor,
            Observe {
                latency: self.meta.started.elapsed(),
                ttft: Some(self.upstream.ttft),
                outcome: if failed {
                    Outcome::Failure
                } else {
                    Outcome::Success
                },
            },
            self.probe,
        );
        // The text is out, but its bill is not on disk: the stream does not end as a success.
        let cut = match cut {
            None if !recorded => Some(Cut::Unrecorded),
            cut => cut,
        };
        let error = cut.map(|c| match c {
            Cut::Upstream(message) => ApiError::UpstreamFailed(message),
            Cut::Shutdown => ApiError::Unavailable(
                "The gateway is shutting down and ended this stream after its grace period; \
                 what was streamed is billed. Retry the request."
                    .into(),
            ),
            Cut::Unrecorded => ApiError::Unavailable(
                "The database is unavailable: this stream's usage could not be recorded yet. \
                 It is kept and recorded when the database returns."
                    .into(),
            ),
        });
        self.end = Some(End {
            usage,
            cost,
            error,
            x_pura,
        });
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
        let cost = self.meta.provider.cost(&usage);
        self.meta.observe(&usage, cost, Some(self.upstream.ttft));
        let row = self
            .meta
            .row(&usage, "client_closed", Some(self.upstream.ttft));
        self.ticket.actor.do_send(self.ticket.settle(row, true));
        self.actor.do_send(Observe {
            latency: self.meta.started.elapsed(),
            ttft: Some(self.upstream.ttft),
            outcome: Outcome::Success,
        });
    }
}

/// Settles the reservation with the served request's row and waits for its commit. When the
/// database is away, an answer not yet sent (`withdraw`) takes the settlement back, and the
/// account's actor gives back the money it took; a stream leaves it to the writer, which holds
/// it until the database returns (see [`usage_writer::Pending::wait`]).
pub async fn settle(ticket: &Ticket, row: UsageRow, withdraw: bool) -> usage_writer::Outcome {
    let Ok(Some(settled)) = ticket.actor.send(ticket.settle(row, !withdraw)).await else {
        // The actor was gone (shutdown): an answer not yet given is withdrawn with nothing
        // queued; a stream's settlement was adopted by another actor and commits later.
        return if withdraw {
            usage_writer::Outcome::Withdrawn
        } else {
            usage_writer::Outcome::Held
        };
    };
    let outcome = settled.committed.wait(withdraw).await;
    if outcome == usage_writer::Outcome::Withdrawn {
        ticket.actor.do_send(settled.undo);
    }
    outcome
}

/// Characters of content and tool arguments in a chunk, for estimating unreported usage.
fn delta_chars(chunk: &Value) -> usize {
    let Some(choices) = chunk.get("choices").and_then(Value::as_array) else {
        return 0;
    };
    let args = |d: &Value| -> usize {
        d.get("tool_calls")
            .and_then(Value::as_array)
            .map_or(0, |calls| {
                calls
                    .iter()
                    .filter_map(|c| {
                        c.get("function")
                            .and_then(|f| f.get("arguments"))
                            .and_then(Value::as_str)
                    })
                    .map(str::len)
                    .sum()
            })
    };
    choices
        .iter()
        .filter_map(|c| c.get("delta"))
        .map(|d| d.get("content").and_then(Value::as_str).map_or(0, str::len) + args(d))
        .sum()
}
