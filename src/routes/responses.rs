//! `POST /v1/responses` and `/api/responses` (OpenAI Responses, what Codex speaks). Decode,
//! run the pipeline, encode: the protocol lives in `protocols::responses`.

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::{Map, Value};

use crate::api::responses::ResponsesRequest;
use crate::auth::AuthedKey;
use crate::config::parse_duration;
use crate::error::ApiError;
use crate::lightning::LightningHttp;
use crate::pipeline::meta::Received;
use crate::pipeline::{self, Ctx, Inbound, Outcome};
use crate::protocols::responses::{self as proto, Echo, ResponsesEncoder, Store};
use crate::protocols::{self, header};
use crate::state::AppState;

pub async fn create(
    req: HttpRequest,
    key: AuthedKey,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
    body: Result<web::Bytes, actix_web::Error>,
) -> actix_web::Result<HttpResponse> {
    let max = state.config.server.max_body_bytes;
    let body = body.map_err(|e| super::refused("responses", ApiError::from_body(&e, max)))?;
    // Once the body is in, every answer (errors included) carries its request id and hash.
    let received = Received::of(&req, &body);
    let authed = key.0.clone();
    let (answer, received) = super::detach::detached(async move {
        let answer = serve(&req, key, &state, &client, &received, &body).await;
        (answer, received)
    })
    .await;
    let mut resp = answer.unwrap_or_else(|e| e.error_response());
    received.apply(&mut resp);
    received.log_failure("responses", &authed, resp.status().as_u16());
    Ok(resp)
}

async fn serve(
    req: &HttpRequest,
    AuthedKey(key): AuthedKey,
    state: &web::Data<AppState>,
    client: &web::Data<awc::Client>,
    received: &Received,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let bad = |e: serde_json::Error| ApiError::bad_request(format!("Invalid request body: {e}"));
    let map: Map<String, Value> = crate::api::from_json(body).map_err(bad)?;
    let parsed: ResponsesRequest =
        serde_json::from_value(Value::Object(map.clone())).map_err(bad)?;
    let history =
        proto::history(&state.pool, &key.id, parsed.previous_response_id.as_deref()).await?;
    let mut conversation = history.clone();
    conversation.extend(proto::input_items(parsed.input.as_ref()));
    let store = (parsed.store != Some(false)).then(|| Store {
        pool: state.pool.clone(),
        key_id: key.id.clone(),
        conversation,
        retention: parse_duration(&state.config.responses.retention).unwrap_or_default(),
    });
    let mut hints = protocols::hints(req);
    // Codex names its session in a header and in `prompt_cache_key`: both pin the tier.
    hints.session = (hints.session.take())
        .or_else(|| header(req, "session_id"))
        .or_else(|| header(req, "session-id"))
        .or_else(|| parsed.prompt_cache_key.clone());
    let inbound = Inbound {
        chat: proto::decode(&parsed, &history)?,
        stream: parsed.stream.unwrap_or(false),
        hints,
        native: Some(proto::native(map, history)),
        protocol: "responses",
    };
    let ctx = Ctx {
        state,
        client,
        lightning: req.app_data::<web::Data<LightningHttp>>().map(|l| &l.0),
        request: req,
        received,
    };
    let echo = Echo::new(&parsed);
    let (mut resp, headers) = match pipeline::run(&ctx, &key, inbound).await? {
        Outcome::Json {
            completion,
            headers,
        } => {
            let object = proto::encode_json(&echo, completion)?;
            if let Some(store) = store {
                store.save(object.clone()).await;
            }
            (HttpResponse::Ok().json(object), headers)
        }
        Outcome::Stream { relay, headers } => {
            let encoder = ResponsesEncoder::new(echo).storing(store);
            let events = protocols::sse_stream(relay, encoder);
            (protocols::frame::response(events), headers)
        }
    };
    headers.apply(&mut resp);
    Ok(resp)
}
