//! Fake LLM upstream servers (OpenAI, Groq, Anthropic, Gemini) for integration tests.
//!
//! Each [`FakeUpstream`] runs a real actix-web server on `127.0.0.1:0` in its own thread and
//! speaks one provider dialect as described in `shared/reference/wire-formats.md`: paths, auth,
//! request validation with the provider's own error bodies, JSON and SSE response shapes.
//!
//! Token accounting (deterministic, so tests can predict it):
//! * prompt tokens = [`prompt_tokens_for`]: `max(1, chars / 4)` where `chars` counts the Unicode
//!   scalar values of every string found under a `"text"` or `"content"` key inside `messages`
//!   (OpenAI/Groq/Anthropic) or `contents` / `systemInstruction` / `system_instruction` (Gemini),
//!   plus Anthropic's top-level `system` (string, or the `text` of its blocks);
//! * completion tokens = [`completion_tokens_for`]: whitespace-separated words of the reply text,
//!   or [`TOOL_CALL_COMPLETION_TOKENS`] when the answer is a tool call.
//!
//! A tool call is answered when the request declares tools, tool choice is not "none", and the
//! last turn is not a tool result (unless the tool choice forces a call). The called tool is the
//! forced one or the first declared; its arguments fill each required (else every) schema
//! property: string → "fake", number/integer → 42, boolean → true, array → [], object → {}.
//!
//! Anthropic extras: a request with `thinking.type = "enabled"` is answered with a thinking block
//! ([`FAKE_THINKING`], signed with [`thinking_signature`]; its words count as completion tokens)
//! before the answer, and a handed-back thinking block whose signature does not match is
//! refused with 400, as the real API does. [`FakeUpstream::set_cache_read_tokens`] reports part
//! of the prompt as cache reads.
#![allow(dead_code)]
// Error bodies are built once per fake request; boxing them buys nothing here.
#![allow(clippy::result_large_err)]

use actix_web::dev::ServerHandle;
use actix_web::http::{Method, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpResponseBuilder, HttpServer};
use bytes::Bytes;
use futures_util::stream;
use rand::Rng;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Completion tokens reported for a tool-call answer.
pub const TOOL_CALL_COMPLETION_TOKENS: u64 = 12;

/// Which provider API the fake speaks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FakeDialect {
    /// OpenAI Chat Completions at `/v1/chat/completions`.
    OpenAi,
    /// Groq (OpenAI-compatible) at `/openai/v1/chat/completions`.
    Groq,
    /// Anthropic Messages at `/v1/messages`.
    Anthropic,
    /// Gemini native at `/v1beta|v1/models/{m}:generateContent|streamGenerateContent`.
    Gemini,
}

impl FakeDialect {
    fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "OpenAI",
            Self::Groq => "Groq",
            Self::Anthropic => "Anthropic",
            Self::Gemini => "Gemini",
        }
    }
    fn key(self) -> &'static str {
        match self {
            Self::OpenAi => "sk-fake-openai",
            Self::Groq => "gsk_fake",
            Self::Anthropic => "sk-ant-fake",
            Self::Gemini => "AIza-fake",
        }
    }
}

/// How the fake answers chat requests (auth and validation are always checked first).
#[derive(Clone, Debug)]
pub enum Behavior {
    /// Answer properly: text, or a tool call when tools were given (see module docs).
    Normal,
    /// Answer this HTTP status with the provider's error body (+ `retry-after: 1` on 429/503/529,
    /// except Gemini, which puts a `RetryInfo` detail in the 429 body like the real API).
    Status(u16),
    /// Accept the request, then send nothing for 60 s.
    HangBeforeHeaders,
    /// Wait this long before sending the response headers, then answer normally.
    DelayFirstByte(Duration),
    /// Hold each request until this many are held at once (or 30 s passed), then answer all:
    /// that many connections in use at the same time, however fast they arrive.
    Gather(usize),
    /// Streams: role chunk + one content chunk, then the dialect's in-stream error (Gemini: just
    /// end without `finishReason`). Non-stream requests are answered normally.
    MidStreamError,
    /// Streams: a couple of chunks, then the connection is cut. Non-stream: half a body, then cut.
    MidStreamReset,
    /// Answer normally, but wait this long before each streamed event (instead of 5 ms).
    SlowStream(Duration),
    /// 200 with a body (or SSE events) that is not valid JSON.
    Malformed,
}

struct State {
    behavior: Behavior,
    reply: String,
    /// Answer with text even when tools are declared (a one-shot answer to an agent).
    no_tools: bool,
    hits: usize,
    last_request: Option<Value>,
    last_path: Option<String>,
    last_headers: Option<actix_web::http::header::HeaderMap>,
    /// The last chat request's body exactly as it arrived.
    last_raw: Option<String>,
    /// Prompt tokens the Anthropic fake reports as read from its prompt cache.
    cache_read: u64,
    /// Every chat request body, in arrival order.
    requests: Vec<Value>,
    /// Arguments for tool calls instead of the schema-derived ones.
    tool_input: Option<Value>,
    /// OpenAI: reasoning text sent as `reasoning_content` before the answer (as DeepSeek and
    /// vLLM reasoning servers do).
    reasoning: Option<String>,
}

