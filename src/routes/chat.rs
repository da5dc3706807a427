//! The chat paths: `POST /v1/chat/completions`, `/api/chat/completions` (stream defaults to
//! false, as OpenAI) and Pura's `POST /api/chat` (stream defaults to true). Decode, run the
//! pipeline, encode: the protocol lives in `protocols::chat`, the request in `pipeline`.

use actix_web::{web, HttpRequest, HttpResponse, Responder};
use actix_web_lab::sse::Sse;

use crate::api::ChatRequest;
use crate::auth::AuthedKey;
use crate::lightning::LightningHttp;
use crate::pipeline::{self, Ctx, Inbound, Outcome};
use crate::protocols::{self, chat};
use crate::state::AppState;

/// The body, extracted without failing so the key is checked first.
type JsonBody = Result<web::Json<ChatRequest>, actix_web::Error>;

pub async fn openai(
    req: HttpRequest,
    key: AuthedKey,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
    body: JsonBody,
) -> actix_web::Result<HttpResponse> {
    // Authentication is judged before the body: a bad key is a 401 whatever was sent.
    handle(req, key, state, client, body?.into_inner(), false).await
}

pub async fn native(
    req: HttpRequest,
    key: AuthedKey,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
    body: JsonBody,
) -> actix_web::Result<HttpResponse> {
    handle(req, key, state, client, body?.into_inner(), true).await
}

async fn handle(
    req: HttpRequest,
    AuthedKey(key): AuthedKey,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
    body: ChatRequest,
    stream_default: bool,
) -> actix_web::Result<HttpResponse> {
    chat::validate(&body)?;
    let stream = body.stream.unwrap_or(stream_default);
    let include_usage = body.wants_stream_usage();
    let ln = req.app_data::<web::Data<LightningHttp>>();
    let ctx = Ctx {
        state: &state,
        client: &client,
        lightning: ln.map(|l| &l.0),
        request: &req,
    };
    let inbound = Inbound {
        hints: protocols::hints(&req),
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
            let mut resp = Sse::from_stream(events)
                .respond_to(&req)
                .map_into_boxed_body();
            headers.apply(&mut resp);
            Ok(resp)
        }
    }
}
