//! OpenAI Chat Completions, the canonical form itself: decoding is validation, and encoding
//! is OpenAI JSON (passed through as the upstream's bytes where it already is) or `data:`-only
//! `chat.completion.chunk` lines ending in `data: [DONE]` (older SDKs break on `event:`).
//! The chunk with `finish_reason`, and the usage chunk, carry `x_pura` with the final cost.

use serde_json::Value;

use crate::api::{ChatRequest, Usage};
use crate::error::ApiError;
use crate::pipeline::meta::XPura;
use crate::pipeline::relay::End;
use crate::providers::{Completion, RawChunk};

use super::{Encoder, Frame};

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
    crate::api::from_json(body)
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
    held_finish: Vec<Held>,
}

/// A held finish chunk: as the upstream wrote it, or rewritten.
enum Held {
    Raw(String),
    Chunk(Value),
}

impl Held {
    fn into_value(self) -> Option<Value> {
        match self {
            Held::Raw(text) => serde_json::from_str(&text).ok(),
            Held::Chunk(v) => Some(v),
        }
    }
}

/// `chunk` (a JSON object's text, as the scanner checked it) with `"x_pura":x` added before its
/// closing brace: a finish chunk keeps the upstream's text, unparsed. `None` when the chunk has
/// an `x_pura` of its own, which the parsed path replaces.
fn splice_x_pura(chunk: &str, x: &str) -> Option<String> {
    if chunk.contains("\"x_pura\"") {
        return None;
    }
    let head = chunk.strip_suffix('}')?.trim_end();
    let comma = if head.ends_with('{') { "" } else { "," };
    Some(format!("{head}{comma}\"x_pura\":{x}}}"))
}

impl ChatEncoder {
    pub fn new(include_usage: bool) -> Self {
        ChatEncoder {
            include_usage,
            held_finish: Vec::new(),
        }
    }
}

fn data(text: &str) -> Frame {
    Frame::data(text)
}

/// A chunk as an event: `serde_json::to_string`, not `Value`'s `Display`, which writes the
/// same text through a formatter.
fn json(chunk: &Value) -> Frame {
    data(&serde_json::to_string(chunk).unwrap_or_default())
}

fn with_x_pura(mut chunk: Value, x: &XPura) -> Value {
    chunk["x_pura"] = serde_json::to_value(x).unwrap_or(Value::Null);
    chunk
}

impl Encoder for ChatEncoder {
    fn chunk(&mut self, chunk: Value, out: &mut Vec<Frame>) {
        let finishing = crate::api::chat::chunk_finishes(&chunk);
        if finishing {
            self.held_finish.push(Held::Chunk(chunk));
        } else {
            out.push(json(&chunk));
        }
    }

    /// Passed on as the upstream wrote it, unless it is a finish chunk (held for `x_pura`).
    fn raw(&mut self, raw: RawChunk, out: &mut Vec<Frame>) {
        if !raw.finishing {
            out.push(data(&raw.data));
        } else {
            self.held_finish.push(Held::Raw(raw.data));
        }
    }

    fn end(&mut self, end: End, out: &mut Vec<Frame>) {
        let usage_chunk = self.include_usage && end.error.is_none();
        let x = serde_json::to_string(&end.x_pura).unwrap_or_else(|_| "null".into());
        // The usage chunk is made from the first finish chunk (its id, model, created).
        let mut template = None;
        for (i, held) in std::mem::take(&mut self.held_finish)
            .into_iter()
            .enumerate()
        {
            let is_template = usage_chunk && i == 0;
            if let (Held::Raw(text), false) = (&held, is_template) {
                if let Some(spliced) = splice_x_pura(text, &x) {
                    out.push(data(&spliced));
                    continue;
                }
            }
            if let Some(chunk) = held.into_value() {
                if is_template {
                    template = Some(chunk.clone());
                }
                out.push(json(&with_x_pura(chunk, &end.x_pura)));
            }
        }
        if usage_chunk {
            let mut chunk =
                template.unwrap_or_else(|| serde_json::json!({"object": "chat.completion.chunk"}));
            chunk["choices"] = Value::Array(Vec::new());
            chunk["usage"] = serde_json::to_value::<&Usage>(&end.usage).unwrap_or(Value::Null);
            out.push(json(&with_x_pura(chunk, &end.x_pura)));
        }
        if let Some(err) = &end.error {
            // The in-stream error line after the first byte has gone out.
            out.push(data(
                &serde_json::to_string(&err.envelope()).unwrap_or_default(),
            ));
        }
        out.push(data("[DONE]"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_pura_is_spliced_into_a_finish_chunk_as_the_parsed_path_adds_it() {
        let x = r#"{"cost_usd":0.1}"#;
        let chunk = r#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
        let spliced = splice_x_pura(chunk, x).unwrap_or_default();
        let parsed: Value = serde_json::from_str(&spliced).unwrap_or_default();
        let mut expected: Value = serde_json::from_str(chunk).unwrap_or_default();
        expected["x_pura"] = serde_json::from_str(x).unwrap_or_default();
        assert_eq!(parsed, expected);
        assert_eq!(
            splice_x_pura("{ }", x).as_deref(),
            Some(r#"{"x_pura":{"cost_usd":0.1}}"#)
        );
        // A chunk with an x_pura of its own takes the parsed path, which replaces it.
        assert_eq!(splice_x_pura(r#"{"x_pura":1,"choices":[]}"#, x), None);
    }
}
