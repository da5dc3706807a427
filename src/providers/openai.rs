//! The OpenAI dialect: OpenAI itself, Groq, and any OpenAI-compatible server (Ollama, vLLM,
//! llama.cpp). The canonical request goes out with the concrete model set and only the fields
//! on `outbound`'s allow-list; streams always ask for usage so that cost is known even when
//! the client did not ask for it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::outbound;
use super::sse::SseEvent;
use super::{
    chunk_scan, Completion, ProviderSpec, RawChunk, StreamItem, StreamTranslator, UpstreamCall,
};
use crate::api::usage::{OpenAiUsage, UsageCounts};
use crate::api::{ChatRequest, Usage};
use crate::error::ApiError;

pub fn build(
    p: &ProviderSpec,
    model: &str,
    req: &ChatRequest,
    stream: bool,
) -> Result<UpstreamCall, ApiError> {
    let service_tier = outbound::service_tier(p, req.service_tier.as_deref(), true)?;
    let body = Outbound::of(req, model, stream, service_tier);
    // serde_json starts at 128 bytes and doubles: a short chat's body was copied three times.
    let mut out = Vec::with_capacity(1024);
    serde_json::to_writer(&mut out, &body).map_err(ApiError::internal)?;
    Ok(UpstreamCall {
        url: p.url("/chat/completions"),
        headers: vec![("authorization", p.bearer())],
        body: out,
        native: false,
    })
}

/// The client's request as an OpenAI upstream gets it, borrowed from it (a clone of the whole
/// request, to change four fields, was a thousand instructions a request): the model chosen,
/// `stream` set, `store` never, the service tier allowed, usage asked for in a stream, and of
/// the fields Pura does not model only those the dialect forwards. Serialized as
/// `ChatRequest` is, field for field and in its order.
#[derive(Serialize)]
struct Outbound<'a> {
    model: &'a str,
    messages: &'a [crate::api::Message],
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<OutboundStreamOptions<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a [crate::api::chat::Tool]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_tier: Option<String>,
    #[serde(flatten)]
    extra: Allowed<'a>,
}

#[derive(Serialize)]
struct OutboundStreamOptions<'a> {
    include_usage: bool,
    #[serde(flatten)]
    extra: Allowed<'a>,
}

/// The members of `map` whose names are in `allowed`, serialized as a map.
struct Allowed<'a> {
    map: Option<&'a serde_json::Map<String, Value>>,
    allowed: &'static [&'static str],
}

impl Serialize for Allowed<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        for (k, v) in self.map.into_iter().flatten() {
            if self.allowed.contains(&k.as_str()) {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

impl<'a> Outbound<'a> {
    fn of(
        req: &'a ChatRequest,
        model: &'a str,
        stream: bool,
        service_tier: Option<String>,
    ) -> Outbound<'a> {
        // Every field named, so one added to `ChatRequest` fails to compile here until it is
        // decided whether the upstream gets it.
        let ChatRequest {
            model: _,
            messages,
            stream: _,
            stream_options,
            max_tokens,
            max_completion_tokens,
            temperature,
            top_p,
            n,
            stop,
            tools,
            tool_choice,
            parallel_tool_calls,
            response_format,
            user,
            store: _,
            service_tier: _,
            extra,
        } = req;
        Outbound {
            model,
            messages,
            stream,
            stream_options: stream.then(|| OutboundStreamOptions {
                include_usage: true,
                extra: Allowed {
                    map: stream_options.as_ref().map(|o| &o.extra),
                    allowed: outbound::STREAM_OPTIONS,
                },
            }),
            max_tokens: *max_tokens,
            max_completion_tokens: *max_completion_tokens,
            temperature: *temperature,
            top_p: *top_p,
            n: *n,
            stop: stop.as_ref(),
            tools: tools.as_deref(),
            tool_choice: tool_choice.as_ref(),
            parallel_tool_calls: *parallel_tool_calls,
            response_format: response_format.as_ref(),
            user: user.as_deref(),
            service_tier,
            extra: Allowed {
                map: Some(extra),
                allowed: outbound::CHAT_EXTRAS,
            },
        }
    }
}

/// Reads an OpenAI usage value from its bytes (`null` included, as none), with the same result
/// as [`Usage::from_openai`] on its `Value` for any JSON. The shape upstreams send, an object of
/// plain keys whose values are unsigned integers or detail objects of them, is read by the
/// chunk scanner: serde's walk over those few keys was about 1,600 instructions a request.
/// Anything else goes through serde ([`OpenAiUsage`]), with the same result (see the tests).
fn usage_from_slice(b: &[u8]) -> serde_json::Result<Option<Usage>> {
    match chunk_scan::usage(b) {
        Some(counts) => Ok(counts.and_then(UsageCounts::usage)),
        None => Ok(serde_json::from_slice::<Option<OpenAiUsage>>(b)?.and_then(|u| u.0)),
    }
}

/// What a `usage` member the scanner found in `data` holds: the counts it read, or else what
/// [`usage_from_slice`] reads of the value's bytes.
fn member_usage(data: &[u8], member: chunk_scan::UsageMember) -> serde_json::Result<Option<Usage>> {
    match member.counts {
        Some(counts) => Ok(counts.and_then(UsageCounts::usage)),
        None => usage_from_slice(&data[member.range.0..member.range.1]),
    }
}

/// The parts of an OpenAI answer Pura needs; everything else stays in the raw bytes.
#[derive(Deserialize)]
struct Peek {
    choices: Vec<serde::de::IgnoredAny>,
    #[serde(default)]
    usage: Option<OpenAiUsage>,
    #[serde(default)]
    model: Option<String>,
}

/// What [`parse`] needs of an answer, as [`Peek`] reads it.
#[derive(Debug, PartialEq)]
struct Peeked {
    choices: usize,
    model: bool,
    usage: Option<Usage>,
}

impl Peeked {
    /// Read by [`chunk_scan::answer`] where it can (serde's walk over every value of the
    /// answer was about a twentieth of a request's instructions), else by serde.
    fn of(body: &[u8]) -> Result<Peeked, String> {
        let scanned = std::str::from_utf8(body).ok().and_then(chunk_scan::answer);
        match scanned {
            Some(a) => Ok(Peeked {
                choices: a.choices,
                model: a.model,
                usage: match a.usage {
                    // A JSON value the scanner checked: any reads as some usage or none.
                    Some(member) => member_usage(body, member)
                        .map_err(|e| format!("invalid answer from upstream: {e}"))?,
                    None => None,
                },
            }),
            None => Peeked::by_serde(body),
        }
    }

