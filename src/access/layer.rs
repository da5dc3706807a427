//! The access-log middleware, one layer for both formats:
//! - `text`: the line actix-web's `Logger::new("%a \"%r\" %s %b %Dms")` wrote, with the same
//!   fields at the same moment (once the body is sent: its byte count and the time until then),
//!   without that logger's cost per request (a cloned format list, two `format!`s, the
//!   connection info parsed from headers for the peer's address, a formatter per field);
//! - `json`: one JSON line for each request the pipeline does not log itself (see
//!   [`super::write`]).

use std::future::{ready, Future, Ready};
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::Version;
use bytes::Bytes;
use pin_project_lite::pin_project;

// Text lines go to the JSON ones' target (`RUST_LOG=pura::access=warn` silences both).
use super::{json, write, Access, TARGET};

/// Wrap the app in this (outermost) to get an access line per request.
pub struct AccessLog;

impl<S, B> Transform<S, ServiceRequest> for AccessLog
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<Logged<B>>;
    type Error = actix_web::Error;
    type Transform = AccessLogService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(AccessLogService { service }))
    }
}

pub struct AccessLogService<S> {
    service: S,
}

/// What a request's line needs from the request, taken before the service has it.
enum Pending {
    /// Text: the line up to the status (`1.2.3.4 "POST /v1/x HTTP/1.1" `).
    Text(String),
    /// JSON: the method and the matched route pattern.
    Json(actix_web::http::Method, Option<String>),
    Off,
}

impl<S, B> Service<ServiceRequest> for AccessLogService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<Logged<B>>;
    type Error = actix_web::Error;
    type Future = LoggedFuture<S::Future>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let started = Instant::now();
        let pending = if json() {
            Pending::Json(req.method().clone(), req.match_pattern())
        } else if log::log_enabled!(target: TARGET, log::Level::Info) {
            let q = req.query_string();
            let mut line = String::with_capacity(64 + req.path().len() + q.len());
            request_part(
                &mut line,
                req.peer_addr().map(|a| a.ip()),
                req.method().as_str(),
                req.path(),
                q,
                req.version(),
            );
            Pending::Text(line)
        } else {
            Pending::Off
        };
        LoggedFuture {
            fut: self.service.call(req),
            pending: Some(pending),
            started,
        }
    }
}

pin_project! {
    pub struct LoggedFuture<F> {
        #[pin]
        fut: F,
        pending: Option<Pending>,
        started: Instant,
    }
}

impl<F, B> Future for LoggedFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<Logged<B>>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // An error the service returns (not a response) gets no line, as with actix's logger:
        // the dispatcher turns it into a response past every middleware.
        let res = std::task::ready!(this.fut.poll(cx))?;
        let started = *this.started;
        let line = match this.pending.take() {
            Some(Pending::Text(mut line)) => {
                status_part(&mut line, res.status().as_u16());
                Some(line)
            }
            Some(Pending::Json(method, route)) => {
                if !res.headers().contains_key("x-pura-request-id") {
                    write(Access {
                        method: method.as_str(),
                        route: route.as_deref().unwrap_or("(unmatched)"),
                        status: res.status().as_u16(),
                        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
                        ..Access::default()
                    });
                }
                None
            }
            _ => None,
        };
        Poll::Ready(Ok(res.map_body(move |_, body| Logged {
            body,
            line,
            size: 0,
            started,
        })))
    }
}

pin_project! {
    /// A response body that counts what it sends and writes the text line when it is dropped
    /// (sent, or cut off by the client).
    pub struct Logged<B> {
        #[pin]
        body: B,
        line: Option<String>,
        size: usize,
        started: Instant,
    }

    impl<B> PinnedDrop for Logged<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(mut line) = this.line.take() {
                end_part(&mut line, *this.size, this.started.elapsed().as_nanos());
                log::info!(target: TARGET, "{line}");
            }
        }
    }
}

impl<B: MessageBody> MessageBody for Logged<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.project();
        let next = std::task::ready!(this.body.poll_next(cx));
        if let Some(Ok(chunk)) = &next {
            *this.size += chunk.len();
        }
        Poll::Ready(next)
    }
}

