//! Anthropic Messages wire types (`POST /v1/messages`, `POST /v1/messages/count_tokens`), as
//! far as the gateway reads them. The client's body also travels untouched as a JSON map to an
//! Anthropic upstream (see `providers::NativeBody`), so these types only need what the
//! canonical translation uses; unknown fields and block types are tolerated here.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A Messages request. `max_tokens` is optional here because `count_tokens` takes the same
/// body without it; `/v1/messages` checks it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct MessagesRequest {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    pub messages: Vec<InputMessage>,
    #[serde(default)]
    #[schema(value_type = Option<Value>)]
    pub system: Option<System>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub top_k: Option<u32>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub tools: Option<Vec<ToolDef>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Metadata>,
    /// `{"type":"enabled","budget_tokens":N}`; only an Anthropic upstream acts on it.
    #[serde(default)]
    pub thinking: Option<Value>,
    /// `auto` or `standard_only`; anything else is refused (see `providers::outbound`).
    #[serde(default)]
    pub service_tier: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The top-level system prompt: a string or text blocks (which may carry `cache_control`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum System {
    Text(String),
    Blocks(Vec<Block>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InputRole {
    User,
    Assistant,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct InputMessage {
    pub role: InputRole,
    /// A string or an array of content blocks.
    #[schema(value_type = Value)]
    pub content: Content,
}

/// Message content: a string or content blocks.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Blocks(Vec<Block>),
}

/// An input content block. Blocks the canonical form cannot carry (documents other than
/// text, server-tool results, …) are `Other` and only reach an Anthropic upstream.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        text: String,
    },
    Image {
        source: Source,
    },
    Document {
        source: Source,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Option<ToolResultContent>,
        #[serde(default)]
        is_error: Option<bool>,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
        #[serde(default)]
        signature: String,
    },
    RedactedThinking {
        #[serde(default)]
        data: String,
    },
    #[serde(other)]
    Other,
}

/// Where an image or document comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Source {
    Base64 {
        media_type: String,
        data: String,
    },
    Url {
        url: String,
    },
    Text {
        #[serde(default)]
        media_type: Option<String>,
        data: String,
    },
    #[serde(other)]
    Other,
}

/// A `tool_result`'s content: a string or blocks (text and images).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ToolResultContent {
    Text(String),
    Blocks(Vec<Block>),
}

/// A tool the model may call. Custom tools have an `input_schema`; Anthropic's server tools
/// (`web_search_…`, `bash_…`) have a `type` and no schema, and are only understood natively.
#[derive(Debug, Clone, Deserialize)]
pub struct ToolDef {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub input_schema: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolChoice {
    Auto {
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    Any {
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    Tool {
        name: String,
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    None,
    /// A choice this gateway does not know yet: left to the model (`auto`).
    #[serde(other)]
    Unknown,
}

impl ToolChoice {
    pub fn serial(&self) -> bool {
        match self {
            ToolChoice::Auto {
                disable_parallel_tool_use,
            }
            | ToolChoice::Any {
                disable_parallel_tool_use,
            }
            | ToolChoice::Tool {
                disable_parallel_tool_use,
                ..
            } => *disable_parallel_tool_use == Some(true),
            ToolChoice::None | ToolChoice::Unknown => false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub user_id: Option<String>,
}

/// Token usage of a Messages answer. `input_tokens` excludes cache reads and writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MessagesUsage {
    pub input_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub output_tokens: u64,
}

impl MessagesUsage {
    /// From canonical usage, whose prompt tokens include the cached ones.
    pub fn from_canonical(u: &crate::api::Usage) -> Self {
        let cached = u.cached_tokens().min(u.prompt_tokens);
        MessagesUsage {
            input_tokens: u.prompt_tokens - cached,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: cached,
            output_tokens: u.completion_tokens,
        }
    }
}

/// A non-streaming Messages answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MessageResponse {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub role: &'static str,
    pub model: String,
    pub content: Vec<Value>,
    pub stop_reason: Option<&'static str>,
    pub stop_sequence: Option<String>,
    pub usage: MessagesUsage,
}

/// `{"type":"error","error":{"type","message"}}`, Anthropic's error envelope.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AnthropicErrorEnvelope)]
pub struct ErrorEnvelope<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub error: ErrorBody<'a>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AnthropicErrorBody)]
pub struct ErrorBody<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub message: &'a str,
}

/// One entry of Anthropic's `GET /v1/models` list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelInfo {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    pub display_name: String,
    pub created_at: &'static str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelList {
    pub data: Vec<ModelInfo>,
    pub has_more: bool,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
}

/// `POST /v1/messages/count_tokens` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenCount {
    pub input_tokens: u64,
}