    fn by_serde(body: &[u8]) -> Result<Peeked, String> {
        let peek: Peek = serde_json::from_slice(body)
            .map_err(|e| format!("invalid answer from upstream: {e}"))?;
        Ok(Peeked {
            choices: peek.choices.len(),
            model: peek.model.is_some(),
            usage: peek.usage.and_then(|u| u.0),
        })
    }
}

/// Checks an OpenAI `chat.completion` and reads its usage. The bytes are passed on as they
/// came unless the answer lacks a `model`, which is then filled in.
pub fn parse(body: bytes::Bytes, model: &str) -> Result<Completion, String> {
    // `Peek` would also read a JSON array (serde maps a sequence onto a struct's fields), and
    // an array is no answer to pass on, nor one to fill a `model` into (found by fuzzing).
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err("upstream answer is not a JSON object".into());
    }
    let peek = Peeked::of(&body)?;
    if peek.choices == 0 {
        return Err("upstream answer has no choices".into());
    }
    let usage = peek.usage;
    if peek.model {
        return Ok(Completion {
            body: Value::Null,
            usage,
            raw: Some(body),
            native: false,
        });
    }
    let Value::Object(mut v) =
        serde_json::from_slice(&body).map_err(|e| format!("invalid JSON from upstream: {e}"))?
    else {
        return Err("upstream answer is not a JSON object".into());
    };
    v.insert("model".into(), json!(model));
    Ok(Completion {
        body: Value::Object(v),
        usage,
        raw: None,
        native: false,
    })
}

/// OpenAI chunks are already in the client's shape; the translator only separates usage
/// (the `choices: []` chunk, or Groq's `x_groq.usage`) and in-stream errors from content.
#[derive(Debug, Default)]
pub struct Translator {
    /// The stream's last scanned chunk, which its next ones are read by.
    template: chunk_scan::Template,
}

impl StreamTranslator for Translator {
    fn on_event(&mut self, event: &SseEvent) -> Result<Vec<StreamItem>, String> {
        let data = event.data.trim();
        match chunk_scan::scan(data) {
            Some(found) => match usage_cut(data, &found) {
                Some(cut) => Ok(raw_chunk(data.to_owned(), cut, &found)),
                None => unscanned(data),
            },
            None => unscanned(data),
        }
    }

    /// A content chunk that arrived trimmed (as they do) keeps its text: relayed without a copy.
    fn take_event(&mut self, event: SseEvent) -> Result<Vec<StreamItem>, String> {
        if event.data.trim().len() != event.data.len() {
            return self.on_event(&event);
        }
        // Scanned once: an event the scanner leaves goes on without a second scan.
        match self.template.scan(&event.data) {
            Some(found) => match usage_cut(&event.data, &found) {
                Some(cut) => Ok(raw_chunk(event.data, cut, &found)),
                None => unscanned(&event.data),
            },
            None => unscanned(&event.data),
        }
    }
}

/// An event (trimmed) that the scanner did not read as a plain content chunk: the end marker,
/// the usage chunk, Groq's chunks, errors, or anything unusual.
fn unscanned(data: &str) -> Result<Vec<StreamItem>, String> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    if data == "[DONE]" {
        return Ok(vec![StreamItem::Done]);
    }
    // The usage chunk, plainly so: what `peeked_chunk` reads of it, without serde's walk.
    if let Some(member) = chunk_scan::usage_chunk(data) {
        if let Ok(usage) = member_usage(data.as_bytes(), member) {
            return Ok(usage.map(StreamItem::Usage).into_iter().collect());
        }
    }
    match peeked_chunk(data) {
        Some(items) => Ok(items),
        None => general_chunk(data),
    }
}

/// Any event that is not a plain content chunk: parsed whole.
fn general_chunk(data: &str) -> Result<Vec<StreamItem>, String> {
    let mut v: Value =
        serde_json::from_str(data).map_err(|e| format!("malformed stream chunk: {e}"))?;
    let mut out = Vec::new();
    if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
        return Ok(vec![StreamItem::Error(normalize_error(err))]);
    }
    let usage = v.get("usage").and_then(Usage::from_openai).or_else(|| {
        v.get("x_groq")
            .and_then(|x| x.get("usage"))
            .and_then(Usage::from_openai)
    });
    if let Some(u) = usage {
        out.push(StreamItem::Usage(u));
    }
    let has_choices = v
        .get("choices")
        .and_then(Value::as_array)
        .is_some_and(|c| !c.is_empty());
    if has_choices {
        if let Some(obj) = v.as_object_mut() {
            obj.remove("usage");
        }
        out.push(StreamItem::Chunk(v));
    }
    Ok(out)
}

/// What the relay needs of an ordinary content chunk, read without building a `Value`.
#[derive(Deserialize)]
struct ChunkPeek<'a> {
    #[serde(default, borrow)]
    choices: Vec<ChoicePeek<'a>>,
    /// Absent `None`, `null` `Some(None)`, else what it reads as (see [`OpenAiUsage`]): read
    /// without building a `Value` (the usage chunk of every stream comes this way).
    #[serde(default, deserialize_with = "present_usage")]
    usage: Option<Option<OpenAiUsage>>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    x_groq: Option<XGroq>,
}

#[derive(Deserialize)]
struct ChoicePeek<'a> {
    #[serde(default, borrow)]
    delta: Option<DeltaPeek<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct DeltaPeek<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    tool_calls: Option<Vec<ToolCallPeek<'a>>>,
}

#[derive(Deserialize)]
struct ToolCallPeek<'a> {
    #[serde(default, borrow)]
    function: Option<FunctionPeek<'a>>,
}

