//! Anthropic Messages (`POST /v1/messages`), the protocol Claude Code and the anthropic SDKs
//! speak. Decoding turns a Messages request into the canonical chat request (the client's body
//! also goes along as a [`NativeBody`](crate::providers::NativeBody), so an Anthropic upstream
//! gets it untouched). Encoding turns a canonical completion into a `message`, and canonical
//! chunks into Anthropic's event stream; a native Anthropic stream is relayed as it came.
//! Errors on these paths have Anthropic's envelope ([`AnthropicError`]).
//!
//! Model ids: Claude Code sends Anthropic's own ids (`claude-sonnet-4-5`, `claude-3-5-haiku-…`).
//! An id the gateway can serve (`auto`, a tier, an alias, a model of an enabled provider) is
//! used as it is; any other id starting with `claude` (including a catalogue Claude model whose
//! provider is not enabled) is routed as [`UNKNOWN_CLAUDE_MODEL`] (`auto`), so an agent works
//! against any set of upstreams. `[routing] aliases` maps an id to a model or a tier, e.g.
//! `aliases = { "claude-3-5-haiku-latest" = "cheap", "claude-sonnet-4-6" = "premium" }`.

use super::Frame;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Map, Value};

use crate::api::chat::{FunctionCall, FunctionDef, Tool, ToolCall};
use crate::api::messages::{
    Block, Content, ErrorBody, ErrorEnvelope, InputRole, MessageResponse, MessagesRequest,
    MessagesUsage, Source, System, ToolChoice, ToolResultContent,
};
use crate::api::{ChatRequest, Message, Role, Usage};
use crate::error::ApiError;
use crate::pipeline::relay::End;
use crate::providers::sse::SseEvent;
use crate::providers::Completion;

use super::Encoder;

/// Where an unknown `claude-*` model id is routed.
pub const UNKNOWN_CLAUDE_MODEL: &str = "auto";

/// The model to route: `requested` when this gateway serves it (`known`), else `auto` for ids
/// starting with `claude`; anything else stays as it is (and is answered 404 by the router).
pub fn route_model(requested: &str, known: impl Fn(&str) -> bool) -> Option<String> {
    if requested.is_empty() {
        return None;
    }
    if !known(requested) && requested.starts_with("claude") {
        return Some(UNKNOWN_CLAUDE_MODEL.to_owned());
    }
    Some(requested.to_owned())
}

/// Checks what `/v1/messages` requires beyond the body's shape.
pub fn validate(req: &MessagesRequest) -> Result<(), ApiError> {
    if req.max_tokens.is_none() {
        return Err(ApiError::bad_param(
            "max_tokens",
            "max_tokens: Field required",
        ));
    }
    if req.messages.is_empty() {
        return Err(ApiError::bad_param(
            "messages",
            "messages: at least one message is required",
        ));
    }
    Ok(())
}

