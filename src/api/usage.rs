//! Token usage in OpenAI's shape, as every adapter reports it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
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
        Some(Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: total,
        })
    }
}