struct Inner {
    dialect: FakeDialect,
    state: Mutex<State>,
    cancelled: AtomicUsize,
    /// TCP connections accepted.
    connections: AtomicUsize,
    /// Requests that have arrived under [`Behavior::Gather`].
    gathered: AtomicUsize,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running fake provider; the server stops when this is dropped.
pub struct FakeUpstream {
    inner: Arc<Inner>,
    port: u16,
    handle: ServerHandle,
}

impl FakeUpstream {
    /// Starts the server on `127.0.0.1:0` in a background thread; returns once it is listening.
    pub fn start(dialect: FakeDialect) -> FakeUpstream {
        let inner = Arc::new(Inner {
            dialect,
            state: Mutex::new(State {
                behavior: Behavior::Normal,
                reply: format!("Hello from fake {}!", dialect.name()),
                no_tools: false,
                hits: 0,
                last_request: None,
                last_path: None,
                last_headers: None,
                last_raw: None,
                cache_read: 0,
                requests: Vec::new(),
                tool_input: None,
                reasoning: None,
            }),
            cancelled: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            gathered: AtomicUsize::new(0),
        });
        let data = web::Data::from(inner.clone());
        let counted = inner.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .app_data(web::PayloadConfig::new(32 << 20))
                        .default_service(web::to(handle))
                })
                .on_connect(move |_, _| {
                    counted.connections.fetch_add(1, Ordering::SeqCst);
                })
                .workers(1)
                .shutdown_timeout(0)
                .bind(("127.0.0.1", 0))
                .expect("fake upstream: bind 127.0.0.1:0");
                let port = server.addrs()[0].port();
                let server = server.run();
                let _ = tx.send((port, server.handle()));
                let _ = server.await;
            })
        });
        let (port, handle) = rx
            .recv()
            .expect("fake upstream thread died before listening");
        FakeUpstream {
            inner,
            port,
            handle,
        }
    }

    /// The `base_url` a gateway provider config should use.
    pub fn base_url(&self) -> String {
        let prefix = match self.inner.dialect {
            FakeDialect::OpenAi | FakeDialect::Anthropic => "/v1",
            FakeDialect::Groq => "/openai/v1",
            FakeDialect::Gemini => "/v1beta",
        };
        format!("http://127.0.0.1:{}{prefix}", self.port)
    }

    /// The dialect this fake speaks.
    pub fn dialect(&self) -> FakeDialect {
        self.inner.dialect
    }

    /// Number of streamed bodies dropped before their last event was sent (client hung up).
    pub fn streams_cancelled(&self) -> usize {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.inner.connections.load(Ordering::SeqCst)
    }

    /// The only API key this fake accepts.
    pub fn api_key(&self) -> &'static str {
        self.inner.dialect.key()
    }

    /// Changes how subsequent chat requests are answered.
    pub fn set_behavior(&self, b: Behavior) {
        self.inner.lock().behavior = b;
    }

    /// Number of chat requests received (including rejected ones).
    pub fn hits(&self) -> usize {
        self.inner.lock().hits
    }

    /// Last chat request body (a JSON string holding the raw text if it was not JSON).
    pub fn last_request(&self) -> Option<Value> {
        self.inner.lock().last_request.clone()
    }

    /// Path and query of the last request of any kind.
    pub fn last_path(&self) -> Option<String> {
        self.inner.lock().last_path.clone()
    }

    /// A header of the last request of any kind (name is case-insensitive).
    pub fn last_header(&self, name: &str) -> Option<String> {
        let st = self.inner.lock();
        let v = st.last_headers.as_ref()?.get(name)?;
        Some(String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// The last chat request's body as the bytes that arrived (lossy UTF-8).
    pub fn last_raw_request(&self) -> Option<String> {
        self.inner.lock().last_raw.clone()
    }

    /// Every chat request body received so far, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.inner.lock().requests.clone()
    }

    /// Tool calls get these arguments instead of the ones derived from the tool's schema.
    pub fn set_tool_input(&self, input: Value) {
        self.inner.lock().tool_input = Some(input);
    }

    /// OpenAI: answer with this `reasoning_content` before the text (its words count as
    /// completion tokens).
    pub fn set_reasoning(&self, text: &str) {
        self.inner.lock().reasoning = Some(text.to_string());
    }

    /// Anthropic: report this many of the prompt tokens as `cache_read_input_tokens`.
    pub fn set_cache_read_tokens(&self, n: u64) {
        self.inner.lock().cache_read = n;
    }

    /// Sets the assistant text (streams send it in one delta per word, leading space kept).
    /// `false`: answer with text even when the request declares tools.
    pub fn set_tool_calls(&self, on: bool) {
        self.inner.lock().no_tools = !on;
    }

    pub fn set_reply_text(&self, text: &str) {
        self.inner.lock().reply = text.to_string();
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        // The stop command is sent synchronously; the returned future only awaits completion.
        drop(self.handle.stop(false));
    }
}

/// Prompt tokens the fake reports for a request body (see module docs for the rule).
pub fn prompt_tokens_for(body: &Value) -> u64 {
    fn walk(v: &Value, n: &mut usize) {
        match v {
            Value::Array(a) => a.iter().for_each(|x| walk(x, n)),
            Value::Object(o) => {
                for (k, x) in o {
                    match x {
                        Value::String(s) if k == "text" || k == "content" => {
                            *n += s.chars().count()
                        }
                        _ => walk(x, n),
                    }
                }
            }
            _ => {}
        }
    }
    let mut n = 0;
    for key in [
        "messages",
        "contents",
        "systemInstruction",
        "system_instruction",
    ] {
        walk(&body[key], &mut n);
    }
    match &body["system"] {
        Value::String(s) => n += s.chars().count(),
        v => walk(v, &mut n),
    }
    ((n / 4) as u64).max(1)
}

/// The thinking text the Anthropic fake answers with when a request enables thinking.
pub const FAKE_THINKING: &str = "Let me think about this.";

