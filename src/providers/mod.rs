//! Outbound adapters: one module per upstream dialect behind the [`Adapter`] trait. Each turns
//! the canonical request (an OpenAI [`ChatRequest`]) into the dialect's HTTP request and the
//! dialect's answer (JSON or SSE) back into OpenAI `chat.completion` / `chat.completion.chunk`
//! JSON, the pipeline's canonical form. [`transport`] sends the call with the worker's
//! `awc::Client` and peeks at a stream's first chunk; [`messages`] holds what the translating
//! dialects share; [`catalog`] turns config into [`ProviderSpec`]s.

pub mod anthropic;
pub mod catalog;
pub mod chunk_scan;
pub mod gemini;
pub mod messages;
pub mod openai;
pub mod outbound;
pub mod sse;
pub mod transport;

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
    /// Serves OpenAI's `/responses`, so Responses requests go to it natively.
    pub responses_api: bool,
    /// Forwards a client's non-standard `service_tier` (see [`outbound::service_tier`]).
    pub allow_service_tier: bool,
    pub timeout: Duration,
}

impl ProviderSpec {
    /// A provider for unit tests: free, a minute's timeout, no service tiers.
    #[cfg(test)]
    pub fn for_test(dialect: Dialect, name: &str, base_url: &str, tier: Tier, model: &str) -> Self {
        ProviderSpec {
            name: name.into(),
            dialect,
            base_url: base_url.into(),
            api_key: crate::secret::Secret::new("sk-test"),
            tier,
            models: vec![model.into()],
            price: crate::money::Price {
                input_per_1k: 0.0,
                output_per_1k: 0.0,
                cached_input_per_1k: None,
            },
            responses_api: false,
            allow_service_tier: false,
            timeout: Duration::from_secs(60),
        }
    }

    /// `base_url` followed by `path` (`/chat/completions`): joined, not `format!`ted, as it
    /// is on every request.
    pub fn url(&self, path: &str) -> String {
        [self.base_url.as_str(), path].concat()
    }

    /// `Bearer <api key>`, for the `authorization` header.
    pub fn bearer(&self) -> String {
        ["Bearer ", self.api_key.expose()].concat()
    }

    /// What `usage` costs at this provider's catalogue price.
    pub fn cost(&self, usage: &Usage) -> Micros {
        self.price.cost(usage)
    }

    /// Whether a client body in this protocol can go to this upstream as it is.
    pub fn takes_native(&self, native: &NativeBody) -> bool {
        native.dialect == self.dialect && (self.dialect != Dialect::Openai || self.responses_api)
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
    /// The body is in the upstream's own protocol (a [`NativeBody`]): its answer is parsed
    /// and relayed natively.
    pub native: bool,
}

/// The client's body in an upstream dialect's own protocol (Responses for OpenAI, Messages for
/// Anthropic). When the planned upstream speaks it, the protocol's own fields go through as they
/// came (model and `stream` set by the adapter, the rest kept to [`outbound`]'s allow-list) so
/// that what the canonical form does not model — reasoning items, thinking signatures,
/// `cache_control` — survives byte for byte.
#[derive(Debug, Clone)]
pub struct NativeBody {
    pub dialect: Dialect,
    pub body: serde_json::Map<String, Value>,
    /// Client headers the upstream needs (`anthropic-version`, `anthropic-beta`).
    pub headers: Vec<(&'static str, String)>,
    /// The key's end-user id ([`outbound::end_user`]), set by the pipeline.
    pub end_user: String,
}

/// A non-streaming answer translated to OpenAI's `chat.completion`, or a native one.
#[derive(Debug)]
pub struct Completion {
    /// The translated answer (`Value::Null` when `raw` carries it).
    pub body: Value,
    pub usage: Option<Usage>,
    /// The upstream's own bytes, when they already are OpenAI's `chat.completion` (or, with
    /// `native`, the answer in the client's own protocol).
    pub raw: Option<bytes::Bytes>,
    /// `raw` is a native answer (see [`NativeBody`]), not a `chat.completion`.
    pub native: bool,
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
    /// An event of a native stream, relayed as it came; `text_chars` counts the generated
    /// text in it (for billing a stream cut before the upstream reported usage).
    Native { event: SseEvent, text_chars: usize },
    /// An OpenAI `chat.completion.chunk` with at least one choice, kept as the upstream's
    /// text: a chat client gets it as it came, without a parse into a `Value` and back.
    Raw(RawChunk),
}

/// An OpenAI chunk as the upstream wrote it, with what the relay needs to know of it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawChunk {
    /// The event's JSON text.
    pub data: String,
    /// Its first choice has a `finish_reason`.
    pub finishing: bool,
    /// Characters of content and tool arguments (for estimating unreported usage).
    pub text_chars: usize,
}

impl RawChunk {
    /// The chunk as a `Value`, for an encoder that rewrites it (None if it is not JSON, which
    /// the translator has already ruled out).
    pub fn into_value(self) -> Option<Value> {
        serde_json::from_str(&self.data).ok()
    }
}

/// Turns one dialect's SSE events into OpenAI stream items.
pub trait StreamTranslator {
    /// One parsed SSE event. An `Err` means the stream is malformed (an upstream failure).
    fn on_event(&mut self, event: &SseEvent) -> Result<Vec<StreamItem>, String>;

