//! Bearer-key authentication. Keys are `pura_` + 40 base62 characters; the database keeps only
//! their SHA-256, and [`authenticate`] compares hashes in constant time. Lookups go through
//! an in-memory [`KeyCache`] so the request path normally makes no database round trip; a miss
//! reads the database once. This module is given the pool and the cache; the HTTP extractor
//! that feeds it a request (`impl FromRequest for AuthedKey`) is in `routes/extract.rs`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix_web::{http::header, HttpRequest};
use subtle::ConstantTimeEq;

use crate::db::models::api_key::{self, ApiKey};
use crate::db::{self, Pool};
use crate::error::ApiError;
use crate::sha;

pub const KEY_PREFIX: &str = "pura_";
const KEY_RANDOM_LEN: usize = 40;

/// An authenticated key, as handlers receive it (extracted by `routes/extract.rs`).
#[derive(Debug, Clone)]
pub struct AuthedKey(pub Arc<ApiKey>);

/// Key hash -> the key row and when it was read.
type Entries = HashMap<String, (Arc<ApiKey>, Instant), foldhash::fast::RandomState>;

/// Hash cache: key hash -> key row. Disabled keys are cached too, so they fail fast. Cloning
/// shares the cache (the cluster listener holds a clone).
#[derive(Default, Clone)]
pub struct KeyCache {
    map: Arc<RwLock<Entries>>,
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
    sha::as_str(&sha::hex(key.as_bytes())).to_owned()
}

/// Tokens a worker remembers the hash of, before it forgets them all and starts again.
const DIGEST_MEMO_LEN: usize = 4096;

/// Each worker's memo of the SHA-256 of the tokens it has seen, keyed by a BLAKE3 MAC of the
/// token under a key of its own, drawn at random: the memo holds no token, only what the
/// database holds too (their hashes), and a token finds another's entry only by forging that
/// MAC. Used where the CPU has no SHA instructions (see [`sha`]): there a token's SHA-256 is
/// about 2,500 instructions even by `ring`'s assembly, and the MAC about 650 (callgrind). With
/// them, SHA-256 itself is faster than the MAC (70 ns against 95 for a token, natively).
struct DigestMemo {
    mac_key: [u8; 32],
    digests: HashMap<[u8; 32], [u8; 64], foldhash::fast::RandomState>,
}

thread_local! {
    static DIGESTS: std::cell::RefCell<DigestMemo> = std::cell::RefCell::new(DigestMemo {
        mac_key: rand::random(),
        digests: HashMap::default(),
    });
}

/// A token's SHA-256 hex (what [`hash_key`] returns).
fn token_hash(token: &str) -> [u8; 64] {
    if sha::hardware() {
        sha::hex(token.as_bytes())
    } else {
        remembered_hash(token)
    }
}

/// A token's SHA-256 hex from this worker's memo when it has it.
fn remembered_hash(token: &str) -> [u8; 64] {
    DIGESTS.with(|memo| {
        let mut memo = memo.borrow_mut();
        let mac = *blake3::keyed_hash(&memo.mac_key, token.as_bytes()).as_bytes();
        if let Some(hex) = memo.digests.get(&mac) {
            return *hex;
        }
        let hex = sha::hex(token.as_bytes());
        if memo.digests.len() >= DIGEST_MEMO_LEN {
            memo.digests.clear();
        }
        memo.digests.insert(mac, hex);
        hex
    })
}

/// The bearer token of a request, if any.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    // What `to_str` accepts (a header value holds no control byte but tab, so: ASCII), checked
    // a word at a time: `to_str` looks at each byte in turn, a third of this function's cost.
    let value = req.headers().get(header::AUTHORIZATION)?.as_bytes();
    let value = std::str::from_utf8(value).ok().filter(|v| v.is_ascii())?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares secrets in constant time (the admin token, key hashes), eight bytes a step:
/// `subtle` compares a byte slice with an optimisation barrier per byte, about 600 instructions
/// for a key hash's 64, on every request.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    let word = |c: &[u8]| {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        u64::from_le_bytes(w)
    };
    let mut same = subtle::Choice::from(1);
    for (x, y) in a.as_bytes().chunks(8).zip(b.as_bytes().chunks(8)) {
        same &= word(x).ct_eq(&word(y));
    }
    a.len() == b.len() && bool::from(same)
}

