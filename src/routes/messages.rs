//! The Anthropic Messages paths: `POST /v1/messages`, `POST /v1/messages/count_tokens`, and
//! `GET /v1/models` in Anthropic's list shape when the request carries `anthropic-version`.
//! Keys come as `x-api-key` or as a bearer token; every error here has Anthropic's envelope.
//! Decode, run the pipeline, encode: the protocol lives in `protocols::messages`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use serde_json::{Map, Value};

use crate::api::messages::{MessagesRequest, ModelInfo, ModelList, TokenCount};
use crate::auth;
use crate::db::models::api_key::ApiKey;
use crate::error::ApiError;
use crate::lightning::LightningHttp;
use crate::pipeline::meta::Received;
use crate::pipeline::{self, Ctx, Inbound, Outcome};
use crate::protocols::messages::{self as proto, AnthropicError, MessagesEncoder};
use crate::protocols::{self, header};
use crate::providers::{Dialect, NativeBody};
use crate::routing::Target;
use crate::state::AppState;

/// The `anthropic-version` sent upstream when the client sent none.
const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// A key from `x-api-key` (what the anthropic SDKs and Claude Code send by default) or from
/// `Authorization: Bearer`, checked like every other key; failures in Anthropic's envelope.
pub struct AnthropicKey(pub Arc<ApiKey>);

impl FromRequest for AnthropicKey {
    type Error = AnthropicError;
    type Future = Pin<Box<dyn Future<Output = Result<AnthropicKey, AnthropicError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = req
            .headers()
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .or_else(|| auth::bearer(req).map(str::to_owned));
        let protocol = crate::pipeline::meta::protocol_of(req.path());
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("application state missing"))?;
            let authed = match token {
                None => Err(ApiError::Unauthorized(
                    "x-api-key header is required (or send the key as `Authorization: Bearer`)."
                        .into(),
                )),
                Some(token) => auth::authenticate(&state.pool, &state.keys, Some(&token)).await,
            };
            if let (Err(e), Some(protocol)) = (&authed, protocol) {
                crate::metrics::refused(protocol, e.status_code().as_str());
            }
            Ok(AnthropicKey(authed?))
        })
    }
}

/// The body as a JSON object (kept for a native upstream) and as typed Messages fields.
fn parse(bytes: &[u8]) -> Result<(Map<String, Value>, MessagesRequest), AnthropicError> {
    let map: Map<String, Value> = crate::api::from_json(bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "There was an error parsing the body of your request: {e}"
        ))
    })?;
    let typed = serde_json::from_value(Value::Object(map.clone()))
        .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
    Ok((map, typed))
}

/// The client headers an Anthropic upstream needs, forwarded as they came.
fn native_headers(req: &HttpRequest) -> Vec<(&'static str, String)> {
    let version =
        header(req, "anthropic-version").unwrap_or_else(|| DEFAULT_ANTHROPIC_VERSION.to_owned());
    let mut headers = vec![("anthropic-version", version)];
    if let Some(beta) = header(req, "anthropic-beta") {
        headers.push(("anthropic-beta", beta));
    }
    headers
}

/// The SDKs read the request id from `request-id` (no `x-`); mirror `x-request-id` there.
fn mirror_request_id(resp: &mut HttpResponse) {
    if let Some(id) = resp.headers().get("x-request-id").cloned() {
        resp.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("request-id"),
            id,
        );
    }
}

/// Whether `model` names something this gateway can serve: `auto`, a tier, an alias, or a
/// model an enabled provider serves (a catalogue model without its provider is not).
fn servable(state: &AppState, model: &str) -> bool {
    match state.router.resolve(Some(model)) {
        Ok(Target::Model(name)) => state.router.providers().any(|p| p.serves(&name)),
        Ok(_) => true,
        Err(_) => false,
    }
}

/// `POST /v1/messages`.
pub async fn create(
    req: HttpRequest,
    key: AnthropicKey,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
    body: Result<web::Bytes, actix_web::Error>,
) -> Result<HttpResponse, AnthropicError> {
    let max = state.config.server.max_body_bytes;
    let body = body.map_err(|e| super::refused("messages", proto::from_actix(e, max)))?;
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
    received.log_failure("messages", &authed, resp.status().as_u16());
    Ok(resp)
}

