//! The Anthropic Messages dialect (`POST /v1/messages`). System prompts move to the top-level
//! `system` field, tool calls and results become `tool_use` / `tool_result` content blocks, and
//! the typed event stream is re-cut into OpenAI deltas (wire-formats.md §3.6).

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::messages::{self, bad_messages, text_of, Image, Part};
use super::outbound;
use super::sse::SseEvent;
use super::{chunk, error_message};
use super::{Completion, NativeBody, ProviderSpec, StreamItem, StreamTranslator, UpstreamCall};
use crate::api::chat::Tool;
use crate::api::{ChatRequest, Message, Role, Usage};
use crate::error::ApiError;
use crate::ids::{completion_id, now_unix};

/// Anthropic requires `max_tokens` and OpenAI does not, so requests without a cap get this one.
const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Builds the `POST {base_url}/messages` call for `model`.
pub fn build(
    p: &ProviderSpec,
    model: &str,
    req: &ChatRequest,
    stream: bool,
) -> Result<UpstreamCall, ApiError> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(ApiError::bad_param(
            "n",
            "Anthropic models do not support n > 1.",
        ));
    }
    let mut system = Vec::new();
    let mut messages = Vec::new();
    for m in &req.messages {
        let (role, blocks) = match m.role {
            Role::System | Role::Developer => {
                system.extend(Some(m.text()).filter(|t| !t.is_empty()));
                continue;
            }
            Role::User => ("user", content_blocks(m.content.as_ref())?),
            Role::Assistant => ("assistant", assistant_blocks(m)?),
            Role::Tool => ("user", vec![tool_result(m)?]),
            Role::Function => return Err(bad_messages("Use `tool` messages, not `function`.")),
        };
        push_merged(&mut messages, role, blocks);
    }
    if messages.is_empty() {
        return Err(bad_messages("At least one non-system message is required."));
    }
    let mut body = json!({
        "model": model,
        "max_tokens": req.max_output_tokens().unwrap_or(DEFAULT_MAX_TOKENS),
        "messages": messages,
    });
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if let Some(stop) = stop_sequences(req.stop.as_ref())? {
        body["stop_sequences"] = stop;
    }
    if let Some(t) = req.temperature {
        // OpenAI accepts 0..=2, Anthropic rejects anything above 1.
        body["temperature"] = json!(t.clamp(0.0, 1.0));
    }
    if let Some(top_p) = req.top_p {
        body["top_p"] = json!(top_p);
    }
    if let Some(user) = &req.user {
        body["metadata"] = json!({ "user_id": user });
    }
    // Anthropic's tiers are not OpenAI's: an allowed one is served at the standard tier.
    outbound::service_tier(p, req.service_tier.as_deref(), false)?;
    if let Some(tools) = req.tools.as_deref().filter(|t| !t.is_empty()) {
        body["tools"] = tools.iter().map(tool_def).collect();
        if let Some(choice) = tool_choice(req.tool_choice.as_ref(), req.parallel_tool_calls)? {
            body["tool_choice"] = choice;
        }
    }
    if stream {
        body["stream"] = json!(true);
    }
    Ok(UpstreamCall {
        url: p.url("/messages"),
        headers: vec![
            ("x-api-key", p.api_key.expose().to_owned()),
            ("anthropic-version", "2023-06-01".to_owned()),
        ],
        body: serde_json::to_vec(&body).map_err(ApiError::internal)?,
        native: false,
    })
}

