//! An incremental Server-Sent Events parser for upstream streams. Bytes arrive in arbitrary
//! pieces; events are dispatched on a blank line. Handles `\n`, `\r\n` and `\r` line ends,
//! comments, a missing space after the colon, and multi-line data (joined with `\n`).

/// One dispatched SSE event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous byte was `\r`, so a following `\n` belongs to the same line end.
    after_cr: bool,
    event: Option<String>,
    data: Option<String>,
}

impl SseParser {
    /// Feeds bytes; returns the events completed by them. Whole runs of a line are copied at
    /// once and the line buffer keeps its capacity: this runs for every upstream chunk.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while let Some(&first) = rest.first() {
            if self.after_cr {
                self.after_cr = false;
                if first == b'\n' {
                    rest = &rest[1..];
                    continue;
                }
            }
            let Some(end) = memchr::memchr2(b'\n', b'\r', rest) else {
                self.line.extend_from_slice(rest);
                break;
            };
            self.after_cr = rest[end] == b'\r';
            let whole = &rest[..end];
            rest = &rest[end + 1..];
            // A line that arrived whole is read where it lies; only a line split across
            // pieces goes through the buffer.
            let ev = if self.line.is_empty() {
                self.take_line(whole)
            } else {
                self.line.extend_from_slice(whole);
                let mut line = std::mem::take(&mut self.line);
                let ev = self.take_line(&line);
                line.clear();
                self.line = line;
                ev
            };
            if let Some(ev) = ev {
                out.push(ev);
            }
        }
        out
    }

    /// Called at end of input: a last event without its blank line is still dispatched.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            self.take_line(&line);
        }
        self.dispatch()
    }

    fn take_line(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None;
        }
        // Split as bytes, and decode only the value: checking a whole line with
        // `from_utf8_lossy` was a seventh of what relaying a chunk cost.
        let (field, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        let text = || match std::str::from_utf8(value) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(value),
        };
        match field {
            b"data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(&text());
                }
                None => self.data = Some(text().into_owned()),
            },
            b"event" => self.event = Some(text().into_owned()),
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        let data = self.data.take();
        match (event, data) {
            (None, None) => None,
            (event, data) => Some(SseEvent {
                event,
                data: data.unwrap_or_default(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_events_across_arbitrary_chunks() {
        let mut p = SseParser::default();
        let mut got = p.feed(b"event: message_start\nda");
        assert!(got.is_empty());
        got.extend(p.feed(b"ta: {\"a\":1}\n\n: ping\n\ndata:{\"b\":2}\r\n\r\n"));
        assert_eq!(
            got,
            vec![
                SseEvent {
                    event: Some("message_start".into()),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    event: None,
                    data: "{\"b\":2}".into()
                },
            ]
        );
    }

    #[test]
    fn any_split_of_the_bytes_gives_the_same_events() {
        let stream: &[u8] =
            b"event: a\r\ndata: 1\r\n\r\n: c\n\ndata: x\rdata: y\r\rdata:{\"z\":2}\n\n";
        let whole = SseParser::default().feed(stream);
        assert_eq!(whole.len(), 3, "{whole:?}");
        for cut in 0..stream.len() {
            let mut p = SseParser::default();
            let mut got = p.feed(&stream[..cut]);
            got.extend(p.feed(&stream[cut..]));
            assert_eq!(got, whole, "split at {cut}");
        }
        let mut p = SseParser::default();
        let one_by_one: Vec<SseEvent> = stream.iter().flat_map(|b| p.feed(&[*b])).collect();
        assert_eq!(one_by_one, whole);
    }

    #[test]
    fn joins_multiline_data_and_flushes_at_eof() {
        let mut p = SseParser::default();
        assert!(p.feed(b"data: a\ndata: b").is_empty());
        assert_eq!(p.finish().map(|e| e.data), Some("a\nb".to_owned()));
    }

    #[test]
    fn crlf_split_between_chunks_is_one_line_end() {
        let mut p = SseParser::default();
        let mut got = p.feed(b"data: x\r");
        got.extend(p.feed(b"\n\r\n"));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data, "x");
    }
}
