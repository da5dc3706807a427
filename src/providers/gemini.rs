//! The Gemini native dialect (`models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`). Turns are `user` / `model` with typed parts, tool calls
//! are `functionCall` / `functionResponse` parts, and every stream event is a whole response
//! delta with no terminator (wire-formats.md §4.6).

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::sse::SseEvent;
use super::{call_id, chunk, completion_id, error_message, now_unix};
use super::{Completion, ProviderSpec, StreamItem, StreamTranslator, UpstreamCall};
use crate::api::chat::Tool;
use crate::api::{ChatRequest, Role, Usage};
use crate::error::ApiError;

/// Builds the `generateContent` (or streaming `streamGenerateContent`) call for `model`.
pub fn build(p: &ProviderSpec, model: &str, req: &ChatRequest, stream: bool) -> Result<UpstreamCall, ApiError> {
    let n = req.n.unwrap_or(1);
    if stream && n > 1 {
        // Gemini interleaves candidates in one stream; the translator follows candidate 0 only.
        return Err(ApiError::bad_param("n", "n > 1 cannot be streamed from Gemini models."));
    }
    let mut system = Vec::new();
    let mut contents = Vec::new();
    // Gemini names a function response by the function, OpenAI by the call id.
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    for m in &req.messages {
        let (role, parts) = match m.role {
            Role::System | Role::Developer => {
                let text = m.text();
                if !text.is_empty() {
                    system.push(json!({ "text": text }));
                }
                continue;
            }
            Role::User => ("user", content_parts(m.content.as_ref())?),
            Role::Assistant => {
                let mut parts = content_parts(m.content.as_ref())?;
                for tc in m.tool_calls.iter().flatten() {
                    call_names.insert(&tc.id, &tc.function.name);
                    let args = parse_args(&tc.id, &tc.function.arguments)?;
                    parts.push(json!({"functionCall": {"name": tc.function.name, "args": args}}));
                }
                ("model", parts)
            }
            Role::Tool => {
                let id = m.tool_call_id.as_deref().unwrap_or("");
                let name = call_names.get(id).copied().or(m.name.as_deref()).ok_or_else(|| {
                    bad_messages(format!("Tool message `{id}` answers no earlier assistant tool call."))
                })?;
                let response = json!({"name": name, "response": {"result": m.text()}});
                ("user", vec![json!({ "functionResponse": response })])
            }
            Role::Function => return Err(bad_messages("Role `function` is deprecated; send `tool` messages.")),
        };
        push_merged(&mut contents, role, parts);
    }
    if contents.is_empty() {
        return Err(bad_messages("At least one non-system message is required."));
    }
    let mut body = json!({ "contents": contents });
    if !system.is_empty() {
        body["systemInstruction"] = json!({ "parts": system });
    }
    let config = generation_config(req, n)?;
    if !config.is_empty() {
        body["generationConfig"] = Value::Object(config);
    }
    if let Some(tools) = req.tools.as_deref().filter(|t| !t.is_empty()) {
        let decls: Vec<Value> = tools.iter().map(declaration).collect();
        body["tools"] = json!([{ "functionDeclarations": decls }]);
        if let Some(choice) = tool_config(req.tool_choice.as_ref())? {
            body["toolConfig"] = json!({ "functionCallingConfig": choice });
        }
    }
    let model = model.strip_prefix("models/").unwrap_or(model);
    let url = if stream {
        format!("{}/models/{model}:streamGenerateContent?alt=sse", p.base_url)
    } else {
        format!("{}/models/{model}:generateContent", p.base_url)
    };
    Ok(UpstreamCall {
        url,
        headers: vec![("x-goog-api-key", p.api_key.clone())],
        body: serde_json::to_vec(&body).map_err(ApiError::internal)?,
    })
}

fn bad_messages(message: impl Into<String>) -> ApiError {
    ApiError::bad_param("messages", message)
}

/// Text and data-URL image parts. Gemini fetches no http URLs (only its own file URIs).
fn content_parts(content: Option<&Value>) -> Result<Vec<Value>, ApiError> {
    let text = |t: &str| (!t.is_empty()).then(|| json!({ "text": t }));
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(text(s).into_iter().collect()),
        Some(Value::Array(parts)) => {
            let mut out = Vec::new();
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => out.extend(text(part.get("text").and_then(Value::as_str).unwrap_or(""))),
                    Some("image_url") => {
                        let url = part.pointer("/image_url/url").or_else(|| part.get("image_url"));
                        let inline = url
                            .and_then(Value::as_str)
                            .and_then(|u| u.strip_prefix("data:"))
                            .and_then(|u| u.split_once(";base64,"))
                            .ok_or_else(|| bad_messages("Gemini models take images as base64 data: URLs only."))?;
                        out.push(json!({"inlineData": {"mimeType": inline.0, "data": inline.1}}));
                    }
                    other => {
                        let kind = other.unwrap_or("(none)");
                        return Err(bad_messages(format!("Content part type `{kind}` is not supported by Gemini models.")));
                    }
                }
            }
            Ok(out)
        }
        Some(_) => Err(bad_messages("Message content must be a string, an array of parts or null.")),
    }
}

