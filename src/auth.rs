//! Bearer-key authentication. Keys are `pura_` + 40 base62 characters; the database keeps only
//! their SHA-256. Lookups go through an in-memory cache so the request path normally makes no
//! database round trip; a miss reads the database once through `web::block`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::db::models::api_key::{self, ApiKey};
use crate::error::ApiError;
use crate::state::AppState;

pub const KEY_PREFIX: &str = "pura_";
const KEY_RANDOM_LEN: usize = 40;

/// An authenticated key, as handlers receive it.
#[derive(Debug, Clone)]
pub struct AuthedKey(pub Arc<ApiKey>);

/// Hash cache: key hash -> key row. Disabled keys are cached too, so they fail fast.
#[derive(Default)]
pub struct KeyCache {
    map: RwLock<HashMap<String, (Arc<ApiKey>, Instant)>>,
}

/// A cached key is re-read from the database after this long, so a key disabled or rotated on
/// another replica stops working here within this bound.
const KEY_CACHE_TTL: Duration = Duration::from_secs(30);

impl KeyCache {
    pub fn get(&self, hash: &str) -> Option<Arc<ApiKey>> {
        let map = self.map.read().ok()?;
        let (key, at) = map.get(hash)?;
        (at.elapsed() < KEY_CACHE_TTL).then(|| key.clone())
    }

    /// Drops every cached hash of a key id (another replica changed or rotated it).
    pub fn forget_id(&self, id: &str) {
        if let Ok(mut m) = self.map.write() {
            m.retain(|_, (k, _)| k.id != id);
        }
    }

    /// Drops a hash (a rotated-away secret) so it is refused at once.
    pub fn forget(&self, hash: &str) {
        if let Ok(mut m) = self.map.write() {
            m.remove(hash);
        }
    }

    pub fn put(&self, key: ApiKey) -> Arc<ApiKey> {
        let key = Arc::new(key);
        if let Ok(mut m) = self.map.write() {
            m.insert(key.key_hash.clone(), (key.clone(), Instant::now()));
        }
        key
    }
}

/// A new random key (shown to the client once) and its hash (stored).
pub fn mint_key() -> (String, String) {
    let key = format!("{KEY_PREFIX}{}", crate::ids::random_alnum(KEY_RANDOM_LEN));
    let hash = hash_key(&key);
    (key, hash)
}

pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The bearer token of a request, if any.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares secrets in constant time (the admin token, key hashes).
pub fn secrets_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

pub async fn authenticate(
    state: web::Data<AppState>,
    token: Option<String>,
) -> Result<AuthedKey, ApiError> {
    let Some(token) = token else {
        return Err(ApiError::Unauthorized(
            "You didn't provide an API key. Send it as `Authorization: Bearer pura_…`.".into(),
        ));
    };
    let hash = hash_key(&token);
    let key = match state.keys.get(&hash) {
        Some(k) => Some(k),
        None => {
            let pool = state.pool.clone();
            let lookup = hash.clone();
            let found = web::block(move || {
                let mut conn = pool.get()?;
                api_key::find_by_hash(&mut conn, &lookup)
            })
            .await
            .map_err(ApiError::internal)?
            .map_err(|e| ApiError::Unavailable(format!("Database unavailable: {e}")))?;
            found.map(|k| state.keys.put(k))
        }
    };
    // The map lookup found the row by hash; comparing the hashes again in constant time keeps
    // the final accept/reject decision free of data-dependent timing.
    match key {
        Some(k) if secrets_equal(&k.key_hash, &hash) && !k.disabled => Ok(AuthedKey(k)),
        Some(k) if k.disabled => Err(ApiError::Unauthorized(
            "This API key has been disabled.".into(),
        )),
        _ => Err(ApiError::Unauthorized("Incorrect API key provided.".into())),
    }
}

impl FromRequest for AuthedKey {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<AuthedKey, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer(req).map(str::to_owned);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("application state missing"))?;
            authenticate(state, token).await
        })
    }
}