#[derive(Deserialize)]
struct FunctionPeek<'a> {
    #[serde(default, borrow)]
    arguments: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct XGroq {
    #[serde(default)]
    usage: Option<Value>,
}

/// A usage that is there, `null` included (`Some(None)`); absent stays `None`.
fn present_usage<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<OpenAiUsage>>, D::Error> {
    Option::<OpenAiUsage>::deserialize(d).map(Some)
}

/// The chunk the scanner read, as its text less `cut` (taken out in place).
fn raw_chunk(
    mut data: String,
    cut: Option<std::ops::Range<usize>>,
    found: &chunk_scan::Scanned,
) -> Vec<StreamItem> {
    if let Some(cut) = cut {
        data.replace_range(cut, "");
    }
    vec![StreamItem::Raw(RawChunk {
        data,
        finishing: found.finishing,
        text_chars: found.text_chars,
    })]
}

/// Where the `"usage":null` member and one comma beside it are: `Some(None)` when there is no
/// such member, `None` when it has no comma to go with.
fn usage_cut(data: &str, found: &chunk_scan::Scanned) -> Option<Option<std::ops::Range<usize>>> {
    let Some((from, to)) = found.usage_null else {
        return Some(None);
    };
    if data[..from].ends_with(',') {
        Some(Some(from - 1..to))
    } else if data[to..].starts_with(',') {
        Some(Some(from..to + 1))
    } else {
        None
    }
}

/// Chunks the scanner leaves (Groq's `x_groq`, the usage chunk), read through serde into
/// borrowed structs: a content chunk as a [`RawChunk`], a chunk without choices as its usage
/// (what [`general_chunk`] makes of both, without building a `Value` of the whole). `None`
/// sends the event down the general path, which handles everything else.
fn peeked_chunk(data: &str) -> Option<Vec<StreamItem>> {
    let peek: ChunkPeek = serde_json::from_str(data).ok()?;
    if peek.error.is_some() {
        return None;
    }
    if peek.choices.is_empty() {
        // The usage chunk (`choices: []`), with its usage as `general_chunk` reads it.
        let usage = peek.usage.flatten().and_then(|u| u.0).or_else(|| {
            peek.x_groq
                .and_then(|x| x.usage)
                .as_ref()
                .and_then(Usage::from_openai)
        });
        return Some(usage.map(StreamItem::Usage).into_iter().collect());
    }
    let data = match peek.usage {
        None => data.to_owned(),
        // OpenAI writes `"usage":null` into every chunk when usage is asked for, as Pura
        // always asks; the general path takes it out of content chunks, and so does this.
        Some(None) => without_null_usage(data)?,
        Some(Some(_)) => return None,
    };
    let mut out = Vec::with_capacity(2);
    if let Some(u) = peek
        .x_groq
        .and_then(|x| x.usage)
        .as_ref()
        .and_then(Usage::from_openai)
    {
        out.push(StreamItem::Usage(u));
    }
    let text_chars = peek
        .choices
        .iter()
        .filter_map(|c| c.delta.as_ref())
        .map(|d| {
            let args: usize = d
                .tool_calls
                .iter()
                .flatten()
                .filter_map(|t| {
                    t.function
                        .as_ref()
                        .and_then(|f| f.arguments.as_ref())
                        .map(|a| a.len())
                })
                .sum();
            d.content.as_ref().map_or(0, |c| c.len()) + args
        })
        .sum();
    out.push(StreamItem::Raw(RawChunk {
        data,
        finishing: peek.choices[0].finish_reason.is_some(),
        text_chars,
    }));
    Some(out)
}

/// The chunk's text without its top-level `"usage":null` member. Only when that text occurs
/// once: the peek saw it at the top level, so that occurrence is the one (inside a string its
/// quotes would be escaped). Anything else (spacing, a nested one) goes the general way.
fn without_null_usage(data: &str) -> Option<String> {
    const MEMBER: &str = "\"usage\":null";
    // One searcher, built once: `str::matches` and `find` built a two-way searcher per call
    // and were a third of what relaying a chunk cost.
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(MEMBER));
    let mut hits = FINDER.find_iter(data.as_bytes());
    let at = hits.next()?;
    if hits.next().is_some() {
        return None;
    }
    let (before, after) = (&data[..at], &data[at + MEMBER.len()..]);
    if let Some(before) = before.strip_suffix(',') {
        return Some([before, after].concat());
    }
    after
        .strip_prefix(',')
        .map(|after| [before, after].concat())
}

/// Groq sends `x_groq.error` as a string; others send OpenAI's object.
fn normalize_error(err: &Value) -> Value {
    match err {
        Value::String(s) => {
            json!({"message": s, "type": "upstream_error", "param": null, "code": null})
        }
        other => other.clone(),
    }
}

/// The OpenAi dialect behind the common [`Adapter`](super::Adapter) trait.
pub struct OpenAi;

impl super::Adapter for OpenAi {
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
        parse(body, model)
    }

    fn translator(&self, _model: &str) -> Box<dyn StreamTranslator> {
        Box::new(Translator::default())
    }

    fn request_id_header(&self) -> Option<actix_web::http::header::HeaderName> {
        Some(actix_web::http::header::HeaderName::from_static(
            "x-request-id",
        ))
    }

    /// A Responses body goes to `/responses` with its own fields as the client sent them (see
    /// [`outbound::responses_body`]), with the concrete model.
    fn build_native(
        &self,
        p: &ProviderSpec,
        model: &str,
        native: &super::NativeBody,
        stream: bool,
    ) -> Result<UpstreamCall, ApiError> {
        let mut body = outbound::responses_body(p, &native.body, &native.end_user)?;
        body.insert("model".into(), json!(model));
        body.insert("stream".into(), json!(stream));
        Ok(UpstreamCall {
            url: p.url("/responses"),
            headers: vec![("authorization", p.bearer())],
            body: serde_json::to_vec(&body).map_err(ApiError::internal)?,
            native: true,
        })
    }

    fn parse_native(&self, body: bytes::Bytes) -> Result<Completion, String> {
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("invalid answer from upstream: {e}"))?;
        if v["object"] != "response" {
            return Err("upstream answer is not a response object".into());
        }
        Ok(Completion {
            body: Value::Null,
            usage: crate::api::responses::usage_from(&v["usage"]),
            raw: Some(body),
            native: true,
        })
    }

    fn native_translator(&self) -> Box<dyn StreamTranslator> {
        Box::new(ResponsesTranslator)
    }
}