/// OpenAI sends arguments as a JSON string; Gemini wants the object (`args` is a Struct).
fn parse_args(id: &str, args: &str) -> Result<Value, ApiError> {
    if args.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(args) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err(bad_messages(format!("Tool call `{id}` arguments must be a JSON object."))),
        Err(e) => Err(bad_messages(format!("Tool call `{id}` has invalid JSON arguments: {e}"))),
    }
}

/// Folds a turn into the previous one of the same role: Gemini wants alternating turns, and
/// several tool answers become one user turn of `functionResponse` parts.
fn push_merged(contents: &mut Vec<Value>, role: &str, parts: Vec<Value>) {
    if parts.is_empty() {
        return;
    }
    if let Some(last) = contents.last_mut().filter(|l| l["role"] == role) {
        if let Some(existing) = last["parts"].as_array_mut() {
            existing.extend(parts);
            return;
        }
    }
    contents.push(json!({"role": role, "parts": parts}));
}

fn generation_config(req: &ChatRequest, n: u32) -> Result<Map<String, Value>, ApiError> {
    let mut c = Map::new();
    if let Some(max) = req.max_output_tokens() {
        c.insert("maxOutputTokens".into(), json!(max));
    }
    if let Some(t) = req.temperature {
        c.insert("temperature".into(), json!(t));
    }
    if let Some(top_p) = req.top_p {
        c.insert("topP".into(), json!(top_p));
    }
    match &req.stop {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            c.insert("stopSequences".into(), json!([s]));
        }
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            c.insert("stopSequences".into(), json!(a));
        }
        Some(_) => return Err(ApiError::bad_param("stop", "stop must be a string or an array of strings.")),
    }
    if req.n.is_some() {
        c.insert("candidateCount".into(), json!(n));
    }
    let format = req.response_format.as_ref().and_then(|f| f.get("type")).and_then(Value::as_str);
    if matches!(format, Some("json_object" | "json_schema")) {
        c.insert("responseMimeType".into(), json!("application/json"));
    }
    Ok(c)
}

fn declaration(t: &Tool) -> Value {
    let mut d = Map::new();
    d.insert("name".into(), json!(t.function.name));
    if let Some(desc) = &t.function.description {
        d.insert("description".into(), json!(desc));
    }
    // Gemini rejects an OBJECT schema with empty `properties`; a function without
    // parameters simply omits them.
    let empty = |p: &&Value| p.get("properties").and_then(Value::as_object).is_some_and(Map::is_empty);
    if let Some(params) = t.function.parameters.as_ref().filter(|p| !empty(p)) {
        d.insert("parameters".into(), params.clone());
    }
    Value::Object(d)
}

/// OpenAI `tool_choice` → `functionCallingConfig`; None keeps Gemini's default (AUTO).
fn tool_config(choice: Option<&Value>) -> Result<Option<Value>, ApiError> {
    Ok(Some(match choice {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => json!({"mode": "AUTO"}),
            "required" => json!({"mode": "ANY"}),
            "none" => json!({"mode": "NONE"}),
            _ => return Err(ApiError::bad_param("tool_choice", format!("Unknown tool_choice `{s}`."))),
        },
        Some(v) => match v.pointer("/function/name").and_then(Value::as_str) {
            Some(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
            None => return Err(ApiError::bad_param("tool_choice", "tool_choice object needs function.name.")),
        },
    }))
}

/// Gemini `finishReason` → OpenAI `finish_reason`. Gemini ends a function call with STOP.
fn finish_reason(reason: &str, called: bool) -> &'static str {
    match reason {
        "STOP" if called => "tool_calls",
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "LANGUAGE" | "OTHER" => {
            "content_filter"
        }
        r if r.starts_with("IMAGE_") => "content_filter",
        _ => "stop",
    }
}

/// `usageMetadata` → (usage, cached prompt tokens, reasoning tokens). Thoughts are billed as output.
fn read_usage(u: &Value) -> (Usage, u64, u64) {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let (prompt, thoughts) = (n("promptTokenCount"), n("thoughtsTokenCount"));
    let completion = n("candidatesTokenCount") + thoughts;
    let total = u.get("totalTokenCount").and_then(Value::as_u64).unwrap_or(prompt + completion);
    let usage = Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: total,
    };
    (usage, n("cachedContentTokenCount"), thoughts)
}

/// The answer parts of a candidate; `thought` parts are reasoning summaries, not the answer.
fn answer_parts(candidate: &Value) -> impl Iterator<Item = &Value> {
    let parts = candidate.pointer("/content/parts").and_then(Value::as_array);
    parts.into_iter().flatten().filter(|p| p.get("thought") != Some(&json!(true)))
}

