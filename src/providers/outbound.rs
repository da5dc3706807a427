//! What of a client's request reaches an upstream. Every field goes out on the operator's
//! upstream account, so each dialect sends only the fields it knows (an allow-list per wire
//! protocol; anything else the client sent is dropped), never a field that changes what the
//! operator pays or what the upstream keeps: a `service_tier` other than the default is refused
//! (unless the provider's `allow_service_tier` says otherwise), the upstream is never asked to
//! store anything, and the end-user id it sees is a stable id of the Pura key, never one the
//! client chose.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::ProviderSpec;
use crate::error::ApiError;

/// Fields of a Chat Completions body forwarded to an OpenAI-dialect upstream beyond those
/// [`ChatRequest`](crate::api::ChatRequest) types itself (wire-formats.md §1.2 and §5; Groq's
/// reasoning switches). Not here, so never sent: `metadata`, `store` (upstream storage),
/// `service_tier` (decided by [`service_tier`]), `safety_identifier` (the key's id goes as
/// `user`), `audio`/`modalities` and `web_search_options` (billed apart from tokens, so not
/// covered by the catalogue price), and anything unknown (`extra_body`, `api_key`, …).
pub const CHAT_EXTRAS: &[&str] = &[
    "frequency_penalty",
    "presence_penalty",
    "seed",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "reasoning_effort",
    "verbosity",
    "prediction",
    "prompt_cache_key",
    "functions",
    "function_call",
    "reasoning_format",
    "include_reasoning",
];

/// `stream_options` fields forwarded (`include_usage` is typed and always set on streams).
pub const STREAM_OPTIONS: &[&str] = &["include_obfuscation"];

/// Fields of a Responses body forwarded natively to OpenAI's `/responses` (§2.1, and what
/// Codex sends). Not here: `store` (always false, set below; Pura keeps stored responses
/// itself), `previous_response_id` (expanded by Pura), `conversation`, `background` and
/// `prompt` (state on the operator's account), `metadata`, `safety_identifier`.
pub const RESPONSES_FIELDS: &[&str] = &[
    "model",
    "input",
    "instructions",
    "stream",
    "stream_options",
    "max_output_tokens",
    "max_tool_calls",
    "temperature",
    "top_p",
    "top_logprobs",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "text",
    "reasoning",
    "include",
    "prompt_cache_key",
    "truncation",
];

/// Fields of a Messages body forwarded natively to Anthropic (§3.2, and what Claude Code
/// sends: `thinking`, `context_management`, `output_config`). Not here: `metadata` (rebuilt
/// with the key's id), `service_tier` (decided by [`service_tier`]), `mcp_servers` and
/// `container` (the upstream would call out or keep state for the client), and anything
/// unknown, such as `inference_geo`, which is priced above the catalogue.
pub const MESSAGES_FIELDS: &[&str] = &[
    "model",
    "messages",
    "system",
    "max_tokens",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "context_management",
    "output_config",
    "output_format",
];

/// `service_tier` values that bill standard rates on every dialect: OpenAI's `auto` and
/// `default`, Anthropic's `auto` and `standard_only`. They are not forwarded: the upstream's
/// default is the same.
const STANDARD_TIERS: &[&str] = &["auto", "default", "standard_only"];

/// Hex characters of the end-user id: 128 bits, unique per key, short enough for every
/// upstream's limit.
const END_USER_HEX: usize = 32;
/// Keys whose end-user id a thread remembers before it starts over (bounds the memory).
const END_USER_MEMO: usize = 4096;

/// The end-user id an upstream sees for a key (OpenAI `user`, Anthropic `metadata.user_id`):
/// stable for the key, the same on every request, and revealing nothing of it.
pub fn end_user(key_id: &str) -> String {
    // Remembered per worker thread: a SHA-256 is about 1% of a request's instructions, and a
    // key asks for the same id on every request. Key ids are ours, not a client's to choose:
    // foldhash, not the default SipHash (about 200 instructions a lookup).
    type Seen = std::collections::HashMap<String, String, foldhash::fast::RandomState>;
    thread_local! {
        static SEEN: std::cell::RefCell<Seen> = std::cell::RefCell::default();
    }
    SEEN.with_borrow_mut(|seen| {
        if let Some(id) = seen.get(key_id) {
            return id.clone();
        }
        if seen.len() >= END_USER_MEMO {
            seen.clear();
        }
        let mut id = hex::encode(Sha256::digest(format!("pura-end-user:{key_id}").as_bytes()));
        id.truncate(END_USER_HEX);
        seen.insert(key_id.to_owned(), id.clone());
        id
    })
}

/// The `service_tier` to send `p`, if any. A standard tier is dropped; any other is refused
/// (priority processing bills the operator above the catalogue price Pura charges) unless the
/// provider allows it, and is then sent when `forwardable` (the upstream's own protocol; a
/// translating adapter has no field for it and serves at the standard tier).
pub fn service_tier(
    p: &ProviderSpec,
    requested: Option<&str>,
    forwardable: bool,
) -> Result<Option<String>, ApiError> {
    let Some(tier) = requested.filter(|t| !STANDARD_TIERS.contains(t)) else {
        return Ok(None);
    };
    if !p.allow_service_tier {
        return Err(ApiError::bad_param(
            "service_tier",
            format!(
                "`service_tier: \"{tier}\"` is not available through this gateway: omit it or \
                 send \"auto\" or \"default\"."
            ),
        ));
    }
    Ok(forwardable.then(|| tier.to_owned()))
}

