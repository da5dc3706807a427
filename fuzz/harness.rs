// Each fuzz target uses one function of the harness and the corpus test all of them.
#![allow(dead_code)]

//! What the fuzz targets (`cargo fuzz`, `fuzz/fuzz_targets/`) and the stable replay of their
//! corpus (`tests/fuzz_corpus.rs`) run: every request decoder and every upstream stream and
//! body parser, from raw bytes, in the order the gateway runs them, and on into every
//! adapter's outbound request builder. An error is a fine answer; a panic is the bug.

use pura::api::chat::ChatRequest;
use pura::api::messages::MessagesRequest;
use pura::api::responses::ResponsesRequest;
use pura::config::{Dialect, Tier};
use pura::money::Price;
use pura::providers::sse::SseParser;
use pura::providers::{adapter, NativeBody, ProviderSpec};
use pura::secret::Secret;
use serde_json::{Map, Value};

/// A target's name (its corpus folder and its `cargo fuzz` target) and what it runs.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("chat_request", chat_request),
    ("messages_request", messages_request),
    ("responses_request", responses_request),
    ("openai_stream", openai_stream),
    ("anthropic_stream", anthropic_stream),
    ("gemini_stream", gemini_stream),
    ("upstream_body", upstream_body),
];

const DIALECTS: [Dialect; 3] = [Dialect::Openai, Dialect::Anthropic, Dialect::Gemini];
const MODEL: &str = "m";

fn spec(dialect: Dialect) -> ProviderSpec {
    ProviderSpec {
        name: "fuzz".into(),
        dialect,
        base_url: "http://127.0.0.1:9".into(),
        api_key: Secret::new("k"),
        tier: Tier::Mid,
        models: vec![MODEL.into()],
        price: Price {
            input_per_1k: 1.0,
            output_per_1k: 1.0,
            cached_input_per_1k: Some(0.5),
        },
        responses_api: true,
        allow_service_tier: false,
        timeout: std::time::Duration::from_secs(1),
    }
}

/// A canonical request, on into every adapter's upstream request (streamed and not).
fn outbound(req: &ChatRequest) {
    let _ = (
        req.prompt_chars(),
        req.max_output_tokens(),
        req.wants_stream_usage(),
    );
    for dialect in DIALECTS {
        for stream in [false, true] {
            let _ = adapter(dialect).build(&spec(dialect), MODEL, req, stream);
        }
    }
}

fn native(dialect: Dialect, body: Map<String, Value>) {
    let native = NativeBody {
        dialect,
        body,
        headers: Vec::new(),
        end_user: "fuzz-user".into(),
    };
    for stream in [false, true] {
        let _ = adapter(dialect).build_native(&spec(dialect), MODEL, &native, stream);
    }
}

/// `POST /v1/chat/completions`: the JSON extractor, `validate`, the adapters.
pub fn chat_request(data: &[u8]) {
    let Ok(req) = serde_json::from_slice::<ChatRequest>(data) else {
        return;
    };
    if pura::protocols::chat::validate(&req).is_ok() {
        outbound(&req);
    }
}

/// `POST /v1/messages`: the object, its typed fields, `validate`, `decode`, the adapters and
/// the native Anthropic call.
pub fn messages_request(data: &[u8]) {
    use pura::protocols::messages as proto;
    let Ok(map) = serde_json::from_slice::<Map<String, Value>>(data) else {
        return;
    };
    let Ok(wire) = serde_json::from_value::<MessagesRequest>(Value::Object(map.clone())) else {
        return;
    };
    let _ = proto::prompt_chars(&wire, &map);
    if proto::validate(&wire).is_err() {
        return;
    }
    let model = proto::route_model(&wire.model, |m| m == MODEL);
    if let Ok(chat) = proto::decode(&wire, model) {
        outbound(&chat);
    }
    native(Dialect::Anthropic, map);
}

/// `POST /v1/responses` (no stored history): the object, its typed fields, the input items,
/// `decode`, the adapters and the native OpenAI call.
pub fn responses_request(data: &[u8]) {
    use pura::protocols::responses as proto;
    let Ok(map) = serde_json::from_slice::<Map<String, Value>>(data) else {
        return;
    };
    let Ok(parsed) = serde_json::from_value::<ResponsesRequest>(Value::Object(map.clone())) else {
        return;
    };
    let _ = proto::input_items(parsed.input.as_ref());
    let _ = proto::Echo::new(&parsed);
    if let Ok(chat) = proto::decode(&parsed, &[]) {
        outbound(&chat);
    }
    let body = proto::native(map, Vec::new());
    for stream in [false, true] {
        let _ = adapter(Dialect::Openai).build_native(&spec(Dialect::Openai), MODEL, &body, stream);
    }
}

/// An upstream stream: the first byte picks how the rest is cut into reads (a network delivers
/// any split), the SSE parser frames them, and the dialect's translators (canonical, and
/// native where the dialect has one) take every event.
fn stream(dialect: Dialect, data: &[u8]) {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let piece = usize::from(split % 64) + 1;
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    for chunk in body.chunks(piece) {
        events.extend(parser.feed(chunk));
    }
    events.extend(parser.finish());
    let a = adapter(dialect);
    for mut translator in [a.translator(MODEL), a.native_translator()] {
        for ev in &events {
            let _ = translator.on_event(ev);
        }
    }
}

pub fn openai_stream(data: &[u8]) {
    stream(Dialect::Openai, data);
}

pub fn anthropic_stream(data: &[u8]) {
    stream(Dialect::Anthropic, data);
}

pub fn gemini_stream(data: &[u8]) {
    stream(Dialect::Gemini, data);
}

/// A non-streaming upstream answer, through every dialect's parser (canonical and native).
pub fn upstream_body(data: &[u8]) {
    let bytes = bytes::Bytes::copy_from_slice(data);
    for dialect in DIALECTS {
        let _ = adapter(dialect).parse(bytes.clone(), MODEL);
        let _ = adapter(dialect).parse_native(bytes.clone());
        let _ = pura::providers::error_message(data);
    }
}
