//! `POST /v1/responses` and `/api/responses` (OpenAI Responses, what Codex speaks). Decode,
//! run the pipeline, encode: the protocol lives in `protocols::responses`.

use actix_web::{web, HttpRequest, HttpResponse, Responder};
use actix_web_lab::sse::Sse;
use serde_json::{Map, Value};

use crate::api::responses::ResponsesRequest;
use crate::auth::AuthedKey;
use crate::config::parse_duration;
use crate::db::models::response;
use crate::error::ApiError;
use crate::lightning::LightningHttp;
use crate::pipeline::{self, Ctx, Inbound, Outcome};
use crate::protocols::responses::{self as proto, Echo, ResponsesEncoder, Store};
use crate::protocols::{self, header};
use crate::state::AppState;

pub async fn create(
    req: HttpRequest,
    AuthedKey(key): AuthedKey,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
    body: web::Bytes,
) -> actix_web::Result<HttpResponse> {
    let map: Map<String, Value> = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
    let parsed: ResponsesRequest = serde_json::from_value(Value::Object(map.clone()))
        .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
    let history = match parsed.previous_response_id.as_deref() {
        Some(id) => previous(&state, &key.id, id).await?,
        None => Vec::new(),
    };
    let chat = proto::decode(&parsed, &history)?;
    let stream = parsed.stream.unwrap_or(false);
    let mut conversation = history.clone();
    conversation.extend(proto::input_items(parsed.input.as_ref()));
    let store = (parsed.store != Some(false)).then(|| Store {
        pool: state.pool.clone(),
        key_id: key.id.clone(),
        conversation,
        retention: parse_duration(&state.config.responses.retention).unwrap_or_default(),
    });
    let mut hints = protocols::hints(&req);
    // Codex names its session in a header and in `prompt_cache_key`: both pin the tier.
    hints.session = hints
        .session
        .or_else(|| header(&req, "session_id"))
        .or_else(|| header(&req, "session-id"))
        .or_else(|| parsed.prompt_cache_key.clone());
    let ln = req.app_data::<web::Data<LightningHttp>>();
    let ctx = Ctx {
        state: &state,
        client: &client,
        lightning: ln.map(|l| &l.0),
        base_url: crate::routes::wallet::base_url(&req),
    };
    let echo = Echo::new(&parsed);
    let inbound = Inbound {
        chat,
        stream,
        hints,
        native: Some(proto::native(map, history)),
        protocol: "responses",
    };
    match pipeline::run(&ctx, &key, inbound).await? {
        Outcome::Json {
            completion,
            headers,
        } => {
            let usage = completion.usage.unwrap_or_default();
            let object = match (completion.native, completion.raw) {
                (true, Some(raw)) => serde_json::from_slice(&raw).map_err(ApiError::internal)?,
                (_, raw) => {
                    let chat: Value = match raw {
                        Some(raw) => serde_json::from_slice(&raw).map_err(ApiError::internal)?,
                        None => completion.body,
                    };
                    serde_json::to_value(proto::from_completion(&echo, &chat, &usage))
                        .map_err(ApiError::internal)?
                }
            };
            if let Some(store) = store {
                store.save(object.clone()).await;
            }
            let mut resp = HttpResponse::Ok().json(object);
            headers.apply(&mut resp);
            Ok(resp)
        }
        Outcome::Stream { relay, headers } => {
            let encoder = ResponsesEncoder::new(echo).storing(store);
            let mut resp = Sse::from_stream(protocols::sse_stream(relay, encoder))
                .respond_to(&req)
                .map_into_boxed_body();
            headers.apply(&mut resp);
            Ok(resp)
        }
    }
}

/// The stored conversation a `previous_response_id` continues; another key's id is a 404.
async fn previous(state: &AppState, key_id: &str, id: &str) -> Result<Vec<Value>, ApiError> {
    let (k, i) = (key_id.to_owned(), id.to_owned());
    let found = crate::db::run(&state.pool, move |c| response::find(c, &i, &k)).await?;
    let Some(row) = found else {
        return Err(ApiError::NotFoundCode {
            message: format!("Previous response with id '{id}' not found."),
            param: Some("previous_response_id"),
            code: "previous_response_not_found",
        });
    };
    serde_json::from_str(&row.items).map_err(ApiError::internal)
}
