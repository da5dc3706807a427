//! The one HTTP transport every adapter shares: send the built call with the worker's
//! `awc::Client` (it is `!Send`, so calls run on the handler's own worker), map status codes
//! and errors to a [`Failure`], read a whole answer, or peek at a stream until its first
//! translated chunk so that a failure before the first byte can still fall back.

use std::time::{Duration, Instant};

use actix_web::http::uri::InvalidUri;
use actix_web::http::{StatusCode, Uri};
use awc::error::{PayloadError, SendRequestError};
use bytes::Bytes;
use futures_util::StreamExt;

use super::sse::SseParser;
use super::UpstreamCall;
use super::{adapter, error_message, Completion, ProviderSpec, StreamItem, StreamTranslator};

/// Largest non-streaming upstream body accepted.
const MAX_UPSTREAM_BODY: usize = 32 * 1024 * 1024;
/// How much of an upstream error body is read for its message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The upstream's response body as a byte stream.
pub type UpstreamBody = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, String>>>>;

/// An upstream stream whose first chunk has arrived.
pub struct OpenStream {
    pub body: UpstreamBody,
    pub parser: SseParser,
    pub translator: Box<dyn StreamTranslator>,
    /// Items already read while peeking (at least one chunk, unless the stream is done).
    pub first: Vec<StreamItem>,
    pub ttft: Duration,
}

pub enum Answer {
    Json(Completion),
    Stream(OpenStream),
}

/// Why an attempt failed, which decides whether the next candidate is tried.
pub enum Failure {
    /// The upstream did not answer in time.
    Timeout(String),
    /// Any other failure of the upstream; try the next one.
    Upstream(String),
    /// The upstream rejected the request itself (400/413/422): the client's to fix. A 404 is
    /// not here: the model or path the operator configured is wrong, another upstream may do.
    /// Nor are 401/403: the operator's key is the problem.
    Client(u16, String),
    /// The upstream said 429; `retry_after` is its `Retry-After` (or Gemini's `RetryInfo`)
    /// in seconds, when it gave one.
    RateLimited {
        retry_after: Option<u64>,
        message: String,
    },
}

impl Failure {
    /// The kind of failure, for the `pura_upstream_failures_total` series: `status`,
    /// `timeout`, `reset` (the connection failed or broke), `malformed` (an answer that could
    /// not be read, or an error event instead of a first chunk), `rejected` (a 4xx the
    /// client must fix) or `rate_limited` (a 429). Read from the messages this file builds,
    /// so keep the two in step.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Timeout(_) => "timeout",
            Failure::Client(..) => "rejected",
            Failure::RateLimited { .. } => "rate_limited",
            Failure::Upstream(m) if m.starts_with("HTTP ") => "status",
            Failure::Upstream(m)
                if m.starts_with("request failed")
                    || m.starts_with("reading answer")
                    || m.starts_with("stream broke")
                    || m.starts_with("stream ended") =>
            {
                "reset"
            }
            Failure::Upstream(_) => "malformed",
        }
    }
}

/// Times a request goes again after its connection closed without answering. awc's check (run
/// outside the budget, see `post`) drops the pooled connections whose close has arrived; what
/// is left is a close that arrives between the check and the write, as the upstream's idle
/// timeout strikes. Going again costs no round trip (the close is already there to read).
const STALE_RETRIES: usize = 4;

/// What awc answers a request with (its body type depends on awc's compression features).
type Sent = <awc::SendClientRequest as std::future::Future>::Output;

/// Upstream addresses a worker has parsed; more than a configuration makes are parsed each
/// time.
const MAX_URIS: usize = 64;

