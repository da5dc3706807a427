//! `GET /metrics`: every series of [`crate::metrics`] in the Prometheus text format, on the
//! main port, or only on `server.metrics_bind` when that is set (`dedicated`). The circuit
//! gauges are refreshed from the providers' published state here, at scrape time, so the
//! request path never touches them.

use actix_web::{web, HttpResponse};

use crate::error::ApiError;
use crate::state::AppState;

/// `/metrics` on the main port: 404 when the metrics have a bind address of their own.
pub async fn scrape(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if !state.config.server.metrics_bind.is_empty() {
        return Err(ApiError::NotFound(
            "Metrics are served on server.metrics_bind.".into(),
        ));
    }
    Ok(dedicated(state).await)
}

/// `/metrics` on the server of `server.metrics_bind`.
pub async fn dedicated(state: web::Data<AppState>) -> HttpResponse {
    for (provider, gate) in state.router.gates() {
        crate::metrics::circuit(provider, gate as i64);
    }
    HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(crate::metrics::render())
}
