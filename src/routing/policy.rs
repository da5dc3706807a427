//! Tier policy for `auto`: the scorer proposes a tier; an `X-Pura-Tier` request header can force
//! it (`premium`) or bound it (`min:mid`, `max:mid`); session pinning keeps a conversation from
//! ever dropping below the tier it already used, so an agent is not downgraded mid-task.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::scorer::Score;
use crate::api::{ChatRequest, Role};
use crate::db::models::pin;
use crate::db::{self, Pool};
use crate::error::ApiError;
use crate::providers::Tier;

/// A pinned conversation is forgotten after this long without a request.
const PIN_TTL: Duration = Duration::from_secs(6 * 3600);
/// Above this many pins, expired ones are swept on the next write.
const PIN_SWEEP_AT: usize = 100_000;

/// What the `X-Pura-Tier` header asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierBounds {
    pub force: Option<Tier>,
    pub min: Option<Tier>,
    pub max: Option<Tier>,
}

impl TierBounds {
    /// `cheap|mid|premium` forces; `min:T` / `>=T` and `max:T` / `<=T` bound (comma-separated).
    pub fn parse(header: Option<&str>) -> Result<TierBounds, ApiError> {
        let mut b = TierBounds::default();
        let Some(h) = header else { return Ok(b) };
        for part in h.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (slot, name) = if let Some(t) = part
                .strip_prefix("min:")
                .or_else(|| part.strip_prefix(">="))
            {
                (&mut b.min, t)
            } else if let Some(t) = part
                .strip_prefix("max:")
                .or_else(|| part.strip_prefix("<="))
            {
                (&mut b.max, t)
            } else {
                (&mut b.force, part)
            };
            *slot = Some(Tier::parse(name.trim()).ok_or_else(|| {
                ApiError::bad_param(
                    "X-Pura-Tier",
                    format!("X-Pura-Tier `{h}`: use cheap, mid or premium, optionally as min:<tier> or max:<tier>"),
                )
            })?);
        }
        Ok(b)
    }

    /// The tier for a scored request: forced, else the score's tier raised to `min` and to
    /// the pin, then capped at `max` (an explicit cap from the client wins over a pin).
    pub fn apply(&self, scored: Tier, pin: Option<Tier>) -> Tier {
        if let Some(t) = self.force {
            return t;
        }
        let mut t = scored;
        for floor in [self.min, pin].into_iter().flatten() {
            t = t.max(floor);
        }
        self.max.map_or(t, |cap| t.min(cap))
    }
}

/// The conversation a request belongs to: the explicit `X-Pura-Session`, or a hash of its
/// system prompt and first user message (which stay the same as the conversation grows).
pub fn session_id(req: &ChatRequest, header: Option<&str>) -> u64 {
    let mut h = DefaultHasher::new();
    match header.filter(|s| !s.is_empty()) {
        Some(explicit) => {
            "header".hash(&mut h);
            explicit.hash(&mut h);
        }
        None => {
            for m in req
                .messages
                .iter()
                .filter(|m| matches!(m.role, Role::System | Role::Developer))
            {
                m.text().hash(&mut h);
            }
            if let Some(first) = req.messages.iter().find(|m| m.role == Role::User) {
                first.text().hash(&mut h);
            }
        }
    }
    h.finish()
}

/// Highest tier each (key, conversation) has used: in memory for one process, and in the
/// database too when replicas share one PostgreSQL (an agent behind a round-robin balancer
/// then keeps its tier whichever replica answers).
#[derive(Default)]
pub struct Pins {
    map: Mutex<HashMap<(String, u64), (Tier, Instant)>>,
    shared: Option<Pool>,
}

fn rank(t: Tier) -> i32 {
    match t {
        Tier::Cheap => 0,
        Tier::Mid => 1,
        Tier::Premium => 2,
    }
}

fn tier_of(rank: i32) -> Option<Tier> {
    Tier::ALL.get(usize::try_from(rank).ok()?).copied()
}

impl Pins {
    /// Pins kept in the database as well (several replicas on PostgreSQL).
    pub fn shared(pool: Pool) -> Pins {
        Pins {
            map: Mutex::default(),
            shared: Some(pool),
        }
    }

    /// The conversation's pin: the database's when shared (this replica's memory if the
    /// database cannot answer), else memory's.
    pub async fn lookup(&self, key_id: &str, session: u64) -> Option<Tier> {
        let Some(pool) = &self.shared else {
            return self.get(key_id, session);
        };
        let (key, id) = (key_id.to_owned(), format!("{session:016x}"));
        let since = crate::time::now() - chrono::Duration::from_std(PIN_TTL).unwrap_or_default();
        match db::run(pool, move |conn| pin::get(conn, &key, &id, since)).await {
            Ok(rank) => rank.and_then(tier_of),
            Err(e) => {
                log::warn!("shared session pin unreadable, using this replica's: {e}");
                self.get(key_id, session)
            }
        }
    }

