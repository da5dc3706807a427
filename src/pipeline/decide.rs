//! The tier decision: where routing starts for a request, and what the client is told about it.

use crate::api::ChatRequest;
use crate::error::ApiError;
use crate::providers::Tier;
use crate::routing::policy::{self, TierBounds};
use crate::routing::{scorer, Target};
use crate::state::AppState;

use super::Hints;

pub struct Route {
    pub tier: Tier,
    /// `X-Pura-Score` for `auto` requests.
    pub score: Option<String>,
    /// The conversation to pin, for `auto` requests.
    pub session: Option<u64>,
}

/// `auto`: the scorer's tier, bounded by `X-Pura-Tier`, never below the conversation's pin.
/// A tier target (`auto:premium`, an alias to a tier) is that tier; a model ignores both.
pub async fn decide(
    state: &AppState,
    target: &Target,
    body: &ChatRequest,
    hints: &Hints,
    key_id: &str,
) -> Result<Route, ApiError> {
    let bounds = TierBounds::parse(hints.tier.as_deref())?;
    let fixed = |tier| Route {
        tier,
        score: None,
        session: None,
    };
    match target {
        Target::Tier(t) => Ok(fixed(*t)),
        Target::Model(_) => Ok(fixed(Tier::Mid)),
        Target::Auto => {
            let score = scorer::score(body);
            let session = policy::session_id(body, hints.session.as_deref());
            let pin = state.pins.lookup(key_id, session).await;
            let tier = bounds.apply(state.router.tier_for(score.value), pin);
            Ok(Route {
                tier,
                score: Some(policy::score_header(&score)),
                session: Some(session),
            })
        }
    }
}
