//! Message handling the translating dialects (Anthropic, Gemini) share: reading OpenAI content
//! parts, images, tool-call arguments, and folding consecutive turns of one role together.
//! Each dialect only decides how a part looks on its own wire.

use serde_json::{json, Value};

use crate::error::ApiError;

pub fn bad_messages(message: impl Into<String>) -> ApiError {
    ApiError::bad_param("messages", message)
}

pub fn text_of(v: &Value) -> &str {
    v["text"].as_str().unwrap_or("")
}

/// An image as a content part carries it.
pub enum Image<'a> {
    /// A `data:<mime>;base64,<data>` URL.
    Inline { mime: &'a str, data: &'a str },
    /// An http(s) URL, for upstreams that fetch images themselves.
    Url(&'a str),
}

/// One OpenAI content part, read once for every dialect.
pub enum Part<'a> {
    Text(&'a str),
    Image(Image<'a>),
}

/// User or assistant content as parts. Empty text is dropped: Anthropic and Gemini reject it.
pub fn parts(content: Option<&Value>) -> Result<Vec<Part<'_>>, ApiError> {
    fn text(t: &str) -> Option<Part<'_>> {
        (!t.is_empty()).then_some(Part::Text(t))
    }
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(text(s).into_iter().collect()),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for part in items {
                match part["type"].as_str().unwrap_or("") {
                    "text" => out.extend(text(text_of(part))),
                    "image_url" => out.push(Part::Image(image(part)?)),
                    kind => {
                        return Err(bad_messages(format!("Unsupported content part `{kind}`.")))
                    }
                }
            }
            Ok(out)
        }
        Some(_) => Err(bad_messages(
            "Content must be a string, an array of parts or null.",
        )),
    }
}

fn image(part: &Value) -> Result<Image<'_>, ApiError> {
    let url = part["image_url"]["url"]
        .as_str()
        .or(part["image_url"].as_str())
        .unwrap_or("");
    if let Some((mime, data)) = url
        .strip_prefix("data:")
        .and_then(|u| u.split_once(";base64,"))
    {
        return Ok(Image::Inline { mime, data });
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(Image::Url(url));
    }
    Err(bad_messages(
        "Image URLs must be base64 data: URLs or http(s) URLs.",
    ))
}

/// OpenAI sends tool-call arguments as a JSON string; Anthropic and Gemini want the object.
/// Some clients send "" for a call without arguments.
pub fn call_args(id: &str, args: &str) -> Result<Value, ApiError> {
    let why = match serde_json::from_str::<Value>(args) {
        _ if args.trim().is_empty() => return Ok(json!({})),
        Ok(v) if v.is_object() => return Ok(v),
        Ok(_) => "not a JSON object".to_owned(),
        Err(e) => e.to_string(),
    };
    Err(bad_messages(format!(
        "Arguments of tool call `{id}`: {why}"
    )))
}

/// Appends a turn, folding it into the previous one when that has the same role (both
/// dialects want alternating turns). `list_key` names the turn's array (`content`, `parts`);
/// `insert_at` says where in the existing array a new item goes.
pub fn push_merged(
    turns: &mut Vec<Value>,
    role: &str,
    list_key: &str,
    items: Vec<Value>,
    insert_at: impl Fn(&[Value], &Value) -> usize,
) {
    if items.is_empty() {
        return;
    }
    if let Some(last) = turns.last_mut().filter(|l| l["role"] == role) {
        if let Some(existing) = last[list_key].as_array_mut() {
            for item in items {
                let at = insert_at(existing, &item).min(existing.len());
                existing.insert(at, item);
            }
            return;
        }
    }
    turns.push(json!({"role": role, list_key: items}));
}
