//! OpenAI Responses API wire types (wire-formats.md §2): the request as clients send it and
//! the `response` object, output items and usage as Pura writes them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /v1/responses`. Items stay JSON values: the decoder reads each by its `type`, and the
/// whole body may also go to an OpenAI upstream as it came.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ResponsesRequest {
    #[serde(default)]
    pub model: Option<String>,
    /// A string, or an array of input items.
    #[serde(default)]
    pub input: Option<Value>,
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub text: Option<Value>,
    #[serde(default)]
    pub reasoning: Option<Value>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub store: Option<bool>,
    #[serde(default)]
    pub previous_response_id: Option<String>,
    #[serde(default)]
    pub prompt_cache_key: Option<String>,
    #[serde(default)]
    pub service_tier: Option<String>,
}

/// The `response` object (non-streaming body, and inside `response.*` stream events).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ResponseObject {
    pub id: String,
    pub object: &'static str,
    pub created_at: i64,
    pub status: &'static str,
    pub completed_at: Option<i64>,
    pub error: Option<ResponseError>,
    pub incomplete_details: Option<IncompleteDetails>,
    pub instructions: Option<String>,
    pub max_output_tokens: Option<u32>,
    pub model: String,
    pub output: Vec<Value>,
    pub parallel_tool_calls: bool,
    pub previous_response_id: Option<String>,
    pub reasoning: Value,
    pub store: bool,
    pub temperature: Option<f64>,
    pub text: Value,
    pub tool_choice: Value,
    pub tools: Vec<Value>,
    pub top_p: Option<f64>,
    pub truncation: &'static str,
    pub usage: Option<ResponsesUsage>,
    pub user: Option<String>,
    pub metadata: Map<String, Value>,
    /// Pura's summary of the request's money (SDKs ignore unknown fields).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_pura: Option<Value>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ResponseError {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IncompleteDetails {
    pub reason: String,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ResponsesUsage {
    pub input_tokens: u64,
    pub input_tokens_details: CachedTokens,
    pub output_tokens: u64,
    pub output_tokens_details: ReasoningTokens,
    pub total_tokens: u64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CachedTokens {
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ReasoningTokens {
    pub reasoning_tokens: u64,
}

impl From<&crate::api::Usage> for ResponsesUsage {
    fn from(u: &crate::api::Usage) -> Self {
        ResponsesUsage {
            input_tokens: u.prompt_tokens,
            input_tokens_details: CachedTokens {
                cached_tokens: u.cached_tokens(),
            },
            output_tokens: u.completion_tokens,
            output_tokens_details: ReasoningTokens {
                reasoning_tokens: u.reasoning_tokens(),
            },
            total_tokens: u.total_tokens,
        }
    }
}

/// Reads a Responses `usage` object into the canonical usage.
pub fn usage_from(v: &Value) -> Option<crate::api::Usage> {
    let input = v.get("input_tokens")?.as_u64()?;
    let output = v.get("output_tokens").and_then(Value::as_u64).unwrap_or(0);
    let n = |p: &str| v.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    Some(crate::api::Usage::new(input, output).with_details(
        n("/input_tokens_details/cached_tokens"),
        n("/output_tokens_details/reasoning_tokens"),
    ))
}
