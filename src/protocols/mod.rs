//! Client protocol front ends. Each one only translates: it decodes its wire request into the
//! pipeline's canonical [`Inbound`](crate::pipeline::Inbound) and encodes the canonical
//! completion or stream events back into its own wire format. A new client protocol is one
//! file here (plus its routes); the pipeline never learns about wire formats.

pub mod chat;
pub mod frame;
pub mod messages;
pub mod responses;

use std::convert::Infallible;

use actix_web::HttpRequest;
use bytes::Bytes;
use serde_json::Value;

pub use frame::Frame;

use crate::pipeline::relay::{End, Event, Relay};
use crate::pipeline::Hints;
use crate::providers::sse::SseEvent;
use crate::providers::RawChunk;

/// Turns canonical stream events into one protocol's SSE events.
pub trait Encoder: 'static {
    /// One OpenAI chunk from the relay.
    fn chunk(&mut self, chunk: Value, out: &mut Vec<Frame>);
    /// The settled end of the stream: the protocol's closing events.
    fn end(&mut self, end: End, out: &mut Vec<Frame>);
    /// Async work between the end's events being made and sent (storing a response).
    fn after_end(&mut self) -> Option<futures_util::future::LocalBoxFuture<'static, ()>> {
        None
    }
    /// An OpenAI chunk as the upstream wrote it: a protocol that rewrites chunks reads it as
    /// one.
    fn raw(&mut self, raw: RawChunk, out: &mut Vec<Frame>) {
        if let Some(chunk) = raw.into_value() {
            self.chunk(chunk, out);
        }
    }
    /// An event of a native stream: relayed as it came (only protocols that have one).
    fn native(&mut self, event: SseEvent, out: &mut Vec<Frame>) {
        out.push(native_event(event));
    }
}

/// An upstream's own SSE event, re-emitted with its name.
pub fn native_event(event: SseEvent) -> Frame {
    match &event.event {
        Some(name) => Frame::named(name, &event.data),
        None => Frame::data(&event.data),
    }
}

/// The SSE body of a relayed stream, encoded by `encoder`.
pub fn sse_stream(
    relay: Box<Relay>,
    encoder: impl Encoder,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    // One buffer for the whole stream: an event costs no allocation of its own here.
    let queue = std::collections::VecDeque::<Frame>::new();
    futures_util::stream::unfold(
        (relay, encoder, queue, Vec::new()),
        |(mut relay, mut encoder, mut queue, mut out)| async move {
            loop {
                if let Some(ev) = queue.pop_front() {
                    return Some((Ok(ev.into_bytes()), (relay, encoder, queue, out)));
                }
                match relay.next().await? {
                    Event::Chunk(c) => encoder.chunk(c, &mut out),
                    Event::End(end) => {
                        encoder.end(end, &mut out);
                        if let Some(work) = encoder.after_end() {
                            work.await;
                        }
                    }
                    Event::Native(ev) => encoder.native(ev, &mut out),
                    Event::Raw(raw) => encoder.raw(raw, &mut out),
                }
                queue.extend(out.drain(..));
            }
        },
    )
}

/// Routing and tracing hints every protocol takes from the same headers.
pub fn hints(req: &HttpRequest) -> Hints {
    // Names made once: a name given as text is parsed (and checked) at every lookup.
    use actix_web::http::header::HeaderName;
    const TIER: HeaderName = HeaderName::from_static("x-pura-tier");
    const SESSION: HeaderName = HeaderName::from_static("x-pura-session");
    const CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("x-client-request-id");
    Hints {
        tier: header(req, &TIER),
        session: header(req, &SESSION),
        client_request_id: header(req, &CLIENT_REQUEST_ID),
    }
}

/// A request header as text, cut to 512 characters.
pub fn header(
    req: &HttpRequest,
    name: impl actix_web::http::header::AsHeaderName,
) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(512).collect())
}