fn count(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

/// User or assistant content as Anthropic blocks; http(s) images are fetched by Anthropic.
fn content_blocks(content: Option<&Value>) -> Result<Vec<Value>, ApiError> {
    let blocks = messages::parts(content)?
        .into_iter()
        .map(|part| match part {
            Part::Text(t) => json!({"type": "text", "text": t}),
            Part::Image(Image::Inline { mime, data }) => json!({"type": "image",
            "source": {"type": "base64", "media_type": mime, "data": data}}),
            Part::Image(Image::Url(url)) => {
                json!({"type": "image", "source": {"type": "url", "url": url}})
            }
        });
    Ok(blocks.collect())
}

/// Assistant text first, then one `tool_use` block per tool call (Anthropic's order).
fn assistant_blocks(m: &Message) -> Result<Vec<Value>, ApiError> {
    let mut blocks = content_blocks(m.content.as_ref())?;
    for tc in m.tool_calls.iter().flatten() {
        let input = messages::call_args(&tc.id, &tc.function.arguments)?;
        blocks.push(json!({
            "type": "tool_use", "id": tc.id, "name": tc.function.name, "input": input
        }));
    }
    Ok(blocks)
}

fn tool_result(m: &Message) -> Result<Value, ApiError> {
    let Some(id) = m.tool_call_id.as_deref() else {
        return Err(bad_messages("A tool message needs a tool_call_id."));
    };
    let mut block = json!({"type": "tool_result", "tool_use_id": id});
    let text = m.text();
    if !text.is_empty() {
        block["content"] = json!(text);
    }
    Ok(block)
}

/// Anthropic wants alternating turns with the `tool_result` blocks first in their user turn.
fn push_merged(turns: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    messages::push_merged(turns, role, "content", blocks, |content, block| {
        if block["type"] == "tool_result" {
            content
                .iter()
                .take_while(|b| b["type"] == "tool_result")
                .count()
        } else {
            content.len()
        }
    });
}

fn stop_sequences(stop: Option<&Value>) -> Result<Option<Value>, ApiError> {
    match stop {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(json!([s]))),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => Ok(Some(json!(a))),
        Some(_) => Err(ApiError::bad_param(
            "stop",
            "stop must be a string or strings.",
        )),
    }
}

fn tool_def(t: &Tool) -> Value {
    let mut def = Map::new();
    def.insert("name".into(), json!(t.function.name));
    if let Some(d) = &t.function.description {
        def.insert("description".into(), json!(d));
    }
    let schema = t.function.parameters.clone();
    let schema = schema.unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    def.insert("input_schema".into(), schema);
    Value::Object(def)
}

/// OpenAI's `tool_choice` plus `parallel_tool_calls: false`; None keeps Anthropic's default (auto).
fn tool_choice(choice: Option<&Value>, parallel: Option<bool>) -> Result<Option<Value>, ApiError> {
    let serial = parallel == Some(false);
    let mut tc = match choice {
        None | Some(Value::Null) if !serial => return Ok(None),
        None | Some(Value::Null) => json!({"type": "auto"}),
        Some(Value::String(s)) if s == "auto" => json!({"type": "auto"}),
        Some(Value::String(s)) if s == "required" => json!({"type": "any"}),
        Some(Value::String(s)) if s == "none" => json!({"type": "none"}),
        Some(v) => match v["function"]["name"].as_str() {
            Some(name) => json!({"type": "tool", "name": name}),
            None => return Err(ApiError::bad_param("tool_choice", "Unknown tool_choice.")),
        },
    };
    if serial && tc["type"] != "none" {
        tc["disable_parallel_tool_use"] = json!(true);
    }
    Ok(Some(tc))
}

/// Anthropic `stop_reason` → OpenAI `finish_reason` (wire-formats.md §3.6).
fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// Prompt tokens include cache writes and reads: Anthropic counts them apart from `input_tokens`.
fn prompt_tokens(u: &Value) -> u64 {
    let cache = count(u, "cache_creation_input_tokens") + count(u, "cache_read_input_tokens");
    count(u, "input_tokens") + cache
}

