//! `GET /health`: 200 when the database answers, 503 with the reason otherwise.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::db;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// `{"status":"ok"}`, or `"unavailable"` with the reason and the usual error object.
#[derive(Serialize)]
struct Health {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody>,
}

pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    match db::run(&state.pool, db::ping).await {
        Ok(()) => HttpResponse::Ok().json(Health {
            status: "ok",
            reason: None,
            error: None,
        }),
        Err(e) => {
            let reason = e.to_string();
            let error = ApiError::Unavailable(format!("database unavailable: {reason}")).body();
            HttpResponse::ServiceUnavailable().json(Health {
                status: "unavailable",
                reason: Some(reason),
                error: Some(error),
            })
        }
    }
}