/// The `service_tier` of a native body, as a string (any other JSON is refused like a tier).
fn native_tier(p: &ProviderSpec, body: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    match body.get("service_tier") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => service_tier(p, Some(s), true),
        Some(other) => service_tier(p, Some(&other.to_string()), true),
    }
}

/// A Responses body as OpenAI's `/responses` gets it: the allowed fields, `store: false`,
/// the key's end-user id.
pub fn responses_body(
    p: &ProviderSpec,
    body: &Map<String, Value>,
    end_user: &str,
) -> Result<Map<String, Value>, ApiError> {
    let tier = native_tier(p, body)?;
    let mut out = allowed(body, RESPONSES_FIELDS);
    out.insert("store".into(), Value::Bool(false));
    if !end_user.is_empty() {
        out.insert("user".into(), json!(end_user));
    }
    if let Some(tier) = tier {
        out.insert("service_tier".into(), json!(tier));
    }
    Ok(out)
}

/// A Messages body as Anthropic gets it: the allowed fields, `metadata.user_id` the key's
/// end-user id. Values pass through untouched (thinking signatures, `cache_control`).
pub fn messages_body(
    p: &ProviderSpec,
    body: &Map<String, Value>,
    end_user: &str,
) -> Result<Map<String, Value>, ApiError> {
    let tier = native_tier(p, body)?;
    let mut out = allowed(body, MESSAGES_FIELDS);
    if !end_user.is_empty() {
        out.insert("metadata".into(), json!({ "user_id": end_user }));
    }
    if let Some(tier) = tier {
        out.insert("service_tier".into(), json!(tier));
    }
    Ok(out)
}

/// The entries of `body` whose names are in `fields`.
fn allowed(body: &Map<String, Value>, fields: &[&str]) -> Map<String, Value> {
    body.iter()
        .filter(|(k, _)| fields.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Dialect, Tier};
    use crate::money::Price;
    use crate::secret::Secret;

    fn spec(allow: bool) -> ProviderSpec {
        ProviderSpec {
            name: "p".into(),
            dialect: Dialect::Openai,
            base_url: "http://x".into(),
            api_key: Secret::new("k"),
            tier: Tier::Mid,
            models: vec!["m".into()],
            price: Price {
                input_per_1k: 0.0,
                output_per_1k: 0.0,
                cached_input_per_1k: None,
            },
            responses_api: true,
            allow_service_tier: allow,
            timeout: std::time::Duration::from_secs(1),
        }
    }

    #[test]
    fn end_user_is_stable_per_key_and_hides_it() {
        assert_eq!(end_user("key_a"), end_user("key_a"));
        assert_ne!(end_user("key_a"), end_user("key_b"));
        assert_eq!(end_user("key_a").len(), END_USER_HEX);
        assert!(!end_user("key_a").contains("key_a"));
    }

    #[test]
    fn only_standard_tiers_pass_unless_the_provider_allows_others() {
        for standard in [None, Some("auto"), Some("default"), Some("standard_only")] {
            assert_eq!(service_tier(&spec(false), standard, true).ok(), Some(None));
        }
        let refused = service_tier(&spec(false), Some("priority"), true);
        assert!(matches!(
            refused,
            Err(ApiError::BadRequest {
                param: Some("service_tier"),
                ..
            })
        ));
        let allowed = service_tier(&spec(true), Some("priority"), true);
        assert_eq!(allowed.ok(), Some(Some("priority".to_owned())));
        let translated = service_tier(&spec(true), Some("priority"), false);
        assert_eq!(translated.ok(), Some(None));
    }

    #[test]
    fn native_bodies_keep_only_their_protocols_fields() {
        let body =
            json!({"model": "m", "input": "hi", "store": true, "reasoning": {"effort": "low"},
            "include": ["reasoning.encrypted_content"], "metadata": {"a": 1}, "user": "me",
            "extra_body": {"x": 1}, "background": true})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let out = responses_body(&spec(false), &body, "u1").expect("allowed");
        let keys: Vec<&str> = out.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["include", "input", "model", "reasoning", "store", "user"]
        );
        assert_eq!((&out["store"], &out["user"]), (&json!(false), &json!("u1")));

        let body =
            json!({"model": "m", "messages": [], "max_tokens": 1, "thinking": {"type": "enabled"},
            "metadata": {"user_id": "client-chosen"}, "mcp_servers": [], "service_tier": "auto"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let out = messages_body(&spec(false), &body, "u1").expect("allowed");
        assert_eq!(out["metadata"], json!({"user_id": "u1"}));
        assert!(!out.contains_key("mcp_servers") && !out.contains_key("service_tier"));
        let mut priority = body.clone();
        priority.insert("service_tier".into(), json!("priority"));
        assert!(messages_body(&spec(false), &priority, "u1").is_err());
    }
}