/// The signature the Anthropic fake gives a thinking block, and checks when one is handed
/// back (as the real API rejects a thinking block whose signature does not match).
pub fn thinking_signature(thinking: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("fake-thinking:{thinking}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// Completion tokens the fake reports for a text reply: its whitespace-separated word count.
pub fn completion_tokens_for(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

// ---------------------------------------------------------------------------------------------
// helpers

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const HEX: &[u8] = b"0123456789abcdef";
const B58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const LOWER: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";

fn rnd(n: usize, alphabet: &[u8]) -> String {
    let mut r = rand::thread_rng();
    (0..n)
        .map(|_| alphabet[r.gen_range(0..alphabet.len())] as char)
        .collect()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// First non-null of several spellings (camelCase / snake_case) of a field.
fn get<'a>(v: &'a Value, keys: &[&str]) -> &'a Value {
    keys.iter()
        .map(|k| &v[*k])
        .find(|x| !x.is_null())
        .unwrap_or(&Value::Null)
}

/// Splits text into deltas: a new piece starts at each whitespace following a non-space.
fn pieces(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut prev_ws = true;
    for ch in text.chars() {
        if out.is_empty() || (ch.is_whitespace() && !prev_ws) {
            out.push(String::new());
        }
        if let Some(last) = out.last_mut() {
            last.push(ch);
        }
        prev_ws = ch.is_whitespace();
    }
    out
}

/// Splits a JSON argument string into three fragments (on char boundaries).
fn fragments(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let step = chars.len().div_ceil(3).max(1);
    chars.chunks(step).map(|c| c.iter().collect()).collect()
}

fn fake_args(schema: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(props) = schema["properties"].as_object() {
        let req: Vec<&str> = schema["required"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (k, p) in props
            .iter()
            .filter(|(k, _)| req.is_empty() || req.contains(&k.as_str()))
        {
            let v = match p["type"]
                .as_str()
                .unwrap_or("string")
                .to_ascii_lowercase()
                .as_str()
            {
                "integer" | "number" => json!(42),
                "boolean" => json!(true),
                "array" => json!([]),
                "object" => json!({}),
                _ => json!("fake"),
            };
            out.insert(k.clone(), v);
        }
    }
    Value::Object(out)
}

/// What to answer: text or a tool call, with token counts.
struct Plan {
    model: String,
    prompt: u64,
    completion: u64,
    text: String,
    tool: Option<(String, Value)>,
    /// The thinking block to answer first (Anthropic, when the request enabled thinking), or
    /// the `reasoning_content` to stream before the text (OpenAI, when scripted).
    thinking: Option<String>,
    /// Anthropic: prompt tokens reported as cache reads.
    cache_read: u64,
}

impl Plan {
    fn new(d: FakeDialect, body: &Value, model: String, text: String) -> Plan {
        let tool = choose_tool(d, body);
        let completion = if tool.is_some() {
            TOOL_CALL_COMPLETION_TOKENS
        } else {
            completion_tokens_for(&text)
        };
        let thinking = (d == FakeDialect::Anthropic && body["thinking"]["type"] == "enabled")
            .then(|| FAKE_THINKING.to_string());
        let completion = completion + thinking.as_deref().map_or(0, completion_tokens_for);
        Plan {
            model,
            prompt: prompt_tokens_for(body),
            completion,
            text,
            tool,
            thinking,
            cache_read: 0,
        }
    }
}

fn choose_tool(d: FakeDialect, b: &Value) -> Option<(String, Value)> {
    let tools = b["tools"].as_array().into_iter().flatten();
    let last_turn_parts = |list: &str, parts: &str| -> Vec<Value> {
        b[list]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m[parts].as_array())
            .cloned()
            .unwrap_or_default()
    };
    let (decls, none, forced, named, after_tool) = match d {
        FakeDialect::OpenAi | FakeDialect::Groq => {
            let tc = &b["tool_choice"];
            let decls: Vec<(String, Value)> = tools
                .map(|t| {
                    (
                        str_of(&t["function"]["name"]),
                        t["function"]["parameters"].clone(),
                    )
                })
                .collect();
            let after = b["messages"]
                .as_array()
                .and_then(|m| m.last())
                .is_some_and(|m| m["role"] == "tool");
            (
                decls,
                tc == "none",
                tc == "required" || tc.is_object(),
                tc["function"]["name"].as_str(),
                after,
            )
        }
        FakeDialect::Anthropic => {
            let tc = &b["tool_choice"];
            let decls = tools
                .map(|t| (str_of(&t["name"]), t["input_schema"].clone()))
                .collect();
            let after = last_turn_parts("messages", "content")
                .iter()
                .any(|x| x["type"] == "tool_result");
            (
                decls,
                tc["type"] == "none",
                tc["type"] == "any" || tc["type"] == "tool",
                tc["name"].as_str(),
                after,
            )
        }
        FakeDialect::Gemini => {
            let decls = tools
                .flat_map(|t| {
                    get(t, &["functionDeclarations", "function_declarations"])
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                })
                .map(|f| {
                    (
                        str_of(&f["name"]),
                        get(
                            &f,
                            &[
                                "parameters",
                                "parametersJsonSchema",
                                "parameters_json_schema",
                            ],
                        )
                        .clone(),
                    )
                })
                .collect();
            let cfg = get(
                get(b, &["toolConfig", "tool_config"]),
                &["functionCallingConfig", "function_calling_config"],
            );
            let mode = cfg["mode"].as_str().unwrap_or("AUTO").to_ascii_uppercase();
            let named = get(cfg, &["allowedFunctionNames", "allowed_function_names"])[0].as_str();
            let after = last_turn_parts("contents", "parts")
                .iter()
                .any(|x| !get(x, &["functionResponse", "function_response"]).is_null());
            (decls, mode == "NONE", mode == "ANY", named, after)
        }
    };
    if decls.is_empty() || none || (after_tool && !forced) {
        return None;
    }
    let (name, schema) = named
        .and_then(|n| decls.iter().find(|(x, _)| x == n))
        .unwrap_or(&decls[0])
        .clone();
    Some((name, fake_args(&schema)))
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

// ---------------------------------------------------------------------------------------------
// errors

struct ApiErr {
    status: u16,
    msg: String,
    kind: Option<&'static str>,
    param: Option<String>,
    code: Option<&'static str>,
    details: Option<Value>,
}

fn err(status: u16, msg: impl Into<String>) -> ApiErr {
    ApiErr {
        status,
        msg: msg.into(),
        kind: None,
        param: None,
        code: None,
        details: None,
    }
}

impl ApiErr {
    fn param(mut self, p: impl Into<String>) -> Self {
        self.param = Some(p.into());
        self
    }
    fn code(mut self, c: &'static str) -> Self {
        self.code = Some(c);
        self
    }
    fn kind(mut self, k: &'static str) -> Self {
        self.kind = Some(k);
        self
    }
    fn details(mut self, d: Value) -> Self {
        self.details = Some(d);
        self
    }
}

/// Response builder with the provider's request-id header; returns the id too.
fn builder(d: FakeDialect, status: u16) -> (HttpResponseBuilder, String) {
    let mut b =
        HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY));
    let rid = match d {
        FakeDialect::OpenAi | FakeDialect::Groq => {
            let rid = format!("req_{}", rnd(32, HEX));
            b.insert_header(("x-request-id", rid.clone()));
            if d == FakeDialect::OpenAi {
                b.insert_header(("openai-version", "2020-10-01"))
                    .insert_header(("openai-processing-ms", "7"));
            }
            rid
        }
        FakeDialect::Anthropic => {
            let rid = format!("req_011{}", rnd(21, B58));
            b.insert_header(("request-id", rid.clone()));
            rid
        }
        FakeDialect::Gemini => String::new(),
    };
    (b, rid)
}

fn render(d: FakeDialect, e: ApiErr) -> HttpResponse {
    let (mut b, rid) = builder(d, e.status);
    if matches!(e.status, 429 | 503 | 529) && d != FakeDialect::Gemini {
        b.insert_header(("retry-after", "1"));
    }
    let s = e.status;
    let body = match d {
        FakeDialect::OpenAi | FakeDialect::Groq => {
            let kind = e.kind.unwrap_or(match s {
                429 => "requests",
                500.. => "server_error",
                _ => "invalid_request_error",
            });
            let mut v = json!({"error": {"message": e.msg, "type": kind, "param": e.param, "code": e.code}});
            if d == FakeDialect::Groq && e.param.is_none() {
                if let Some(o) = v["error"].as_object_mut() {
                    o.remove("param");
                }
            }
            v
        }
        FakeDialect::Anthropic => {
            let kind = e.kind.unwrap_or(match s {
                401 => "authentication_error",
                402 => "billing_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                504 => "timeout_error",
                529 => "overloaded_error",
                500.. => "api_error",
                _ => "invalid_request_error",
            });
            json!({"type": "error", "error": {"type": kind, "message": e.msg}, "request_id": rid})
        }
        FakeDialect::Gemini => {
            let status = e.kind.unwrap_or(match s {
                400 => "INVALID_ARGUMENT",
                401 => "UNAUTHENTICATED",
                403 => "PERMISSION_DENIED",
                404 => "NOT_FOUND",
                429 => "RESOURCE_EXHAUSTED",
                500 => "INTERNAL",
                503 => "UNAVAILABLE",
                504 => "DEADLINE_EXCEEDED",
                _ => "UNKNOWN",
            });
            let mut v = json!({"error": {"code": s, "message": e.msg, "status": status}});
            if let Some(det) = e.details {
                v["error"]["details"] = det;
            }
            v
        }
    };
    b.json(body)
}

/// The error an injected `Behavior::Status(s)` answers.
fn status_err(d: FakeDialect, s: u16, model: &str) -> ApiErr {
    match d {
        FakeDialect::OpenAi | FakeDialect::Groq => match s {
            401 => err(s, "Incorrect API key provided: sk-fake***oops.").code("invalid_api_key"),
            404 => err(s, format!("The model `{model}` does not exist or you do not have access to it.")).code("model_not_found"),
            429 => err(s, format!("Rate limit reached for {model} in organization org-fake on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 1s.")).code("rate_limit_exceeded"),
            503 => err(s, "The engine is currently overloaded, please try again later"),
            500.. => err(s, "The server had an error while processing your request. Sorry about that!"),
            _ => err(s, format!("Fake upstream error {s}")),
        },
        FakeDialect::Anthropic => match s {
            404 => err(s, format!("model: {model}")),
            429 => err(s, "Number of request tokens has exceeded your per-minute rate limit"),
            529 => err(s, "Overloaded"),
            500.. => err(s, "Internal server error"),
            _ => err(s, format!("Fake upstream error {s}")),
        },
        FakeDialect::Gemini => match s {
            404 => err(s, format!("models/{model} is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods.")),
            429 => err(s, "You exceeded your current quota, please check your plan and billing details.").details(json!([
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}])),
            503 => err(s, "The model is overloaded. Please try again later."),
            500 => err(s, "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"),
            _ => err(s, format!("Fake upstream error {s}")),
        },
    }
}

