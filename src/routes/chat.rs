//! The chat paths: `POST /v1/chat/completions`, `/api/chat/completions` (stream defaults to
//! false, as OpenAI) and Pura's `POST /api/chat` (stream defaults to true).

use std::time::Instant;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse, Responder};
use actix_web_lab::sse::Sse;

use crate::actors::budget::Reservation;
use crate::actors::budgets::Budgets;
use crate::api::{ChatRequest, Usage};
use crate::auth::AuthedKey;
use crate::error::ApiError;
use crate::lightning::{invoices, LightningHttp};
use crate::providers::Tier;
use crate::relay::{estimate_tokens, settle, usd, Meta, Relay};
use crate::routing::fallback::{self, Answer};
use crate::routing::policy::{self, TierBounds};
use crate::routing::{scorer, Target};
use crate::state::AppState;

/// Output tokens assumed for the reserved estimate when the client sets no cap.
const DEFAULT_OUTPUT_CAP: u64 = 4096;

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
    Ok(chat(req, key, state, client, body?.into_inner(), false).await?)
}

pub async fn native(
    req: HttpRequest,
    key: AuthedKey,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
    body: JsonBody,
) -> actix_web::Result<HttpResponse> {
    Ok(chat(req, key, state, client, body?.into_inner(), true).await?)
}

fn validate(body: &ChatRequest) -> Result<(), ApiError> {
    if body.messages.is_empty() {
        return Err(ApiError::bad_param(
            "messages",
            "`messages` must contain at least one message.",
        ));
    }
    if body.n == Some(0) {
        return Err(ApiError::bad_param("n", "`n` must be at least 1."));
    }
    if body.stream_options.is_some() && body.stream != Some(true) {
        return Err(ApiError::bad_param(
            "stream_options",
            "`stream_options` is only allowed when `stream` is true.",
        ));
    }
    Ok(())
}

async fn chat(
    req: HttpRequest,
    AuthedKey(key): AuthedKey,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
    body: ChatRequest,
    stream_default: bool,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    validate(&body)?;
    let stream = body.stream.unwrap_or(stream_default);
    let target = state.router.resolve(body.model.as_deref())?;
    let route = decide(&state, &target, &body, &req, &key.id)?;
    let candidates = state.router.plan(&target, route.tier)?;
    let prompt_chars: usize = body.messages.iter().map(|m| m.text().len()).sum();
    let max_out = body
        .max_output_tokens()
        .map_or(DEFAULT_OUTPUT_CAP, u64::from);
    // The worst case over every candidate, since a fallback may land on a pricier one.
    let worst = Usage::new(estimate_tokens(prompt_chars), max_out);
    let estimate = candidates
        .iter()
        .map(|c| c.provider.cost(&worst).get())
        .max()
        .unwrap_or(0);
    let ticket = match state.budgets.reserve(&key.id, estimate).await {
        Ok(t) => t,
        Err(ApiError::PaymentRequired { message, .. }) => {
            return Err(with_invoice(&req, &state, &key.id, message).await);
        }
        Err(e) => return Err(e),
    };
    let served = match fallback::run(&client, candidates, &body, stream).await {
        Ok(s) => s,
        Err(e) => {
            Budgets::release(&ticket);
            return Err(e);
        }
    };

    let meta = Meta {
        request_id: crate::ids::ordered_id("req_"),
        key_id: key.id.clone(),
        client_request_id: header(&req, "x-client-request-id"),
        upstream_request_id: served.upstream_request_id,
        provider: served.candidate.provider.clone(),
        model: served.candidate.model.clone(),
        started,
        stream,
        include_usage: body.wants_stream_usage(),
        prompt_estimate: estimate_tokens(prompt_chars),
        premium: state.router.premium(),
    };
    if let Some(session) = route.session {
        // Pin the conversation to the tier that actually served it.
        state.pins.record(&key.id, session, meta.provider.tier);
    }
    drop(key);
    let reservation = ticket.reservation.clone();
    match served.answer {
        Answer::Json(completion) => {
            let usage = completion
                .usage
                .unwrap_or_else(|| Usage::new(meta.prompt_estimate, 0));
            // An OpenAI-dialect answer is already the client's JSON: its bytes go out as they
            // came, without a parse and a re-serialisation.
            let body = match completion.raw {
                Some(raw) => raw,
                None => serde_json::to_vec(&completion.body)
                    .map_err(ApiError::internal)?
                    .into(),
            };
            let cost = meta.provider.cost(&usage).get();
            // Committed before the body leaves: a response the client saw is always billed.
            if !settle(&ticket, meta.row(&usage, "ok", None)).await {
                log::error!("request {}: settlement not committed", meta.request_id);
            }
            let mut resp = HttpResponse::Ok()
                .content_type("application/json")
                .body(body);
            let left = reservation.budget_remaining_micros + reservation.estimate_micros - cost;
            let savings = meta.premium_cost(&usage) - cost;
            pura_headers(
                &mut resp,
                &meta,
                &reservation,
                (cost, savings, left),
                route.score.as_deref(),
            );
            Ok(resp)
        }
        Answer::Stream(open) => {
            // The final cost travels in the last chunk; the header carries the reserved estimate.
            let relay = Relay::new(meta.clone(), ticket, served.candidate.actor.clone(), open);
            let mut resp = Sse::from_stream(relay.into_stream())
                .respond_to(&req)
                .map_into_boxed_body();
            let cost = reservation.estimate_micros;
            let left = reservation.budget_remaining_micros;
            let worst = Usage::new(meta.prompt_estimate, max_out);
            let savings = meta.premium_cost(&worst) - meta.provider.cost(&worst).get();
            pura_headers(
                &mut resp,
                &meta,
                &reservation,
                (cost, savings, left),
                route.score.as_deref(),
            );
            Ok(resp)
        }
    }
}

