//! Every route, wired in one place so the whole surface reads at a glance.

pub mod chat;
pub mod health;
pub mod keys;
pub mod models;

use actix_web::web;

/// Registers all routes (used by `main` and by tests).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health::health))
        .route("/v1/models", web::get().to(models::list))
        .route("/api/models", web::get().to(models::list))
        .route("/v1/chat/completions", web::post().to(chat::openai))
        .route("/api/chat/completions", web::post().to(chat::openai))
        .route("/api/chat", web::post().to(chat::native))
        .route("/api/keys", web::post().to(keys::create));
}