async fn serve(
    req: &HttpRequest,
    AnthropicKey(key): AnthropicKey,
    state: &web::Data<AppState>,
    client: &web::Data<awc::Client>,
    received: &Received,
    body: &[u8],
) -> Result<HttpResponse, AnthropicError> {
    let (raw, wire) = parse(body)?;
    proto::validate(&wire)?;
    let model = proto::route_model(&wire.model, |m| servable(state, m));
    let chat = proto::decode(&wire, model)?;
    let stream = wire.stream.unwrap_or(false);
    let mut hints = protocols::hints(req);
    if hints.session.is_none() {
        hints.session = header(req, "x-claude-code-session-id");
    }
    let ln = req.app_data::<web::Data<LightningHttp>>();
    let ctx = Ctx {
        state,
        client,
        lightning: ln.map(|l| &l.0),
        request: req,
        received,
    };
    let inbound = Inbound {
        chat,
        stream,
        hints,
        native: Some(NativeBody {
            dialect: Dialect::Anthropic,
            body: raw,
            headers: native_headers(req),
            end_user: String::new(),
        }),
        protocol: "messages",
    };
    let mut resp = match pipeline::run(&ctx, &key, inbound).await? {
        Outcome::Json {
            completion,
            headers,
        } => {
            let mut resp = HttpResponse::Ok()
                .content_type("application/json")
                .body(proto::completion_bytes(completion)?);
            headers.apply(&mut resp);
            resp
        }
        Outcome::Stream { relay, headers } => {
            let meta = relay.meta();
            let encoder = MessagesEncoder::new(meta.model.clone(), meta.prompt_estimate);
            let events = protocols::sse_stream(relay, encoder);
            let mut resp = protocols::frame::response(events);
            headers.apply(&mut resp);
            resp
        }
    };
    mirror_request_id(&mut resp);
    Ok(resp)
}

/// `POST /v1/messages/count_tokens`. A local estimate (Pura's ~4 characters per token over the
/// system prompt, messages and tool definitions), not the upstream's tokenizer: no upstream
/// call is made and nothing is billed.
pub async fn count_tokens(
    _key: AnthropicKey,
    state: web::Data<AppState>,
    body: Result<web::Bytes, actix_web::Error>,
) -> Result<HttpResponse, AnthropicError> {
    let max = state.config.server.max_body_bytes;
    let body = body.map_err(|e| super::refused("messages", proto::from_actix(e, max)))?;
    let (raw, wire) = parse(&body)?;
    let chars = proto::prompt_chars(&wire, &raw);
    let input_tokens = crate::money::estimate_tokens(chars).max(1);
    Ok(HttpResponse::Ok().json(TokenCount { input_tokens }))
}

/// Whether a request is an Anthropic client's (it sends `anthropic-version`).
pub fn is_anthropic(ctx: &actix_web::guard::GuardContext<'_>) -> bool {
    ctx.head().headers().contains_key("anthropic-version")
}

/// `GET /v1/models` for Anthropic clients: `auto`, aliases and every enabled model in
/// Anthropic's list shape (Claude Code lists the ids starting with `claude`).
pub async fn models(_key: AnthropicKey, state: web::Data<AppState>) -> HttpResponse {
    let data: Vec<ModelInfo> = state
        .router
        .model_ids()
        .into_iter()
        .map(|(id, _)| ModelInfo {
            kind: "model",
            display_name: id.clone(),
            id,
            created_at: "2025-01-01T00:00:00Z",
        })
        .collect();
    let list = ModelList {
        first_id: data.first().map(|m| m.id.clone()),
        last_id: data.last().map(|m| m.id.clone()),
        data,
        has_more: false,
    };
    HttpResponse::Ok().json(list)
}

/// `HEAD /`: Claude Code checks the base URL answers before its first request.
pub async fn head() -> HttpResponse {
    HttpResponse::Ok().finish()
}
