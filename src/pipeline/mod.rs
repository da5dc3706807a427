//! The one request pipeline. Whatever protocol the client speaks, a front end in
//! [`protocols`](crate::protocols) decodes it into an [`Inbound`] (a canonical OpenAI chat
//! request plus routing hints) and this module owns it end to end:
//! resolve the target → decide the tier ([`decide`]) → plan candidates → quote and reserve
//! (money) → call with fallback ([`fallback`], peeking before commit) → relay ([`relay`]) →
//! settle. What comes out is a settled canonical completion or a stream of canonical events,
//! with the metadata the `X-Pura-*` headers need ([`meta`]); the front end encodes both.

pub mod decide;
pub mod fallback;
pub mod meta;
pub mod payment;
pub mod relay;

use std::time::Instant;

use crate::api::{ChatRequest, Usage};
use crate::db::models::api_key::ApiKey;
use crate::db::usage_writer;
use crate::error::ApiError;
use crate::money::{self, Micros};
use crate::providers::transport::Answer;
use crate::providers::{Completion, NativeBody};
use crate::state::AppState;
use meta::{Headers, Meta};
use relay::Relay;

/// What a request runs with: the process state, this worker's upstream client, and where the
/// gateway is reachable (for invoice links).
pub struct Ctx<'a> {
    pub state: &'a actix_web::web::Data<AppState>,
    pub client: &'a awc::Client,
    /// The worker's Lightning HTTP client, when the backend is configured.
    pub lightning: Option<&'a awc::Client>,
    /// The client's request, for what only some answers need (the base URL of an invoice link,
    /// computed on a 402 only).
    pub request: &'a actix_web::HttpRequest,
    /// The request's id and body hash (see [`meta::Received`]).
    pub received: &'a meta::Received,
}

/// A canonical request, as every front end hands it over.
pub struct Inbound {
    pub chat: ChatRequest,
    pub stream: bool,
    pub hints: Hints,
    /// The client's body, for an upstream that speaks the client's protocol.
    pub native: Option<NativeBody>,
    /// `chat`, `responses` or `messages`, recorded on the usage row.
    pub protocol: &'static str,
}

/// What the client said about routing and tracing, from headers or the body.
#[derive(Debug, Default)]
pub struct Hints {
    /// `X-Pura-Tier`: force or bound the tier of an `auto` request.
    pub tier: Option<String>,
    /// An explicit conversation id (`X-Pura-Session`, or an agent's own session id).
    pub session: Option<String>,
    pub client_request_id: Option<String>,
}

/// The pipeline's result: a settled answer, or a stream whose relay settles at its end.
pub enum Outcome {
    /// Already committed to the ledger: the response may go out.
    Json {
        completion: Completion,
        headers: Headers,
    },
    Stream {
        relay: Box<Relay>,
        headers: Headers,
    },
}

/// Runs one request for `key`.
pub async fn run(ctx: &Ctx<'_>, key: &ApiKey, req: Inbound) -> Result<Outcome, ApiError> {
    let (protocol, started) = (req.protocol, Instant::now());
    ctx.received.entered.set(true);
    let outcome = serve(ctx, key, req, started).await;
    if let Some(trace) = &ctx.received.trace {
        let status = match &outcome {
            Ok(_) => actix_web::http::StatusCode::OK,
            Err(e) => actix_web::ResponseError::status_code(e),
        };
        trace.finish(
            "pura.request",
            vec![
                ("pura.request_id", ctx.received.request_id.clone()),
                ("http.route", ctx.received.route.to_owned()),
                ("pura.protocol", protocol.to_owned()),
                ("http.response.status_code", status.as_str().to_owned()),
            ],
        );
    }
    // A served request is counted where it settles (below, or at a stream's end); a refused or
    // failed one here, with no provider.
    if let Err(e) = &outcome {
        let status = actix_web::ResponseError::status_code(e);
        let none = crate::metrics::NONE;
        crate::metrics::request(
            protocol,
            status.as_str(),
            none,
            none,
            none,
            started.elapsed(),
        );
    }
    outcome
}

