//! One pass over an OpenAI chat chunk's text that finds what the stream relay needs of it
//! (whether its first choice finishes, how much text it carries, where its `"usage":null`
//! member is) without deserializing it. Relaying a chunk is most of a stream's cost, and a
//! serde parse into borrowed structs was half of that.
//!
//! It reads only the common shape: a top-level object whose `choices` is a non-empty array of
//! objects, no `error` (or a null one), no `x_groq`, no `usage` other than `null`, no escaped
//! keys and no repeated key among those it reads. Anything else is `None`, and the caller
//! takes its general path. It checks the whole text as JSON as it goes (strings, escapes,
//! numbers, literals, nesting), so what it accepts is exactly what a parser accepts.

use crate::api::usage::UsageCounts;

/// What [`scan`] learned of a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanned {
    /// Byte range of the top-level `"usage":null` member, when there is one.
    pub usage_null: Option<(usize, usize)>,
    /// The first choice has a non-null `finish_reason`.
    pub finishing: bool,
    /// Bytes of decoded content and tool-call arguments across the choices.
    pub text_chars: usize,
    /// Byte range of the first `delta.content` string (its quotes included), when it is one.
    pub content: Option<(usize, usize)>,
    /// Byte range of the top-level `obfuscation` string (OpenAI's random padding, different in
    /// every chunk unless the client turns it off), when there is one.
    pub padding: Option<(usize, usize)>,
}

/// serde_json refuses nesting deeper than 128; stop well before.
const MAX_DEPTH: usize = 100;

/// Scans `data` (the event's JSON, trimmed); `None` when it is not the common shape.
pub fn scan(data: &str) -> Option<Scanned> {
    let mut s = Scanner {
        b: data.as_bytes(),
        at: 0,
        content: None,
    };
    let found = s.chunk()?;
    s.ws();
    (s.at == s.b.len()).then_some(found)
}

/// What [`answer`] learned of a non-streaming `chat.completion`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Elements of its `choices` array.
    pub choices: usize,
    /// It has a `model` string (`null` counts as none).
    pub model: bool,
    /// Its `usage` member, when it has one.
    pub usage: Option<UsageMember>,
}

/// A top-level `usage` member: its value's byte range, and its counts when the value has the
/// shape [`usage`] reads, read in the same pass (a second walk over them cost about 850
/// instructions a request). `counts` is `None` where the caller must read the bytes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageMember {
    pub range: (usize, usize),
    pub counts: Option<Option<UsageCounts>>,
}

/// Reads a whole answer (`data`, all of it) in one pass, checking it as JSON as [`scan`] does:
/// what `openai::Peek` would read of it, without serde's per-value calls. `None` when it is not
/// plainly so: no `choices` array, a `model` neither string nor null, a repeated or escaped key
/// among those three, anything that is not JSON. The caller then asks serde, which decides.
pub fn answer(data: &str) -> Option<Answer> {
    members(data, &[])
}

/// Reads a stream's usage chunk (`"choices":[]` and a `usage`, no `error` or `x_groq`) as
/// [`answer`] reads an answer: its usage member. `None` when it is not plainly so: serde then
/// decides. Every stream ends with one, and serde's walk over its other members cost more than
/// reading them here.
pub fn usage_chunk(data: &str) -> Option<UsageMember> {
    let found = members(data, &[b"error", b"x_groq"])?;
    (found.choices == 0).then_some(found.usage)?
}

/// What [`answer`] and [`usage_chunk`] read of a top-level object; `None` also at any key of
/// `refused`.
fn members(data: &str, refused: &[&[u8]]) -> Option<Answer> {
    let mut s = Scanner {
        b: data.as_bytes(),
        at: 0,
        content: None,
    };
    let (mut choices, mut model, mut usage) = (None, None, None);
    s.object(|s, key, _| {
        match key {
            b"choices" if choices.is_none() => {
                let mut n = 0;
                s.array(|s| {
                    n += 1;
                    s.value(2)
                })?;
                choices = Some(n);
            }
            b"model" if model.is_none() => model = Some(s.maybe_text()?.is_some()),
            b"usage" if usage.is_none() => {
                let at = s.at;
                let counts = s.usage_counts();
                if counts.is_none() {
                    // Not the usual shape: checked as any value, its reading left to serde.
                    s.at = at;
                    s.value(1)?;
                }
                usage = Some(UsageMember {
                    range: (at, s.at),
                    counts,
                });
            }
            b"choices" | b"model" | b"usage" => return None,
            _ if refused.contains(&key) => return None,
            _ => s.value(1)?,
        }
        Some(())
    })?;
    s.ws();
    (s.at == s.b.len()).then_some(())?;
    Some(Answer {
        choices: choices?,
        model: model.unwrap_or(false),
        usage,
    })
}

