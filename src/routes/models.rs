//! `GET /v1/models` and `/api/models`: `auto`, its tier forms, aliases and every enabled model.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::auth::AuthedKey;
use crate::state::AppState;

pub async fn list(_key: AuthedKey, state: web::Data<AppState>) -> HttpResponse {
    let data: Vec<_> = state
        .router
        .model_ids()
        .into_iter()
        .map(|(id, owner)| json!({"id": id, "object": "model", "created": 0, "owned_by": owner}))
        .collect();
    HttpResponse::Ok().json(json!({"object": "list", "data": data}))
}