fn tool_call(call: &Value) -> Value {
    let args = call.get("args").map_or_else(|| "{}".to_owned(), Value::to_string);
    json!({"id": call_id(), "type": "function", "function": {"name": call["name"], "arguments": args}})
}

fn choice(index: usize, candidate: &Value) -> Value {
    let mut text = String::new();
    let mut calls = Vec::new();
    for part in answer_parts(candidate) {
        text.push_str(part.get("text").and_then(Value::as_str).unwrap_or(""));
        if let Some(call) = part.get("functionCall") {
            calls.push(tool_call(call));
        }
    }
    let content = if text.is_empty() { Value::Null } else { json!(text) };
    let mut message = json!({"role": "assistant", "content": content, "refusal": null});
    let finish = finish_reason(candidate["finishReason"].as_str().unwrap_or("STOP"), !calls.is_empty());
    if !calls.is_empty() {
        message["tool_calls"] = json!(calls);
    }
    json!({"index": index, "message": message, "logprobs": null, "finish_reason": finish})
}

/// Translates a `GenerateContentResponse` into an OpenAI `chat.completion`.
pub fn parse(body: &[u8], model: &str) -> Result<Completion, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON from upstream: {e}"))?;
    if v.get("error").is_some() {
        return Err(format!("upstream error: {}", error_message(body)));
    }
    let candidates = v.get("candidates").and_then(Value::as_array).filter(|c| !c.is_empty());
    let choices: Vec<Value> = match candidates {
        Some(c) => c.iter().enumerate().map(|(i, c)| choice(i, c)).collect(),
        // A blocked prompt has no candidates, only the reason it was blocked.
        None if v.pointer("/promptFeedback/blockReason").is_some() => vec![json!({
            "index": 0,
            "message": {"role": "assistant", "content": null, "refusal": null},
            "logprobs": null,
            "finish_reason": "content_filter",
        })],
        None => return Err("upstream answer has no candidates".into()),
    };
    let (usage, cached, thoughts) = read_usage(v.get("usageMetadata").unwrap_or(&Value::Null));
    let body = json!({
        "id": completion_id(),
        "object": "chat.completion",
        "created": now_unix(),
        "model": v.get("modelVersion").and_then(Value::as_str).unwrap_or(model),
        "system_fingerprint": null,
        "choices": choices,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": thoughts},
        },
    });
    Ok(Completion { body, usage: Some(usage) })
}

/// Re-cuts a Gemini SSE stream (one response delta per event, candidate 0) into OpenAI chunks.
#[derive(Debug)]
pub struct Translator {
    id: String,
    created: i64,
    model: String,
    started: bool,
    /// Tool calls seen so far: the next call's OpenAI index, and whether STOP means tool_calls.
    tool_calls: usize,
}

impl Translator {
    /// A translator for one stream answering a request for `model`.
    pub fn new(model: &str) -> Self {
        Translator {
            id: completion_id(),
            created: now_unix(),
            model: model.to_owned(),
            started: false,
            tool_calls: 0,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> StreamItem {
        StreamItem::Chunk(chunk(&self.id, self.created, &self.model, delta, finish))
    }
}

impl StreamTranslator for Translator {
    fn on_event(&mut self, event: &SseEvent) -> Result<Vec<StreamItem>, String> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let v: Value = serde_json::from_str(data).map_err(|e| format!("malformed stream event: {e}"))?;
        if let Some(err) = v.get("error") {
            let message = err.get("message").and_then(Value::as_str).unwrap_or("upstream error");
            let kind = err.get("status").and_then(Value::as_str).unwrap_or("upstream_error");
            let error = json!({"message": message, "type": kind, "param": null, "code": null});
            return Ok(vec![StreamItem::Error(error)]);
        }
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            if let Some(m) = v.get("modelVersion").and_then(Value::as_str) {
                self.model = m.to_owned();
            }
            out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
        }
        let mut finish = None;
        if let Some(c) = v.pointer("/candidates/0") {
            for part in answer_parts(c) {
                if let Some(text) = part.get("text").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                    out.push(self.chunk(json!({ "content": text }), None));
                }
                if let Some(call) = part.get("functionCall") {
                    // Gemini sends each call whole, so one delta carries all its arguments.
                    let mut call = tool_call(call);
                    call["index"] = json!(self.tool_calls);
                    self.tool_calls += 1;
                    out.push(self.chunk(json!({ "tool_calls": [call] }), None));
                }
            }
            let reason = c.get("finishReason").and_then(Value::as_str);
            finish = reason.map(|r| finish_reason(r, self.tool_calls > 0));
        } else if v.pointer("/promptFeedback/blockReason").is_some() {
            finish = Some("content_filter");
        }
        if let Some(f) = finish {
            out.push(self.chunk(json!({}), Some(f)));
        }
        if let Some(u) = v.get("usageMetadata") {
            out.push(StreamItem::Usage(read_usage(u).0));
        }
        if finish.is_some() {
            out.push(StreamItem::Done);
        }
        Ok(out)
    }
}
