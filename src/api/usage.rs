//! Token usage in OpenAI's shape, as every adapter reports it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// Prompt tokens the upstream served from its cache (priced at the cached rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptDetails>,
    /// Completion tokens spent reasoning (already inside `completion_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct PromptDetails {
    #[serde(default)]
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct CompletionDetails {
    #[serde(default)]
    pub reasoning_tokens: u64,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            prompt_tokens_details: None,
            completion_tokens_details: None,
        }
    }

    pub fn cached_tokens(&self) -> u64 {
        self.prompt_tokens_details.map_or(0, |d| d.cached_tokens)
    }

    pub fn reasoning_tokens(&self) -> u64 {
        self.completion_tokens_details
            .map_or(0, |d| d.reasoning_tokens)
    }

    /// Sets the cached-prompt and reasoning counts when an upstream reports them (non-zero).
    pub fn with_details(mut self, cached: u64, reasoning: u64) -> Self {
        if cached > 0 {
            self.prompt_tokens_details = Some(PromptDetails {
                cached_tokens: cached,
            });
        }
        if reasoning > 0 {
            self.completion_tokens_details = Some(CompletionDetails {
                reasoning_tokens: reasoning,
            });
        }
        self
    }

    /// Reads an OpenAI `usage` object (also Groq's `x_groq.usage`); None when absent or null.
    pub fn from_openai(v: &Value) -> Option<Usage> {
        let prompt = v.get("prompt_tokens")?.as_u64()?;
        let completion = v
            .get("completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let total = v
            .get("total_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(prompt + completion);
        // `get` chains, not `pointer`: a pointer allocates to unescape each segment.
        let detail = |object: &str, field: &str| {
            v.get(object)
                .and_then(|d| d.get(field))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        let cached = detail("prompt_tokens_details", "cached_tokens");
        let reasoning = detail("completion_tokens_details", "reasoning_tokens");
        let mut u = Usage::new(prompt, completion).with_details(cached, reasoning);
        u.total_tokens = total;
        Some(u)
    }
}