/// Reads a usage value (all of `data`) of the shape upstreams send: `null` (`Some(None)`), or an
/// object of plain keys whose values are unsigned integers or, under the two detail keys,
/// objects of them. `None` at anything else (an escaped key, a negative, fractional or too large
/// number, any other value, bytes after it): serde then decides.
pub fn usage(data: &[u8]) -> Option<Option<UsageCounts>> {
    let mut s = Scanner {
        b: data,
        at: 0,
        content: None,
    };
    s.ws();
    let found = s.usage_counts()?;
    s.ws();
    (s.at == s.b.len()).then_some(found)
}

/// The last chunk of a stream that [`scan`] read, to read the next one by: a stream's content
/// chunks are alike byte for byte but for their text (same id, model, created, keys in the same
/// order) and, from OpenAI, their `obfuscation` padding. A chunk that is the template's text
/// with other strings in those places is what [`scan`] would find in it, learned from
/// comparisons and those strings alone: everything else is the same text as a chunk already
/// checked, and a string for a string leaves the JSON valid and its shape unchanged. Anything
/// else is scanned as usual.
#[derive(Debug, Default)]
pub struct Template {
    text: String,
    /// The template's own scan.
    found: Option<Scanned>,
    /// The strings that may differ, in text order (the content, and the padding if any).
    slots: Vec<(usize, usize)>,
    /// Decoded bytes of the content string.
    content_chars: usize,
}

impl Template {
    /// `data` as the template's chunk with other strings in its slots; `None` if it differs
    /// anywhere else (or there is no template).
    pub fn read(&self, data: &str) -> Option<Scanned> {
        let found = self.found.as_ref()?;
        let content = found.content?;
        let (b, t) = (data.as_bytes(), self.text.as_bytes());
        // Where each slot's string is in `data`, and its decoded length.
        let mut read = [(0, 0, 0); 2];
        let (mut at_t, mut at_d) = (0, 0);
        for (i, &(open, close)) in self.slots.iter().enumerate() {
            // The same text up to and with the opening quote.
            let same = &t[at_t..=open];
            let quote = at_d + same.len() - 1;
            if b.get(at_d..=quote)? != same {
                return None;
            }
            let mut s = Scanner {
                b,
                at: quote,
                content: None,
            };
            let chars = s.string()?;
            read[i] = (quote, s.at, chars);
            (at_t, at_d) = (close, s.at);
        }
        if b[at_d..] != t[at_t..] {
            return None;
        }
        // A template position past a slot moves as that slot's string grew or shrank.
        let moved = |at: usize| {
            self.slots
                .iter()
                .zip(&read)
                .rev()
                .find(|((_, close), _)| *close <= at)
                .map_or(at, |((_, close), r)| at + r.1 - close)
        };
        let slot = |span: (usize, usize)| {
            let i = self.slots.iter().position(|s| *s == span)?;
            Some(read[i])
        };
        let (open, close, chars) = slot(content)?;
        Some(Scanned {
            usage_null: found.usage_null.map(|(from, to)| (moved(from), moved(to))),
            finishing: found.finishing,
            text_chars: found.text_chars - self.content_chars + chars,
            content: Some((open, close)),
            padding: found
                .padding
                .and_then(slot)
                .map(|(open, close, _)| (open, close)),
        })
    }

    /// Scans `data` as [`scan`] does, through the template when it matches; a chunk scanned in
    /// full becomes the template (its buffer reused).
    pub fn scan(&mut self, data: &str) -> Option<Scanned> {
        if let Some(found) = self.read(data) {
            return Some(found);
        }
        let found = scan(data)?;
        self.found = None;
        self.slots.clear();
        if let Some((open, close)) = found.content {
            let mut s = Scanner {
                b: data.as_bytes(),
                at: open,
                content: None,
            };
            if let Some(chars) = s.string().filter(|_| s.at == close) {
                self.text.clear();
                self.text.push_str(data);
                self.content_chars = chars;
                self.slots.push((open, close));
                self.slots.extend(found.padding);
                self.slots.sort_unstable();
                self.found = Some(found.clone());
            }
        }
        Some(found)
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    at: usize,
    /// The first `delta.content` string met (see [`Scanned::content`]).
    content: Option<(usize, usize)>,
}

/// A string or null (`Option<String>` in the reference structs): its decoded length, if any.
type MaybeText = Option<usize>;

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.ws();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// The top-level object.
    fn chunk(&mut self) -> Option<Scanned> {
        let mut choices = None;
        let mut usage_null = None;
        let mut seen_usage = false;
        let mut seen_error = false;
        let mut padding = None;
        self.object(|s, key, start| {
            match key {
                b"choices" if choices.is_none() => choices = Some(s.choices()?),
                b"obfuscation" if padding.is_none() && s.peek() == Some(b'"') => {
                    let at = s.at;
                    s.string()?;
                    padding = Some((at, s.at));
                }
                b"usage" if !seen_usage => {
                    seen_usage = true;
                    s.literal(b"null")?;
                    usage_null = Some((start, s.at));
                }
                b"error" if !seen_error => {
                    seen_error = true;
                    s.literal(b"null")?;
                }
                b"choices" | b"usage" | b"error" | b"x_groq" => return None,
                _ => s.value(1)?,
            }
            Some(())
        })?;
        let (finishing, text_chars) = choices?;
        // Only the compact member is cut out as it stands; a spaced one goes the general way.
        let usage_null = match usage_null {
            Some((from, to)) if &self.b[from..to] == b"\"usage\":null" => Some((from, to)),
            Some(_) => return None,
            None => None,
        };
        Some(Scanned {
            usage_null,
            finishing,
            text_chars,
            content: self.content,
            padding,
        })
    }

