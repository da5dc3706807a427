//! Routing: what the client asked for (`auto`, an alias, a tier, a concrete model) becomes an
//! ordered list of candidate (provider, model) pairs, asking each ProviderActor whether it
//! can take traffic and preferring the fast and cheap among the healthy.

pub mod augment;
pub mod eval;
pub mod features;
pub mod policy;
pub mod scorer;
pub mod train;
pub mod vocab;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;

use crate::actors::provider::{Gate, ProviderActor, Published};
use crate::config::{parse_duration, Config};
use crate::error::ApiError;
use crate::providers::{ProviderSpec, Tier};

/// What a request's `model` asks for, after aliases.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Let the scorer pick the tier.
    Auto,
    /// A forced tier (`auto:cheap`, or an alias to a tier).
    Tier(Tier),
    /// A concrete model; only providers serving it are tried.
    Model(String),
}

/// One provider to try, with the model to ask it for.
#[derive(Clone)]
pub struct Candidate {
    pub provider: Arc<ProviderSpec>,
    pub actor: Addr<ProviderActor>,
    pub model: String,
    /// The provider's circuit is half-open: claim the probe (`Pick`) before trying it.
    pub probe: bool,
}

/// An enabled provider and its actor.
type Entry = (Arc<ProviderSpec>, Addr<ProviderActor>, Arc<Published>);

pub struct Router {
    providers: Vec<Entry>,
    /// Every model the catalogue knows, enabled or not, to tell 404 from 503.
    known_models: Vec<String>,
    aliases: BTreeMap<String, String>,
    default_model: String,
    cheap_below: f64,
    premium_from: f64,
    /// Prices of the premium tier's default model.
    premium: Option<Arc<ProviderSpec>>,
}

impl Router {
    /// Starts one ProviderActor per enabled provider (on the current actix system).
    pub fn start(config: &Config, specs: Vec<ProviderSpec>) -> Router {
        use actix::Actor;
        let cooldown =
            parse_duration(&config.routing.circuit_cooldown).unwrap_or(Duration::from_secs(10));
        let providers: Vec<Entry> = specs
            .into_iter()
            .map(|s| {
                let actor = ProviderActor::new(&s.name, cooldown, s.timeout * 2);
                let published = actor.published();
                (Arc::new(s), actor.start(), published)
            })
            .collect();
        let known_models = config
            .providers
            .values()
            .flat_map(|p| p.models.clone())
            .collect();
        // An enabled premium provider sets the baseline; without one, the catalogue's entry.
        let premium = providers
            .iter()
            .map(|(p, _, _): &Entry| p.clone())
            .find(|s| s.tier == Tier::Premium)
            .or_else(|| {
                let catalogue = crate::providers::catalog::catalogue(config).into_iter();
                catalogue
                    .filter(|s| s.tier == Tier::Premium)
                    .map(Arc::new)
                    .next()
            });
        Router {
            providers,
            known_models,
            aliases: config.routing.aliases.clone(),
            default_model: config.routing.default_model.clone(),
            cheap_below: config.routing.cheap_below,
            premium_from: config.routing.premium_from,
            premium,
        }
    }

    pub fn providers(&self) -> impl Iterator<Item = &Arc<ProviderSpec>> {
        self.providers.iter().map(|(p, _, _)| p)
    }

    /// Each enabled provider's circuit as last published (for `/metrics` and `/ready`).
    pub fn gates(&self) -> impl Iterator<Item = (&str, Gate)> {
        self.providers
            .iter()
            .map(|(p, _, published)| (p.name.as_str(), published.gate()))
    }

    /// Model ids for `/v1/models`: `auto`, the tier forms, aliases, every enabled model.
    pub fn model_ids(&self) -> Vec<(String, String)> {
        let mut ids: Vec<(String, String)> = vec![("auto".into(), "pura".into())];
        ids.extend(
            Tier::ALL
                .iter()
                .map(|t| (format!("auto:{}", t.as_str()), "pura".into())),
        );
        ids.extend(self.aliases.keys().map(|a| (a.clone(), "pura".into())));
        for p in self.providers() {
            for m in &p.models {
                if !ids.iter().any(|(id, _)| id == m) {
                    ids.push((m.clone(), p.name.clone()));
                }
            }
        }
        ids
    }