fn text_part(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

/// An image or document source as an OpenAI content part.
fn source_part(source: &Source, document: bool) -> Option<Value> {
    match source {
        Source::Base64 { media_type, data } if document => Some(json!({"type": "file",
            "file": {"file_data": format!("data:{media_type};base64,{data}"), "filename": "document"}})),
        Source::Base64 { media_type, data } => Some(json!({"type": "image_url",
            "image_url": {"url": format!("data:{media_type};base64,{data}")}})),
        Source::Url { url } if !document => {
            Some(json!({"type": "image_url", "image_url": {"url": url}}))
        }
        Source::Text { data, .. } => Some(text_part(data)),
        // URL documents and unknown sources only an Anthropic upstream can fetch.
        _ => None,
    }
}

/// Text of a `tool_result`'s content (images in a tool result have no tool-message form).
fn tool_result_text(content: Option<&ToolResultContent>, is_error: bool) -> String {
    let text = match content {
        None => String::new(),
        Some(ToolResultContent::Text(s)) => s.clone(),
        Some(ToolResultContent::Blocks(blocks)) => blocks
            .iter()
            .filter_map(|b| match b {
                Block::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
    };
    if is_error && !text.starts_with("Error") {
        format!("Error: {text}")
    } else {
        text
    }
}

fn message(role: Role, content: Option<Value>) -> Message {
    Message {
        role,
        content,
        name: None,
        tool_calls: None,
        tool_call_id: None,
        extra: Map::new(),
    }
}

/// User parts as one content value: a plain string when it is a single text.
fn user_content(parts: Vec<Value>) -> Value {
    match parts.as_slice() {
        [only] if only["type"] == "text" => only["text"].clone(),
        _ => Value::Array(parts),
    }
}

/// A user turn: its `tool_result` blocks become tool messages (first, right after the
/// assistant's calls, as OpenAI wants), the rest one user message.
fn user_turn(content: &Content, out: &mut Vec<Message>) {
    let blocks = match content {
        Content::Text(s) => {
            out.push(message(Role::User, Some(json!(s))));
            return;
        }
        Content::Blocks(b) => b,
    };
    let mut parts = Vec::new();
    for block in blocks {
        match block {
            Block::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => {
                let text = tool_result_text(content.as_ref(), *is_error == Some(true));
                let mut m = message(Role::Tool, Some(json!(text)));
                m.tool_call_id = Some(tool_use_id.clone());
                out.push(m);
            }
            Block::Text { text } if !text.is_empty() => parts.push(text_part(text)),
            Block::Image { source } => parts.extend(source_part(source, false)),
            Block::Document { source } => parts.extend(source_part(source, true)),
            _ => {}
        }
    }
    if !parts.is_empty() {
        out.push(message(Role::User, Some(user_content(parts))));
    }
}

/// An assistant turn: text joined, `tool_use` blocks as tool calls. Thinking blocks have no
/// canonical form (their signatures only mean something to Anthropic) and are dropped.
fn assistant_turn(content: &Content, out: &mut Vec<Message>) {
    let blocks = match content {
        Content::Text(s) => {
            out.push(message(Role::Assistant, Some(json!(s))));
            return;
        }
        Content::Blocks(b) => b,
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in blocks {
        match block {
            Block::Text { text: t } => text.push_str(t),
            Block::ToolUse { id, name, input } => calls.push(ToolCall {
                id: id.clone(),
                kind: "function".into(),
                function: FunctionCall {
                    name: name.clone(),
                    arguments: if input.is_null() {
                        "{}".into()
                    } else {
                        input.to_string()
                    },
                },
            }),
            _ => {}
        }
    }
    if text.is_empty() && calls.is_empty() {
        return;
    }
    let mut m = message(Role::Assistant, (!text.is_empty()).then(|| json!(text)));
    if !calls.is_empty() {
        m.tool_calls = Some(calls);
    }
    out.push(m);
}

fn system_text(system: &System) -> String {
    match system {
        System::Text(s) => s.clone(),
        System::Blocks(blocks) => blocks
            .iter()
            .filter_map(|b| match b {
                Block::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n\n"),
    }
}

/// Custom tools as function tools; server tools (a `type` other than `custom`) are left to a
/// native upstream.
fn tools(req: &MessagesRequest) -> Option<Vec<Tool>> {
    let tools: Vec<Tool> = req
        .tools
        .iter()
        .flatten()
        .filter(|t| t.kind.as_deref().is_none_or(|k| k == "custom"))
        .map(|t| Tool {
            kind: "function".into(),
            function: FunctionDef {
                name: t.name.clone(),
                description: t.description.clone(),
                parameters: Some(
                    t.input_schema
                        .clone()
                        .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                ),
                strict: None,
            },
        })
        .collect();
    (!tools.is_empty()).then_some(tools)
}

fn tool_choice(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Auto { .. } | ToolChoice::Unknown => json!("auto"),
        ToolChoice::Any { .. } => json!("required"),
        ToolChoice::None => json!("none"),
        ToolChoice::Tool { name, .. } => json!({"type": "function", "function": {"name": name}}),
    }
}

/// The canonical chat request of a Messages request, for `model` (see [`route_model`]).
pub fn decode(req: &MessagesRequest, model: Option<String>) -> Result<ChatRequest, ApiError> {
    let mut messages = Vec::new();
    if let Some(system) = &req.system {
        let text = system_text(system);
        if !text.is_empty() {
            messages.push(message(Role::System, Some(json!(text))));
        }
    }
    for m in &req.messages {
        match m.role {
            InputRole::User => user_turn(&m.content, &mut messages),
            InputRole::Assistant => assistant_turn(&m.content, &mut messages),
        }
    }
    if messages.iter().all(|m| m.role == Role::System) {
        return Err(ApiError::bad_param(
            "messages",
            "messages: all messages must have non-empty content",
        ));
    }
    let tools = tools(req);
    let (tool_choice, parallel) = match (&tools, &req.tool_choice) {
        (Some(_), Some(tc)) => (Some(tool_choice(tc)), tc.serial().then_some(false)),
        _ => (None, None),
    };
    Ok(ChatRequest {
        model,
        messages,
        stream: req.stream,
        stream_options: None,
        max_tokens: req.max_tokens,
        max_completion_tokens: None,
        temperature: req.temperature,
        top_p: req.top_p,
        n: None,
        stop: req
            .stop_sequences
            .as_ref()
            .filter(|s| !s.is_empty())
            .map(|s| json!(s)),
        tools,
        tool_choice,
        parallel_tool_calls: parallel,
        response_format: None,
        user: req.metadata.as_ref().and_then(|m| m.user_id.clone()),
        store: None,
        service_tier: req.service_tier.clone(),
        extra: Map::new(),
    })
}

/// Characters of the prompt a Messages request carries (system, messages, tool definitions),
/// for the local `count_tokens` estimate.
pub fn prompt_chars(req: &MessagesRequest, raw: &Map<String, Value>) -> usize {
    let system = || req.system.as_ref().map_or(0, |s| system_text(s).len());
    let text = decode(req, None).map_or_else(|_| system(), |c| c.prompt_chars());
    text + raw.get("tools").map_or(0, |t| t.to_string().len())
}

/// OpenAI `finish_reason` → Anthropic `stop_reason`.
pub fn stop_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// Tool-call arguments (a JSON string) as the `input` object Anthropic sends.
fn input_of(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v) if v.is_object() => v,
        _ if arguments.trim().is_empty() => json!({}),
        _ => json!({ "arguments": arguments }),
    }
}

/// Reasoning text a canonical message or delta carries (OpenAI-compatible servers name it
/// `reasoning_content` or `reasoning`).
fn reasoning_of(v: &Value) -> Option<&str> {
    ["reasoning_content", "reasoning"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
}

/// The `message` body of a JSON answer: a native answer's own bytes, else the canonical
/// `chat.completion` re-encoded.
pub fn completion_bytes(c: Completion) -> Result<bytes::Bytes, ApiError> {
    if c.native {
        if let Some(raw) = c.raw {
            return Ok(raw);
        }
    }
    let body = match (&c.body, &c.raw) {
        (Value::Null, Some(raw)) => serde_json::from_slice(raw).map_err(ApiError::internal)?,
        (body, _) => body.clone(),
    };
    let usage = c
        .usage
        .or_else(|| body.get("usage").and_then(Usage::from_openai))
        .unwrap_or_default();
    let msg = &body["choices"][0]["message"];
    let mut content = Vec::new();
    if let Some(r) = reasoning_of(msg) {
        content.push(json!({"type": "thinking", "thinking": r, "signature": ""}));
    }
    if let Some(text) = msg["content"].as_str().filter(|t| !t.is_empty()) {
        content.push(text_part(text));
    }
    for call in msg["tool_calls"].as_array().into_iter().flatten() {
        let args = call["function"]["arguments"].as_str().unwrap_or("");
        content.push(json!({"type": "tool_use", "id": call["id"],
            "name": call["function"]["name"], "input": input_of(args)}));
    }
    let answer = MessageResponse {
        id: crate::ids::ordered_id("msg_"),
        kind: "message",
        role: "assistant",
        model: body["model"].as_str().unwrap_or_default().to_owned(),
        content,
        stop_reason: Some(stop_reason(body["choices"][0]["finish_reason"].as_str())),
        stop_sequence: None,
        usage: MessagesUsage::from_canonical(&usage),
    };
    Ok(serde_json::to_vec(&answer)
        .map_err(ApiError::internal)?
        .into())
}

/// An Anthropic SSE event: `event:` named after the data's `type`.
fn event(data: &Value) -> Frame {
    let name = data["type"].as_str().unwrap_or("message");
    // serde_json::to_string, not Display, which writes the same text through a formatter.
    let text = serde_json::to_string(data).unwrap_or_default();
    Frame::named(name, &text)
}

/// The `error` event after the first byte (Anthropic's in-stream error).
fn error_event(error: ApiError) -> Frame {
    let error = AnthropicError(error);
    event(&json!({"type": "error", "error": {"type": error.kind(), "message": error.to_string()}}))
}

/// What kind of content block is open in a translated stream.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Open {
    Text,
    Thinking,
    /// A `tool_use` block for this OpenAI tool-call index.
    Tool(u64),
}

/// Encodes a stream as Anthropic events. Canonical chunks are re-cut into content blocks
/// (wire-formats.md §3.6, reverse direction); a native Anthropic stream passes through, with
/// `message_stop` held until the end so it can carry the settled `x_pura` cost.
pub struct MessagesEncoder {
    model: String,
    prompt_estimate: u64,
    started: bool,
    open: Option<(usize, Open)>,
    next_index: usize,
    finish: Option<String>,
    /// A native `message_stop`, held until the settled end.
    held_stop: Option<Value>,
    native_error_sent: bool,
}

impl MessagesEncoder {
    /// `model` names the served model in `message_start`; `prompt_estimate` is its input
    /// usage until the upstream reports the real count at the end.
    pub fn new(model: String, prompt_estimate: u64) -> Self {
        MessagesEncoder {
            model,
            prompt_estimate,
            started: false,
            open: None,
            next_index: 0,
            finish: None,
            held_stop: None,
            native_error_sent: false,
        }
    }

    fn start(&mut self, out: &mut Vec<Frame>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push(event(&json!({"type": "message_start", "message": {
            "id": crate::ids::ordered_id("msg_"), "type": "message", "role": "assistant",
            "model": self.model, "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": self.prompt_estimate, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0, "output_tokens": 1}}})));
        out.push(event(&json!({"type": "ping"})));
    }

    fn close(&mut self, out: &mut Vec<Frame>) {
        if let Some((index, _)) = self.open.take() {
            out.push(event(
                &json!({"type": "content_block_stop", "index": index}),
            ));
        }
    }

    /// Makes sure a block of `kind` is open (closing another); returns its index.
    fn ensure(&mut self, kind: Open, block: Value, out: &mut Vec<Frame>) -> usize {
        if let Some((index, open)) = self.open {
            if open == kind {
                return index;
            }
        }
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((index, kind));
        out.push(event(
            &json!({"type": "content_block_start", "index": index,
            "content_block": block}),
        ));
        index
    }

    fn delta(&mut self, index: usize, delta: Value, out: &mut Vec<Frame>) {
        out.push(event(
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
        ));
    }

    fn tool_call(&mut self, call: &Value, out: &mut Vec<Frame>) {
        let k = call["index"].as_u64().unwrap_or(0);
        let is_new = call.get("id").is_some_and(|id| !id.is_null())
            || !matches!(self.open, Some((_, Open::Tool(open))) if open == k);
        let index = if is_new {
            self.close(out);
            let id = call["id"].as_str().map_or_else(
                || format!("toolu_{}", crate::ids::random_alnum(24)),
                str::to_owned,
            );
            let block = json!({"type": "tool_use", "id": id,
                "name": call["function"]["name"].as_str().unwrap_or_default(), "input": {}});
            self.ensure(Open::Tool(k), block, out)
        } else {
            self.open.map_or(0, |(i, _)| i)
        };
        let args = call["function"]["arguments"].as_str().unwrap_or("");
        if !args.is_empty() {
            self.delta(
                index,
                json!({"type": "input_json_delta", "partial_json": args}),
                out,
            );
        }
    }
}

impl Encoder for MessagesEncoder {
    fn chunk(&mut self, chunk: Value, out: &mut Vec<Frame>) {
        self.start(out);
        let choice = &chunk["choices"][0];
        let delta = &choice["delta"];
        if let Some(r) = reasoning_of(delta) {
            let block = json!({"type": "thinking", "thinking": "", "signature": ""});
            let index = self.ensure(Open::Thinking, block, out);
            self.delta(index, json!({"type": "thinking_delta", "thinking": r}), out);
        }
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            let index = self.ensure(Open::Text, json!({"type": "text", "text": ""}), out);
            self.delta(index, json!({"type": "text_delta", "text": text}), out);
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            self.tool_call(call, out);
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            self.finish = Some(f.to_owned());
        }
    }

    fn native(&mut self, ev: SseEvent, out: &mut Vec<Frame>) {
        self.started = true;
        let name = ev.event.as_deref().unwrap_or_default();
        if name == "error" {
            self.native_error_sent = true;
        }
        if name == "message_stop" {
            let v = serde_json::from_str(&ev.data).unwrap_or(json!({"type": "message_stop"}));
            self.held_stop = Some(v);
            return;
        }
        out.push(super::native_event(ev));
    }

    fn end(&mut self, end: End, out: &mut Vec<Frame>) {
        let x_pura = serde_json::to_value(&end.x_pura).unwrap_or(Value::Null);
        if let Some(mut stop) = self.held_stop.take() {
            // A native stream: everything but the final event has gone out already.
            stop["x_pura"] = x_pura;
            out.push(event(&stop));
            return;
        }
        if let Some(error) = end.error {
            if !self.native_error_sent {
                self.start(out);
                out.push(error_event(error));
            }
            return;
        }
        self.start(out);
        self.close(out);
        let usage = MessagesUsage::from_canonical(&end.usage);
        out.push(event(&json!({"type": "message_delta",
            "delta": {"stop_reason": stop_reason(self.finish.as_deref()), "stop_sequence": null},
            "usage": usage})));
        out.push(event(&json!({"type": "message_stop", "x_pura": x_pura})));
    }
}

/// An error answered in Anthropic's envelope, `{"type":"error","error":{"type","message"}}`,
/// with the status and headers (`Retry-After`, `WWW-Authenticate: L402 …`) of the pipeline's
/// error; a 402 keeps its `invoice` alongside.
#[derive(Debug)]
pub struct AnthropicError(pub ApiError);

impl From<ApiError> for AnthropicError {
    fn from(e: ApiError) -> Self {
        AnthropicError(e)
    }
}

impl std::fmt::Display for AnthropicError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl AnthropicError {
    /// Anthropic's `error.type` for the pipeline's error.
    pub fn kind(&self) -> &'static str {
        match &self.0 {
            ApiError::BadRequest { .. } => "invalid_request_error",
            ApiError::Unauthorized(_) => "authentication_error",
            ApiError::Forbidden(_) => "permission_error",
            ApiError::PaymentRequired { .. } => "billing_error",
            ApiError::ModelNotFound(_) | ApiError::NotFound(_) | ApiError::NotFoundCode { .. } => {
                "not_found_error"
            }
            ApiError::TooLarge(_) => "request_too_large",
            ApiError::RequestTimeout(_) => "invalid_request_error",
            ApiError::RateLimited { .. } | ApiError::QuotaExceeded { .. } => "rate_limit_error",
            ApiError::UpstreamTimeout(_) => "timeout_error",
            ApiError::Unavailable(_) => "overloaded_error",
            ApiError::UpstreamFailed(_) | ApiError::Internal(_) => "api_error",
        }
    }
}