/// Where routing starts, and what the client is told about it.
struct Route {
    tier: Tier,
    /// `X-Pura-Score` for `auto` requests.
    score: Option<String>,
    /// The conversation to pin, for `auto` requests.
    session: Option<u64>,
}

/// `auto`: the scorer's tier, bounded by `X-Pura-Tier`, never below the conversation's pin.
/// A tier target (`auto:premium`, an alias to a tier) is that tier; a model ignores both.
fn decide(
    state: &AppState,
    target: &Target,
    body: &ChatRequest,
    req: &HttpRequest,
    key_id: &str,
) -> Result<Route, ApiError> {
    let bounds = TierBounds::parse(
        req.headers()
            .get("x-pura-tier")
            .and_then(|v| v.to_str().ok()),
    )?;
    match target {
        Target::Tier(t) => Ok(Route {
            tier: *t,
            score: None,
            session: None,
        }),
        Target::Model(_) => Ok(Route {
            tier: Tier::Mid,
            score: None,
            session: None,
        }),
        Target::Auto => {
            let score = scorer::score(body);
            let explicit = req
                .headers()
                .get("x-pura-session")
                .and_then(|v| v.to_str().ok());
            let session = policy::session_id(body, explicit);
            let pin = state.pins.get(key_id, session);
            let tier = bounds.apply(state.router.tier_for(score.value), pin);
            Ok(Route {
                tier,
                score: Some(policy::score_header(&score)),
                session: Some(session),
            })
        }
    }
}

/// A 402 that carries an invoice for `lightning.default_fund_sats` (reusing a pending one),
/// so that paying it is all the client has to do; without a working backend, the 402 says
/// how to fund instead.
async fn with_invoice(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    key_id: &str,
    message: String,
) -> ApiError {
    let Some(http) = req.app_data::<web::Data<LightningHttp>>() else {
        return ApiError::PaymentRequired {
            message,
            invoice: None,
        };
    };
    if state.lightning.is_none() {
        return ApiError::PaymentRequired {
            message,
            invoice: None,
        };
    }
    match invoices::for_payment_required(state, &http.0, key_id).await {
        Ok(inv) => ApiError::PaymentRequired {
            message: format!(
                "{message} This response carries an invoice of {} sats.",
                inv.amount_sats
            ),
            invoice: Some(Box::new(invoices::view(
                &inv,
                &crate::routes::wallet::base_url(req),
            ))),
        },
        Err(e) => {
            log::warn!("402 without an invoice for key {key_id}: {e}");
            ApiError::PaymentRequired {
                message,
                invoice: None,
            }
        }
    }
}

fn header(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(512).collect())
}

/// `money` is (cost, savings versus premium, budget left), in micro-dollars.
fn pura_headers(
    resp: &mut HttpResponse,
    meta: &Meta,
    r: &Reservation,
    money: (i64, i64, i64),
    score: Option<&str>,
) {
    let (cost, savings, budget_left) = money;
    let request_id = meta
        .upstream_request_id
        .as_deref()
        .unwrap_or(&meta.request_id);
    let pairs = [
        ("x-pura-provider", meta.provider.name.clone()),
        ("x-pura-model", meta.model.clone()),
        ("x-pura-cost", usd(cost)),
        ("x-pura-savings", usd(savings)),
        ("x-pura-tier", meta.provider.tier.as_str().to_owned()),
        ("x-pura-budget-remaining", usd(budget_left.max(0))),
        (
            "x-pura-free-requests-remaining",
            r.free_remaining.max(0).to_string(),
        ),
        ("x-request-id", request_id.to_owned()),
        ("x-ratelimit-limit-requests", r.rate.limit.to_string()),
        (
            "x-ratelimit-remaining-requests",
            r.rate.remaining.to_string(),
        ),
        (
            "x-ratelimit-reset-requests",
            format!("{}s", r.rate.reset.as_secs()),
        ),
    ];
    let headers = resp.headers_mut();
    for (name, value) in pairs {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
    if let Some(v) = score.and_then(|s| HeaderValue::from_str(s).ok()) {
        headers.insert(HeaderName::from_static("x-pura-score"), v);
    }
    if let Some(v) = meta
        .client_request_id
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        headers.insert(HeaderName::from_static("x-client-request-id"), v);
    }
}