/// `1.2.3.4 "POST /path?query HTTP/1.1" ` (`-` for an unknown peer).
fn request_part(
    line: &mut String,
    peer: Option<IpAddr>,
    method: &str,
    path: &str,
    query: &str,
    version: Version,
) {
    match peer {
        Some(IpAddr::V4(ip)) => {
            for (i, octet) in ip.octets().into_iter().enumerate() {
                if i > 0 {
                    line.push('.');
                }
                line.push_str(itoa::Buffer::new().format(octet));
            }
        }
        // Rare enough here to go through `Display`, which also shortens zero runs.
        Some(ip @ IpAddr::V6(_)) => line.push_str(&ip.to_string()),
        None => line.push('-'),
    }
    line.push_str(" \"");
    line.push_str(method);
    line.push(' ');
    line.push_str(path);
    if !query.is_empty() {
        line.push('?');
        line.push_str(query);
    }
    line.push(' ');
    line.push_str(version_str(version));
    line.push_str("\" ");
}

/// The status and a space.
fn status_part(line: &mut String, status: u16) {
    line.push_str(itoa::Buffer::new().format(status));
    line.push(' ');
}

/// The body's size and the time taken in milliseconds to six places (`507 0.354313ms`).
fn end_part(line: &mut String, size: usize, nanos: u128) {
    let mut num = itoa::Buffer::new();
    line.push_str(num.format(size));
    line.push(' ');
    line.push_str(num.format(nanos / 1_000_000));
    line.push('.');
    let frac = num.format((nanos % 1_000_000) as u32);
    for _ in frac.len()..6 {
        line.push('0');
    }
    line.push_str(frac);
    line.push_str("ms");
}

/// As `Version`'s `Debug` writes it (actix's `%r`).
fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// What actix-web's logger wrote for `%a "%r" %s %b %Dms`, with its own expressions.
    fn actix_line(
        peer: Option<IpAddr>,
        (method, path, query): (&str, &str, &str),
        version: Version,
        status: u16,
        size: usize,
        nanos: u128,
    ) -> String {
        let addr = peer.map_or("-".to_owned(), |ip| ip.to_string());
        let request = if query.is_empty() {
            format!("{method} {path} {version:?}")
        } else {
            format!("{method} {path}?{query} {version:?}")
        };
        let ms = nanos as f64 / 1_000_000.0;
        format!("{addr} \"{request}\" {status} {size} {ms:.6}ms")
    }

    #[test]
    fn the_text_line_is_what_actix_logger_wrote() {
        let peers = [
            None,
            Some("127.0.0.1".parse().unwrap()),
            Some("0.0.0.0".parse().unwrap()),
            Some("255.10.200.9".parse().unwrap()),
            Some("::1".parse().unwrap()),
            Some("2001:db8::8a2e:370:7334".parse().unwrap()),
        ];
        let versions = [
            Version::HTTP_09,
            Version::HTTP_10,
            Version::HTTP_11,
            Version::HTTP_2,
            Version::HTTP_3,
        ];
        let mut rng = rand::thread_rng();
        let mut cases = 0;
        for peer in peers {
            for version in versions {
                for (method, path, query) in [
                    ("POST", "/v1/chat/completions", ""),
                    ("GET", "/api/report", "period=24h&x=1"),
                ] {
                    // Durations with every digit count, whole milliseconds and zero.
                    let mut nanos: Vec<u128> = vec![0, 1, 999_999, 1_000_000, 12_000_001];
                    nanos.extend((0..50).map(|_| rng.gen_range(0..10_000_000_000u128)));
                    for n in nanos {
                        let status = rng.gen_range(100..600u16);
                        let size = rng.gen_range(0..10_000_000usize);
                        let mut ours = String::new();
                        request_part(&mut ours, peer, method, path, query, version);
                        status_part(&mut ours, status);
                        end_part(&mut ours, size, n);
                        let request = (method, path, query);
                        let theirs = actix_line(peer, request, version, status, size, n);
                        assert_eq!(ours, theirs);
                        cases += 1;
                    }
                }
            }
        }
        assert_eq!(cases, 6 * 5 * 2 * 55);
    }
}