    /// `choices`: a non-empty array of choice objects; (first finishes, text bytes).
    fn choices(&mut self) -> Option<(bool, usize)> {
        let mut first_finishes = None;
        let mut text = 0;
        self.array(|s| {
            let (finishes, chars) = s.choice()?;
            first_finishes.get_or_insert(finishes);
            text += chars;
            Some(())
        })?;
        Some((first_finishes?, text))
    }

    /// One choice: (has a finish_reason, text bytes of its delta).
    fn choice(&mut self) -> Option<(bool, usize)> {
        let (mut finish, mut delta): (Option<MaybeText>, Option<usize>) = (None, None);
        self.object(|s, key, _| {
            match key {
                b"finish_reason" if finish.is_none() => finish = Some(s.maybe_text()?),
                b"delta" if delta.is_none() => delta = Some(if s.null()? { 0 } else { s.delta()? }),
                b"finish_reason" | b"delta" => return None,
                _ => s.value(3)?,
            }
            Some(())
        })?;
        Some((finish.flatten().is_some(), delta.unwrap_or(0)))
    }

    /// A delta object: text bytes of its content and its tool calls' arguments.
    fn delta(&mut self) -> Option<usize> {
        let (mut content, mut tools): (Option<MaybeText>, Option<usize>) = (None, None);
        self.object(|s, key, _| {
            match key {
                b"content" if content.is_none() => {
                    let at = s.at;
                    let text = s.maybe_text()?;
                    if text.is_some() && s.content.is_none() {
                        s.content = Some((at, s.at));
                    }
                    content = Some(text);
                }
                b"tool_calls" if tools.is_none() => {
                    tools = Some(if s.null()? { 0 } else { s.tool_calls()? })
                }
                b"content" | b"tool_calls" => return None,
                _ => s.value(4)?,
            }
            Some(())
        })?;
        Some(content.flatten().unwrap_or(0) + tools.unwrap_or(0))
    }

    fn tool_calls(&mut self) -> Option<usize> {
        let mut total = 0;
        self.array(|s| {
            let mut function: Option<usize> = None;
            s.object(|s, key, _| {
                match key {
                    b"function" if function.is_none() => {
                        function = Some(if s.null()? { 0 } else { s.arguments()? })
                    }
                    b"function" => return None,
                    _ => s.value(6)?,
                }
                Some(())
            })?;
            total += function.unwrap_or(0);
            Some(())
        })?;
        Some(total)
    }

    fn arguments(&mut self) -> Option<usize> {
        let mut args: Option<MaybeText> = None;
        self.object(|s, key, _| {
            match key {
                b"arguments" if args.is_none() => args = Some(s.maybe_text()?),
                b"arguments" => return None,
                _ => s.value(8)?,
            }
            Some(())
        })?;
        Some(args.flatten().unwrap_or(0))
    }

