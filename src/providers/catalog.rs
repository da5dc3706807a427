//! The provider catalogue as the gateway runs it: config tables become [`ProviderSpec`]s, each
//! with its resolved key (a [`Secret`]) and its [`Price`].

use std::time::Duration;

use super::ProviderSpec;
use crate::config::{parse_duration, Config, ProviderConfig};
use crate::money::Price;
use crate::secret::Secret;

fn spec(name: &str, p: &ProviderConfig, api_key: Secret) -> ProviderSpec {
    let flat = p.price_per_1k.unwrap_or(0.0);
    ProviderSpec {
        name: name.to_owned(),
        dialect: p.dialect,
        base_url: p.base_url.trim_end_matches('/').to_owned(),
        api_key,
        tier: p.tier,
        models: p.models.clone(),
        price: Price {
            input_per_1k: p.input_price_per_1k.unwrap_or(flat),
            output_per_1k: p.output_price_per_1k.unwrap_or(flat),
            cached_input_per_1k: p.cached_input_price_per_1k,
        },
        responses_api: p.responses_api,
        allow_service_tier: p.allow_service_tier,
        timeout: parse_duration(&p.timeout).unwrap_or(Duration::from_secs(60)),
    }
}

/// The enabled providers: those whose API key resolves (from `api_key` or its env var).
pub fn specs(config: &Config, env: impl Fn(&str) -> Option<String>) -> Vec<ProviderSpec> {
    config
        .providers
        .iter()
        .filter(|(_, p)| p.enabled)
        .filter_map(|(name, p)| {
            let key = p.api_key.clone().or_else(|| {
                p.api_key_env
                    .as_deref()
                    .and_then(&env)
                    .filter(|k| !k.is_empty())
            })?;
            Some(spec(name, p, Secret::new(key)))
        })
        .collect()
}

/// Every catalogue entry, enabled or not, without keys (for price baselines).
pub fn catalogue(config: &Config) -> Vec<ProviderSpec> {
    config
        .providers
        .iter()
        .map(|(name, p)| spec(name, p, Secret::default()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Tier;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_seed_provider_is_enabled_by_its_key() {
        let c = Config::from_parts(None, env(&[])).expect("defaults parse");
        assert!(specs(&c, |_| None).is_empty());
        let s = specs(&c, |k| (k == "GROQ_API_KEY").then(|| "gsk".to_owned()));
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].tier, Tier::Cheap);
        assert_eq!(format!("{:?}", s[0].api_key), "*****");
    }

    #[test]
    fn specs_take_keys_from_config_and_trim_urls() {
        let c = Config::from_parts(
            Some("[providers.openai]\nbase_url = \"http://a/v1\"\n"),
            env(&[
                ("PURA__PROVIDERS__OPENAI__API_KEY", "12345"),
                ("PURA__PROVIDERS__LOCAL__DIALECT", "openai"),
                (
                    "PURA__PROVIDERS__LOCAL__BASE_URL",
                    "http://127.0.0.1:11434/v1/",
                ),
                ("PURA__PROVIDERS__LOCAL__TIER", "cheap"),
                ("PURA__PROVIDERS__LOCAL__MODELS", "[\"llama3\"]"),
                ("PURA__PROVIDERS__LOCAL__PRICE_PER_1K", "0"),
                ("PURA__PROVIDERS__LOCAL__API_KEY", ""),
            ]),
        )
        .expect("parses");
        let s = specs(&c, |_| None);
        let openai = s.iter().find(|s| s.name == "openai").expect("enabled");
        assert_eq!(
            (openai.base_url.as_str(), openai.api_key.expose()),
            ("http://a/v1", "12345")
        );
        let local = s.iter().find(|s| s.name == "local").expect("enabled");
        assert_eq!(local.base_url, "http://127.0.0.1:11434/v1");
    }
}
