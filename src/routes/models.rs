//! `GET /v1/models` and `/api/models`: `auto`, its tier forms, aliases and every enabled model.

use actix_web::{web, HttpResponse};

use crate::api::views::{List, ModelView};
use crate::auth::AuthedKey;
use crate::state::AppState;

pub async fn list(_key: AuthedKey, state: web::Data<AppState>) -> HttpResponse {
    let data = state
        .router
        .model_ids()
        .into_iter()
        .map(|(id, owned_by)| ModelView {
            id,
            object: "model",
            created: 0,
            owned_by,
        })
        .collect();
    HttpResponse::Ok().json(List::of(data))
}
