//! The Gemini native dialect (`models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`). Turns are `user` / `model` with typed parts, tool calls
//! are `functionCall` / `functionResponse` parts, and every stream event is a whole response
//! delta with no terminator (wire-formats.md §4.6).

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::messages::{self, bad_messages, text_of, Image, Part};
use super::outbound;
use super::sse::SseEvent;
use super::{chunk, error_message};
use super::{Completion, ProviderSpec, StreamItem, StreamTranslator, UpstreamCall};
use crate::api::chat::Tool;
use crate::api::{ChatRequest, Role, Usage};
use crate::error::ApiError;
use crate::ids::{call_id, completion_id, now_unix};

/// Builds the `generateContent` (or streaming `streamGenerateContent`) call for `model`.
pub fn build(
    p: &ProviderSpec,
    model: &str,
    req: &ChatRequest,
    stream: bool,
) -> Result<UpstreamCall, ApiError> {
    if stream && req.n.is_some_and(|n| n > 1) {
        // Candidates would interleave in one stream; the translator follows candidate 0 only.
        return Err(ApiError::bad_param(
            "n",
            "n > 1 cannot be streamed from Gemini models.",
        ));
    }
    // Gemini has no tier field: an allowed one is served at the standard tier.
    outbound::service_tier(p, req.service_tier.as_deref(), false)?;
    let mut system = Vec::new();
    let mut contents = Vec::new();
    // Gemini names a function response by the function, OpenAI by the call id.
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    for m in &req.messages {
        let (role, parts) = match m.role {
            Role::System | Role::Developer => {
                let text = Some(m.text()).filter(|t| !t.is_empty());
                system.extend(text.map(|t| json!({ "text": t })));
                continue;
            }
            Role::User => ("user", content_parts(m.content.as_ref())?),
            Role::Assistant => {
                let mut parts = content_parts(m.content.as_ref())?;
                for tc in m.tool_calls.iter().flatten() {
                    call_names.insert(&tc.id, &tc.function.name);
                    let args = messages::call_args(&tc.id, &tc.function.arguments)?;
                    let call = json!({"name": tc.function.name, "args": args});
                    parts.push(json!({ "functionCall": call }));
                }
                ("model", parts)
            }
            Role::Tool => {
                let id = m.tool_call_id.as_deref().unwrap_or("");
                let Some(name) = call_names.get(id).copied().or(m.name.as_deref()) else {
                    return Err(bad_messages(format!(
                        "Tool message `{id}` answers no tool call."
                    )));
                };
                let response = json!({"name": name, "response": {"result": m.text()}});
                ("user", vec![json!({ "functionResponse": response })])
            }
            Role::Function => return Err(bad_messages("Use `tool` messages, not `function`.")),
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
    let config = generation_config(req)?;
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
    let method = if stream {
        "streamGenerateContent?alt=sse"
    } else {
        "generateContent"
    };
    Ok(UpstreamCall {
        url: format!("{}/models/{model}:{method}", p.base_url),
        headers: vec![("x-goog-api-key", p.api_key.expose().to_owned())],
        body: serde_json::to_vec(&body).map_err(ApiError::internal)?,
        native: false,
    })
}

/// Text and data-URL image parts. Gemini fetches no http URLs (only its own file URIs).
fn content_parts(content: Option<&Value>) -> Result<Vec<Value>, ApiError> {
    messages::parts(content)?
        .into_iter()
        .map(|part| match part {
            Part::Text(t) => Ok(json!({ "text": t })),
            Part::Image(Image::Inline { mime, data }) => {
                Ok(json!({"inlineData": {"mimeType": mime, "data": data}}))
            }
            Part::Image(Image::Url(_)) => Err(bad_messages(
                "Gemini models take images as base64 data: URLs only.",
            )),
        })
        .collect()
}

/// Folds a turn into the previous one of the same role: Gemini wants alternating turns, and
/// several tool answers become one user turn of `functionResponse` parts.
fn push_merged(contents: &mut Vec<Value>, role: &str, parts: Vec<Value>) {
    messages::push_merged(contents, role, "parts", parts, |existing, _| existing.len());
}

fn generation_config(req: &ChatRequest) -> Result<Map<String, Value>, ApiError> {
    let mut c = Map::new();
    let mut set = |key: &str, v: Option<Value>| v.map(|v| c.insert(key.into(), v));
    set("maxOutputTokens", req.max_output_tokens().map(Value::from));
    set("temperature", req.temperature.map(Value::from));
    set("topP", req.top_p.map(Value::from));
    set("candidateCount", req.n.map(Value::from));
    let stop = match &req.stop {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(json!([s])),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => Some(json!(a)),
        Some(_) => {
            return Err(ApiError::bad_param(
                "stop",
                "stop must be a string or strings.",
            ))
        }
    };
    set("stopSequences", stop);
    let format = req
        .response_format
        .as_ref()
        .and_then(|f| f["type"].as_str());
    if matches!(format, Some("json_object" | "json_schema")) {
        set("responseMimeType", Some(json!("application/json")));
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
    let empty = |p: &&Value| p["properties"].as_object().is_some_and(Map::is_empty);
    if let Some(params) = t.function.parameters.as_ref().filter(|p| !empty(p)) {
        d.insert("parameters".into(), params.clone());
    }
    Value::Object(d)
}

/// OpenAI `tool_choice` → `functionCallingConfig`; None keeps Gemini's default (AUTO).
fn tool_config(choice: Option<&Value>) -> Result<Option<Value>, ApiError> {
    Ok(Some(match choice {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s == "auto" => json!({"mode": "AUTO"}),
        Some(Value::String(s)) if s == "required" => json!({"mode": "ANY"}),
        Some(Value::String(s)) if s == "none" => json!({"mode": "NONE"}),
        Some(v) => match v["function"]["name"].as_str() {
            Some(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
            None => return Err(ApiError::bad_param("tool_choice", "Unknown tool_choice.")),
        },
    }))
}

/// Gemini `finishReason` → OpenAI `finish_reason`. Gemini ends a function call with STOP.
fn finish_reason(reason: &str, called: bool) -> &'static str {
    match reason {
        "STOP" if called => "tool_calls",
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "LANGUAGE" => {
            "content_filter"
        }
        r if r == "OTHER" || r.starts_with("IMAGE_") => "content_filter",
        _ => "stop",
    }
}

/// `usageMetadata` → (usage, cached prompt tokens, reasoning tokens). Thoughts bill as output.
fn read_usage(u: &Value) -> (Usage, u64, u64) {
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    let (prompt, thoughts) = (n("promptTokenCount"), n("thoughtsTokenCount"));
    let completion = n("candidatesTokenCount") + thoughts;
    let total = u["totalTokenCount"].as_u64().unwrap_or(prompt + completion);
    let cached = n("cachedContentTokenCount");
    let mut usage = Usage::new(prompt, completion).with_details(cached, thoughts);
    usage.total_tokens = total;
    (usage, cached, thoughts)
}

/// The answer parts of a candidate; `thought` parts are reasoning summaries, not the answer.
fn answer_parts(candidate: &Value) -> impl Iterator<Item = &Value> {
    let parts = candidate["content"]["parts"]
        .as_array()
        .into_iter()
        .flatten();
    parts.filter(|p| p["thought"] != true)
}

fn tool_call(call: &Value) -> Value {
    let args = call.get("args").map_or("{}".into(), Value::to_string);
    let function = json!({"name": call["name"], "arguments": args});
    json!({"id": call_id(), "type": "function", "function": function})
}

fn choice(index: usize, candidate: &Value) -> Value {
    let mut text = String::new();
    let mut calls = Vec::new();
    for part in answer_parts(candidate) {
        text.push_str(text_of(part));
        calls.extend(part.get("functionCall").map(tool_call));
    }
    let reason = candidate["finishReason"].as_str().unwrap_or("STOP");
    let finish = finish_reason(reason, !calls.is_empty());
    let content = (!text.is_empty()).then_some(text);
    let mut message = json!({"role": "assistant", "content": content, "refusal": null});
    if !calls.is_empty() {
        message["tool_calls"] = json!(calls);
    }
    json!({"index": index, "message": message, "logprobs": null, "finish_reason": finish})
}

/// Translates a `GenerateContentResponse` into an OpenAI `chat.completion`.
pub fn parse(body: &[u8], model: &str) -> Result<Completion, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    if v.get("error").is_some() {
        return Err(format!("upstream error: {}", error_message(body)));
    }
    let choices: Vec<Value> = match v["candidates"].as_array().filter(|c| !c.is_empty()) {
        Some(c) => c.iter().enumerate().map(|(i, c)| choice(i, c)).collect(),
        // A blocked prompt has no candidates, only the reason it was blocked.
        None if v["promptFeedback"].get("blockReason").is_some() => vec![json!({
            "index": 0,
            "message": {"role": "assistant", "content": null, "refusal": null},
            "logprobs": null,
            "finish_reason": "content_filter",
        })],
        None => return Err("upstream answer has no candidates".into()),
    };
    let (usage, cached, thoughts) = read_usage(&v["usageMetadata"]);
    let body = json!({
        "id": completion_id(),
        "object": "chat.completion",
        "created": now_unix(),
        "model": v["modelVersion"].as_str().unwrap_or(model),
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
    Ok(Completion {
        body,
        usage: Some(usage),
        raw: None,
        native: false,
    })
}

/// Re-cuts a Gemini SSE stream (one response delta per event, candidate 0) into OpenAI chunks.
#[derive(Debug)]
pub struct Translator {
    id: String,
    created: i64,
    model: String,
    started: bool,
    /// Tool calls so far: the next call's OpenAI index, and whether STOP means tool_calls.
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
        let v: Value = serde_json::from_str(data).map_err(|e| format!("malformed event: {e}"))?;
        if let Some(err) = v.get("error") {
            let message = err["message"].as_str().unwrap_or("upstream error");
            let kind = err["status"].as_str().unwrap_or("upstream_error");
            let error = json!({"message": message, "type": kind, "param": null, "code": null});
            return Ok(vec![StreamItem::Error(error)]);
        }
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            if let Some(m) = v["modelVersion"].as_str() {
                self.model = m.to_owned();
            }
            out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
        }
        let candidate = &v["candidates"][0];
        for part in answer_parts(candidate) {
            if !text_of(part).is_empty() {
                out.push(self.chunk(json!({ "content": text_of(part) }), None));
            }
            if let Some(call) = part.get("functionCall") {
                // Gemini sends each call whole, so one delta carries all its arguments.
                let mut call = tool_call(call);
                call["index"] = json!(self.tool_calls);
                self.tool_calls += 1;
                out.push(self.chunk(json!({ "tool_calls": [call] }), None));
            }
        }
        let finish = match candidate["finishReason"].as_str() {
            Some(reason) => Some(finish_reason(reason, self.tool_calls > 0)),
            None if v["promptFeedback"].get("blockReason").is_some() => Some("content_filter"),
            None => None,
        };
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

/// The Gemini dialect behind the common [`Adapter`](super::Adapter) trait.
pub struct Gemini;

impl super::Adapter for Gemini {
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
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::sse::SseParser;
    use crate::providers::{Dialect, Tier};

    fn spec() -> ProviderSpec {
        ProviderSpec {
            api_key: crate::secret::Secret::new("AIza"),
            ..ProviderSpec::for_test(
                Dialect::Gemini,
                "gemini",
                "https://generativelanguage.googleapis.com/v1beta",
                Tier::Cheap,
                "gemini-2.0-flash",
            )
        }
    }

    fn call_of(req: Value, stream: bool) -> Result<(UpstreamCall, Value), ApiError> {
        let req: ChatRequest = serde_json::from_value(req).map_err(ApiError::internal)?;
        let call = build(&spec(), "gemini-2.0-flash", &req, stream)?;
        let body = serde_json::from_slice(&call.body).map_err(ApiError::internal)?;
        Ok((call, body))
    }

    #[test]
    fn maps_roles_function_calls_and_responses() {
        let tc = json!({"id": "c1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}});
        let (call, b) = call_of(json!({"messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather?"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}]},
            {"role": "assistant", "content": null, "tool_calls": [tc]},
            {"role": "tool", "tool_call_id": "c1", "content": "21C, sunny"},
            {"role": "user", "content": "Thanks"},
        ]}), false).unwrap();
        assert_eq!(call.url, "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent");
        assert_eq!(call.headers, vec![("x-goog-api-key", "AIza".to_owned())]);
        assert_eq!(
            b["systemInstruction"],
            json!({"parts": [{"text": "Be brief."}]})
        );
        assert_eq!(
            b["contents"],
            json!([
                {"role": "user", "parts": [{"text": "Weather?"}, {"inlineData": {"mimeType": "image/png", "data": "iVBO"}}]},
                {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"result": "21C, sunny"}}},
                    {"text": "Thanks"},
                ]},
            ])
        );
        assert!(b.get("generationConfig").is_none() && b.get("tools").is_none());
    }

    #[test]
    fn maps_generation_config_tools_and_rejections() {
        let (call, b) = call_of(json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 256,
            "temperature": 1.5, "top_p": 0.95, "stop": ["END"], "response_format": {"type": "json_object"},
            "tools": [{"type": "function", "function": {"name": "f", "description": "d",
                "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}},
                {"type": "function", "function": {"name": "g", "parameters": {"type": "object", "properties": {}}}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}}}), true).unwrap();
        assert_eq!(call.url, "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse");
        assert_eq!(
            b["generationConfig"],
            json!({"maxOutputTokens": 256, "temperature": 1.5, "topP": 0.95,
            "stopSequences": ["END"], "responseMimeType": "application/json"})
        );
        assert_eq!(
            b["tools"],
            json!([{"functionDeclarations": [
                {"name": "f", "description": "d", "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}},
                {"name": "g"},
            ]}])
        );
        assert_eq!(
            b["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}})
        );
        for (choice, mode) in [("auto", "AUTO"), ("required", "ANY"), ("none", "NONE")] {
            assert_eq!(
                tool_config(Some(&json!(choice))).unwrap(),
                Some(json!({"mode": mode}))
            );
        }
        let param = |r: Result<(UpstreamCall, Value), ApiError>| match r {
            Err(ApiError::BadRequest { param, .. }) => param,
            _ => None,
        };
        let user = json!({"role": "user", "content": "hi"});
        assert_eq!(
            param(call_of(json!({"messages": [user], "n": 2}), true)),
            Some("n")
        );
        let orphan = json!({"role": "tool", "tool_call_id": "nope", "content": "x"});
        assert_eq!(
            param(call_of(json!({"messages": [user, orphan]}), false)),
            Some("messages")
        );
        let sys = json!({"role": "system", "content": "x"});
        assert_eq!(
            param(call_of(json!({"messages": [sys]}), false)),
            Some("messages")
        );
    }

    #[test]
    fn parses_text_function_calls_and_blocked_prompts() {
        let body = br#"{"candidates":[{"content":{"parts":[{"text":"Hello! "},{"text":"Hi."}],"role":"model"},"finishReason":"STOP","index":0}],
            "usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":9,"thoughtsTokenCount":3,"totalTokenCount":16,"cachedContentTokenCount":2},
            "modelVersion":"gemini-2.0-flash-001"}"#;
        let c = parse(body, "gemini-2.0-flash").unwrap();
        assert_eq!(c.body["model"], "gemini-2.0-flash-001");
        assert_eq!(c.body["choices"][0]["message"]["content"], "Hello! Hi.");
        assert_eq!(c.body["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            c.usage,
            Some({
                let mut u = Usage::new(4, 12).with_details(2, 3);
                u.total_tokens = 16;
                u
            })
        );
        assert_eq!(c.body["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
        assert_eq!(
            c.body["usage"]["completion_tokens_details"]["reasoning_tokens"],
            3
        );

        let body = br#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris"}}}],"role":"model"},"finishReason":"STOP"}]}"#;
        let c = parse(body, "gemini-2.0-flash").unwrap();
        let choice = &c.body["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], Value::Null);
        let tc = &choice["message"]["tool_calls"][0];
        assert!(tc["id"].as_str().unwrap().starts_with("call_"));
        assert_eq!(tc["function"]["name"], "get_weather");
        assert_eq!(tc["function"]["arguments"], "{\"city\":\"Paris\"}");

        let blocked = br#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":5,"totalTokenCount":5}}"#;
        let c = parse(blocked, "gemini-2.0-flash").unwrap();
        assert_eq!(c.body["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(c.body["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(c.usage, Some(Usage::new(5, 0)));
        assert!(parse(b"{}", "m").is_err());
        assert!(parse(b"[", "m").is_err());
    }

    #[test]
    fn maps_finish_reasons() {
        for (reason, called, finish) in [
            ("STOP", false, "stop"),
            ("STOP", true, "tool_calls"),
            ("MAX_TOKENS", false, "length"),
            ("SAFETY", false, "content_filter"),
            ("RECITATION", false, "content_filter"),
            ("BLOCKLIST", false, "content_filter"),
            ("PROHIBITED_CONTENT", false, "content_filter"),
            ("SPII", false, "content_filter"),
            ("LANGUAGE", false, "content_filter"),
            ("OTHER", false, "content_filter"),
            ("IMAGE_SAFETY", false, "content_filter"),
            ("MALFORMED_FUNCTION_CALL", false, "stop"),
            ("FINISH_REASON_UNSPECIFIED", false, "stop"),
        ] {
            assert_eq!(finish_reason(reason, called), finish, "{reason}");
        }
    }

    fn translate(t: &mut Translator, stream: &str) -> Vec<StreamItem> {
        let mut p = SseParser::default();
        let mut events = p.feed(stream.as_bytes());
        events.extend(p.finish());
        events.iter().flat_map(|e| t.on_event(e).unwrap()).collect()
    }

    #[test]
    fn translates_documented_text_stream() {
        // wire-formats.md §4.4, with Google's CRLF separators.
        let stream = concat!(
            r#"data: {"candidates": [{"content": {"parts": [{"text": "Hello"}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 4,"totalTokenCount": 4,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 4}]},"modelVersion": "gemini-2.0-flash","responseId": "r1"}"#,
            "\r\n\r\n",
            r#"data: {"candidates": [{"content": {"parts": [{"text": " world! How can I help?"}],"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 4,"candidatesTokenCount": 7,"totalTokenCount": 11,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 4}],"candidatesTokensDetails": [{"modality": "TEXT","tokenCount": 7}]},"modelVersion": "gemini-2.0-flash","responseId": "r1"}"#,
            "\r\n\r\n",
        );
        let mut t = Translator::new("gemini-2.0-flash");
        let items = translate(&mut t, stream);
        let c = |delta: Value, finish: Option<&str>| {
            StreamItem::Chunk(chunk(&t.id, t.created, "gemini-2.0-flash", delta, finish))
        };
        assert_eq!(
            items,
            vec![
                c(json!({"role": "assistant", "content": ""}), None),
                c(json!({"content": "Hello"}), None),
                StreamItem::Usage(Usage::new(4, 0)),
                c(json!({"content": " world! How can I help?"}), None),
                c(json!({}), Some("stop")),
                StreamItem::Usage(Usage::new(4, 7)),
                StreamItem::Done,
            ]
        );
    }

    #[test]
    fn translates_function_call_stream_with_one_delta_per_call() {
        let stream = concat!(
            r#"data: {"candidates":[{"content":{"parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris"}}},{"functionCall":{"name":"get_time","args":{}}}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":20,"candidatesTokenCount":10,"totalTokenCount":30}}"#,
            "\n\n",
        );
        let mut t = Translator::new("gemini-2.0-flash");
        let items = translate(&mut t, stream);
        assert_eq!(items.len(), 6);
        let calls: Vec<&Value> = items[1..3]
            .iter()
            .map(|i| match i {
                StreamItem::Chunk(c) => &c["choices"][0]["delta"]["tool_calls"][0],
                _ => &Value::Null,
            })
            .collect();
        assert_eq!(
            (calls[0]["index"].as_u64(), calls[1]["index"].as_u64()),
            (Some(0), Some(1))
        );
        assert!(calls[0]["id"].as_str().unwrap().starts_with("call_"));
        assert_eq!(calls[0]["type"], "function");
        assert_eq!(
            calls[0]["function"],
            json!({"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"})
        );
        assert_eq!(
            calls[1]["function"],
            json!({"name": "get_time", "arguments": "{}"})
        );
        assert!(
            matches!(&items[3], StreamItem::Chunk(c) if c["choices"][0]["finish_reason"] == "tool_calls")
        );
        assert_eq!(
            items[4..],
            [StreamItem::Usage(Usage::new(20, 10)), StreamItem::Done]
        );
    }

    #[test]
    fn maps_stream_error_and_rejects_malformed_json() {
        let mut t = Translator::new("gemini-2.0-flash");
        let ev = |data: &str| SseEvent {
            event: None,
            data: data.into(),
        };
        let items = t.on_event(&ev(r#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#)).unwrap();
        let err = json!({"message": "The model is overloaded.", "type": "UNAVAILABLE", "param": null, "code": null});
        assert_eq!(items, vec![StreamItem::Error(err)]);
        assert!(t.on_event(&ev("{\"candidates\": [")).is_err());
    }
}
