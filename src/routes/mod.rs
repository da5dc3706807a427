//! Every route, wired in one place so the whole surface reads at a glance. Handlers are thin:
//! they extract (`extract.rs`: the key, the admin token), call a component of `AppState` (the
//! wallet, the budgets, the router, `db::run`) and answer a typed view (`api/views.rs`).

pub mod account;
pub mod admin;
pub mod chat;
pub mod console;
pub mod extract;
pub mod health;
pub mod keys;
pub mod limits;
pub mod me;
pub mod messages;
pub mod metrics;
pub mod models;
pub mod report;
pub mod responses;
pub mod views;
pub mod wallet;

use actix_web::web;

/// Registers all routes (used by `main` and by tests).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(console::index))
        .route("/", web::head().to(messages::head))
        .route("/static/console.js", web::get().to(console::script))
        .route("/static/console.css", web::get().to(console::style))
        .route("/health", web::get().to(health::health))
        .route("/ready", web::get().to(health::ready))
        .route("/metrics", web::get().to(metrics::scrape))
        .route(
            "/v1/models",
            web::get()
                .guard(actix_web::guard::fn_guard(messages::is_anthropic))
                .to(messages::models),
        )
        .route("/v1/models", web::get().to(models::list))
        .route("/api/models", web::get().to(models::list))
        .route("/v1/chat/completions", web::post().to(chat::openai))
        .route("/api/chat/completions", web::post().to(chat::openai))
        .route("/api/chat", web::post().to(chat::native))
        .route("/v1/responses", web::post().to(responses::create))
        .route("/api/responses", web::post().to(responses::create))
        .route("/v1/messages", web::post().to(messages::create))
        .route(
            "/v1/messages/count_tokens",
            web::post().to(messages::count_tokens),
        )
        .route("/api/keys", web::post().to(keys::create))
        .route("/api/keys/me", web::get().to(me::me))
        .route("/api/keys/me", web::patch().to(me::update))
        .route("/api/keys/me", web::delete().to(me::disable))
        .route("/api/keys/me/rotate", web::post().to(me::rotate))
        .route("/api/wallet/balance", web::get().to(me::balance))
        .route("/api/account", web::get().to(account::show))
        .route("/api/account/keys/{id}", web::patch().to(account::update))
        .route("/api/account/keys/{id}", web::delete().to(account::disable))
        .route(
            "/api/account/keys/{id}/rotate",
            web::post().to(account::rotate),
        )
        .route("/api/report", web::get().to(report::report))
        .route("/api/wallet/fund", web::post().to(wallet::fund))
        .route("/api/wallet/status", web::get().to(wallet::status))
        .route("/invoice/{id}", web::get().to(wallet::page))
        .route("/api/admin/keys", web::get().to(admin::list))
        .route("/api/admin/keys/{id}", web::patch().to(admin::update))
        .route("/api/admin/keys/{id}/credit", web::post().to(admin::credit));
}