    /// An object; `member(scanner, key, start of the member)` reads each value.
    fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, &'a [u8], usize) -> Option<()>,
    ) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.ws();
            let start = self.at;
            let key = self.key()?;
            self.eat(b':')?;
            self.ws();
            member(self, key, start)?;
            self.ws();
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

    /// An array; `element(scanner)` reads each element.
    fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        self.ws();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.ws();
            element(self)?;
            self.ws();
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A key without escapes (an escaped key could spell one this scanner reads).
    #[inline(always)]
    fn key(&mut self) -> Option<&'a [u8]> {
        let b = self.b;
        let start = self.at + 1;
        let len = self.string()?;
        let key = &b[start..self.at - 1];
        // Every escape decodes shorter than it is written.
        (key.len() == len).then_some(key)
    }

    /// A string or `null`.
    #[inline(always)]
    fn maybe_text(&mut self) -> Option<MaybeText> {
        if self.null()? {
            return Some(None);
        }
        self.string().map(Some)
    }

    /// Consumes a `null` if one is next; whether it did.
    fn null(&mut self) -> Option<bool> {
        if self.peek()? != b'n' {
            return Some(false);
        }
        self.literal(b"null").map(|_| true)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.b.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// A string at the cursor; its decoded length in bytes.
    #[inline(always)]
    fn string(&mut self) -> Option<usize> {
        if self.peek()? != b'"' {
            return None;
        }
        self.at += 1;
        let start = self.at;
        let mut shorter = 0;
        loop {
            self.skip_plain();
            match *self.b.get(self.at)? {
                b'"' => {
                    let raw = self.at - start;
                    self.at += 1;
                    return Some(raw - shorter);
                }
                b'\\' => shorter += self.escape()?,
                0..=0x1f => return None,
                _ => self.at += 1,
            }
        }
    }

    /// Skips string bytes that need no look (no quote, backslash or control character) eight
    /// at a time, as serde_json does: this is most of what a scan reads.
    #[inline(always)]
    fn skip_plain(&mut self) {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        // A byte of the word is flagged when it is zero (the lowest flag is exact).
        let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
        while let Some(word) = self.b.get(self.at..self.at + 8) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(word);
            let x = u64::from_le_bytes(bytes);
            let stop = zero(x ^ (ONES * u64::from(b'"')))
                | zero(x ^ (ONES * u64::from(b'\\')))
                | (x.wrapping_sub(ONES * 0x20) & !x & HIGHS);
            if stop != 0 {
                self.at += (stop.trailing_zeros() / 8) as usize;
                return;
            }
            self.at += 8;
        }
    }

    /// An escape at the cursor; how many bytes shorter its decoded form is.
    fn escape(&mut self) -> Option<usize> {
        match *self.b.get(self.at + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {
                self.at += 2;
                Some(1)
            }
            b'u' => {
                let unit = self.hex4(self.at + 2)?;
                self.at += 6;
                match unit {
                    0xD800..=0xDBFF => {
                        // A leading surrogate must be followed by an escaped trailing one.
                        if self.b.get(self.at..self.at + 2)? != b"\\u" {
                            return None;
                        }
                        if !(0xDC00..=0xDFFF).contains(&self.hex4(self.at + 2)?) {
                            return None;
                        }
                        self.at += 6;
                        Some(12 - 4)
                    }
                    0xDC00..=0xDFFF => None,
                    0..=0x7F => Some(6 - 1),
                    0x80..=0x7FF => Some(6 - 2),
                    _ => Some(6 - 3),
                }
            }
            _ => None,
        }
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let digits = self.b.get(at..at + 4)?;
        digits.iter().try_fold(0u32, |n, &d| {
            let v = (d as char).to_digit(16)?;
            Some(n * 16 + v)
        })
    }

    /// Any JSON value, checked and skipped.
    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.ws();
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.object(|s, _, _| s.value(depth + 1)),
            b'[' => self.array(|s| s.value(depth + 1)),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.some_digits()?;
        }
        Some(())
    }

    /// A usage value of the shape [`usage`] reads, at the cursor; `None` at anything else (the
    /// cursor then left anywhere in it).
    fn usage_counts(&mut self) -> Option<Option<UsageCounts>> {
        if self.null()? {
            return Some(None);
        }
        let mut c = UsageCounts::default();
        self.object(|s, key, _| {
            match key {
                b"prompt_tokens_details" => c.cached = s.detail(b"cached_tokens")?,
                b"completion_tokens_details" => c.reasoning = s.detail(b"reasoning_tokens")?,
                _ => {
                    let n = s.count()?;
                    match key {
                        b"prompt_tokens" => c.prompt = Some(n),
                        b"completion_tokens" => c.completion = Some(n),
                        b"total_tokens" => c.total = Some(n),
                        _ => {}
                    }
                }
            }
            Some(())
        })?;
        Some(Some(c))
    }

    /// An unsigned integer as JSON writes one (no sign, leading zero, fraction or exponent).
    fn count(&mut self) -> Option<u64> {
        let from = self.at;
        let mut n = 0u64;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
            self.at += 1;
        }
        let digits = self.at - from;
        let plain = digits == 1 || (digits > 1 && self.b[from] != b'0');
        (plain && !matches!(self.peek(), Some(b'.' | b'e' | b'E'))).then_some(n)
    }

    /// A usage details object of counts: its `field` (the last occurrence; none when absent).
    fn detail(&mut self, field: &[u8]) -> Option<Option<u64>> {
        let mut found = None;
        self.object(|s, key, _| {
            let n = s.count()?;
            if key == field {
                found = Some(n);
            }
            Some(())
        })?;
        Some(found)
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let from = self.at;
        self.digits();
        (self.at > from).then_some(())
    }
}