/// The key behind a bearer token: the cache first, the database once on a miss. The error is
/// the 401 (or the 503 of a database that cannot be reached) to answer with.
pub async fn authenticate(
    pool: &Pool,
    keys: &KeyCache,
    token: Option<&str>,
) -> Result<Arc<ApiKey>, ApiError> {
    let Some(token) = token else {
        return Err(ApiError::Unauthorized(
            "You didn't provide an API key. Send it as `Authorization: Bearer pura_…`.".into(),
        ));
    };
    let digest = token_hash(token);
    let hash = sha::as_str(&digest);
    let key = match keys.get(hash) {
        Some(k) => Some(k),
        None => {
            let lookup = hash.to_owned();
            let found = db::run(pool, move |conn| api_key::find_by_hash(conn, &lookup)).await?;
            found.map(|k| keys.put(k))
        }
    };
    // The map lookup found the row by hash; comparing the hashes again in constant time keeps
    // the final accept/reject decision free of data-dependent timing.
    match key {
        Some(k) if secrets_equal(&k.key_hash, hash) && !k.disabled => Ok(k),
        Some(k) if k.disabled => Err(ApiError::Unauthorized(
            "This API key has been disabled.".into(),
        )),
        _ => Err(ApiError::Unauthorized("Incorrect API key provided.".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Secrets are equal only when every byte is: a difference at any place of any length,
    /// or in the length alone, makes them unequal.
    #[test]
    fn secrets_are_equal_only_when_every_byte_is() {
        for len in 0..=70usize {
            let a: String = (0..len)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
            assert!(secrets_equal(&a, &a.clone()), "{len}");
            for at in 0..len {
                let mut b = a.clone().into_bytes();
                b[at] = b'0';
                assert!(
                    !secrets_equal(&a, std::str::from_utf8(&b).unwrap()),
                    "{len} {at}"
                );
            }
            assert!(!secrets_equal(&a, &format!("{a}x")), "{len}");
            assert!(!secrets_equal(&format!("{a}\0"), &a), "{len}");
        }
    }

    /// The bearer token is what the header's `to_str` and a split at its first space give:
    /// any case of the scheme, spaces around the token, and nothing for a value that is not
    /// ASCII, another scheme, or no token.
    #[test]
    fn the_bearer_token_is_read_as_to_str_reads_the_header() {
        let reference = |v: &header::HeaderValue| {
            let (scheme, token) = v.to_str().ok()?.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        };
        let values: [&[u8]; 10] = [
            b"Bearer pura_abc",
            b"bearer  pura_abc \t",
            b"BEARER pura_abc",
            b"Basic pura_abc",
            b"Bearer",
            b"Bearer ",
            b"Bearer pura_\xc3\xa9",
            b"\xc3\xa9 pura_abc",
            b"Bearer\tpura_abc",
            b"Bearer pura a b",
        ];
        for raw in values {
            let v = header::HeaderValue::from_bytes(raw).unwrap();
            let req = actix_web::test::TestRequest::default()
                .insert_header((header::AUTHORIZATION, v.clone()))
                .to_http_request();
            assert_eq!(bearer(&req).map(str::to_owned), reference(&v), "{raw:?}");
        }
        let none = actix_web::test::TestRequest::default().to_http_request();
        assert_eq!(bearer(&none), None);
    }
    use sha2::{Digest, Sha256};

    #[test]
    fn a_key_hash_is_the_lowercase_hex_sha256() {
        // FIPS 180-2's example, then keys of the shape Pura mints, against the iterator form.
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        for n in 0..200 {
            let key = format!("pura_{}", crate::ids::random_alnum(n % 48));
            assert_eq!(hash_key(&key), hex::encode(Sha256::digest(key.as_bytes())));
        }
    }

    /// The memo answers each token with its own hash, whether it remembers it or not, and past
    /// its size it forgets and answers the same.
    #[test]
    fn the_digest_memo_gives_each_token_its_own_hash() {
        let tokens: Vec<String> = (0..DIGEST_MEMO_LEN + 100)
            .map(|i| format!("pura_{i:040}"))
            .collect();
        for round in 0..2 {
            for t in tokens.iter().take(300).chain(tokens.iter().rev().take(300)) {
                assert_eq!(
                    sha::as_str(&remembered_hash(t)),
                    hash_key(t),
                    "round {round}"
                );
            }
        }
        for t in &tokens {
            assert_eq!(sha::as_str(&remembered_hash(t)), hash_key(t));
        }
        let remembered = DIGESTS.with(|m| m.borrow().digests.len());
        assert!(remembered <= DIGEST_MEMO_LEN, "{remembered}");
        assert!(remembered > 0);
        // A token one character off another it has seen gets its own hash.
        assert_eq!(sha::as_str(&remembered_hash("pura_x")), hash_key("pura_x"));
        assert_ne!(remembered_hash("pura_x"), remembered_hash("pura_y"));
        assert_eq!(sha::as_str(&token_hash("pura_x")), hash_key("pura_x"));
    }
}
