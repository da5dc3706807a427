//! The chat paths: `POST /v1/chat/completions`, `/api/chat/completions` (stream defaults to
//! false, as OpenAI) and Pura's `POST /api/chat` (stream defaults to true). Decode, run the
//! pipeline, encode: the protocol lives in `protocols::chat`, the request in `pipeline`.

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use crate::auth::AuthedKey;
use crate::error::ApiError;
use crate::lightning::LightningHttp;
use crate::pipeline::meta::Received;
use crate::pipeline::{self, Ctx, Inbound, Outcome};
use crate::protocols::{self, chat};
use crate::state::AppState;

/// The body as bytes, extracted without failing so the key is checked first; kept as bytes
/// because their hash goes out as `X-Pura-Body-Sha256`.
type RawBody = Result<web::Bytes, actix_web::Error>;

pub async fn openai(
    req: HttpRequest,
    key: AuthedKey,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
    body: RawBody,
) -> actix_web::Result<HttpResponse> {
    // Authentication is judged before the body: a bad key is a 401 whatever was sent.
    received(req, key, state, client, body, false).await
}

pub async fn native(
    req: HttpRequest,
    key: AuthedKey,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
    body: RawBody,
) -> actix_web::Result<HttpResponse> {
    received(req, key, state, client, body, true).await
}

/// Once the body is in, every answer (errors included) carries its request id and hash.
async fn received(
    req: HttpRequest,
    key: AuthedKey,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
    body: RawBody,
    stream_default: bool,
) -> actix_web::Result<HttpResponse> {
    let max = state.config.server.max_body_bytes;
    let body = body.map_err(|e| super::refused("chat", ApiError::from_body(&e, max)))?;
    let received = Received::of(&req, &body);
    let authed = key.0.clone();
    let (answer, received) = super::detach::detached(async move {
        let answer = handle(&req, key, &state, &client, &received, &body, stream_default).await;
        (answer, received)
    })
    .await;
    let mut resp = answer.unwrap_or_else(|e| e.error_response());
    received.apply(&mut resp);
    received.log_failure("chat", &authed, resp.status().as_u16());
    Ok(resp)
}

async fn handle(
    req: &HttpRequest,
    AuthedKey(key): AuthedKey,
    state: &web::Data<AppState>,
    client: &web::Data<awc::Client>,
    received: &Received,
    body: &[u8],
    stream_default: bool,
) -> Result<HttpResponse, ApiError> {
    let body = chat::parse(req, body)?;
    chat::validate(&body)?;
    let stream = body.stream.unwrap_or(stream_default);
    let include_usage = body.wants_stream_usage();
    let ln = req.app_data::<web::Data<LightningHttp>>();
    let ctx = Ctx {
        state,
        client,
        lightning: ln.map(|l| &l.0),
        request: req,
        received,
    };
    let inbound = Inbound {
        hints: protocols::hints(req),
        chat: body,
        stream,
        native: None,
        protocol: "chat",
    };
    match pipeline::run(&ctx, &key, inbound).await? {
        Outcome::Json {
            completion,
            headers,
        } => {
            let mut resp = HttpResponse::Ok()
                .content_type("application/json")
                .body(chat::completion_bytes(completion)?);
            headers.apply(&mut resp);
            Ok(resp)
        }
        Outcome::Stream { relay, headers } => {
            let events = protocols::sse_stream(relay, chat::ChatEncoder::new(include_usage));
            let mut resp = protocols::frame::response(events);
            headers.apply(&mut resp);
            Ok(resp)
        }
    }
}
