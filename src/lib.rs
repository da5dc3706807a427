//! Pura: a self-hosted, OpenAI-compatible LLM inference gateway. The module tree: `routes`
//! (thin handlers) over `state` (the components they reach), the chat path, `wallet`
//! (Lightning money in), `actors` (budgets, providers, the InvoiceWatcher), `cluster` (what
//! other replicas announce), `auth`, `lightning` (backends), `notify`, and at the bottom `db`
//! (all SQL; called, never calling out), `api` (wire types and views), `money`, `config`,
//! `ids`, `time`, `secret`, `shutdown` (the signal that ends live streams), and `metrics`
//! (the Prometheus series, a leaf any layer may call).
//! No two top-level modules import each other in a cycle (`tests/module_graph.rs`).

pub mod access;
pub mod actors;
pub mod api;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod db;
pub mod error;
pub mod fds;
pub mod ids;
pub mod lightning;
pub mod metrics;
pub mod money;
pub mod notify;
pub mod pipeline;
pub mod protocols;
pub mod providers;
pub mod routes;
pub mod routing;
pub mod secret;
pub mod sha;
pub mod shutdown;
pub mod state;
pub mod telemetry;
pub mod time;
pub mod wallet;

use actix_web::web;

/// Body limits, JSON and query error handlers, and every route. Used by `main` and tests.
pub fn configure(cfg: &mut web::ServiceConfig, max_body_bytes: usize) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(max_body_bytes)
            .error_handler(error::json_error_handler),
    )
    .app_data(web::PayloadConfig::default().limit(max_body_bytes))
    .app_data(web::QueryConfig::default().error_handler(error::query_error_handler));
    routes::configure(cfg);
}