fn check_auth(d: FakeDialect, req: &HttpRequest) -> Result<(), ApiErr> {
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let bearer =
        header("authorization").map(|a| a.strip_prefix("Bearer ").unwrap_or(&a).to_string());
    let key = match d {
        FakeDialect::OpenAi | FakeDialect::Groq => bearer,
        FakeDialect::Anthropic => header("x-api-key").or(bearer),
        FakeDialect::Gemini => header("x-goog-api-key").or_else(|| {
            req.query_string()
                .split('&')
                .find_map(|kv| kv.strip_prefix("key="))
                .map(str::to_string)
        }),
    };
    match (d, key) {
        (_, Some(k)) if k == d.key() => Ok(()),
        (FakeDialect::OpenAi | FakeDialect::Groq, None) => Err(err(401, "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")),
        (FakeDialect::OpenAi, Some(k)) => {
            let masked = format!("{}***{}", k.chars().take(3).collect::<String>(), k.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect::<String>());
            Err(err(401, format!("Incorrect API key provided: {masked}. You can find your API key at https://platform.openai.com/account/api-keys.")).code("invalid_api_key"))
        }
        (FakeDialect::Groq, Some(_)) => Err(err(401, "Invalid API Key").code("invalid_api_key")),
        (FakeDialect::Anthropic, None) => Err(err(401, "x-api-key header is required")),
        (FakeDialect::Anthropic, Some(_)) => Err(err(401, "invalid x-api-key")),
        (FakeDialect::Gemini, None) => Err(err(403, "Method doesn't allow unregistered callers (callers without established identity). Please use API key or other form of API consumer identity to call this API.")),
        (FakeDialect::Gemini, Some(_)) => Err(err(400, "API key not valid. Please pass a valid API key.").details(json!([
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
            {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": "API key not valid. Please pass a valid API key."}]))),
    }
}

// ---------------------------------------------------------------------------------------------
// validation (the subset of the real APIs' checks that a gateway can get wrong)

fn validate(d: FakeDialect, b: &Value) -> Result<(), ApiErr> {
    match d {
        FakeDialect::OpenAi | FakeDialect::Groq => validate_openai(b),
        FakeDialect::Anthropic => validate_anthropic(b),
        FakeDialect::Gemini => validate_gemini(b),
    }
}

fn validate_openai(b: &Value) -> Result<(), ApiErr> {
    if !b["model"].is_string() {
        return Err(err(400, "you must provide a model parameter"));
    }
    let msgs = b["messages"].as_array().ok_or_else(|| {
        err(400, "Missing required parameter: 'messages'.")
            .param("messages")
            .code("missing_required_parameter")
    })?;
    if msgs.is_empty() {
        return Err(err(400, "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.").param("messages").code("empty_array"));
    }
    let mut pending: Vec<String> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or_default();
        if ![
            "system",
            "developer",
            "user",
            "assistant",
            "tool",
            "function",
        ]
        .contains(&role)
        {
            return Err(err(400, format!("Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.")).param(format!("messages[{i}].role")).code("invalid_value"));
        }
        if role == "tool" {
            let id = m["tool_call_id"].as_str().unwrap_or_default();
            let Some(pos) = pending.iter().position(|p| p == id) else {
                return Err(err(400, "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.").param(format!("messages.[{i}].role")));
            };
            pending.remove(pos);
            continue;
        }
        if !pending.is_empty() {
            return Err(err(400, format!("An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}", pending.join(", "))).param(format!("messages.[{i}].role")));
        }
        if role == "assistant" {
            let calls = m["tool_calls"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            pending = calls.iter().map(|c| str_of(&c["id"])).collect();
        }
    }
    if !pending.is_empty() {
        return Err(err(400, format!("An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}", pending.join(", "))).param("messages"));
    }
    if !b["stream_options"].is_null() && b["stream"] != true {
        return Err(err(
            400,
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        )
        .param("stream_options"));
    }
    Ok(())
}

fn validate_anthropic(b: &Value) -> Result<(), ApiErr> {
    for f in ["model", "max_tokens", "messages"] {
        if b[f].is_null() {
            return Err(err(400, format!("{f}: Field required")));
        }
    }
    let msgs = b["messages"]
        .as_array()
        .ok_or_else(|| err(400, "messages: Input should be a valid list"))?;
    if msgs.is_empty() {
        return Err(err(400, "messages: at least one message is required"));
    }
    let mut pending: Vec<String> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or_default();
        if role != "user" && role != "assistant" {
            return Err(err(
                400,
                format!("messages.{i}.role: Input should be 'user' or 'assistant'"),
            ));
        }
        if i == 0 && role != "user" {
            return Err(err(
                400,
                "messages: first message must use the \"user\" role",
            ));
        }
        if i > 0 && msgs[i - 1]["role"] == role {
            return Err(err(400, format!("messages: roles must alternate between \"user\" and \"assistant\", but found multiple \"{role}\" roles in a row")));
        }
        let blocks: Vec<Value> = match &m["content"] {
            Value::String(s) => vec![json!({"type": "text", "text": s})],
            Value::Array(a) => a.clone(),
            _ => vec![],
        };
        let final_assistant = role == "assistant" && i + 1 == msgs.len();
        if (blocks.is_empty() || m["content"] == "") && !final_assistant {
            return Err(err(400, format!("messages.{i}: all messages must have non-empty content except for the optional final assistant message")));
        }
        for blk in blocks
            .iter()
            .filter(|x| x["type"] == "text" && m["content"].is_array())
        {
            match blk["text"].as_str() {
                Some("") => {
                    return Err(err(400, "messages: text content blocks must be non-empty"))
                }
                Some(t) if t.trim().is_empty() => {
                    return Err(err(
                        400,
                        "messages: text content blocks must contain non-whitespace text",
                    ))
                }
                _ => {}
            }
        }
        for (j, blk) in blocks.iter().enumerate() {
            if blk["type"] == "thinking"
                && blk["signature"].as_str() != Some(&thinking_signature(&str_of(&blk["thinking"])))
            {
                return Err(err(
                    400,
                    format!("messages.{i}.content.{j}: Invalid `signature` in `thinking` block"),
                ));
            }
        }
        let results: Vec<(usize, String)> = blocks
            .iter()
            .enumerate()
            .filter(|(_, x)| x["type"] == "tool_result")
            .map(|(j, x)| (j, str_of(&x["tool_use_id"])))
            .collect();
        if let Some((j, id)) = results.iter().find(|(_, id)| !pending.contains(id)) {
            return Err(err(400, format!("messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.")));
        }
        let missing: Vec<&str> = pending
            .iter()
            .filter(|p| !results.iter().any(|(_, id)| id == *p))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(unanswered_tool_use(i - 1, &missing));
        }
        pending = blocks
            .iter()
            .filter(|x| x["type"] == "tool_use")
            .map(|x| str_of(&x["id"]))
            .collect();
    }
    if !pending.is_empty() {
        let missing: Vec<&str> = pending.iter().map(String::as_str).collect();
        return Err(unanswered_tool_use(msgs.len() - 1, &missing));
    }
    Ok(())
}

fn unanswered_tool_use(i: usize, ids: &[&str]) -> ApiErr {
    err(400, format!("messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.", ids.join(", ")))
}

fn validate_gemini(b: &Value) -> Result<(), ApiErr> {
    let contents = b["contents"]
        .as_array()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            err(
                400,
                "* GenerateContentRequest.contents: contents is not specified\n",
            )
        })?;
    for (i, c) in contents.iter().enumerate() {
        if let Some(role) = c["role"].as_str() {
            if role != "user" && role != "model" {
                return Err(err(400, "Please use a valid role: user, model."));
            }
        }
        let parts = c["parts"].as_array().filter(|p| !p.is_empty())
            .ok_or_else(|| err(400, format!("* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n")))?;
        for (j, p) in parts.iter().enumerate() {
            let fr = get(p, &["functionResponse", "function_response"]);
            if !fr.is_null() && !fr["response"].is_object() {
                return Err(err(400, format!("Invalid value at 'contents[{i}].parts[{j}].function_response.response' (type.googleapis.com/google.protobuf.Struct), {}", fr["response"])));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// request handling

/// For a chat endpoint: (model from the path — Gemini only, stream-by-path — Gemini only).
fn chat_route(d: FakeDialect, m: &Method, path: &str) -> Option<(String, bool)> {
    if m != Method::POST {
        return None;
    }
    let exact = |p: &str| (path == p).then(|| (String::new(), false));
    match d {
        FakeDialect::OpenAi => exact("/v1/chat/completions").or_else(|| exact("/v1/responses")),
        FakeDialect::Groq => exact("/openai/v1/chat/completions"),
        FakeDialect::Anthropic => exact("/v1/messages"),
        FakeDialect::Gemini => {
            let path = path.replace("%3A", ":").replace("%3a", ":");
            let rest = path
                .strip_prefix("/v1beta/models/")
                .or_else(|| path.strip_prefix("/v1/models/"))?;
            match rest.rsplit_once(':')? {
                (model, "generateContent") => Some((model.to_string(), false)),
                (model, "streamGenerateContent") => Some((model.to_string(), true)),
                _ => None,
            }
        }
    }
}

async fn handle(req: HttpRequest, raw: Bytes, inner: web::Data<Inner>) -> HttpResponse {
    let inner = inner.into_inner();
    let d = inner.dialect;
    let path = req.path().to_string();
    let route = chat_route(d, req.method(), &path);
    let parsed = serde_json::from_slice::<Value>(&raw);
    let (behavior, reply, no_tools, cache_read, tool_input, reasoning) = {
        let mut st = inner.lock();
        st.last_path = Some(
            req.uri()
                .path_and_query()
                .map_or(path.clone(), |p| p.to_string()),
        );
        st.last_headers = Some(req.headers().clone());
        if route.is_some() {
            st.hits += 1;
            st.last_raw = Some(String::from_utf8_lossy(&raw).into_owned());
            if let Ok(v) = &parsed {
                st.requests.push(v.clone());
            }
            st.last_request = Some(match &parsed {
                Ok(v) => v.clone(),
                Err(_) => Value::String(String::from_utf8_lossy(&raw).into_owned()),
            });
        }
        (
            st.behavior.clone(),
            st.reply.clone(),
            st.no_tools,
            st.cache_read,
            st.tool_input.clone(),
            st.reasoning.clone(),
        )
    };
    if let Err(e) = check_auth(d, &req) {
        return render(d, e);
    }
    let Some((path_model, path_stream)) = route else {
        let models = matches!(
            (d, path.as_str()),
            (FakeDialect::OpenAi, "/v1/models") | (FakeDialect::Groq, "/openai/v1/models")
        );
        if req.method() == Method::GET && models {
            return builder(d, 200).0.json(json!({"object": "list", "data": [
                {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
                {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"}]}));
        }
        return render(
            d,
            err(404, format!("Invalid URL ({} {path})", req.method())).kind(match d {
                FakeDialect::Anthropic => "not_found_error",
                FakeDialect::Gemini => "NOT_FOUND",
                _ => "invalid_request_error",
            }),
        );
    };
    if path == "/v1/responses" {
        let mut body = parsed.ok();
        if let (true, Some(Value::Object(b))) = (no_tools, body.as_mut()) {
            b.remove("tools");
        }
        return responses(&inner, body, behavior, reply);
    }
    if d == FakeDialect::Anthropic && req.headers().get("anthropic-version").is_none() {
        return render(d, err(400, "anthropic-version: header is required"));
    }
    let body = match parsed {
        Ok(v) if v.is_object() => v,
        _ => {
            return render(d, match d {
                FakeDialect::Gemini => err(400, "Invalid JSON payload received. Unexpected token."),
                FakeDialect::Anthropic => err(400, "There was an error parsing the body of your request."),
                _ => err(400, "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"),
            })
        }
    };
    if let Err(e) = validate(d, &body) {
        return render(d, e);
    }
    let model = if d == FakeDialect::Gemini {
        path_model
    } else {
        str_of(&body["model"])
    };
    match behavior {
        Behavior::Status(s) => return render(d, status_err(d, s, &model)),
        Behavior::HangBeforeHeaders => actix_web::rt::time::sleep(Duration::from_secs(60)).await,
        Behavior::DelayFirstByte(t) => actix_web::rt::time::sleep(t).await,
        Behavior::Gather(n) => {
            inner.gathered.fetch_add(1, Ordering::SeqCst);
            let until = std::time::Instant::now() + Duration::from_secs(30);
            while inner.gathered.load(Ordering::SeqCst) < n && std::time::Instant::now() < until {
                actix_web::rt::time::sleep(Duration::from_millis(10)).await;
            }
        }
        _ => {}
    }
    let stream = if d == FakeDialect::Gemini {
        path_stream
    } else {
        body["stream"] == true
    };
    let mut plan = if no_tools {
        let mut b = body.clone();
        if let Some(o) = b.as_object_mut() {
            o.remove("tools");
        }
        Plan::new(d, &b, model, reply)
    } else {
        Plan::new(d, &body, model, reply)
    };
    plan.cache_read = cache_read.min(plan.prompt);
    if matches!(d, FakeDialect::OpenAi | FakeDialect::Groq) && plan.tool.is_none() {
        plan.completion += reasoning.as_deref().map_or(0, completion_tokens_for);
        plan.thinking = reasoning;
    }
    if let (Some((_, args)), Some(input)) = (plan.tool.as_mut(), tool_input) {
        *args = input;
    }
    let gap = match behavior {
        Behavior::SlowStream(g) => g,
        _ => Duration::from_millis(5),
    };
    if let Behavior::Malformed = behavior {
        return malformed(&inner, stream);
    }
    if !stream {
        let v = match d {
            FakeDialect::OpenAi | FakeDialect::Groq => openai_json(d, &plan),
            FakeDialect::Anthropic => anthropic_json(&plan),
            FakeDialect::Gemini => gemini_chunk(
                &plan,
                plan.tool
                    .as_ref()
                    .map_or_else(|| json!([{"text": plan.text}]), fn_call_part),
                true,
                &rnd(22, ALNUM),
            ),
        };
        if let Behavior::MidStreamReset = behavior {
            let mut s = v.to_string();
            let mut half = s.len() / 2;
            while !s.is_char_boundary(half) {
                half -= 1;
            }
            s.truncate(half);
            return send(&inner, "application/json", vec![s], true, gap);
        }
        return builder(d, 200).0.json(v);
    }
    let (frames, cut) = match d {
        FakeDialect::OpenAi | FakeDialect::Groq => openai_stream(
            d,
            &plan,
            body["stream_options"]["include_usage"] == true,
            &behavior,
        ),
        FakeDialect::Anthropic => anthropic_stream(&plan, &behavior),
        FakeDialect::Gemini => gemini_stream(&plan, &behavior),
    };
    if d == FakeDialect::Gemini && !req.query_string().split('&').any(|kv| kv == "alt=sse") {
        // Without alt=sse Gemini streams one JSON array of the same response objects.
        let items: Vec<&str> = frames
            .iter()
            .map(|f| f.trim_start_matches("data: ").trim_end())
            .collect();
        let array = format!("[{}]", items.join("\r\n,"));
        return send(&inner, "application/json", vec![array], cut, gap);
    }
    let ct = if matches!(d, FakeDialect::OpenAi | FakeDialect::Groq) {
        "text/event-stream; charset=utf-8"
    } else {
        "text/event-stream"
    };
    send(&inner, ct, frames, cut, gap)
}

/// Marks a streamed body as cancelled if it is dropped before its last item went out.
struct CancelGuard {
    inner: Arc<Inner>,
    done: bool,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.done {
            self.inner.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A chunked 200 response sending `frames` one by one, `gap` before each; `cut` ends the body
/// with an error so the connection is aborted mid-response (no terminating chunk).
fn send(
    inner: &Arc<Inner>,
    content_type: &str,
    frames: Vec<String>,
    cut: bool,
    gap: Duration,
) -> HttpResponse {
    let mut items: Vec<Result<Bytes, std::io::Error>> =
        frames.into_iter().map(|f| Ok(Bytes::from(f))).collect();
    if cut {
        let reset = std::io::ErrorKind::ConnectionReset;
        items.push(Err(std::io::Error::new(reset, "fake upstream: reset")));
    }
    let n = items.len();
    let guard = CancelGuard {
        inner: inner.clone(),
        done: false,
    };
    let body = stream::unfold(
        (items.into_iter().enumerate(), guard),
        move |(mut it, mut guard)| async move {
            let (i, item) = it.next()?;
            actix_web::rt::time::sleep(gap).await;
            guard.done = i + 1 == n;
            Some((item, (it, guard)))
        },
    );
    let (mut b, _) = builder(inner.dialect, 200);
    b.content_type(content_type)
        .insert_header(("cache-control", "no-cache"))
        .streaming(body)
}

fn malformed(inner: &Arc<Inner>, stream: bool) -> HttpResponse {
    let d = inner.dialect;
    let frame = match d {
        FakeDialect::Anthropic => {
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{oops\n\n"
        }
        FakeDialect::Gemini => "data: {\"candidates\": [{\"content\": oops\r\n\r\n",
        _ => "data: {\"id\":\"chatcmpl-broken\",\"choices\":[{oops\n\ndata: [DONE]\n\n",
    };
    if stream {
        let gap = Duration::from_millis(5);
        send(
            inner,
            "text/event-stream",
            vec![frame.to_string()],
            false,
            gap,
        )
    } else {
        builder(d, 200)
            .0
            .content_type("application/json")
            .body("{\"id\": \"broken\", \"choices\": [{")
    }
}

// ---------------------------------------------------------------------------------------------
// OpenAI / Groq

fn openai_usage(d: FakeDialect, p: &Plan) -> Value {
    let (pt, ct) = (p.prompt, p.completion);
    if d == FakeDialect::Groq {
        return json!({"queue_time": 0.01, "prompt_tokens": pt, "prompt_time": 0.001, "completion_tokens": ct,
            "completion_time": 0.002, "total_tokens": pt + ct, "total_time": 0.003});
    }
    json!({"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}})
}

fn openai_json(d: FakeDialect, p: &Plan) -> Value {
    let (message, finish) = match &p.tool {
        Some((name, args)) => (
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": format!("call_{}", rnd(24, ALNUM)),
            "type": "function", "function": {"name": name, "arguments": args.to_string()}}], "refusal": null, "annotations": []}),
            "tool_calls",
        ),
        None => {
            let mut m =
                json!({"role": "assistant", "content": p.text, "refusal": null, "annotations": []});
            if let Some(r) = &p.thinking {
                m["reasoning_content"] = json!(r);
            }
            (m, "stop")
        }
    };
    let mut v = json!({"id": format!("chatcmpl-{}", rnd(29, ALNUM)), "object": "chat.completion", "created": now(), "model": p.model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": openai_usage(d, p), "system_fingerprint": "fp_fake0001", "service_tier": "default"});
    if d == FakeDialect::Groq {
        v["service_tier"] = json!("on_demand");
        v["usage_breakdown"] = json!({"models": null});
        v["x_groq"] = json!({"id": format!("req_01{}", rnd(24, LOWER))});
    }
    v
}

fn openai_stream(
    d: FakeDialect,
    p: &Plan,
    include_usage: bool,
    b: &Behavior,
) -> (Vec<String>, bool) {
    let groq = d == FakeDialect::Groq;
    let inc = include_usage && !groq;
    let (id, created, gid) = (
        format!("chatcmpl-{}", rnd(29, ALNUM)),
        now(),
        format!("req_01{}", rnd(24, LOWER)),
    );
    let mk = |delta: Value, finish: Value| {
        let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": p.model, "system_fingerprint": "fp_fake0001",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        if inc {
            c["usage"] = Value::Null;
        }
        c
    };
    let (mut first, deltas): (Value, Vec<Value>) = match &p.tool {
        Some((name, args)) => (
            mk(
                json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": format!("call_{}", rnd(24, ALNUM)),
                "type": "function", "function": {"name": name, "arguments": ""}}], "refusal": null}),
                Value::Null,
            ),
            fragments(&args.to_string())
                .into_iter()
                .map(|f| json!({"tool_calls": [{"index": 0, "function": {"arguments": f}}]}))
                .collect(),
        ),
        None => (
            mk(json!({"role": "assistant", "content": ""}), Value::Null),
            pieces(p.thinking.as_deref().unwrap_or_default())
                .into_iter()
                .map(|t| json!({"reasoning_content": t}))
                .chain(pieces(&p.text).into_iter().map(|t| json!({"content": t})))
                .collect(),
        ),
    };
    if groq {
        first["x_groq"] = json!({"id": gid});
    }
    let mut out = vec![first];
    let mut deltas = deltas.into_iter().map(|delta| mk(delta, Value::Null));
    out.extend(deltas.next());
    if let Some(r) = interrupt_openai(&out, b) {
        return r;
    }
    out.extend(deltas);
    let mut fin = mk(
        json!({}),
        json!(if p.tool.is_some() {
            "tool_calls"
        } else {
            "stop"
        }),
    );
    if groq {
        fin["x_groq"] = json!({"id": gid, "usage": openai_usage(d, p)});
    }
    out.push(fin);
    if inc {
        let mut u = mk(json!({}), Value::Null);
        u["choices"] = json!([]);
        u["usage"] = openai_usage(d, p);
        out.push(u);
    }
    let mut frames: Vec<String> = out.iter().map(|c| format!("data: {c}\n\n")).collect();
    frames.push("data: [DONE]\n\n".to_string());
    (frames, false)
}

fn interrupt_openai(out: &[Value], b: &Behavior) -> Option<(Vec<String>, bool)> {
    let frames = || {
        out.iter()
            .map(|c| format!("data: {c}\n\n"))
            .collect::<Vec<_>>()
    };
    match b {
        Behavior::MidStreamError => {
            let mut f = frames();
            f.push(format!("data: {}\n\n", json!({"error": {"message": "The server had an error while processing your request. Sorry about that!", "type": "server_error", "param": null, "code": null}})));
            Some((f, false))
        }
        Behavior::MidStreamReset => Some((frames(), true)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Anthropic

fn anthropic_usage(p: &Plan, output: u64) -> Value {
    json!({"input_tokens": p.prompt - p.cache_read, "cache_creation_input_tokens": 0, "cache_read_input_tokens": p.cache_read, "output_tokens": output, "service_tier": "standard"})
}

fn anthropic_thinking_block(p: &Plan) -> Option<Value> {
    p.thinking
        .as_ref()
        .map(|t| json!({"type": "thinking", "thinking": t, "signature": thinking_signature(t)}))
}

fn anthropic_json(p: &Plan) -> Value {
    let (answer, stop) = match &p.tool {
        Some((name, args)) => (
            json!({"type": "tool_use", "id": format!("toolu_01{}", rnd(22, B58)), "name": name, "input": args}),
            "tool_use",
        ),
        None => (json!({"type": "text", "text": p.text}), "end_turn"),
    };
    let content: Vec<Value> = anthropic_thinking_block(p)
        .into_iter()
        .chain(std::iter::once(answer))
        .collect();
    json!({"id": format!("msg_01{}", rnd(22, B58)), "type": "message", "role": "assistant", "model": p.model, "content": content,
        "stop_reason": stop, "stop_sequence": null, "usage": anthropic_usage(p, p.completion)})
}

fn anthropic_stream(p: &Plan, b: &Behavior) -> (Vec<String>, bool) {
    let ev = |v: Value| {
        format!(
            "event: {}\ndata: {v}\n\n",
            v["type"].as_str().unwrap_or_default()
        )
    };
    let mut out = vec![ev(
        json!({"type": "message_start", "message": {"id": format!("msg_01{}", rnd(22, B58)), "type": "message",
        "role": "assistant", "model": p.model, "content": [], "stop_reason": null, "stop_sequence": null, "usage": anthropic_usage(p, 1)}}),
    )];
    // A thinking block (when the request enabled thinking) comes first: its text, then its
    // signature, as the real API streams them.
    let mut index = 0;
    if let Some(t) = &p.thinking {
        out.push(ev(json!({"type": "content_block_start", "index": index,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""}})));
        for piece in pieces(t) {
            out.push(ev(json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "thinking_delta", "thinking": piece}})));
        }
        out.push(ev(json!({"type": "content_block_delta", "index": index,
            "delta": {"type": "signature_delta", "signature": thinking_signature(t)}})));
        out.push(ev(json!({"type": "content_block_stop", "index": index})));
        index += 1;
    }
    let (block, deltas): (Value, Vec<Value>) = match &p.tool {
        Some((name, args)) => (
            json!({"type": "tool_use", "id": format!("toolu_01{}", rnd(22, B58)), "name": name, "input": {}}),
            std::iter::once(String::new())
                .chain(fragments(&args.to_string()))
                .map(|f| json!({"type": "input_json_delta", "partial_json": f}))
                .collect(),
        ),
        None => (
            json!({"type": "text", "text": ""}),
            pieces(&p.text)
                .into_iter()
                .map(|t| json!({"type": "text_delta", "text": t}))
                .collect(),
        ),
    };
    out.push(ev(
        json!({"type": "content_block_start", "index": index, "content_block": block}),
    ));
    out.push("event: ping\ndata: {\"type\": \"ping\"}\n\n".to_string());
    let mut deltas = deltas
        .into_iter()
        .map(|delta| ev(json!({"type": "content_block_delta", "index": index, "delta": delta})));
    out.extend(deltas.next());
    match b {
        Behavior::MidStreamError => {
            out.push("event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n".to_string());
            return (out, false);
        }
        Behavior::MidStreamReset => return (out, true),
        _ => {}
    }
    out.extend(deltas);
    let stop = if p.tool.is_some() {
        "tool_use"
    } else {
        "end_turn"
    };
    out.push(ev(json!({"type": "content_block_stop", "index": index})));
    out.push(ev(json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": p.completion}})));
    out.push(ev(json!({"type": "message_stop"})));
    (out, false)
}

// ---------------------------------------------------------------------------------------------
// Gemini

fn fn_call_part((name, args): &(String, Value)) -> Value {
    json!([{"functionCall": {"name": name, "args": args}}])
}

fn gemini_chunk(p: &Plan, parts: Value, last: bool, rid: &str) -> Value {
    let mut cand = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
    let details = json!([{"modality": "TEXT", "tokenCount": p.prompt}]);
    let usage = if last {
        cand["finishReason"] = json!("STOP");
        json!({"promptTokenCount": p.prompt, "candidatesTokenCount": p.completion, "totalTokenCount": p.prompt + p.completion,
            "promptTokensDetails": details, "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": p.completion}]})
    } else {
        json!({"promptTokenCount": p.prompt, "totalTokenCount": p.prompt, "promptTokensDetails": details})
    };
    json!({"candidates": [cand], "usageMetadata": usage, "modelVersion": p.model, "responseId": rid})
}

fn gemini_stream(p: &Plan, b: &Behavior) -> (Vec<String>, bool) {
    let rid = rnd(22, ALNUM);
    let parts: Vec<Value> = match &p.tool {
        Some(t) => vec![fn_call_part(t)],
        None => pieces(&p.text)
            .into_iter()
            .map(|t| json!([{"text": t}]))
            .collect(),
    };
    let parts = if parts.is_empty() {
        vec![json!([{"text": ""}])]
    } else {
        parts
    };
    let n = parts.len();
    let interrupt = matches!(b, Behavior::MidStreamError | Behavior::MidStreamReset);
    let mut out = Vec::new();
    for (i, part) in parts.into_iter().enumerate() {
        let last = i + 1 == n && !interrupt;
        out.push(format!(
            "data: {}\r\n\r\n",
            gemini_chunk(p, part, last, &rid)
        ));
        if interrupt && (i == 1 || i + 1 == n) {
            return (out, matches!(b, Behavior::MidStreamReset));
        }
    }
    (out, false)
}

// ---------------------------------------------------------------------------------------------
// OpenAI Responses (`POST /v1/responses`, wire-formats.md §2): planned as the equivalent chat
// request, answered as a response object or its event stream (`event:` + `data:` with `type`
// and `sequence_number`). A `reasoning` request gets a reasoning item with encrypted content.

/// The chat body a Responses body amounts to (for the same planning rules as chat).
fn responses_as_chat(b: &Value) -> Value {
    let mut tools = Vec::new();
    for t in b["tools"].as_array().into_iter().flatten() {
        let inner = match t["type"].as_str() {
            Some("namespace") => t["tools"].as_array().cloned().unwrap_or_default(),
            _ => vec![t.clone()],
        };
        for f in inner.iter().filter(|f| f["type"] == "function") {
            tools.push(json!({"type": "function", "function": {"name": f["name"], "parameters": f["parameters"]}}));
        }
    }
    let text = |c: &Value| match c {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    };
    let mut messages = Vec::new();
    if let Some(i) = b["instructions"].as_str() {
        messages.push(json!({"role": "system", "content": i}));
    }
    match &b["input"] {
        Value::String(s) => messages.push(json!({"role": "user", "content": s})),
        Value::Array(items) => {
            for it in items {
                match it["type"].as_str().unwrap_or("message") {
                    "message" => {
                        messages.push(json!({"role": it["role"], "content": text(&it["content"])}))
                    }
                    "function_call_output" => {
                        messages.push(json!({"role": "tool", "content": text(&it["output"])}))
                    }
                    "function_call" => messages.push(json!({"role": "assistant", "content": ""})),
                    _ => {}
                }
            }
        }
        _ => {}
    }
    let tool_choice = match &b["tool_choice"] {
        Value::Object(o) => json!({"type": "function", "function": {"name": o.get("name")}}),
        other => other.clone(),
    };
    json!({"model": b["model"], "messages": messages, "tools": tools, "tool_choice": tool_choice})
}

fn responses(
    inner: &Arc<Inner>,
    body: Option<Value>,
    behavior: Behavior,
    reply: String,
) -> HttpResponse {
    let d = FakeDialect::OpenAi;
    let Some(body) = body.filter(Value::is_object) else {
        return render(
            d,
            err(400, "We could not parse the JSON body of your request."),
        );
    };
    if !body["model"].is_string() {
        return render(
            d,
            err(400, "Missing required parameter: 'model'.").param("model"),
        );
    }
    if body["input"].is_null() {
        return render(
            d,
            err(400, "Missing required parameter: 'input'.").param("input"),
        );
    }
    if let Behavior::Status(s) = behavior {
        return render(d, status_err(d, s, &str_of(&body["model"])));
    }
    let chat = responses_as_chat(&body);
    let plan = Plan::new(d, &chat, str_of(&body["model"]), reply);
    let id = format!("resp_{}", rnd(48, HEX));
    let mut output = Vec::new();
    if !body["reasoning"].is_null() {
        output.push(
            json!({"id": format!("rs_{}", rnd(48, HEX)), "type": "reasoning", "summary": [],
            "encrypted_content": format!("gAAAA{}", rnd(64, ALNUM))}),
        );
    }
    match &plan.tool {
        Some((name, args)) => output.push(json!({"type": "function_call", "id": format!("fc_{}", rnd(48, HEX)),
            "call_id": format!("call_{}", rnd(24, ALNUM)), "name": name, "arguments": args.to_string(), "status": "completed"})),
        None => output.push(json!({"type": "message", "id": format!("msg_{}", rnd(48, HEX)), "status": "completed",
            "role": "assistant", "content": [{"type": "output_text", "text": plan.text, "annotations": []}]})),
    }
    let usage = json!({"input_tokens": plan.prompt, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": plan.completion, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": plan.prompt + plan.completion});
    let object = |status: &str, output: Value, usage: Value| {
        json!({"id": id, "object": "response",
        "created_at": now(), "status": status, "error": null, "incomplete_details": null,
        "instructions": body["instructions"], "model": plan.model, "output": output,
        "parallel_tool_calls": true, "previous_response_id": null, "store": body["store"] == true,
        "tool_choice": body["tool_choice"], "tools": body["tools"], "usage": usage, "metadata": {}})
    };
    if body["stream"] != true {
        return builder(d, 200)
            .0
            .json(object("completed", Value::Array(output), usage));
    }
    let mut events = vec![
        json!({"type": "response.created", "response": object("in_progress", json!([]), Value::Null)}),
        json!({"type": "response.in_progress", "response": object("in_progress", json!([]), Value::Null)}),
    ];
    for (i, item) in output.iter().enumerate() {
        let mut added = item.clone();
        added["status"] = json!("in_progress");
        match item["type"].as_str() {
            Some("message") => {
                added["content"] = json!([]);
                events.push(
                    json!({"type": "response.output_item.added", "output_index": i, "item": added}),
                );
                events.push(json!({"type": "response.content_part.added", "item_id": item["id"], "output_index": i,
                    "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}));
                for piece in pieces(&plan.text) {
                    events.push(json!({"type": "response.output_text.delta", "item_id": item["id"], "output_index": i,
                        "content_index": 0, "delta": piece, "logprobs": []}));
                }
                events.push(json!({"type": "response.output_text.done", "item_id": item["id"], "output_index": i,
                    "content_index": 0, "text": plan.text, "logprobs": []}));
                events.push(json!({"type": "response.content_part.done", "item_id": item["id"], "output_index": i,
                    "content_index": 0, "part": {"type": "output_text", "text": plan.text, "annotations": []}}));
            }
            Some("function_call") => {
                added["arguments"] = json!("");
                events.push(
                    json!({"type": "response.output_item.added", "output_index": i, "item": added}),
                );
                let args = item["arguments"].as_str().unwrap_or_default();
                for f in fragments(args) {
                    events.push(json!({"type": "response.function_call_arguments.delta", "item_id": item["id"],
                        "output_index": i, "delta": f}));
                }
                events.push(
                    json!({"type": "response.function_call_arguments.done", "item_id": item["id"],
                    "output_index": i, "name": item["name"], "arguments": args}),
                );
            }
            _ => events.push(
                json!({"type": "response.output_item.added", "output_index": i, "item": added}),
            ),
        }
        events.push(json!({"type": "response.output_item.done", "output_index": i, "item": item}));
    }
    let cut = matches!(behavior, Behavior::MidStreamReset);
    match behavior {
        Behavior::MidStreamError => {
            events.truncate(4);
            let mut failed = object("failed", json!([]), Value::Null);
            failed["error"] = json!({"code": "server_error", "message": "The model failed to generate a response."});
            events.push(json!({"type": "response.failed", "response": failed}));
        }
        Behavior::MidStreamReset => events.truncate(4),
        _ => events.push(json!({"type": "response.completed", "response": object("completed", Value::Array(output), usage)})),
    }
    let frames = events
        .into_iter()
        .enumerate()
        .map(|(n, mut e)| {
            e["sequence_number"] = json!(n);
            format!("event: {}\ndata: {e}\n\n", str_of(&e["type"]))
        })
        .collect();
    let gap = match behavior {
        Behavior::SlowStream(g) => g,
        _ => Duration::from_millis(5),
    };
    send(inner, "text/event-stream", frames, cut, gap)
}
