//! Slow and greedy clients. Headers must arrive within `server.header_timeout` (actix's
//! `client_request_timeout`, set in `main`); a body within `server.body_timeout` once the
//! headers are in ([`body_deadline`]), so a body trickled a byte at a time cannot hold a
//! connection and a buffer forever: it is answered 408. Endpoints that take a few settings
//! read their body with [`SmallJson`], bounded to [`SMALL_BODY_BYTES`] whatever
//! `server.max_body_bytes` allows the chat paths.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::rt::time::{sleep, Sleep};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use bytes::Bytes;
use futures_util::future::LocalBoxFuture;
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;

use crate::error::{self, ApiError};

/// The largest body of an endpoint that takes a label, a few budgets or an amount: a key's
/// settings are well under 1 KB, so this leaves room without letting anyone make the gateway
/// buffer megabytes to mint a key.
pub const SMALL_BODY_BYTES: usize = 16 * 1024;

/// `server.body_timeout`, as app data for [`body_deadline`].
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub Duration);

/// Middleware (`middleware::from_fn`): the request's body stream fails with a timed-out
/// [`PayloadError`] once [`BodyTimeout`] has passed since the headers arrived; the extractors
/// turn that into a 408 in the path's own error shape ([`error::json_error`],
/// [`ApiError::from_body`]).
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let timeout = req.app_data::<web::Data<BodyTimeout>>().map(|t| t.0);
    if let Some(timeout) = timeout.filter(|_| has_body(&req)) {
        let payload = Deadline {
            inner: req.take_payload(),
            timer: Box::pin(sleep(timeout)),
            timeout,
            expired: false,
        };
        req.set_payload(Payload::Stream {
            payload: Box::pin(payload),
        });
    }
    next.call(req).await
}

/// Bodiless requests (most GETs) are left alone: no timer to arm for them. HTTP/1.1 has a
/// body only with `Transfer-Encoding` or a non-zero `Content-Length`.
fn has_body(req: &ServiceRequest) -> bool {
    let headers = req.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// A body stream that ends in a timed-out error when its deadline passes first.
struct Deadline {
    inner: Payload,
    timer: Pin<Box<Sleep>>,
    timeout: Duration,
    expired: bool,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = self.inner.poll_next_unpin(cx) {
            return Poll::Ready(item);
        }
        if self.timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.expired = true;
        Poll::Ready(Some(Err(error::body_timed_out(self.timeout))))
    }
}

/// `web::Json` bounded to [`SMALL_BODY_BYTES`], failing with our envelope (413 when larger).
pub struct SmallJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for SmallJson<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<SmallJson<T>, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = web::JsonBody::<T>::new(req, payload, None, true).limit(SMALL_BODY_BYTES);
        Box::pin(async move { body.await.map(SmallJson).map_err(|e| error::json_error(&e)) })
    }
}