/// Translates an Anthropic `message` into an OpenAI `chat.completion`.
pub fn parse(body: &[u8], model: &str) -> Result<Completion, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    if v["type"] == "error" {
        return Err(format!("upstream error: {}", error_message(body)));
    }
    let blocks = v["content"]
        .as_array()
        .ok_or("upstream answer has no content")?;
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in blocks {
        match b["type"].as_str() {
            Some("text") => text.push_str(text_of(b)),
            Some("tool_use") => {
                let args = b.get("input").map_or("{}".into(), Value::to_string);
                let function = json!({"name": b["name"], "arguments": args});
                calls.push(json!({"id": b["id"], "type": "function", "function": function}));
            }
            _ => {} // thinking and server-tool blocks have no OpenAI equivalent
        }
    }
    let content = (!text.is_empty()).then_some(text);
    let mut message = json!({"role": "assistant", "content": content, "refusal": null});
    if !calls.is_empty() {
        message["tool_calls"] = json!(calls);
    }
    let u = &v["usage"];
    let usage = Usage::new(prompt_tokens(u), count(u, "output_tokens"));
    let body = json!({
        "id": v["id"].as_str().map_or_else(completion_id, str::to_owned),
        "object": "chat.completion",
        "created": now_unix(),
        "model": v["model"].as_str().unwrap_or(model),
        "system_fingerprint": null,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(v["stop_reason"].as_str()),
        }],
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "prompt_tokens_details": {"cached_tokens": count(u, "cache_read_input_tokens")},
        },
    });
    Ok(Completion {
        body,
        usage: Some(usage),
        raw: None,
        native: false,
    })
}

/// Re-cuts one Anthropic event stream into OpenAI chunks. Anthropic numbers content blocks
/// (text and tool_use alike) while OpenAI numbers tool calls only, hence `tool_index`.
#[derive(Debug)]
pub struct Translator {
    id: String,
    created: i64,
    model: String,
    prompt_tokens: u64,
    /// Anthropic content-block index → OpenAI tool-call index.
    tool_index: HashMap<u64, usize>,
}

