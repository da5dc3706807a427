//! `GET /health`: 200 when the database answers, 503 with the reason otherwise.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::db;
use crate::state::AppState;

pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.pool.clone();
    match web::block(move || db::ping(&pool)).await {
        Ok(Ok(())) => HttpResponse::Ok().json(json!({"status": "ok"})),
        Ok(Err(e)) => unavailable(&e.to_string()),
        Err(e) => unavailable(&e.to_string()),
    }
}

fn unavailable(reason: &str) -> HttpResponse {
    HttpResponse::ServiceUnavailable().json(json!({
        "status": "unavailable",
        "reason": reason,
        "error": {"message": format!("database unavailable: {reason}"), "type": "api_error", "param": null, "code": "unavailable"}
    }))
}