    /// Records the tier the conversation used, in memory and (shared) in the database before
    /// the answer leaves, so the next request finds it on any replica.
    pub async fn remember(&self, key_id: &str, session: u64, tier: Tier) {
        self.record(key_id, session, tier);
        let Some(pool) = &self.shared else {
            return;
        };
        let (key, id) = (key_id.to_owned(), format!("{session:016x}"));
        let now = crate::time::now();
        let since = now - chrono::Duration::from_std(PIN_TTL).unwrap_or_default();
        let stored = db::run(pool, move |conn| {
            pin::record(conn, &key, &id, rank(tier), now, since)
        })
        .await;
        if let Err(e) = stored {
            log::warn!("shared session pin not stored: {e}");
        }
    }

    pub fn get(&self, key_id: &str, session: u64) -> Option<Tier> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(key_id.to_owned(), session))
            .filter(|(_, seen)| seen.elapsed() < PIN_TTL)
            .map(|(t, _)| *t)
    }

    /// Records that the conversation used `tier` (keeping the highest).
    pub fn record(&self, key_id: &str, session: u64, tier: Tier) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= PIN_SWEEP_AT {
            map.retain(|_, (_, seen)| seen.elapsed() < PIN_TTL);
        }
        let now = Instant::now();
        let entry = map
            .entry((key_id.to_owned(), session))
            .or_insert((tier, now));
        if entry.1.elapsed() >= PIN_TTL {
            entry.0 = tier;
        }
        entry.0 = entry.0.max(tier);
        entry.1 = now;
    }
}

/// `X-Pura-Score`: the score and its top signals, short.
pub fn score_header(score: &Score) -> String {
    let mut s = format!("{:.2}", score.value);
    for sig in score.signals.iter().take(3) {
        s.push_str(&format!("; {}={:.2}", sig.name, sig.weight));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use Tier::*;

    #[test]
    fn header_forces_or_bounds() {
        assert_eq!(
            TierBounds::parse(Some("premium"))
                .map(|b| b.apply(Cheap, None))
                .ok(),
            Some(Premium)
        );
        let b = TierBounds::parse(Some("min:mid, max:mid")).expect("valid");
        assert_eq!((b.apply(Cheap, None), b.apply(Premium, None)), (Mid, Mid));
        assert_eq!(
            TierBounds::parse(Some(">=premium"))
                .map(|b| b.apply(Cheap, None))
                .ok(),
            Some(Premium)
        );
        assert_eq!(
            TierBounds::parse(Some("<=cheap"))
                .map(|b| b.apply(Premium, None))
                .ok(),
            Some(Cheap)
        );
        assert!(TierBounds::parse(Some("gold")).is_err());
        assert_eq!(
            TierBounds::parse(None).map(|b| b.apply(Mid, None)).ok(),
            Some(Mid)
        );
    }

    #[test]
    fn a_pin_is_a_floor() {
        let b = TierBounds::default();
        assert_eq!(b.apply(Cheap, Some(Premium)), Premium);
        assert_eq!(b.apply(Premium, Some(Cheap)), Premium);
        let capped = TierBounds::parse(Some("max:mid")).expect("valid");
        assert_eq!(
            capped.apply(Cheap, Some(Premium)),
            Mid,
            "the client's explicit cap wins"
        );
    }

    #[test]
    fn pins_keep_the_highest_tier_per_key_and_session() {
        let pins = Pins::default();
        pins.record("k", 1, Premium);
        pins.record("k", 1, Cheap);
        assert_eq!(pins.get("k", 1), Some(Premium));
        assert_eq!(pins.get("k", 2), None);
        assert_eq!(pins.get("other", 1), None);
    }

    #[test]
    fn session_follows_the_conversation_prefix() {
        let turn = |msgs: serde_json::Value| -> ChatRequest {
            serde_json::from_value(serde_json::json!({ "messages": msgs })).expect("request")
        };
        let first = turn(
            serde_json::json!([{"role": "system", "content": "s"}, {"role": "user", "content": "prove it"}]),
        );
        let later = turn(
            serde_json::json!([{"role": "system", "content": "s"}, {"role": "user", "content": "prove it"},
            {"role": "assistant", "content": "…"}, {"role": "user", "content": "thanks"}]),
        );
        let other = turn(serde_json::json!([{"role": "user", "content": "hi"}]));
        assert_eq!(session_id(&first, None), session_id(&later, None));
        assert_ne!(session_id(&first, None), session_id(&other, None));
        assert_eq!(
            session_id(&first, Some("abc")),
            session_id(&other, Some("abc"))
        );
    }
}
