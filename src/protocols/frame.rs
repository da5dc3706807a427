//! Server-sent events framed for the wire, as actix-web-lab's `sse` writes them (a test holds
//! the bytes equal) but each in one buffer of its exact size: the library's event grows its
//! buffer as it writes and splits the data on newlines every time, which cost a sixth of
//! relaying a chunk. Chat streams carry `data:` lines only (older OpenAI SDKs break on
//! `event:`); Anthropic and Responses streams name their events.

use std::convert::Infallible;

use actix_web::http::header::{CacheControl, CacheDirective, ContentEncoding};
use actix_web::HttpResponse;
use bytes::Bytes;

/// One event, framed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame(Bytes);

impl Frame {
    /// `data: <text>\n\n` (a line of `data:` per line of `text`).
    pub fn data(text: &str) -> Frame {
        Frame::build(None, text)
    }

    /// `event: <name>\ndata: <text>\n\n`.
    pub fn named(name: &str, text: &str) -> Frame {
        Frame::build(Some(name), text)
    }

    fn build(name: Option<&str>, text: &str) -> Frame {
        const EVENT: &[u8] = b"event: ";
        const DATA: &[u8] = b"data: ";
        // One line, nearly always (JSON text has no raw newline): one search, not a count and
        // a split, which cost more than the copy.
        let one_line = memchr::memchr(b'\n', text.as_bytes()).is_none();
        let lines = if one_line {
            1
        } else {
            1 + memchr::memchr_iter(b'\n', text.as_bytes()).count()
        };
        let head = name.map_or(0, |n| EVENT.len() + n.len() + 1);
        let mut buf = Vec::with_capacity(head + lines * (DATA.len() + 1) + text.len() + 1);
        if let Some(name) = name {
            buf.extend_from_slice(EVENT);
            buf.extend_from_slice(name.as_bytes());
            buf.push(b'\n');
        }
        if one_line {
            buf.extend_from_slice(DATA);
            buf.extend_from_slice(text.as_bytes());
            buf.extend_from_slice(b"\n\n");
            return Frame(Bytes::from(buf));
        }
        for line in text.split('\n') {
            buf.extend_from_slice(DATA);
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
        }
        buf.push(b'\n');
        Frame(Bytes::from(buf))
    }

    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

/// The streamed response of `frames`, with the headers actix-web-lab's `Sse` responder sets.
pub fn response<S>(frames: S) -> HttpResponse
where
    S: futures_util::Stream<Item = Result<Bytes, Infallible>> + 'static,
{
    HttpResponse::Ok()
        .content_type(actix_web::mime::TEXT_EVENT_STREAM)
        .insert_header(ContentEncoding::Identity)
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .streaming(frames)
}

#[cfg(test)]
mod tests {
    use actix_web::body::MessageBody;
    use actix_web_lab::sse;

    use super::*;

    /// What actix-web-lab's `Sse` body writes for one event.
    async fn library(name: Option<&str>, text: &str) -> Bytes {
        let mut data = sse::Data::new(text.to_owned());
        if let Some(n) = name {
            data.set_event(n.to_owned());
        }
        let events = futures_util::stream::iter([Ok::<_, Infallible>(sse::Event::Data(data))]);
        actix_web::body::to_bytes(sse::Sse::from_stream(events).boxed())
            .await
            .expect("body")
    }

    /// Every event is framed byte for byte as the library frames it: newlines anywhere (none,
    /// leading, trailing, doubled), carriage returns, non-ASCII, empty data.
    #[actix_web::test]
    async fn frames_are_what_the_sse_library_writes() {
        let texts = [
            "",
            "{\"a\":1}",
            "\n",
            "line one\nline two",
            "\nlead",
            "trail\n",
            "two\n\nblank",
            "cr\r\nlf",
            "ünï ✓ 🚀",
            "[DONE]",
        ];
        for text in texts {
            for name in [
                None,
                Some("message_start"),
                Some("response.output_text.delta"),
            ] {
                let ours = match name {
                    Some(n) => Frame::named(n, text),
                    None => Frame::data(text),
                };
                assert_eq!(
                    ours.into_bytes(),
                    library(name, text).await,
                    "{name:?} {text:?}"
                );
            }
        }
    }

    #[actix_web::test]
    async fn the_response_has_the_sse_headers() {
        let frames =
            futures_util::stream::iter([Ok::<_, Infallible>(Frame::data("x").into_bytes())]);
        let resp = response(frames);
        let h = resp.headers();
        assert_eq!(h.get("content-type").unwrap(), "text/event-stream");
        assert_eq!(h.get("content-encoding").unwrap(), "identity");
        assert_eq!(h.get("cache-control").unwrap(), "no-cache");
        let body = actix_web::body::to_bytes(resp.into_body())
            .await
            .expect("body");
        assert_eq!(body, "data: x\n\n");
    }
}