thread_local! {
    static URIS: std::cell::RefCell<Vec<(String, Uri)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `url` parsed, once per worker: parsing it was about a thousand instructions a request, and
/// a parsed address is cloned by counting references.
fn uri(url: &str) -> Result<Uri, InvalidUri> {
    let known = URIS.with(|cell| {
        let uris = cell.borrow();
        uris.iter()
            .find(|(u, _)| u == url)
            .map(|(_, parsed)| parsed.clone())
    });
    if let Some(parsed) = known {
        return Ok(parsed);
    }
    let parsed = Uri::try_from(url)?;
    URIS.with(|cell| {
        let mut uris = cell.borrow_mut();
        if uris.len() < MAX_URIS {
            uris.push((url.to_owned(), parsed.clone()));
        }
    });
    Ok(parsed)
}

/// One POST of the call's body.
async fn post(
    client: &awc::Client,
    url: &str,
    headers: &[(&'static str, String)],
    body: Bytes,
    timeout: Duration,
) -> Sent {
    use actix_web::http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
    let mut request = match uri(url) {
        Ok(parsed) => client.post(parsed),
        // awc reports the bad address when the request is sent.
        Err(_) => client.post(url),
    };
    // Headers go in through `headers_mut`: awc's builder methods take the request by value,
    // and each moved the whole request (its head and config) once more.
    request = request.timeout(timeout);
    let map = request.headers_mut();
    map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut refused = None;
    for &(name, ref value) in headers {
        // Every dialect sends `authorization` or none: its constant spares parsing the name.
        let parsed = match name {
            "authorization" => Ok(AUTHORIZATION),
            other => other.parse(),
        };
        match (parsed, HeaderValue::from_str(value)) {
            (Ok(parsed), Ok(header)) => {
                map.insert(parsed, header);
            }
            _ => refused = Some((name, value.as_str())),
        }
    }
    // A name or value that is no header: the builder keeps the error, and sending reports it.
    if let Some(pair) = refused {
        request = request.insert_header(pair);
    }
    // Outside tokio's cooperative budget: taking a pooled connection, awc reads each idle one
    // to see whether the upstream closed it, and once the task has spent its budget (128 reads)
    // every read answers "not ready", so a closed connection passes as open and the request is
    // written to it: after 1,000 streams and a pause, strace showed the first request read and
    // drop 626 closed connections, then write to five more without reading them, and a 502. The
    // walk is bounded by the pool's size.
    tokio::task::unconstrained(request.send_body(body)).await
}

/// The connection closed before any byte of an answer: a kept-alive connection from awc's
/// pool that the upstream had closed at its idle timeout (awc checks a connection for a close
/// before reusing it, but under a burst some closed ones still pass). The upstream closed
/// instead of reading the request, so it was not served, and it goes again (awc drops that
/// connection; the next is a pooled one or a new one). Not counted against the upstream.
fn unanswered(sent: &Sent) -> bool {
    match sent {
        Err(SendRequestError::Connect(awc::error::ConnectError::Disconnected)) => true,
        Err(SendRequestError::Send(e)) => matches!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ),
        _ => false,
    }
}

/// Sends `call` to `spec` and reads the answer (whole, or up to a stream's first chunk).
/// Returns the upstream's request id alongside.
pub async fn send(
    client: &awc::Client,
    spec: &ProviderSpec,
    model: &str,
    call: UpstreamCall,
    stream: bool,
) -> Result<(Option<String>, Answer), Failure> {
    let adapter = adapter(spec.dialect);
    let deadline = Instant::now() + spec.timeout;
    let call_native = call.native;
    let body = Bytes::from(call.body);
    let mut attempt = post(client, &call.url, &call.headers, body.clone(), spec.timeout).await;
    for _ in 0..STALE_RETRIES {
        if !unanswered(&attempt) {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        log::debug!(
            "{}: the connection closed unanswered; sending again",
            spec.name
        );
        attempt = post(client, &call.url, &call.headers, body.clone(), left).await;
    }
    let mut resp = attempt.map_err(|e| match e {
        SendRequestError::Timeout => {
            Failure::Timeout(format!("no response within {:?}", spec.timeout))
        }
        other => Failure::Upstream(format!("request failed: {other}")),
    })?;
    let request_id = adapter
        .request_id_header()
        .and_then(|h| resp.headers().get(&h))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let status = resp.status();
    if !status.is_success() {
        let retry_after = retry_after_header(resp.headers());
        let body = resp.body().limit(MAX_ERROR_BODY).await.unwrap_or_default();
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(Failure::RateLimited {
                retry_after: retry_after.or_else(|| retry_info(&body)),
                message: format!("HTTP 429: {}", error_message(&body)),
            });
        }
        return Err(classify(status, error_message(&body)));
    }
    if !stream {
        // The rest of the answer is bounded by the same deadline, on the timer awc already
        // holds for the request (moved to the deadline, it stays registered): a timer of
        // our own cost a registration and a removal per request.
        let left = deadline.saturating_duration_since(Instant::now());
        let body = match resp.timeout(left).body().limit(MAX_UPSTREAM_BODY).await {
            Err(PayloadError::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                return Err(Failure::Timeout(format!(
                    "answer not complete within {:?}",
                    spec.timeout
                )))
            }
            Err(e) => return Err(Failure::Upstream(format!("reading answer: {e}"))),
            Ok(b) => b,
        };
        let completion = if call_native {
            adapter.parse_native(body)
        } else {
            adapter.parse(body, model)
        };
        let completion = completion.map_err(Failure::Upstream)?;
        return Ok((request_id, Answer::Json(completion)));
    }
    let started = Instant::now();
    let body: UpstreamBody = Box::pin(resp.map(|r| r.map_err(|e| e.to_string())));
    let translator = if call_native {
        adapter.native_translator()
    } else {
        adapter.translator(model)
    };
    let open = peek(body, translator, deadline, started).await?;
    Ok((request_id, Answer::Stream(open)))
}

fn classify(status: StatusCode, msg: String) -> Failure {
    match status.as_u16() {
        400 | 413 | 422 => Failure::Client(status.as_u16(), msg),
        408 | 504 => Failure::Timeout(format!("HTTP {status}: {msg}")),
        _ => Failure::Upstream(format!("HTTP {}: {msg}", status.as_u16())),
    }
}

/// `retry-after-ms` or `retry-after` in whole seconds (rounded up). An HTTP-date is not read:
/// the caller's default applies.
fn retry_after_header(headers: &actix_web::http::header::HeaderMap) -> Option<u64> {
    let read = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    let secs = read("retry-after-ms")
        .map(|ms| ms / 1000.0)
        .or_else(|| read("retry-after"))?;
    Some(secs.ceil() as u64)
}

/// Gemini puts the delay in the body: a `RetryInfo` detail with `retryDelay: "43s"`.
fn retry_info(body: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let v = v.as_array().and_then(|a| a.first()).unwrap_or(&v);
    let details = v.pointer("/error/details")?.as_array()?;
    let delay = details.iter().find_map(|d| d["retryDelay"].as_str())?;
    let secs: f64 = delay.strip_suffix('s')?.parse().ok()?;
    Some(secs.max(0.0).ceil() as u64)
}

/// How long the rest of a finished stream (after its last event: usually just the chunked
/// terminator) is read in the background before the connection is given up.
const RELEASE_WITHIN: Duration = Duration::from_secs(2);
/// Pieces read at once before the rest is left to a task.
const RELEASE_POLLS: usize = 4;

/// An empty body, to stand in for one that was handed on or has ended (awc's must not be polled
/// again after its end).
pub fn ended() -> UpstreamBody {
    Box::pin(futures_util::stream::empty())
}

/// Reads what is left of a stream whose last event has arrived, so that awc gives the
/// connection back to its pool: an HTTP/1.1 response dropped before its end closes the
/// connection, and the next request to that upstream pays a new connect (and, over TLS, a new
/// handshake). The end is usually buffered already and is read here; otherwise a task on this
/// worker reads it, for at most [`RELEASE_WITHIN`]. Never given a body that already ended.
pub fn release(mut body: UpstreamBody) {
    use futures_util::FutureExt;
    for _ in 0..RELEASE_POLLS {
        match body.next().now_or_never() {
            Some(Some(Ok(_))) => continue,
            Some(_) => return,
            None => break,
        }
    }
    actix_web::rt::spawn(async move {
        let rest = async { while let Some(Ok(_)) = body.next().await {} };
        let _ = tokio::time::timeout(RELEASE_WITHIN, rest).await;
    });
}

/// Reads until the first content chunk (or the end) so a failure can still fall back.
async fn peek(
    mut body: UpstreamBody,
    mut translator: Box<dyn StreamTranslator>,
    deadline: Instant,
    started: Instant,
) -> Result<OpenStream, Failure> {
    let mut parser = SseParser::default();
    let mut first = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = tokio::time::timeout(left, body.next())
            .await
            .map_err(|_| Failure::Timeout("no stream data before the timeout".into()))?;
        let events = match next {
            Some(Ok(bytes)) => parser.feed(&bytes),
            Some(Err(e)) => {
                return Err(Failure::Upstream(format!(
                    "stream broke before its first chunk: {e}"
                )))
            }
            None => match parser.finish() {
                Some(ev) => vec![ev],
                None => {
                    return Err(Failure::Upstream(
                        "stream ended before its first chunk".into(),
                    ))
                }
            },
        };
        for ev in &events {
            let items = translator.on_event(ev).map_err(Failure::Upstream)?;
            for item in items {
                if let StreamItem::Error(e) = &item {
                    let msg = e
                        .get("message")
                        .and_then(|m| m.as_str())
                        .unwrap_or("error event");
                    return Err(Failure::Upstream(format!(
                        "stream error before first chunk: {msg}"
                    )));
                }
                first.push(item);
            }
        }
        let ready = first.iter().any(|i| {
            matches!(
                i,
                StreamItem::Chunk(_)
                    | StreamItem::Raw(_)
                    | StreamItem::Native { .. }
                    | StreamItem::Done
            )
        });
        if ready {
            return Ok(OpenStream {
                body,
                parser,
                translator,
                first,
                ttft: started.elapsed(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_from_headers_or_gemini_retry_info() {
        use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
        let mut h = HeaderMap::new();
        assert_eq!(retry_after_header(&h), None);
        let name = HeaderName::from_static("retry-after");
        h.insert(name.clone(), HeaderValue::from_static("7"));
        assert_eq!(retry_after_header(&h), Some(7));
        h.insert(
            name,
            HeaderValue::from_static("Wed, 21 Oct 2026 07:28:00 GMT"),
        );
        assert_eq!(retry_after_header(&h), None);
        let ms = HeaderName::from_static("retry-after-ms");
        h.insert(ms, HeaderValue::from_static("1500"));
        assert_eq!(retry_after_header(&h), Some(2));
        let gemini = br#"{"error":{"code":429,"details":[{"@type":"x.QuotaFailure"},
            {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"43s"}]}}"#;
        assert_eq!(retry_info(gemini), Some(43));
        assert_eq!(retry_info(b"{}"), None);
    }

    #[test]
    fn failure_kinds_follow_the_messages_built_here() {
        let status = classify(StatusCode::INTERNAL_SERVER_ERROR, "boom".into());
        assert_eq!(status.kind(), "status");
        let gateway_timeout = classify(StatusCode::GATEWAY_TIMEOUT, "slow".into());
        assert_eq!(gateway_timeout.kind(), "timeout");
        let rejected = classify(StatusCode::BAD_REQUEST, "bad".into());
        assert_eq!(rejected.kind(), "rejected");
        // A model the operator configured but the upstream lacks, or the operator's key.
        for theirs in [
            StatusCode::NOT_FOUND,
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN,
        ] {
            assert_eq!(classify(theirs, "x".into()).kind(), "status", "{theirs}");
        }
        for reset in [
            "request failed: connection refused",
            "reading answer: connection reset",
            "stream broke before its first chunk: eof",
            "stream ended before its first chunk",
        ] {
            assert_eq!(Failure::Upstream(reset.into()).kind(), "reset", "{reset}");
        }
        for malformed in [
            "expected value at line 1 column 1",
            "stream error before first chunk: overloaded",
        ] {
            let kind = Failure::Upstream(malformed.into()).kind();
            assert_eq!(kind, "malformed", "{malformed}");
        }
    }
}