impl ResponseError for AnthropicError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        // The OpenAI-shaped response carries the right status and headers; only the body changes.
        let resp = self.0.error_response();
        let message = self.0.to_string();
        let envelope = ErrorEnvelope {
            kind: "error",
            error: ErrorBody {
                kind: self.kind(),
                message: &message,
            },
        };
        let mut body = serde_json::to_value(&envelope).unwrap_or(Value::Null);
        if let ApiError::PaymentRequired {
            invoice: Some(invoice),
            ..
        } = &self.0
        {
            body["invoice"] = serde_json::to_value(&**invoice).unwrap_or(Value::Null);
        }
        resp.set_body(actix_web::body::BoxBody::new(body.to_string()))
    }
}

/// Turns an extractor's or handler's `actix_web::Error` into the Anthropic envelope.
/// `limit` is the body limit, for a 413.
pub fn from_actix(e: actix_web::Error, limit: usize) -> AnthropicError {
    AnthropicError(ApiError::from_body(&e, limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> MessagesRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn decodes_system_tools_and_turns() {
        let r = req(json!({
            "model": "claude-x", "max_tokens": 100, "top_k": 5, "temperature": 0.5,
            "stop_sequences": ["END"], "metadata": {"user_id": "u1"},
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "tools": [{"name": "get_weather", "description": "d", "input_schema": {"type": "object"}},
                      {"type": "web_search_20250305", "name": "web_search"}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Weather?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "21C"}]},
                    {"type": "text", "text": "Thanks"}]}
            ]
        }));
        let c = decode(&r, Some("auto".into())).unwrap();
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["model"], "auto");
        assert_eq!(v["max_tokens"], 100);
        assert_eq!(v["stop"], json!(["END"]));
        assert_eq!(v["user"], "u1");
        assert!(v.get("top_k").is_none());
        assert_eq!(v["tool_choice"], "required");
        assert_eq!(v["parallel_tool_calls"], false);
        assert_eq!(v["tools"].as_array().unwrap().len(), 1);
        assert_eq!(
            v["tools"][0]["function"]["parameters"],
            json!({"type": "object"})
        );
        let m = v["messages"].as_array().unwrap();
        assert_eq!(m.len(), 5);
        assert_eq!(m[0], json!({"role": "system", "content": "Be brief."}));
        assert_eq!(
            m[1]["content"][1]["image_url"]["url"],
            "data:image/png;base64,iVBO"
        );
        assert_eq!(m[2]["content"], "Checking.");
        assert_eq!(m[2]["tool_calls"][0]["id"], "toolu_1");
        assert_eq!(
            m[2]["tool_calls"][0]["function"]["arguments"],
            r#"{"city":"Paris"}"#
        );
        assert_eq!(
            m[3],
            json!({"role": "tool", "content": "21C", "tool_call_id": "toolu_1"})
        );
        assert_eq!(m[4], json!({"role": "user", "content": "Thanks"}));
    }

    #[test]
    fn routes_unknown_claude_ids_to_auto() {
        let known = |m: &str| m == "claude-sonnet-4-20250514" || m == "gpt-4o";
        assert_eq!(
            route_model("claude-sonnet-4-20250514", known).as_deref(),
            Some("claude-sonnet-4-20250514")
        );
        assert_eq!(
            route_model("claude-3-5-haiku-latest", known).as_deref(),
            Some("auto")
        );
        assert_eq!(route_model("llama-9", known).as_deref(), Some("llama-9"));
        assert_eq!(route_model("", known), None);
    }

    #[test]
    fn encodes_completion_as_message() {
        let body = json!({"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant",
                "content": "Let me check.", "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "f", "arguments": "{\"a\":1}"}}]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}});
        let c = Completion {
            body: Value::Null,
            usage: Some(Usage::new(10, 3).with_details(4, 0)),
            raw: Some(body.to_string().into()),
            native: false,
        };
        let v: Value = serde_json::from_slice(&completion_bytes(c).unwrap()).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["model"], "gpt-4o");
        assert_eq!(v["stop_reason"], "tool_use");
        assert_eq!(
            v["content"],
            json!([{"type": "text", "text": "Let me check."},
                   {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}}])
        );
        assert_eq!(
            v["usage"],
            json!({"input_tokens": 6, "cache_creation_input_tokens": 0,
                   "cache_read_input_tokens": 4, "output_tokens": 3})
        );
    }

    #[test]
    fn stop_reasons_map_back() {
        assert_eq!(stop_reason(Some("stop")), "end_turn");
        assert_eq!(stop_reason(Some("length")), "max_tokens");
        assert_eq!(stop_reason(Some("tool_calls")), "tool_use");
        assert_eq!(stop_reason(Some("content_filter")), "refusal");
        assert_eq!(stop_reason(None), "end_turn");
    }
}
