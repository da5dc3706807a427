//! Every route, wired in one place so the whole surface reads at a glance. Handlers are thin:
//! they extract (`extract.rs`: the key, the admin token), call a component of `AppState` (the
//! wallet, the budgets, the router, `db::run`) and answer a typed view (`api/views.rs`).

pub mod account;
pub mod admin;
pub mod breakdown;
pub mod chat;
pub mod console;
mod detach;
pub mod extract;
pub mod health;
pub mod history;
pub mod keys;
pub mod limits;
pub mod me;
pub mod messages;
pub mod metrics;
pub mod models;
pub mod openapi;
pub mod report;
pub mod requests;
pub mod responses;
pub mod views;
pub mod wallet;

use actix_web::web;

/// Registers all routes (used by `main` and by tests). One resource per path, so a path
/// asked with a method it does not take is a 405 (enveloped by `error::rewrite_plain_errors`),
/// not a 404.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use web::{delete, get, head, patch, post, resource};
    let anthropic = actix_web::guard::fn_guard(messages::is_anthropic);
    // The pipeline's paths first: the router tries resources in order, and these carry the
    // traffic (each path is exact, so the order changes no match).
    cfg.service(resource("/v1/chat/completions").route(post().to(chat::openai)))
        .service(resource("/api/chat/completions").route(post().to(chat::openai)))
        .service(resource("/api/chat").route(post().to(chat::native)))
        .service(resource("/v1/responses").route(post().to(responses::create)))
        .service(resource("/api/responses").route(post().to(responses::create)))
        .service(resource("/v1/messages").route(post().to(messages::create)))
        .service(
            resource("/")
                .route(get().to(console::index))
                .route(head().to(messages::head)),
        )
        .service(resource("/static/console.js").route(get().to(console::script)))
        .service(resource("/static/console.css").route(get().to(console::style)))
        .service(resource("/health").route(get().to(health::health)))
        .service(resource("/ready").route(get().to(health::ready)))
        .service(resource("/metrics").route(get().to(metrics::scrape)))
        .service(resource("/openapi.json").route(get().to(openapi::serve)))
        .service(
            resource("/v1/models")
                .route(get().guard(anthropic).to(messages::models))
                .route(get().to(models::list)),
        )
        .service(resource("/api/models").route(get().to(models::list)))
        .service(resource("/v1/messages/count_tokens").route(post().to(messages::count_tokens)))
        .service(resource("/api/keys").route(post().to(keys::create)))
        .service(
            resource("/api/keys/me")
                .route(get().to(me::me))
                .route(patch().to(me::update))
                .route(delete().to(me::disable)),
        )
        .service(resource("/api/keys/me/rotate").route(post().to(me::rotate)))
        .service(resource("/api/wallet/balance").route(get().to(me::balance)))
        .service(resource("/api/wallet/history").route(get().to(history::history)))
        .service(resource("/api/account").route(get().to(account::show)))
        .service(
            resource("/api/account/keys/{id}")
                .route(patch().to(account::update))
                .route(delete().to(account::disable)),
        )
        .service(resource("/api/account/keys/{id}/rotate").route(post().to(account::rotate)))
        .service(resource("/api/report").route(get().to(report::report)))
        .service(resource("/api/requests").route(get().to(requests::list)))
        .service(resource("/api/wallet/fund").route(post().to(wallet::fund)))
        .service(resource("/api/wallet/status").route(get().to(wallet::status)))
        .service(resource("/invoice/{id}").route(get().to(wallet::page)))
        .service(resource("/api/admin/keys").route(get().to(admin::list)))
        .service(resource("/api/admin/keys/{id}").route(patch().to(admin::update)))
        .service(resource("/api/admin/keys/{id}/credit").route(post().to(admin::credit)));
}

/// A pipeline path's request refused before its body could be read (too large, too slow, cut
/// off): counted in `pura_requests_total` with no provider, as every refusal is.
fn refused<E: actix_web::ResponseError>(protocol: &str, e: E) -> E {
    crate::metrics::refused(protocol, e.status_code().as_str());
    e
}

/// How long a reader of usage or money waits for the settlement journal to be folded.
const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Before reading usage or money from the database: every request answered so far is in it
/// (the SQLite journal folded in). A 503 when the writer cannot commit meanwhile (the
/// database is failing): a report that silently missed recent requests would mislead.
async fn settled(state: &crate::state::AppState) -> Result<(), crate::error::ApiError> {
    match tokio::time::timeout(SETTLE_WAIT, state.budgets.writer().settled()).await {
        Ok(true) => Ok(()),
        _ => Err(crate::error::ApiError::Unavailable(
            "Recent usage is still being recorded; retry shortly.".into(),
        )),
    }
}
