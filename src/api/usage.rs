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

impl OpenAiUsage {
    /// Reads a usage value from its bytes (`null` included, as none). The shape upstreams send,
    /// an object of plain keys whose values are unsigned integers or detail objects of them, is
    /// read by hand: serde's walk over those few keys was about 1,600 instructions a request.
    /// Anything else goes through serde, with the same result (see the tests).
    pub fn from_slice(b: &[u8]) -> serde_json::Result<Option<Usage>> {
        match plain::read(b) {
            Some(u) => Ok(u),
            None => Ok(serde_json::from_slice::<Option<OpenAiUsage>>(b)?.and_then(|u| u.0)),
        }
    }
}

/// What both readers make of the fields they found: none without a prompt count.
fn assemble(
    prompt: Option<u64>,
    completion: Option<u64>,
    total: Option<u64>,
    cached: Option<u64>,
    reasoning: Option<u64>,
) -> Option<Usage> {
    let prompt = prompt?;
    let completion = completion.unwrap_or(0);
    let mut u =
        Usage::new(prompt, completion).with_details(cached.unwrap_or(0), reasoning.unwrap_or(0));
    u.total_tokens = total.unwrap_or(prompt + completion);
    Some(u)
}

/// The hand reader behind [`OpenAiUsage::from_slice`]: `None` (serde decides) at anything it
/// does not read: an escape in a key, a value that is not a plain unsigned integer (or, under
/// the two detail keys, an object of them), an integer past `u64`, or bytes after the value.
mod plain {
    use super::Usage;

    struct Reader<'a> {
        b: &'a [u8],
        at: usize,
    }

    impl<'a> Reader<'a> {
        fn peek(&mut self) -> Option<u8> {
            while let Some(&c) = self.b.get(self.at) {
                if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                    return Some(c);
                }
                self.at += 1;
            }
            None
        }

        fn eat(&mut self, c: u8) -> Option<()> {
            (self.peek()? == c).then(|| self.at += 1)
        }

        /// A key without escapes or control characters, and its colon: its end found by
        /// `memchr`, then its bytes checked in one branchless pass (a byte-by-byte loop with a
        /// branch per byte cost more than serde's).
        fn key(&mut self) -> Option<&'a [u8]> {
            self.eat(b'"')?;
            let start = self.at;
            let len = memchr::memchr(b'"', &self.b[start..])?;
            let key = &self.b[start..start + len];
            let odd = key
                .iter()
                .fold(false, |odd, &c| odd | (c == b'\\') | (c < 0x20));
            if odd {
                return None;
            }
            self.at = start + len + 1;
            self.eat(b':')?;
            Some(key)
        }

        /// An unsigned integer as JSON writes one (no leading zero, no fraction or exponent).
        fn count(&mut self) -> Option<u64> {
            self.peek()?;
            let start = self.at;
            let mut n = 0u64;
            while let Some(&c) = self.b.get(self.at) {
                if !c.is_ascii_digit() {
                    break;
                }
                n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
                self.at += 1;
            }
            let digits = self.at - start;
            if digits == 0 || (digits > 1 && self.b[start] == b'0') {
                return None;
            }
            if matches!(self.b.get(self.at), Some(b'.' | b'e' | b'E')) {
                return None;
            }
            Some(n)
        }

        /// An object's members, each handed to `member` (which reads the value).
        fn object(
            &mut self,
            mut member: impl FnMut(&mut Self, &'a [u8]) -> Option<()>,
        ) -> Option<()> {
            self.eat(b'{')?;
            if self.peek()? == b'}' {
                self.at += 1;
                return Some(());
            }
            loop {
                let key = self.key()?;
                member(self, key)?;
                match self.peek()? {
                    b',' => self.at += 1,
                    b'}' => {
                        self.at += 1;
                        return Some(());
                    }
                    _ => return None,
                }
            }
        }

        /// A details object's `field` (its last occurrence; none when absent).
        fn details(&mut self, field: &[u8]) -> Option<Option<u64>> {
            let mut found = None;
            self.object(|r, key| {
                let n = r.count()?;
                if key == field {
                    found = Some(n);
                }
                Some(())
            })?;
            Some(found)
        }
    }

    /// `Some(usage)` when the bytes are `null` or an object of the plain shape.
    pub(super) fn read(b: &[u8]) -> Option<Option<Usage>> {
        let mut r = Reader { b, at: 0 };
        let usage = if r.peek()? == b'n' {
            r.b[r.at..].starts_with(b"null").then(|| r.at += 4)?;
            None
        } else {
            let (mut prompt, mut completion, mut total) = (None, None, None);
            let (mut cached, mut reasoning) = (None, None);
            r.object(|r, key| {
                match key {
                    b"prompt_tokens_details" => cached = r.details(b"cached_tokens")?,
                    b"completion_tokens_details" => reasoning = r.details(b"reasoning_tokens")?,
                    _ => {
                        let n = r.count()?;
                        match key {
                            b"prompt_tokens" => prompt = Some(n),
                            b"completion_tokens" => completion = Some(n),
                            b"total_tokens" => total = Some(n),
                            _ => {}
                        }
                    }
                }
                Some(())
            })?;
            super::assemble(prompt, completion, total, cached, reasoning)
        };
        // Only whitespace may follow: anything else is serde's to judge (an error).
        match r.peek() {
            None => Some(usage),
            Some(_) => None,
        }
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
        let (mut prompt, mut completion, mut total) = (None, None, None);
        let (mut cached, mut reasoning) = (None, None);
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Prompt => prompt = map.next_value::<AsU64>()?.0,
                Key::Completion => completion = map.next_value::<AsU64>()?.0,
                Key::Total => total = map.next_value::<AsU64>()?.0,
                Key::PromptDetails => cached = map.next_value::<Details>()?.cached,
                Key::CompletionDetails => reasoning = map.next_value::<Details>()?.reasoning,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(OpenAiUsage(super::assemble(prompt, completion, total, cached, reasoning)))
    });
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
            let direct = OpenAiUsage::from_slice(case.as_bytes());
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
            assert_eq!(
                plain::read(case.as_bytes()),
                Some(Usage::from_openai(&value)),
                "{case}"
            );
        }
    }
}