impl Translator {
    /// A translator for one stream answering a request for `model`.
    pub fn new(model: &str) -> Self {
        Translator {
            id: completion_id(),
            created: now_unix(),
            model: model.to_owned(),
            prompt_tokens: 0,
            tool_index: HashMap::new(),
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> StreamItem {
        StreamItem::Chunk(chunk(&self.id, self.created, &self.model, delta, finish))
    }

    fn tool_delta(&self, call: Value) -> StreamItem {
        self.chunk(json!({ "tool_calls": [call] }), None)
    }
}

fn block_index(v: &Value) -> Result<u64, String> {
    let index = v["index"].as_u64();
    index.ok_or_else(|| "content block event without index".into())
}

impl StreamTranslator for Translator {
    fn on_event(&mut self, event: &SseEvent) -> Result<Vec<StreamItem>, String> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let v: Value = serde_json::from_str(data).map_err(|e| format!("malformed event: {e}"))?;
        let name = event.event.as_deref().or(v["type"].as_str()).unwrap_or("");
        let items = match name {
            "message_start" => {
                let msg = &v["message"];
                if let Some(id) = msg["id"].as_str() {
                    self.id = id.to_owned();
                }
                if let Some(model) = msg["model"].as_str() {
                    self.model = model.to_owned();
                }
                self.prompt_tokens = prompt_tokens(&msg["usage"]);
                vec![self.chunk(json!({"role": "assistant", "content": ""}), None)]
            }
            "content_block_start" if v["content_block"]["type"] == "tool_use" => {
                let block = &v["content_block"];
                let k = self.tool_index.len();
                self.tool_index.insert(block_index(&v)?, k);
                let call = json!({"index": k, "id": block["id"], "type": "function",
                    "function": {"name": block["name"], "arguments": ""}});
                vec![self.tool_delta(call)]
            }
            "content_block_delta" => {
                match v["delta"]["type"].as_str() {
                    Some("text_delta") => {
                        vec![self.chunk(json!({"content": v["delta"]["text"]}), None)]
                    }
                    Some("input_json_delta") => {
                        let Some(&k) = self.tool_index.get(&block_index(&v)?) else {
                            return Err("input_json_delta outside a tool_use block".into());
                        };
                        // The first fragment is usually ""; it carries nothing for the client.
                        let part = v["delta"]["partial_json"].as_str().unwrap_or("");
                        if part.is_empty() {
                            return Ok(Vec::new());
                        }
                        vec![self.tool_delta(json!({"index": k, "function": {"arguments": part}}))]
                    }
                    _ => Vec::new(), // thinking, signature and citation deltas have no OpenAI form
                }
            }
            "message_delta" => {
                let u = &v["usage"];
                // Newer API versions repeat the input counts here; they are final then.
                if u.get("input_tokens").is_some() {
                    self.prompt_tokens = prompt_tokens(u);
                }
                let usage = Usage::new(self.prompt_tokens, count(u, "output_tokens"));
                let finish = finish_reason(v["delta"]["stop_reason"].as_str());
                vec![
                    self.chunk(json!({}), Some(finish)),
                    StreamItem::Usage(usage),
                ]
            }
            "message_stop" => vec![StreamItem::Done],
            "error" => {
                let message = v["error"]["message"].as_str().unwrap_or("upstream error");
                let kind = v["error"]["type"].as_str().unwrap_or("upstream_error");
                let error = json!({"message": message, "type": kind, "param": null, "code": null});
                vec![StreamItem::Error(error)]
            }
            _ => Vec::new(), // ping, text block starts, content_block_stop, future events
        };
        Ok(items)
    }
}

/// Builds the call for a client's own Messages body: `model` and `stream` set, everything
/// else as the client sent it (thinking blocks with their signatures, `cache_control`, betas),
/// with the client's `anthropic-version` / `anthropic-beta` headers.
pub fn build_native(
    p: &ProviderSpec,
    model: &str,
    native: &NativeBody,
    stream: bool,
) -> Result<UpstreamCall, ApiError> {
    let mut body = outbound::messages_body(p, &native.body, &native.end_user)?;
    body.insert("model".into(), json!(model));
    body.insert("stream".into(), json!(stream));
    let mut headers = vec![("x-api-key", p.api_key.expose().to_owned())];
    headers.extend(native.headers.iter().cloned());
    if !headers.iter().any(|(n, _)| *n == "anthropic-version") {
        headers.push(("anthropic-version", "2023-06-01".to_owned()));
    }
    Ok(UpstreamCall {
        url: p.url("/messages"),
        headers,
        body: serde_json::to_vec(&body).map_err(ApiError::internal)?,
        native: true,
    })
}

/// Canonical usage of an Anthropic `usage` object: cache reads and writes count as prompt
/// tokens, reads also as `cached_tokens` (priced at the cached rate).
fn usage_of(u: &Value, output: u64) -> Usage {
    Usage::new(prompt_tokens(u), output).with_details(count(u, "cache_read_input_tokens"), 0)
}

/// Reads the usage of a native `message` answer; its bytes go to the client as they came.
pub fn parse_native(body: bytes::Bytes) -> Result<Completion, String> {
    let v: Value = serde_json::from_slice(&body).map_err(|e| format!("invalid JSON: {e}"))?;
    if v["type"] == "error" {
        return Err(format!("upstream error: {}", error_message(&body)));
    }
    if v["type"] != "message" {
        return Err("upstream answer is not a message".into());
    }
    let usage = usage_of(&v["usage"], count(&v["usage"], "output_tokens"));
    Ok(Completion {
        body: Value::Null,
        usage: Some(usage),
        raw: Some(body),
        native: true,
    })
}

/// Passes a native Anthropic stream through event by event, reading its usage on the way:
/// input (and cache) counts from `message_start`, final counts from `message_delta`.
#[derive(Debug, Default)]
pub struct NativeTranslator {
    usage: Value,
}

impl StreamTranslator for NativeTranslator {
    fn on_event(&mut self, event: &SseEvent) -> Result<Vec<StreamItem>, String> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let v: Value = serde_json::from_str(data).map_err(|e| format!("malformed event: {e}"))?;
        let name = event.event.as_deref().or(v["type"].as_str()).unwrap_or("");
        let text_chars = match name {
            "content_block_delta" => ["text", "partial_json", "thinking"]
                .iter()
                .find_map(|k| v["delta"][*k].as_str())
                .map_or(0, str::len),
            _ => 0,
        };
        let native = StreamItem::Native {
            event: SseEvent {
                event: Some(name.to_owned()),
                data: data.to_owned(),
            },
            text_chars,
        };
        let items = match name {
            "message_start" => {
                self.usage = v["message"]["usage"].clone();
                vec![native]
            }
            "message_delta" => {
                // Counts here are cumulative; newer API versions repeat the input counts too.
                if let (Some(now), Some(seen)) =
                    (v["usage"].as_object(), self.usage.as_object_mut())
                {
                    for (k, n) in now {
                        seen.insert(k.clone(), n.clone());
                    }
                } else if self.usage.is_null() {
                    self.usage = v["usage"].clone();
                }
                let usage = usage_of(&self.usage, count(&self.usage, "output_tokens"));
                vec![native, StreamItem::Usage(usage)]
            }
            "message_stop" => vec![native, StreamItem::Done],
            "error" => {
                let message = v["error"]["message"].as_str().unwrap_or("upstream error");
                let kind = v["error"]["type"].as_str().unwrap_or("api_error");
                let error = json!({"message": message, "type": kind, "param": null, "code": null});
                vec![native, StreamItem::Error(error)]
            }
            _ => vec![native],
        };
        Ok(items)
    }
}

