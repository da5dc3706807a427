//! Token usage in OpenAI's shape, as every adapter reports it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
pub struct PromptDetails {
    #[serde(default)]
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
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

/// An OpenAI `usage` object read straight from an answer's bytes, with the same result as
/// [`Usage::from_openai`] on its `Value` for any JSON (a field's last occurrence counts, a
/// field that is not an unsigned integer reads as absent), without building that `Value`:
/// every non-streaming answer's usage went through one, with a string allocated per key.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OpenAiUsage(pub Option<Usage>);

impl<'de> Deserialize<'de> for OpenAiUsage {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(lenient::UsageVisitor)
    }
}

/// The counts of an OpenAI `usage` object as a reader found them (a field's last occurrence;
/// absent, or not an unsigned integer, as `None`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UsageCounts {
    pub prompt: Option<u64>,
    pub completion: Option<u64>,
    pub total: Option<u64>,
    /// `prompt_tokens_details.cached_tokens`.
    pub cached: Option<u64>,
    /// `completion_tokens_details.reasoning_tokens`.
    pub reasoning: Option<u64>,
}

impl UsageCounts {
    /// What every reader makes of the counts it found: none without a prompt count.
    pub fn usage(self) -> Option<Usage> {
        let prompt = self.prompt?;
        let completion = self.completion.unwrap_or(0);
        let mut u = Usage::new(prompt, completion)
            .with_details(self.cached.unwrap_or(0), self.reasoning.unwrap_or(0));
        u.total_tokens = self.total.unwrap_or(prompt + completion);
        Some(u)
    }
}

mod lenient {
    use std::fmt;

    use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
    use serde::{Deserialize, Deserializer};

    use super::OpenAiUsage;

    /// Declares a visitor that reads an integer through `$int` (given it as `Option<u64>`, none
    /// when negative), hands an object to `$map`, and reads anything else as `$empty`, skipping
    /// it.
    macro_rules! lenient_visitor {
        ($vis:vis $name:ident -> $out:ty, $empty:expr, |$n:ident| $int:expr,
         |$m:ident| $map:block) => {
            $vis struct $name;

            impl<'de> Visitor<'de> for $name {
                type Value = $out;

                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_bool<E>(self, _: bool) -> Result<$out, E> {
                    Ok($empty)
                }
                fn visit_i64<E>(self, v: i64) -> Result<$out, E> {
                    let $n = u64::try_from(v).ok();
                    Ok($int)
                }
                fn visit_u64<E>(self, v: u64) -> Result<$out, E> {
                    let $n = Some(v);
                    Ok($int)
                }
                fn visit_f64<E>(self, _: f64) -> Result<$out, E> {
                    Ok($empty)
                }
                fn visit_str<E>(self, _: &str) -> Result<$out, E> {
                    Ok($empty)
                }
                fn visit_unit<E>(self) -> Result<$out, E> {
                    Ok($empty)
                }
                fn visit_none<E>(self) -> Result<$out, E> {
                    Ok($empty)
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<$out, A::Error> {
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    Ok($empty)
                }
                fn visit_map<A: MapAccess<'de>>(self, mut $m: A) -> Result<$out, A::Error> {
                    $map
                }
            }
        };
    }

    /// A value as `Value::as_u64` reads it: an unsigned integer, or none.
    struct AsU64(Option<u64>);

    impl<'de> Deserialize<'de> for AsU64 {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(AsU64Visitor)
        }
    }

    lenient_visitor!(AsU64Visitor -> AsU64, AsU64(None), |n| AsU64(n), |map| {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(AsU64(None))
    });

    /// The keys read, matched without allocating.
    enum Key {
        Prompt,
        Completion,
        Total,
        PromptDetails,
        CompletionDetails,
        Cached,
        Reasoning,
        Other,
    }

    impl<'de> Deserialize<'de> for Key {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_identifier(KeyVisitor)
        }
    }

    struct KeyVisitor;

    impl<'de> Visitor<'de> for KeyVisitor {
        type Value = Key;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a key")
        }
        fn visit_str<E>(self, k: &str) -> Result<Key, E> {
            Ok(match k {
                "prompt_tokens" => Key::Prompt,
                "completion_tokens" => Key::Completion,
                "total_tokens" => Key::Total,
                "prompt_tokens_details" => Key::PromptDetails,
                "completion_tokens_details" => Key::CompletionDetails,
                "cached_tokens" => Key::Cached,
                "reasoning_tokens" => Key::Reasoning,
                _ => Key::Other,
            })
        }
    }

    /// A details object's counts (either kind: each reads the one it needs).
    #[derive(Default)]
    struct Details {
        cached: Option<u64>,
        reasoning: Option<u64>,
    }

    impl<'de> Deserialize<'de> for Details {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(DetailsVisitor)
        }
    }

    lenient_visitor!(DetailsVisitor -> Details, Details::default(), |_n| Details::default(), |map| {
        let mut d = Details::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Cached => d.cached = map.next_value::<AsU64>()?.0,
                Key::Reasoning => d.reasoning = map.next_value::<AsU64>()?.0,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(d)
    });

    lenient_visitor!(pub(super) UsageVisitor -> OpenAiUsage, OpenAiUsage(None), |_n| OpenAiUsage(None), |map| {
        let mut c = super::UsageCounts::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Prompt => c.prompt = map.next_value::<AsU64>()?.0,
                Key::Completion => c.completion = map.next_value::<AsU64>()?.0,
                Key::Total => c.total = map.next_value::<AsU64>()?.0,
                Key::PromptDetails => c.cached = map.next_value::<Details>()?.cached,
                Key::CompletionDetails => c.reasoning = map.next_value::<Details>()?.reasoning,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(OpenAiUsage(c.usage()))
    });
}
