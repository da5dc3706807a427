//! Request extractors that need the application state: the authenticated key (`AuthedKey`,
//! defined in `auth.rs`, which does the checking) and the admin token (`Admin`).

use std::future::{ready, Future, Ready};
use std::pin::Pin;

use actix_web::{dev::Payload, web, FromRequest, HttpRequest, ResponseError};

use crate::auth::{authenticate, bearer, secrets_equal, AuthedKey};
use crate::error::ApiError;
use crate::state::AppState;

impl FromRequest for AuthedKey {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<AuthedKey, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer(req).map(str::to_owned);
        let protocol = crate::pipeline::meta::protocol_of(req.path());
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("application state missing"))?;
            let authed = authenticate(&state.pool, &state.keys, token.as_deref()).await;
            if let (Err(e), Some(protocol)) = (&authed, protocol) {
                crate::metrics::refused(protocol, e.status_code().as_str());
            }
            authed.map(AuthedKey)
        })
    }
}

/// Proof that the request carried the admin token.
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Admin, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>();
        ready(
            match (state.and_then(|s| s.admin_token.as_ref()), bearer(req)) {
                (None, _) => Err(ApiError::Unauthorized(
                    "The admin API is disabled: set the admin token's environment variable.".into(),
                )),
                (Some(t), Some(given)) if secrets_equal(t.expose(), given) => Ok(Admin),
                _ => Err(ApiError::Unauthorized(
                    "A valid admin token is required.".into(),
                )),
            },
        )
    }
}