/// The Anthropic dialect behind the common [`Adapter`](super::Adapter) trait.
pub struct Anthropic;

impl super::Adapter for Anthropic {
    fn build(
        &self,
        provider: &ProviderSpec,
        model: &str,
        req: &ChatRequest,
        stream: bool,
    ) -> Result<UpstreamCall, ApiError> {
        build(provider, model, req, stream)
    }

    fn parse(&self, body: bytes::Bytes, model: &str) -> Result<Completion, String> {
        parse(&body, model)
    }

    fn translator(&self, model: &str) -> Box<dyn StreamTranslator> {
        Box::new(Translator::new(model))
    }

    fn request_id_header(&self) -> Option<actix_web::http::header::HeaderName> {
        Some(actix_web::http::header::HeaderName::from_static(
            "request-id",
        ))
    }

    fn build_native(
        &self,
        provider: &ProviderSpec,
        model: &str,
        native: &NativeBody,
        stream: bool,
    ) -> Result<UpstreamCall, ApiError> {
        build_native(provider, model, native, stream)
    }

    fn parse_native(&self, body: bytes::Bytes) -> Result<Completion, String> {
        parse_native(body)
    }

    fn native_translator(&self) -> Box<dyn StreamTranslator> {
        Box::new(NativeTranslator::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::sse::SseParser;
    use crate::providers::{Dialect, Tier};

    fn spec() -> ProviderSpec {
        ProviderSpec {
            api_key: crate::secret::Secret::new("sk-ant"),
            ..ProviderSpec::for_test(
                Dialect::Anthropic,
                "claude",
                "https://api.anthropic.com/v1",
                Tier::Premium,
                "claude-x",
            )
        }
    }

    fn body_of(req: Value, stream: bool) -> Result<Value, ApiError> {
        let req: ChatRequest = serde_json::from_value(req).map_err(ApiError::internal)?;
        let call = build(&spec(), "claude-x", &req, stream)?;
        serde_json::from_slice(&call.body).map_err(ApiError::internal)
    }

    #[test]
    fn hoists_system_merges_roles_and_puts_tool_results_first() {
        let call = |id: &str, args: &str| {
            json!({"id": id, "type": "function",
                "function": {"name": "get_weather", "arguments": args}})
        };
        let b = body_of(json!({"messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
            {"role": "user", "content": "Weather?"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                                          {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
            {"role": "assistant", "content": "", "tool_calls": [call("t1", r#"{"city":"Paris"}"#), call("t2", "")]},
            {"role": "tool", "tool_call_id": "t1", "content": "21C"},
            {"role": "user", "content": "And?"},
            {"role": "tool", "tool_call_id": "t2", "content": "18C"},
        ]}), false).unwrap();
        assert_eq!(b["system"], "Be brief.\n\nUse tools.");
        assert_eq!(b["max_tokens"], 4096);
        assert!(b.get("stream").is_none() && b.get("tool_choice").is_none());
        let msgs = b["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3);
        assert_eq!(
            msgs[0]["content"][0],
            json!({"type": "text", "text": "Weather?"})
        );
        assert_eq!(
            msgs[0]["content"][1]["source"],
            json!({"type": "base64", "media_type": "image/png", "data": "iVBO"})
        );
        assert_eq!(
            msgs[0]["content"][2]["source"],
            json!({"type": "url", "url": "https://x/y.png"})
        );
        // The empty assistant text is dropped; each call becomes a tool_use with parsed input.
        assert_eq!(
            msgs[1]["content"],
            json!([
                {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "t2", "name": "get_weather", "input": {}},
            ])
        );
        assert_eq!(msgs[2]["role"], "user");
        assert_eq!(
            msgs[2]["content"],
            json!([
                {"type": "tool_result", "tool_use_id": "t1", "content": "21C"},
                {"type": "tool_result", "tool_use_id": "t2", "content": "18C"},
                {"type": "text", "text": "And?"},
            ])
        );
    }

    #[test]
    fn maps_sampling_tools_and_headers() {
        let req = json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 50,
            "max_completion_tokens": 70, "temperature": 1.6, "top_p": 0.9, "stop": "END", "user": "u1",
            "tools": [{"type": "function", "function": {"name": "f", "description": "d"}}],
            "tool_choice": "required", "parallel_tool_calls": false});
        let b = body_of(req.clone(), true).unwrap();
        assert_eq!(b["model"], "claude-x");
        assert_eq!(b["max_tokens"], 70);
        assert_eq!(b["temperature"], 1.0);
        assert_eq!(b["top_p"], 0.9);
        assert_eq!(b["stop_sequences"], json!(["END"]));
        assert_eq!(b["metadata"], json!({"user_id": "u1"}));
        assert_eq!(b["stream"], true);
        assert_eq!(
            b["tools"],
            json!([{"name": "f", "description": "d", "input_schema": {"type": "object", "properties": {}}}])
        );
        assert_eq!(
            b["tool_choice"],
            json!({"type": "any", "disable_parallel_tool_use": true})
        );
        let mut named = req;
        named["tool_choice"] = json!({"type": "function", "function": {"name": "f"}});
        named["parallel_tool_calls"] = json!(true);
        assert_eq!(
            body_of(named, false).unwrap()["tool_choice"],
            json!({"type": "tool", "name": "f"})
        );
        let r: ChatRequest =
            serde_json::from_value(json!({"messages": [{"role": "user", "content": "hi"}]}))
                .unwrap();
        let call = build(&spec(), "claude-x", &r, false).unwrap();
        assert_eq!(call.url, "https://api.anthropic.com/v1/messages");
        assert_eq!(
            call.headers,
            vec![
                ("x-api-key", "sk-ant".to_owned()),
                ("anthropic-version", "2023-06-01".to_owned())
            ]
        );
    }

    #[test]
    fn rejects_n_bad_arguments_and_system_only() {
        let param = |r: Result<Value, ApiError>| match r {
            Err(ApiError::BadRequest { param, .. }) => param,
            _ => None,
        };
        let user = json!({"role": "user", "content": "hi"});
        assert_eq!(
            param(body_of(json!({"messages": [user], "n": 2}), false)),
            Some("n")
        );
        let bad = json!({"role": "assistant", "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]});
        assert_eq!(
            param(body_of(json!({"messages": [user, bad]}), false)),
            Some("messages")
        );
        let sys = json!({"role": "system", "content": "x"});
        assert_eq!(
            param(body_of(json!({"messages": [sys]}), false)),
            Some("messages")
        );
    }

    #[test]
    fn parses_tool_use_message_with_cache_usage() {
        let body = br#"{"id":"msg_013Zva2CMHLNnXjNJJKqJ2EF","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
            "content":[{"type":"text","text":"I'll check the current weather in Paris for you."},
                       {"type":"tool_use","id":"toolu_01NRLabsLyVHZPKxbKvkfSMn","name":"get_weather","input":{"location":"Paris"}}],
            "stop_reason":"tool_use","stop_sequence":null,
            "usage":{"input_tokens":377,"cache_creation_input_tokens":10,"cache_read_input_tokens":20,"output_tokens":65}}"#;
        let c = parse(body, "claude-x").unwrap();
        let b = &c.body;
        assert_eq!(b["id"], "msg_013Zva2CMHLNnXjNJJKqJ2EF");
        assert_eq!(b["object"], "chat.completion");
        assert_eq!(b["model"], "claude-sonnet-4-5-20250929");
        let choice = &b["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["logprobs"], Value::Null);
        assert_eq!(
            choice["message"]["content"],
            "I'll check the current weather in Paris for you."
        );
        let tc = &choice["message"]["tool_calls"][0];
        assert_eq!(tc["id"], "toolu_01NRLabsLyVHZPKxbKvkfSMn");
        assert_eq!(tc["function"]["name"], "get_weather");
        let args: Value =
            serde_json::from_str(tc["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"location": "Paris"}));
        assert_eq!(c.usage, Some(Usage::new(407, 65)));
        assert_eq!(b["usage"]["total_tokens"], 472);
        assert_eq!(b["usage"]["prompt_tokens_details"]["cached_tokens"], 20);
        assert!(parse(b"{\"type\":\"message\"}", "m").is_err());
        assert!(parse(b"not json", "m").is_err());
    }

    #[test]
    fn maps_stop_reasons() {
        for (stop, finish) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
            ("pause_turn", "stop"),
            ("model_context_window_exceeded", "length"),
        ] {
            assert_eq!(finish_reason(Some(stop)), finish);
            let body = json!({"content": [], "stop_reason": stop, "usage": {"input_tokens": 1, "output_tokens": 1}});
            let c = parse(body.to_string().as_bytes(), "m").unwrap();
            assert_eq!(c.body["choices"][0]["finish_reason"], finish);
            assert_eq!(c.body["choices"][0]["message"]["content"], Value::Null);
        }
    }

    /// wire-formats.md §3.4, verbatim.
    const TOOL_STREAM: &str = r##"event: message_start
data: {"type":"message_start","message":{"id":"msg_019Q1hrJbZG26Fb9BQhrkHEr","type":"message","role":"assistant","model":"claude-sonnet-4-20250514","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":377,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1,"service_tier":"standard"}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"I"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"'ll check the current weather in Paris for you."}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01NRLabsLyVHZPKxbKvkfSMn","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"locati"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"on\": \"P"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"aris\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":65}}

event: message_stop
data: {"type":"message_stop"}

"##;

    #[test]
    fn translates_recorded_tool_use_stream() {
        let mut t = Translator::new("claude-x");
        let mut items = Vec::new();
        for ev in SseParser::default().feed(TOOL_STREAM.as_bytes()) {
            items.extend(t.on_event(&ev).unwrap());
        }
        let c = |delta: Value, finish: Option<&str>| {
            StreamItem::Chunk(chunk(
                "msg_019Q1hrJbZG26Fb9BQhrkHEr",
                t.created,
                "claude-sonnet-4-20250514",
                delta,
                finish,
            ))
        };
        let args = |s: &str| {
            c(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": s}}]}),
                None,
            )
        };
        let expected = vec![
            c(json!({"role": "assistant", "content": ""}), None),
            c(json!({"content": "I"}), None),
            c(
                json!({"content": "'ll check the current weather in Paris for you."}),
                None,
            ),
            c(
                json!({"tool_calls": [{"index": 0, "id": "toolu_01NRLabsLyVHZPKxbKvkfSMn", "type": "function",
                "function": {"name": "get_weather", "arguments": ""}}]}),
                None,
            ),
            args("{\"locati"),
            args("on\": \"P"),
            args("aris\"}"),
            c(json!({}), Some("tool_calls")),
            StreamItem::Usage(Usage::new(377, 65)),
            StreamItem::Done,
        ];
        assert_eq!(items, expected);
    }

    #[test]
    fn native_call_keeps_the_body_and_forwards_headers() {
        let mut body = Map::new();
        body.insert("model".into(), json!("claude-3-5-haiku-latest"));
        body.insert("max_tokens".into(), json!(10));
        let thinking = json!({"type": "thinking", "thinking": "hm", "signature": "c2ln"});
        let msgs = json!([{"role": "user", "content": [{"type": "text", "text": "hi",
            "cache_control": {"type": "ephemeral"}}]}, {"role": "assistant", "content": [thinking]}]);
        body.insert("messages".into(), msgs.clone());
        let native = NativeBody {
            dialect: crate::providers::Dialect::Anthropic,
            body,
            headers: vec![
                ("anthropic-version", "2026-10-21".into()),
                ("anthropic-beta", "interleaved-thinking-2025-05-14".into()),
            ],
            end_user: "u1".into(),
        };
        let call = build_native(&spec(), "claude-x", &native, true).unwrap();
        assert!(call.native);
        let b: Value = serde_json::from_slice(&call.body).unwrap();
        assert_eq!(b["model"], "claude-x");
        assert_eq!(b["stream"], true);
        assert_eq!(b["messages"], msgs);
        assert_eq!(b["metadata"], json!({"user_id": "u1"}));
        assert_eq!(
            call.headers,
            vec![
                ("x-api-key", "sk-ant".to_owned()),
                ("anthropic-version", "2026-10-21".to_owned()),
                (
                    "anthropic-beta",
                    "interleaved-thinking-2025-05-14".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn native_answer_and_stream_report_usage_with_cache_reads() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[],
            "stop_reason":"end_turn","usage":{"input_tokens":10,"cache_creation_input_tokens":2,"cache_read_input_tokens":30,"output_tokens":5}}"#;
        let c = parse_native(bytes::Bytes::from_static(body)).unwrap();
        assert!(c.native);
        assert_eq!(c.raw.as_deref(), Some(&body[..]));
        let usage = c.usage.unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (42, 5));
        assert_eq!(usage.cached_tokens(), 30);

        let mut t = NativeTranslator::default();
        let mut items = Vec::new();
        for ev in SseParser::default().feed(TOOL_STREAM.as_bytes()) {
            items.extend(t.on_event(&ev).unwrap());
        }
        let natives = items
            .iter()
            .filter(|i| matches!(i, StreamItem::Native { .. }))
            .count();
        assert_eq!(natives, 14, "every event passes through");
        let n = items.len();
        assert_eq!(items[n - 1], StreamItem::Done);
        assert!(
            matches!(&items[n - 2], StreamItem::Native { event, .. } if event.event.as_deref() == Some("message_stop"))
        );
        assert!(items.contains(&StreamItem::Usage(Usage::new(377, 65))));
        let err = t
            .on_event(&SseEvent {
                event: Some("error".into()),
                data:
                    r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
                        .into(),
            })
            .unwrap();
        assert!(matches!(&err[1], StreamItem::Error(e) if e["message"] == "Overloaded"));
    }

    #[test]
    fn maps_error_event_and_rejects_malformed_json() {
        let mut t = Translator::new("claude-x");
        let ev = |event: Option<&str>, data: &str| SseEvent {
            event: event.map(str::to_owned),
            data: data.into(),
        };
        let items = t.on_event(&ev(Some("error"), r#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#)).unwrap();
        let err = json!({"message": "Overloaded", "type": "overloaded_error", "param": null, "code": null});
        assert_eq!(items, vec![StreamItem::Error(err)]);
        // Without an `event:` line the data's own type decides.
        assert_eq!(
            t.on_event(&ev(None, r#"{"type":"message_stop"}"#)).unwrap(),
            vec![StreamItem::Done]
        );
        assert!(t
            .on_event(&ev(Some("content_block_delta"), "{broken"))
            .is_err());
    }
}
