//! OpenAI Chat Completions, the canonical form itself: decoding is validation, and encoding
//! is OpenAI JSON (passed through as the upstream's bytes where it already is) or `data:`-only
//! `chat.completion.chunk` lines ending in `data: [DONE]` (older SDKs break on `event:`).
//! The chunk with `finish_reason`, and the usage chunk, carry `x_pura` with the final cost.

use actix_web_lab::sse;
use serde_json::Value;

use crate::api::{ChatRequest, Usage};
use crate::error::ApiError;
use crate::pipeline::meta::XPura;
use crate::pipeline::relay::End;
use crate::providers::{Completion, RawChunk};

use super::Encoder;

/// The body as a chat request, judged as actix's JSON extractor would (a JSON content type,
/// then the fields), but from bytes the handler keeps: their hash is `X-Pura-Body-Sha256`.
pub fn parse(req: &actix_web::HttpRequest, body: &[u8]) -> Result<ChatRequest, ApiError> {
    use actix_web::error::JsonPayloadError;
    use actix_web::{mime, HttpMessage};
    let json = match req.mime_type() {
        Ok(Some(m)) => m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON),
        _ => false,
    };
    if !json {
        return Err(crate::error::json_error(&JsonPayloadError::ContentType));
    }
    serde_json::from_slice(body)
        .map_err(|e| crate::error::json_error(&JsonPayloadError::Deserialize(e)))
}

/// Checks what the pipeline relies on and OpenAI itself refuses.
pub fn validate(body: &ChatRequest) -> Result<(), ApiError> {
    if body.messages.is_empty() {
        return Err(ApiError::bad_param(
            "messages",
            "`messages` must contain at least one message.",
        ));
    }
    if body.n == Some(0) {
        return Err(ApiError::bad_param("n", "`n` must be at least 1."));
    }
    if body.store == Some(true) {
        // The upstream would keep the conversation on the operator's account.
        return Err(ApiError::bad_param(
            "store",
            "`store: true` is not available through this gateway: conversations are not stored \
             upstream. Omit `store` or send `false`.",
        ));
    }
    if body.stream_options.is_some() && body.stream != Some(true) {
        return Err(ApiError::bad_param(
            "stream_options",
            "`stream_options` is only allowed when `stream` is true.",
        ));
    }
    Ok(())
}

/// The `chat.completion` body: the upstream's own bytes when it spoke OpenAI.
pub fn completion_bytes(c: Completion) -> Result<bytes::Bytes, ApiError> {
    match c.raw {
        Some(raw) => Ok(raw),
        None => Ok(serde_json::to_vec(&c.body)
            .map_err(ApiError::internal)?
            .into()),
    }
}

pub struct ChatEncoder {
    include_usage: bool,
    /// Finish chunks wait for the end, when the final cost is known.
    held_finish: Vec<Value>,
}

impl ChatEncoder {
    pub fn new(include_usage: bool) -> Self {
        ChatEncoder {
            include_usage,
            held_finish: Vec::new(),
        }
    }
}

fn data(text: impl Into<String>) -> sse::Event {
    sse::Event::Data(sse::Data::new(text.into()))
}

/// A chunk as an event: `serde_json::to_string`, not `Value`'s `Display`, which writes the
/// same text through a formatter.
fn json(chunk: &Value) -> sse::Event {
    data(serde_json::to_string(chunk).unwrap_or_default())
}

fn with_x_pura(mut chunk: Value, x: &XPura) -> Value {
    chunk["x_pura"] = serde_json::to_value(x).unwrap_or(Value::Null);
    chunk
}

impl Encoder for ChatEncoder {
    fn chunk(&mut self, chunk: Value, out: &mut Vec<sse::Event>) {
        let finishing = crate::api::chat::chunk_finishes(&chunk);
        if finishing {
            self.held_finish.push(chunk);
        } else {
            out.push(json(&chunk));
        }
    }

    /// Passed on as the upstream wrote it, unless it is a finish chunk (held for `x_pura`).
    fn raw(&mut self, raw: RawChunk, out: &mut Vec<sse::Event>) {
        if !raw.finishing {
            out.push(sse::Event::Data(sse::Data::new(raw.data)));
        } else if let Some(chunk) = raw.into_value() {
            self.held_finish.push(chunk);
        }
    }

    fn end(&mut self, end: End, out: &mut Vec<sse::Event>) {
        let template = self.held_finish.first().cloned();
        for chunk in std::mem::take(&mut self.held_finish) {
            out.push(json(&with_x_pura(chunk, &end.x_pura)));
        }
        if self.include_usage && end.error.is_none() {
            let mut chunk =
                template.unwrap_or_else(|| serde_json::json!({"object": "chat.completion.chunk"}));
            chunk["choices"] = Value::Array(Vec::new());
            chunk["usage"] = serde_json::to_value::<&Usage>(&end.usage).unwrap_or(Value::Null);
            out.push(json(&with_x_pura(chunk, &end.x_pura)));
        }
        if let Some(err) = &end.error {
            // The in-stream error line after the first byte has gone out.
            out.push(data(
                serde_json::to_string(&err.envelope()).unwrap_or_default(),
            ));
        }
        out.push(data("[DONE]"));
    }
}