    /// Resolves the request's model through aliases into a [`Target`].
    pub fn resolve(&self, model: Option<&str>) -> Result<Target, ApiError> {
        let requested = model
            .filter(|m| !m.is_empty())
            .unwrap_or(&self.default_model);
        let name = self
            .aliases
            .get(requested)
            .map_or(requested, String::as_str);
        if name == "auto" {
            return Ok(Target::Auto);
        }
        if let Some(t) = name
            .strip_prefix("auto:")
            .and_then(Tier::parse)
            .or_else(|| Tier::parse(name))
        {
            return Ok(Target::Tier(t));
        }
        if self.known_models.iter().any(|m| m == name) || self.providers().any(|p| p.serves(name)) {
            return Ok(Target::Model(name.to_owned()));
        }
        Err(ApiError::ModelNotFound(requested.to_owned()))
    }

    /// The tier for a complexity score under the configured thresholds.
    /// The premium tier's default model (the savings baseline): an enabled premium provider,
    /// else the catalogue's premium entry.
    pub fn premium(&self) -> Option<Arc<ProviderSpec>> {
        self.premium.clone()
    }

    pub fn tier_for(&self, score: f64) -> Tier {
        if score < self.cheap_below {
            Tier::Cheap
        } else if score >= self.premium_from {
            Tier::Premium
        } else {
            Tier::Mid
        }
    }

    /// Candidates for `target` in the order to try them; `tier` (from [`policy`]) is where
    /// `auto` and tier targets start. Reads only published snapshots, so it never waits.
    pub fn plan(&self, target: &Target, tier: Tier) -> Result<Vec<Candidate>, ApiError> {
        if self.providers.is_empty() {
            return Err(ApiError::Unavailable(
                "No provider is configured: set an API key (e.g. OPENAI_API_KEY) or add a [providers.*] table.".into(),
            ));
        }
        let (tier, pool): (Tier, Vec<&Entry>) = match target {
            Target::Model(m) => {
                let serving: Vec<_> = self
                    .providers
                    .iter()
                    .filter(|(p, _, _)| p.serves(m))
                    .collect();
                let Some((first, _, _)) = serving.first() else {
                    return Err(ApiError::Unavailable(format!(
                        "No configured provider serves model `{m}`."
                    )));
                };
                (first.tier, serving)
            }
            Target::Tier(_) | Target::Auto => (tier, self.providers.iter().collect()),
        };
        // Each actor's published snapshot answers without a message round trip; an open
        // circuit is skipped, a half-open one stays in as a probe that the fallback loop
        // claims with `Pick` just before trying it.
        let mut healthy: Vec<(usize, f64, &Entry)> = Vec::new();
        for entry in pool {
            if entry.2.gate() == Gate::Open {
                continue;
            }
            let order = tier_order(tier)
                .iter()
                .position(|t| *t == entry.0.tier)
                .unwrap_or(usize::MAX);
            // Latency times price, so a fast and cheap provider leads its tier.
            let price = entry.0.price.weight();
            healthy.push((
                order,
                (entry.2.ewma_latency_ms() + 1.0) * (price + 1e-6),
                entry,
            ));
        }
        if healthy.is_empty() {
            return Err(ApiError::Unavailable(
                "No healthy provider is available right now.".into(),
            ));
        }
        healthy.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let candidates = healthy
            .into_iter()
            .map(|(_, _, (p, a, published))| Candidate {
                provider: p.clone(),
                actor: a.clone(),
                probe: published.gate() == Gate::HalfOpen,
                model: match target {
                    Target::Model(m) => m.clone(),
                    _ => p.models[0].clone(),
                },
            })
            .collect();
        Ok(candidates)
    }
}

/// The chosen tier first, then the next tier up, then down.
fn tier_order(tier: Tier) -> [Tier; 3] {
    match tier {
        Tier::Cheap => [Tier::Cheap, Tier::Mid, Tier::Premium],
        Tier::Mid => [Tier::Mid, Tier::Premium, Tier::Cheap],
        Tier::Premium => [Tier::Premium, Tier::Mid, Tier::Cheap],
    }
}
