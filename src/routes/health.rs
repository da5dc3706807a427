//! `GET /health`: 200 when the database answers, 503 with the reason otherwise.
//! `GET /ready`, for load balancers: 200 when the database answers and at least one provider
//! can take a request (its circuit is not open); 503 in the error envelope otherwise.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::actors::provider::Gate;
use crate::db;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// `{"status":"ok"}`, or `"unavailable"` with the reason and the usual error object.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody>,
}

pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    // `db::run` fails at once while the health probe sees the database down.
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

/// How long `/ready` waits for the database: a load balancer's probe must not hang on a
/// pool that is out of connections.
const READY_DB_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Serialize, utoipa::ToSchema)]
pub struct Ready {
    status: &'static str,
}

pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match tokio::time::timeout(READY_DB_TIMEOUT, db::run(&state.pool, db::ping)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(ApiError::Unavailable(format!("Database unavailable: {e}"))),
        Err(_) => {
            return Err(ApiError::Unavailable(format!(
                "Database did not answer within {READY_DB_TIMEOUT:?}."
            )))
        }
    }
    let mut gates = state.router.gates().peekable();
    if gates.peek().is_none() {
        return Err(ApiError::Unavailable("No provider is configured.".into()));
    }
    // Half-open counts as ready: its probe is how the circuit closes again.
    if gates.all(|(_, gate)| gate == Gate::Open) {
        return Err(ApiError::Unavailable(
            "Every provider's circuit is open.".into(),
        ));
    }
    Ok(HttpResponse::Ok().json(Ready { status: "ready" }))
}