/// A native Responses stream: events pass through; usage comes from the terminal event.
struct ResponsesTranslator;

impl StreamTranslator for ResponsesTranslator {
    fn on_event(&mut self, event: &SseEvent) -> Result<Vec<StreamItem>, String> {
        if event.data.trim().is_empty() {
            return Ok(Vec::new());
        }
        let v: Value = serde_json::from_str(&event.data)
            .map_err(|e| format!("malformed stream event: {e}"))?;
        let kind = v["type"].as_str().unwrap_or_default();
        let text_chars = v["delta"].as_str().map_or(0, str::len);
        let native = |ev: &SseEvent| StreamItem::Native {
            event: ev.clone(),
            text_chars,
        };
        Ok(match kind {
            "response.completed" | "response.incomplete" => {
                let mut out = Vec::new();
                out.extend(
                    crate::api::responses::usage_from(&v["response"]["usage"])
                        .map(StreamItem::Usage),
                );
                out.push(native(event));
                out.push(StreamItem::Done);
                out
            }
            "response.failed" | "error" => {
                let message = v
                    .pointer("/response/error/message")
                    .or_else(|| v.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("the upstream failed the response");
                vec![
                    native(event),
                    StreamItem::Error(json!({"message": message, "type": "upstream_error"})),
                ]
            }
            _ => vec![native(event)],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// For any usage JSON, reading it straight from the bytes gives what `from_openai` gives
    /// on its `Value`: absent, null, wrong-typed and repeated fields included.
    #[test]
    fn an_openai_usage_read_from_bytes_is_what_from_openai_reads() {
        let cases = [
            r#"{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21}"#,
            r#"{"prompt_tokens":9}"#,
            r#"{"completion_tokens":12}"#,
            r#"{}"#,
            r#"null"#,
            r#"[]"#,
            r#"[1,{"prompt_tokens":3}]"#,
            r#""text""#,
            r#"17"#,
            r#"true"#,
            r#"{"prompt_tokens":-1,"completion_tokens":2}"#,
            r#"{"prompt_tokens":1.5,"completion_tokens":2}"#,
            r#"{"prompt_tokens":"5","completion_tokens":2}"#,
            r#"{"prompt_tokens":5,"completion_tokens":null,"total_tokens":"x"}"#,
            r#"{"prompt_tokens":5,"completion_tokens":-3,"total_tokens":99}"#,
            r#"{"prompt_tokens":5,"prompt_tokens":7,"completion_tokens":1}"#,
            r#"{"prompt_tokens":5,"prompt_tokens":"7","completion_tokens":1}"#,
            r#"{"prompt_tokens":18446744073709551615,"completion_tokens":0}"#,
            r#"{"prompt_tokens":18446744073709551616,"completion_tokens":0}"#,
            r#"{"prompt_tokens":10,"completion_tokens":20,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":6}}"#,
            r#"{"prompt_tokens":10,"prompt_tokens_details":{"cached_tokens":4,"audio_tokens":1},"prompt_tokens_details":{"audio_tokens":2}}"#,
            r#"{"prompt_tokens":10,"prompt_tokens_details":{"reasoning_tokens":4},"completion_tokens_details":{"cached_tokens":6}}"#,
            r#"{"prompt_tokens":10,"prompt_tokens_details":[{"cached_tokens":4}],"completion_tokens_details":"x"}"#,
            r#"{"prompt_tokens":10,"prompt_tokens_details":null,"completion_tokens_details":{"reasoning_tokens":null}}"#,
            r#"{"prompt_tokens":10,"prompt_tokens_details":{"cached_tokens":{"a":[1,2]}},"x":{"prompt_tokens":99}}"#,
            r#"{"prompt_\u0074okens":8,"completion_tokens":1,"extra":[{"deep":[[[]]]}]}"#,
            r#"{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0,"prompt_tokens_details":{"cached_tokens":0}}"#,
        ];
        let more = [
            " { \"prompt_tokens\" : 3 ,\n\t\"completion_tokens\":4 } ",
            r#"{"prompt_tokens":0,"completion_tokens":01}"#,
            r#"{"prompt_tokens":1.0,"completion_tokens":2}"#,
            r#"{"prompt_tokens":1e3,"completion_tokens":2}"#,
            r#"{"prompt_tokens":-0,"completion_tokens":2}"#,
            r#"{"prompt_tokens":3,"seen":7,"completion_tokens":2}"#,
            r#"{"prompt_tokens":3,"completion_tokens":4,"total_tokens":10}"#,
            r#"{"prompt_tokens":3,"seen":{"prompt_tokens":1},"completion_tokens":2}"#,
            r#"{"prompt_tokens":3,"prompt_tokens_details":{"cached_tokens":1,"cached_tokens":2}}"#,
            r#"{"prompt_tokens":3,"prompt_tokens_details":{"cached_tokens":1},"prompt_tokens_details":{}}"#,
            r#"{"prompt_tokens":3,"completion_tokens_details":{"reasoning_tokens":1.5}}"#,
            r#"{"prompt_tokens":3,"completion_tokens_details":null}"#,
            r#"{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":2,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}"#,
            r#"{"prompt_\u0074okens":8}"#,
            r#"{"prompt_tokens":18446744073709551616}"#,
            r#"{"prompt_tokens":9,}"#,
            r#"{"prompt_tokens":9}x"#,
            r#"{"prompt_tokens":9"#,
            r#"nul"#,
            r#"null x"#,
            "",
        ];
        for case in cases.iter().chain(&more) {
            let direct = usage_from_slice(case.as_bytes());
            let Ok(value) = serde_json::from_str::<Value>(case) else {
                assert!(direct.is_err(), "{case}: not JSON, yet read as {direct:?}");
                continue;
            };
            let read: OpenAiUsage = serde_json::from_str(case).unwrap();
            assert_eq!(read.0, Usage::from_openai(&value), "{case}");
            assert_eq!(direct.unwrap(), Usage::from_openai(&value), "{case}");
        }
    }

    /// The shapes upstreams send are read by hand, not handed to serde.
    #[test]
    fn the_usual_usage_shapes_are_read_by_hand() {
        for case in [
            "null",
            r#"{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21}"#,
            r#"{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":2,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}"#,
        ] {
            let value: Value = serde_json::from_str(case).unwrap();
            let read = chunk_scan::usage(case.as_bytes()).map(|c| c.and_then(UsageCounts::usage));
            assert_eq!(read, Some(Usage::from_openai(&value)), "{case}");
        }
    }

    /// The body as it was built before [`Outbound`]: the request cloned and changed.
    fn cloned_body(p: &ProviderSpec, model: &str, req: &ChatRequest, stream: bool) -> Vec<u8> {
        let mut req = req.clone();
        req.model = Some(model.to_owned());
        req.stream = Some(stream);
        req.extra
            .retain(|k, _| outbound::CHAT_EXTRAS.contains(&k.as_str()));
        req.store = None;
        req.service_tier =
            outbound::service_tier(p, req.service_tier.as_deref(), true).unwrap_or_default();
        if stream {
            let opts = req.stream_options.get_or_insert_with(Default::default);
            opts.include_usage = true;
            opts.extra
                .retain(|k, _| outbound::STREAM_OPTIONS.contains(&k.as_str()));
        } else {
            req.stream_options = None;
        }
        serde_json::to_vec(&req).unwrap_or_default()
    }

    /// The borrowed body is the cloned one, byte for byte, whatever the request carries.
    #[test]
    fn the_upstream_body_is_the_request_changed_as_before() {
        let mut p = crate::providers::ProviderSpec::for_test(
            crate::providers::Dialect::Openai,
            "openai",
            "https://api.openai.com/v1",
            crate::providers::Tier::Mid,
            "gpt-4o",
        );
        let requests = [
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            json!({
                "model": "auto", "messages": [
                    {"role": "system", "content": "be brief", "name": "sys"},
                    {"role": "user", "content": [{"type": "text", "text": "hé \"q\""}]},
                    {"role": "assistant", "content": null, "tool_calls": [{"id": "c1",
                     "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                    {"role": "tool", "content": "42", "tool_call_id": "c1", "extra": 1}],
                "stream": false, "stream_options": {"include_usage": false,
                "include_obfuscation": false, "evil": 1},
                "temperature": 0.2, "top_p": 0.9, "max_tokens": 7, "max_completion_tokens": 50,
                "n": 2, "stop": ["END"], "presence_penalty": 0.1, "seed": 7, "logprobs": true,
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
                "tool_choice": "auto", "parallel_tool_calls": false,
                "response_format": {"type": "json_object"}, "user": "u-1", "store": true,
                "service_tier": "flex", "metadata": {"a": "b"}, "extra_body": {"x": 1},
                "reasoning_effort": "low", "web_search_options": {}
            }),
            json!({"messages": [{"role": "user", "content": "x"}], "service_tier": "priority",
                   "stream_options": {"include_obfuscation": true}}),
        ];
        for allow in [false, true] {
            p.allow_service_tier = allow;
            for r in &requests {
                let req: ChatRequest = serde_json::from_value(r.clone()).unwrap_or_else(|e| {
                    panic!("{r}: {e}");
                });
                for stream in [false, true] {
                    let built = build(&p, "gpt-4o", &req, stream);
                    let before = outbound::service_tier(&p, req.service_tier.as_deref(), true);
                    match (built, before) {
                        (Ok(call), Ok(_)) => assert_eq!(
                            String::from_utf8_lossy(&call.body),
                            String::from_utf8_lossy(&cloned_body(&p, "gpt-4o", &req, stream)),
                            "{r} stream={stream}"
                        ),
                        (Err(_), Err(_)) => {}
                        (a, b) => panic!("{r}: {:?} against {:?}", a.is_ok(), b.is_ok()),
                    }
                }
            }
        }
    }

    /// Chunks as upstreams write them, plus the odd shapes the scanner must leave alone.
    const CHUNKS: &[&str] = &[
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1764000000,"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1764000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hello, w\u00f6rld \ud83d\ude00 \"q\"\n\t\\ /\/"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1764000000,"model":"m","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}"#,
        r#"{"usage":null,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\": 1.5e-3, \"b\": [true,false,null]}"}}]},"finish_reason":null},{"index":1,"delta":null,"finish_reason":"length"}]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{"content":"Hi","tool_calls":null},"finish_reason":null}],"error":null,"n":[-0,1,2.25,-3E+7,{"k":{}},[]]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{"content":"x"}}],"meta":{"usage":null},"usage":null}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}], "usage": null}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{"content":"Hi"}}],"x_groq":{"id":"req_1","usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}}"#,
        r#"{"id":"c","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":9,"total_tokens":18}}"#,
        r#"{"error":{"message":"overloaded","type":"server_error"}}"#,
        r#"{"id":"c","choi\u0063es":[{"index":0,"delta":{"content":"Hi"}}]}"#,
    ];

    /// What the relay did with an event before the scanner: the serde peek, else the general
    /// path; a `Raw` item as its JSON value, so spacing and member order do not count.
    fn reference(data: &str) -> Result<Vec<StreamItem>, String> {
        peeked_chunk(data)
            .map(Ok)
            .unwrap_or_else(|| general_chunk(data))
    }

    fn comparable(items: Vec<StreamItem>) -> Vec<(Value, Option<(bool, usize)>)> {
        items
            .into_iter()
            .map(|item| match item {
                StreamItem::Raw(raw) => (
                    serde_json::from_str(&raw.data).unwrap_or(Value::Null),
                    Some((raw.finishing, raw.text_chars)),
                ),
                StreamItem::Chunk(v) => (v, None),
                other => (json!(format!("{other:?}")), None),
            })
            .collect()
    }

    /// Wherever the scanner reads a chunk, it reads it as the parse did: the same JSON
    /// relayed, the same finish and the same count of text, over the samples and many
    /// thousands of random corruptions of them (most of which it must refuse).
    #[test]
    fn the_scanner_reads_every_chunk_it_accepts_as_the_parser_does() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(16);
        const BYTES: &[u8] = b"{}[]\",:\\ \t0123456789-+.eEnulltrfasu\x01\x1f\x7f";
        let (mut accepted, mut refused) = (0, 0);
        for sample in CHUNKS {
            for round in 0..4000 {
                let mut bytes = sample.as_bytes().to_vec();
                for _ in 0..(round % 3) {
                    let at = rng.gen_range(0..bytes.len());
                    let b = BYTES[rng.gen_range(0..BYTES.len())];
                    match rng.gen_range(0..3) {
                        0 => bytes[at] = b,
                        1 => bytes.insert(at, b),
                        _ => drop(bytes.remove(at)),
                    }
                }
                let Ok(data) = String::from_utf8(bytes) else {
                    continue;
                };
                // The relay hands events over by value: the same items, copy or no copy.
                let ev = ev(&data);
                assert_eq!(
                    Translator::default().take_event(ev.clone()),
                    Translator::default().on_event(&ev)
                );
                let data = data.trim();
                let Some(found) = chunk_scan::scan(data) else {
                    refused += 1;
                    continue;
                };
                accepted += 1;
                let ours = usage_cut(data, &found).map(|cut| raw_chunk(data.into(), cut, &found));
                let theirs = reference(data);
                let Some(ours) = ours else {
                    // Only a null usage with no comma beside it is given back.
                    assert!(theirs.is_ok(), "{data}");
                    continue;
                };
                let theirs = theirs.unwrap_or_else(|e| panic!("scanned, but {e}: {data}"));
                let (ours, theirs) = (comparable(ours), comparable(theirs));
                if theirs.iter().all(|(_, facts)| facts.is_some()) {
                    assert_eq!(ours, theirs, "{data}");
                } else {
                    let values = |v: &[(Value, Option<(bool, usize)>)]| {
                        v.iter().map(|(v, _)| v.clone()).collect::<Vec<_>>()
                    };
                    assert_eq!(values(&ours), values(&theirs), "{data}");
                }
            }
        }
        // The first seven samples are the common shape, untouched in a third of the rounds.
        assert!(accepted > 7 * 1000, "accepted {accepted}");
        assert!(refused > 10_000, "refused {refused}");
        for sample in &CHUNKS[..6] {
            assert!(chunk_scan::scan(sample).is_some(), "{sample}");
        }
        for sample in &CHUNKS[6..] {
            assert!(chunk_scan::scan(sample).is_none(), "{sample}");
        }
    }

    /// A chunk read through the template of an earlier one is exactly what a scan finds in it:
    /// over chunks that differ from the template only in their content and padding (any
    /// strings, escapes and all, which it must read) and random corruptions anywhere (most of
    /// which it must leave to the scan). And a translator that carries its template along a
    /// stream relays every event as a fresh one does.
    #[test]
    fn the_template_reads_a_chunk_exactly_as_the_scanner_does() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        const TEXT: &[&str] = &[
            "a",
            "tok ",
            "",
            "\\\"",
            "\\u00e9",
            "\\ud83d\\ude00",
            "\\n",
            "é",
            "\"",
            "\\",
            "\\u12",
            "\u{1}",
            "\",\"x\":\"",
            "}",
            "\\/",
        ];
        const BYTES: &[u8] = b"{}[]\",:\\ \t0123456789-+.eEnulltrfasu\x01";
        let samples = [
            CHUNKS[0],
            CHUNKS[1],
            CHUNKS[2],
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1764000000,"model":"gpt-4o","service_tier":"default","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"Qw3e"}"#,
            r#"{"obfuscation":"","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}],"usage":null,"id":"c"}"#,
        ];
        let (mut hits, mut misses) = (0, 0);
        for sample in samples {
            let mut template = chunk_scan::Template::default();
            let first = template.scan(sample);
            assert_eq!(first, chunk_scan::scan(sample));
            let Some(first) = first.filter(|f| f.content.is_some()) else {
                continue;
            };
            let mut slots: Vec<_> = first.content.into_iter().chain(first.padding).collect();
            slots.sort_unstable();
            let mut translator = Translator::default();
            for round in 0..3000 {
                let (mut data, mut at) = (String::new(), 0);
                for (open, close) in &slots {
                    data.push_str(&sample[at..*open]);
                    data.push('"');
                    for _ in 0..rng.gen_range(0..4) {
                        data.push_str(TEXT[rng.gen_range(0..TEXT.len())]);
                    }
                    data.push('"');
                    at = *close;
                }
                data.push_str(&sample[at..]);
                if round % 3 == 2 {
                    let mut bytes = data.into_bytes();
                    let at = rng.gen_range(0..bytes.len());
                    bytes[at] = BYTES[rng.gen_range(0..BYTES.len())];
                    let Ok(d) = String::from_utf8(bytes) else {
                        continue;
                    };
                    data = d;
                }
                match template.read(&data) {
                    Some(found) => {
                        hits += 1;
                        assert_eq!(Some(found), chunk_scan::scan(&data), "{data}");
                    }
                    None => misses += 1,
                }
                let fresh = Translator::default().on_event(&ev(&data));
                assert_eq!(translator.take_event(ev(&data)), fresh, "{data}");
            }
        }
        assert!(hits > 3000, "hits {hits}");
        assert!(misses > 2000, "misses {misses}");
    }

    fn ev(data: &str) -> SseEvent {
        SseEvent {
            event: None,
            data: data.into(),
        }
    }

    #[test]
    fn separates_usage_chunk_from_content() {
        let mut t = Translator::default();
        let items = t
            .on_event(&ev(r#"{"id":"c","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":9,"total_tokens":18}}"#))
            .unwrap_or_default();
        assert_eq!(items, vec![StreamItem::Usage(Usage::new(9, 9))]);
        let items = t
            .on_event(&ev(
                r#"{"id":"c","choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":null}"#,
            ))
            .unwrap_or_default();
        assert!(matches!(
            &items[..],
            [StreamItem::Chunk(_) | StreamItem::Raw(_)]
        ));
    }

    /// A chunk without choices is read through the peek, not parsed whole: it gives what the
    /// general path gives (the usage, wherever it is, or nothing).
    #[test]
    fn a_chunk_without_choices_reads_as_the_general_path_does() {
        let cases = [
            r#"{"id":"c","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13,"prompt_tokens_details":{"cached_tokens":2},"completion_tokens_details":{"reasoning_tokens":1}}}"#,
            r#"{"id":"c","object":"chat.completion.chunk","usage":{"prompt_tokens":3}}"#,
            r#"{"id":"c","choices":[],"usage":null,"x_groq":{"usage":{"prompt_tokens":5,"completion_tokens":6}}}"#,
            r#"{"id":"c","choices":[],"error":null,"usage":{"prompt_tokens":1,"completion_tokens":1}}"#,
            r#"{"id":"c","choices":[],"usage":{"completion_tokens":1}}"#,
            r#"{"id":"c","choices":[]}"#,
            r#"{"id":"c","choices":[],"error":{"message":"overloaded"}}"#,
            r#"{"id":"c","choices":[],"usage":[{"prompt_tokens":2}]}"#,
            r#"{"id":"c","choices":[],"usage":"x","x_groq":{"usage":{"prompt_tokens":5}}}"#,
            r#"{"id":"c","choices":[],"usage":{"prompt_tokens":-1,"completion_tokens":1}}"#,
            r#"{"id":"c","choices":[],"usage":{"prompt_tokens":4,"prompt_tokens":"4"}}"#,
            r#"{"id":"c","choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":{"prompt_tokens":2,"completion_tokens":1}}"#,
            r#"{"id":"c","choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":7}"#,
        ];
        for data in cases {
            let ours = Translator::default().on_event(&ev(data));
            assert_eq!(ours, general_chunk(data), "{data}");
            assert_eq!(Translator::default().take_event(ev(data)), ours, "{data}");
        }
        let first = Translator::default()
            .on_event(&ev(cases[0]))
            .unwrap_or_default();
        assert_eq!(
            first,
            vec![StreamItem::Usage(Usage::new(9, 4).with_details(2, 1))]
        );
    }

    #[test]
    fn a_content_chunk_passes_as_written_less_its_null_usage() {
        let mut t = Translator::default();
        let cases = [
            (
                r#"{"id":"c","choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":null}"#,
                r#"{"id":"c","choices":[{"index":0,"delta":{"content":"Hi"}}]}"#,
            ),
            (
                r#"{"usage":null,"id":"c","choices":[{"index":0,"delta":{"content":"Hi"}}]}"#,
                r#"{"id":"c","choices":[{"index":0,"delta":{"content":"Hi"}}]}"#,
            ),
            (
                r#"{"id":"c","choices":[{"index":0,"delta":{"content":"say \"usage\":null"}}]}"#,
                r#"{"id":"c","choices":[{"index":0,"delta":{"content":"say \"usage\":null"}}]}"#,
            ),
        ];
        for (sent, relayed) in cases {
            let items = t.on_event(&ev(sent)).unwrap_or_default();
            let [StreamItem::Raw(raw)] = &items[..] else {
                panic!("{sent}: {items:?}");
            };
            assert_eq!(raw.data, relayed);
            assert_eq!(raw.text_chars, if sent.contains("say") { 16 } else { 2 });
            assert!(!raw.finishing);
        }
        // Spaced out, it takes the general path, which removes `usage` the same way.
        let items = t
            .on_event(&ev(r#"{"id":"c","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}], "usage": null}"#))
            .unwrap_or_default();
        let [StreamItem::Chunk(v)] = &items[..] else {
            panic!("{items:?}");
        };
        assert!(v.get("usage").is_none());
    }

    #[test]
    fn reads_groq_usage_on_finish_chunk() {
        let mut t = Translator::default();
        let items = t
            .on_event(&ev(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"x_groq":{"id":"req_1","usage":{"prompt_tokens":18,"completion_tokens":439,"total_tokens":457}}}"#))
            .unwrap_or_default();
        assert_eq!(items[0], StreamItem::Usage(Usage::new(18, 439)));
        assert!(matches!(
            items[1],
            StreamItem::Chunk(_) | StreamItem::Raw(_)
        ));
    }

    #[test]
    fn answers_pass_through_as_bytes_with_their_usage() {
        let raw = br#"{"id":"c","model":"m","choices":[{"index":0}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#;
        let c = parse(bytes::Bytes::from_static(raw), "fallback").expect("valid");
        assert_eq!(c.raw.as_deref(), Some(&raw[..]));
        assert_eq!(c.usage, Some(Usage::new(3, 4)));
        let c = parse(
            bytes::Bytes::from_static(br#"{"choices":[{}]}"#),
            "fallback",
        )
        .expect("valid");
        assert_eq!((c.raw, c.body["model"].as_str()), (None, Some("fallback")));
        assert!(parse(bytes::Bytes::from_static(br#"{"choices":[]}"#), "m").is_err());
        assert!(parse(bytes::Bytes::from_static(b"<html>"), "m").is_err());
    }

    /// 20,000 mutations of `seeds` (a byte replaced by one of `bytes`, removed, or a run of them
    /// repeated, one to three times), each handed to `take`: how many it took.
    fn mutations(seeds: &[&[u8]], bytes: &[u8], mut take: impl FnMut(&[u8]) -> bool) -> usize {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut accepted = 0;
        for round in 0..20_000 {
            let mut body = seeds[round % seeds.len()].to_vec();
            for _ in 0..1 + next(3) {
                if body.is_empty() {
                    break;
                }
                let at = next(body.len());
                match next(3) {
                    0 => body[at] = bytes[next(bytes.len())],
                    1 => {
                        body.remove(at);
                    }
                    _ => {
                        let to = (at + 1 + next(12)).min(body.len());
                        let piece = body[at..to].to_vec();
                        body.splice(at..at, piece);
                    }
                }
            }
            accepted += usize::from(take(&body));
        }
        accepted
    }

    /// Wherever the scanner reads an answer, it reads what serde reads: over hand-picked
    /// answers (repeated, escaped and wrong-typed keys, odd JSON) and 20,000 mutations
    /// of them. Where it declines, serde decides alone, so only its acceptances are compared.
    #[test]
    fn an_answer_the_scanner_reads_is_what_serde_reads() {
        let seeds: [&[u8]; 24] = [
            br#"{"id":"chatcmpl-1","object":"chat.completion","created":1764000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, how are you?"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19,"prompt_tokens_details":{"cached_tokens":2},"completion_tokens_details":{"reasoning_tokens":1}},"system_fingerprint":"fp_1"}"#,
            br#" { "choices" : [ { } , 1 , "x" ] , "model" : null , "usage" : null } "#,
            br#"{"choices":[],"model":"m"}"#,
            br#"{"choices":[{}],"usage":[1,{"prompt_tokens":3}],"model":"m\u00e9"}"#,
            br#"{"choices":[{}],"usage":"x"}"#,
            br#"{"choices":[{}],"usage":{"prompt_tokens":-1,"completion_tokens":2.5e3}}"#,
            br#"{"choices":[{}],"choices":[{}]}"#,
            br#"{"choices":[{}],"model":"a","model":"b"}"#,
            br#"{"choices":[{}],"usage":null,"usage":{"prompt_tokens":1}}"#,
            br#"{"\u0063hoices":[{}],"model":"m"}"#,
            br#"{"choices":[{}],"mod\u0065l":"m"}"#,
            br#"{"choices":[{}],"model":5}"#,
            br#"{"choices":[{}],"model":{"name":"m"}}"#,
            br#"{"choices":{"0":{}}}"#,
            br#"{"choices":null}"#,
            br#"{"model":"m"}"#,
            br#"{"choices":[{}]} x"#,
            br#"{"choices":[{}],"n":01}"#,
            br#"{"choices":[{}],"n":1.e5,"m":-0,"big":1e400,"neg":-}"#,
            br#"{"choices":[{"message":{"content":"tab	in a string"}}]}"#,
            br#"{"choices":[{"message":{"content":"\ud800 lone, \ud83d\ude80 pair, \/ \b \u00zz"}}]}"#,
            b"{\"choices\":[{\"message\":{\"content\":\"bad utf-8 \xff\xfe here\"}}],\"model\":\"m\"}",
            br#"{"choices":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],"model":"m"}"#,
            br#"{"choices":[{}],"usage":{"prompt_tokens":4,"prompt_tokens":"4","completion_tokens":1}}"#,
        ];
        let same = |body: &[u8]| -> bool {
            let scanned = std::str::from_utf8(body)
                .ok()
                .and_then(chunk_scan::answer)
                .is_some();
            if scanned {
                assert_eq!(
                    Peeked::of(body),
                    Peeked::by_serde(body),
                    "{}",
                    String::from_utf8_lossy(body)
                );
            }
            scanned
        };
        // The plain ones; the rest it declines (duplicate or escaped keys, wrong types, bad
        // JSON, a raw tab, a bad escape, bad UTF-8, nesting past its depth).
        let read: Vec<usize> = (0..seeds.len()).filter(|&i| same(seeds[i])).collect();
        assert_eq!(read, [0, 1, 2, 3, 4, 5, 23]);
        // Mutations: a byte replaced by one that matters to JSON, removed, or repeated.
        let accepted = mutations(&seeds, b"\"\\{}[],: 0-9eEn.tu\n\x01\xc3", same);
        assert!(
            accepted > 1000,
            "the scanner read only {accepted} mutations"
        );
    }

    /// Wherever the usage-chunk reader takes an event, it makes what serde's paths make of
    /// it: over hand-picked usage chunks and 20,000 mutations of them.
    #[test]
    fn a_usage_chunk_read_by_hand_is_what_serde_reads() {
        let seeds: [&str; 8] = [
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1764000000,"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19,"prompt_tokens_details":{"cached_tokens":2,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":1,"audio_tokens":0}},"obfuscation":"x1"}"#,
            r#" { "choices" : [ ] , "usage" : { "prompt_tokens" : 3 } } "#,
            r#"{"choices":[],"usage":null}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":-1,"completion_tokens":2.5e3}}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":4,"prompt_tokens":"4","completion_tokens":1}}"#,
            r#"{"choices":[],"x_groq":{"usage":{"prompt_tokens":5}}}"#,
            r#"{"choices":[],"error":null,"usage":{"prompt_tokens":5}}"#,
            r#"{"choices":[{"delta":{}}],"usage":{"prompt_tokens":5}}"#,
        ];
        let serde_reads = |data: &str| peeked_chunk(data).map_or_else(|| general_chunk(data), Ok);
        let same = |data: &str| -> bool {
            let Some(member) = chunk_scan::usage_chunk(data) else {
                return false;
            };
            let Ok(usage) = member_usage(data.as_bytes(), member) else {
                return false;
            };
            let by_hand: Vec<StreamItem> = usage.map(StreamItem::Usage).into_iter().collect();
            assert_eq!(Ok(by_hand), serde_reads(data), "{data}");
            true
        };
        let read: Vec<usize> = (0..seeds.len()).filter(|&i| same(seeds[i])).collect();
        assert_eq!(read, [0, 1, 2, 3, 4]);
        // ASCII only, so that every mutation is still text.
        let seeds: Vec<&[u8]> = seeds.iter().map(|s| s.as_bytes()).collect();
        let accepted = mutations(&seeds, b"\"\\{}[],: 0-9eEn.tu\n", |body| {
            same(std::str::from_utf8(body).unwrap())
        });
        assert!(accepted > 1000, "the reader took only {accepted} mutations");
    }

    #[test]
    fn malformed_chunk_is_an_error_and_done_ends() {
        let mut t = Translator::default();
        assert!(t.on_event(&ev("{not json")).is_err());
        assert_eq!(
            t.on_event(&ev("[DONE]")).unwrap_or_default(),
            vec![StreamItem::Done]
        );
    }
}
