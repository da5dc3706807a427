//! `GET /v1/models` and `/api/models`: `auto`, its tier forms, aliases and every enabled model.

use actix_web::{web, HttpResponse};

use crate::api::breakdown::ModelPrice;
use crate::api::views::{List, ModelView};
use crate::auth::AuthedKey;
use crate::state::AppState;

pub async fn list(_key: AuthedKey, state: web::Data<AppState>) -> HttpResponse {
    let data = state
        .router
        .model_ids()
        .into_iter()
        .map(|(id, owned_by)| ModelView {
            pricing: price_of(&state, &id),
            id,
            object: "model",
            created: 0,
            owned_by,
        })
        .collect();
    HttpResponse::Ok().json(List::of(data))
}

/// The price of the first configured provider that serves `model` (`None` for `auto`, its tier
/// forms and aliases, which resolve to a provider per request).
fn price_of(state: &AppState, model: &str) -> Option<ModelPrice> {
    let p = state.router.providers().find(|p| p.serves(model))?;
    Some(ModelPrice {
        input_per_1k_usd: p.price.input_per_1k,
        output_per_1k_usd: p.price.output_per_1k,
        cached_input_per_1k_usd: p.price.cached_input_per_1k,
    })
}
