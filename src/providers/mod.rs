//! Provider adapters: one module per upstream dialect. Each turns an OpenAI [`ChatRequest`]
//! into the dialect's HTTP request and the dialect's answer (JSON or SSE) back into OpenAI
//! `chat.completion` / `chat.completion.chunk` JSON. Adapters do no I/O; the chat handler
//! performs the call with its worker's `awc::Client`.

pub mod anthropic;
pub mod catalog;
pub mod gemini;
pub mod openai;
pub mod sse;

use std::time::Duration;

use serde_json::{json, Value};

use crate::api::{ChatRequest, Usage};
use crate::error::ApiError;
use crate::money::{Micros, Price};
use crate::secret::Secret;
use sse::SseEvent;

pub use crate::config::{Dialect, Tier};

/// A configured, enabled upstream as the router and adapters see it.
#[derive(Debug, Clone)]
pub struct ProviderSpec {
    pub name: String,
    pub dialect: Dialect,
    /// Without a trailing slash, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    pub api_key: Secret,
    pub tier: Tier,
    /// The first model is the one `auto` uses for this provider.
    pub models: Vec<String>,
    pub price: Price,
    pub timeout: Duration,
}

impl ProviderSpec {
    /// What `usage` costs at this provider's catalogue price.
    pub fn cost(&self, usage: &Usage) -> Micros {
        self.price.cost(usage)
    }

    pub fn serves(&self, model: &str) -> bool {
        self.models.iter().any(|m| m == model)
    }
}

/// An HTTP request to an upstream, built by an adapter.
#[derive(Debug)]
pub struct UpstreamCall {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// A non-streaming answer translated to OpenAI's `chat.completion`.
#[derive(Debug)]
pub struct Completion {
    /// The translated answer (`Value::Null` when `raw` carries it).
    pub body: Value,
    pub usage: Option<Usage>,
    /// The upstream's own bytes, when they already are OpenAI's `chat.completion`.
    pub raw: Option<bytes::Bytes>,
}

/// What a stream translator makes of one upstream event.
#[derive(Debug, PartialEq)]
pub enum StreamItem {
    /// An OpenAI `chat.completion.chunk` with at least one choice.
    Chunk(Value),
    /// Token usage learned from the upstream (the last one seen wins).
    Usage(Usage),
    /// The upstream reported an error inside the stream: an OpenAI error object.
    Error(Value),
    /// The upstream said the stream is complete.
    Done,
}

/// Turns one dialect's SSE events into OpenAI stream items.
pub trait StreamTranslator {
    /// One parsed SSE event. An `Err` means the stream is malformed (an upstream failure).
    fn on_event(&mut self, event: &SseEvent) -> Result<Vec<StreamItem>, String>;
}

/// Builds the upstream request for `provider`, for the concrete `model`.
pub fn build_call(
    provider: &ProviderSpec,
    model: &str,
    req: &ChatRequest,
    stream: bool,
) -> Result<UpstreamCall, ApiError> {
    match provider.dialect {
        Dialect::Openai => openai::build(provider, model, req, stream),
        Dialect::Anthropic => anthropic::build(provider, model, req, stream),
        Dialect::Gemini => gemini::build(provider, model, req, stream),
    }
}

/// Parses a successful non-streaming upstream body into OpenAI's shape.
pub fn parse_completion(
    dialect: Dialect,
    body: bytes::Bytes,
    model: &str,
) -> Result<Completion, String> {
    match dialect {
        Dialect::Openai => openai::parse(body, model),
        Dialect::Anthropic => anthropic::parse(&body, model),
        Dialect::Gemini => gemini::parse(&body, model),
    }
}

/// A fresh stream translator for the dialect.
pub fn translator(dialect: Dialect, model: &str) -> Box<dyn StreamTranslator> {
    match dialect {
        Dialect::Openai => Box::new(openai::Translator),
        Dialect::Anthropic => Box::new(anthropic::Translator::new(model)),
        Dialect::Gemini => Box::new(gemini::Translator::new(model)),
    }
}

/// The upstream's request-id header name, when the dialect has one.
pub fn request_id_header(dialect: Dialect) -> Option<&'static str> {
    match dialect {
        Dialect::Openai => Some("x-request-id"),
        Dialect::Anthropic => Some("request-id"),
        Dialect::Gemini => None,
    }
}

/// Best-effort human message from any dialect's error body (OpenAI and Anthropic
/// `{"error":{"message"}}`, Gemini's array form), falling back to the raw text.
pub fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let v = v.as_array().and_then(|a| a.first()).unwrap_or(&v);
        if let Some(m) = v.pointer("/error/message").and_then(Value::as_str) {
            return m.to_owned();
        }
    }
    let text = String::from_utf8_lossy(body);
    text.chars().take(200).collect()
}

/// An OpenAI `chat.completion.chunk` with one choice.
pub fn chunk(id: &str, created: i64, model: &str, delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": null,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
    })
}