async fn serve(
    ctx: &Ctx<'_>,
    key: &ApiKey,
    mut req: Inbound,
    started: Instant,
) -> Result<Outcome, ApiError> {
    let state = ctx.state;
    // Nothing could be billed: refuse before the upstream is paid for an answer.
    if crate::db::health::is_down() {
        return Err(ApiError::Unavailable(
            "The database is unavailable; retry the request shortly.".into(),
        ));
    }
    // Upstreams see one stable id per key as the end user, never an id the client chose.
    let end_user = crate::providers::outbound::end_user(&key.id);
    if let Some(native) = req.native.as_mut() {
        native.end_user.clone_from(&end_user);
    }
    req.chat.user = Some(end_user);
    let trace = ctx.received.trace.as_ref();
    let routing_started = trace.map(|_| std::time::SystemTime::now());
    let target = state.router.resolve(req.chat.model.as_deref())?;
    let route = decide::decide(state, &target, &req.chat, &req.hints, &key.id).await?;
    let candidates = state.router.plan(&target, route.tier)?;
    if let (Some(t), Some(s)) = (trace, routing_started) {
        let mut attributes = vec![("pura.tier", route.tier.as_str().to_owned())];
        attributes.extend(route.score.clone().map(|v| ("pura.score", v)));
        attributes.push(("pura.candidates", candidates.len().to_string()));
        t.child("pura.routing", s, attributes);
    }
    let prompt_chars = req.chat.prompt_chars();
    let max_out = req.chat.max_output_tokens().map(u64::from);
    let estimate = money::reservation(
        prompt_chars,
        max_out,
        candidates.iter().map(|c| &c.provider.price),
    );
    let ticket = match state.budgets.reserve(key, estimate.get()).await {
        Ok(t) => t,
        Err(ApiError::PaymentRequired { message, .. }) => {
            return Err(payment::required(ctx, key, message).await);
        }
        Err(e) => return Err(e),
    };
    let served = match fallback::run(
        ctx.client,
        candidates,
        &req.chat,
        req.native.as_ref(),
        req.stream,
        trace,
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            state.budgets.release(&ticket).await;
            return Err(e);
        }
    };
    let meta = Meta {
        request_id: ctx.received.request_id.clone(),
        body_sha256: ctx.received.body_sha256,
        route: ctx.received.route,
        trace: ctx.received.trace,
        key_id: key.id.clone(),
        account_id: key.account_id.clone(),
        client_request_id: req.hints.client_request_id,
        upstream_request_id: served.upstream_request_id,
        provider: served.candidate.provider.clone(),
        model: served.candidate.model.clone(),
        started,
        stream: req.stream,
        prompt_estimate: money::estimate_tokens(prompt_chars),
        premium: state.router.premium(),
        score: route.score,
        protocol: req.protocol,
    };
    if let Some(session) = route.session {
        // Pin the conversation to the tier that actually served it.
        state
            .pins
            .remember(&key.id, session, meta.provider.tier)
            .await;
    }
    let reservation = ticket.reservation.clone();
    match served.answer {
        Answer::Json(completion) => {
            let usage = completion
                .usage
                .unwrap_or_else(|| Usage::new(meta.prompt_estimate, 0));
            let cost = meta.provider.cost(&usage);
            let settling = trace.map(|_| std::time::SystemTime::now());
            // Committed before the body leaves: a response the client saw is always billed,
            // and one whose bill cannot be written is not seen (withdrawn, answered 503).
            let row = meta.row(&usage, "ok", None);
            if relay::settle(&ticket, row, true).await != usage_writer::Outcome::Committed {
                log::error!(
                    "request {}: settlement not committed; answered 503",
                    meta.request_id
                );
                return Err(ApiError::Unavailable(
                    "The database is unavailable, so this request could not be recorded; it was \
                     not charged. Retry it shortly."
                        .into(),
                ));
            }
            if let (Some(t), Some(s)) = (trace, settling) {
                t.child(
                    "pura.settlement",
                    s,
                    vec![("pura.cost_usd", cost.usd().to_string())],
                );
            }
            meta.observe(&usage, cost, None);
            let left =
                Micros(reservation.budget_remaining_micros + reservation.estimate_micros) - cost;
            let savings = meta.premium_cost(&usage) - cost;
            let headers = meta.headers(&reservation, cost, savings, left);
            Ok(Outcome::Json {
                completion,
                headers,
            })
        }
        Answer::Stream(open) => {
            // The final cost travels in the stream's end; the header carries the reserved estimate.
            let worst = Usage::new(
                meta.prompt_estimate,
                max_out.unwrap_or(money::DEFAULT_OUTPUT_CAP),
            );
            let savings = meta.premium_cost(&worst) - meta.provider.cost(&worst);
            let headers = meta.headers(
                &reservation,
                Micros(reservation.estimate_micros),
                savings,
                Micros(reservation.budget_remaining_micros),
            );
            let actor = served.candidate.actor.clone();
            let probe = served.candidate.probe;
            let cut = state.shutdown.signal();
            let relay = Box::new(Relay::new(meta, ticket, (actor, probe), open, cut));
            Ok(Outcome::Stream { relay, headers })
        }
    }
}