    /// The same for an event the caller is done with: a translator that relays the text as it
    /// came may keep it instead of copying it.
    fn take_event(&mut self, event: SseEvent) -> Result<Vec<StreamItem>, String> {
        self.on_event(&event)
    }
}

/// One upstream dialect: how a canonical request becomes its HTTP call, and how its answers,
/// streams and errors come back. The transport ([`transport`]) is shared; adapters do no I/O.
pub trait Adapter: Sync {
    /// Builds the upstream request for the concrete `model`.
    fn build(
        &self,
        provider: &ProviderSpec,
        model: &str,
        req: &ChatRequest,
        stream: bool,
    ) -> Result<UpstreamCall, ApiError>;
    /// Parses a successful non-streaming body into OpenAI's shape.
    fn parse(&self, body: bytes::Bytes, model: &str) -> Result<Completion, String>;
    /// A fresh translator of this dialect's stream events.
    fn translator(&self, model: &str) -> Box<dyn StreamTranslator>;
    /// The upstream's request-id header, when the dialect has one.
    fn request_id_header(&self) -> Option<actix_web::http::header::HeaderName>;
    /// Builds the call for a body in this dialect's own protocol.
    fn build_native(
        &self,
        _provider: &ProviderSpec,
        _model: &str,
        _native: &NativeBody,
        _stream: bool,
    ) -> Result<UpstreamCall, ApiError> {
        Err(ApiError::internal("this dialect takes no native bodies"))
    }
    /// Reads the usage of a native answer (the bytes go to the client as they are).
    fn parse_native(&self, _body: bytes::Bytes) -> Result<Completion, String> {
        Err("this dialect takes no native bodies".into())
    }
    /// A translator that passes native stream events through and reads their usage.
    fn native_translator(&self) -> Box<dyn StreamTranslator> {
        Box::new(NoNative)
    }
}

/// The translator of a dialect without a native protocol (never used: no call is native).
struct NoNative;

impl StreamTranslator for NoNative {
    fn on_event(&mut self, _: &SseEvent) -> Result<Vec<StreamItem>, String> {
        Err("this dialect takes no native bodies".into())
    }
}

/// The adapter of a dialect.
pub fn adapter(dialect: Dialect) -> &'static dyn Adapter {
    match dialect {
        Dialect::Openai => &openai::OpenAi,
        Dialect::Anthropic => &anthropic::Anthropic,
        Dialect::Gemini => &gemini::Gemini,
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
