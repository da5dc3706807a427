//! `GET /metrics`: every series of [`crate::metrics`] in the Prometheus text format. The
//! circuit gauges are refreshed from the providers' published state here, at scrape time,
//! so the request path never touches them.

use actix_web::{web, HttpResponse};

use crate::state::AppState;

pub async fn scrape(state: web::Data<AppState>) -> HttpResponse {
    for (provider, gate) in state.router.gates() {
        crate::metrics::circuit(provider, gate as i64);
    }
    HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(crate::metrics::render())
}
