//! Configuration: built-in defaults (`defaults.toml`), then the user's TOML file, then
//! `PURA__SECTION__KEY` environment overrides, deserialised with `deny_unknown_fields` so a
//! misspelt key is an error that names it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::{Table, Value};

const DEFAULTS: &str = include_str!("defaults.toml");
const ENV_PREFIX: &str = "PURA__";
/// Keys whose environment values are always text, even when they look like numbers.
const STRING_KEYS: [&str; 6] = ["api_key", "api_key_env", "base_url", "bind", "url", "from"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {0}: {1}")]
    Read(String, std::io::Error),
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// The wire protocol an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    Openai,
    Anthropic,
    Gemini,
}

/// Price tier of a provider, and the tier the router chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Cheap,
    Mid,
    Premium,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Cheap, Tier::Mid, Tier::Premium];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Cheap => "cheap",
            Tier::Mid => "mid",
            Tier::Premium => "premium",
        }
    }

    pub fn parse(s: &str) -> Option<Tier> {
        match s.to_ascii_lowercase().as_str() {
            "cheap" => Some(Tier::Cheap),
            "mid" => Some(Tier::Mid),
            "premium" => Some(Tier::Premium),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub providers: BTreeMap<String, ProviderConfig>,
    pub routing: RoutingConfig,
    pub free_tier: FreeTierConfig,
    pub limits: LimitsConfig,
    pub lightning: LightningConfig,
    pub notify: NotifyConfig,
    pub responses: ResponsesConfig,
    pub log: LogConfig,
    pub telemetry: TelemetryConfig,
}

/// `[telemetry]`: OpenTelemetry traces (see `telemetry`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// OTLP/HTTP collector base URL (spans go to `<it>/v1/traces`); empty: no traces.
    pub otlp_endpoint: String,
}

/// `[log]`: how log lines are written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
}

/// `text`: env_logger's lines and actix's access line; `json`: one JSON object per line, one
/// access line per request (see `access`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The Responses API's stored responses (`store: true`, `previous_response_id`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponsesConfig {
    /// How long a stored response stays usable as `previous_response_id`.
    pub retention: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub bind: String,
    pub admin_token_env: String,
    pub max_body_bytes: usize,
    pub open_key_minting: bool,
    pub key_mint_per_ip_per_hour: u32,
    /// actix worker threads; the number of cores when absent.
    #[serde(default)]
    pub workers: Option<usize>,
    /// Where `/metrics` is served instead of the main port; empty: on the main port.
    pub metrics_bind: String,
    /// On SIGTERM/SIGINT, how long requests and streams in flight may go on before the rest
    /// are ended with their protocol's error event (and billed for what they streamed).
    pub shutdown_grace: String,
    /// Time a client has to send its request headers.
    pub header_timeout: String,
    /// Time a client has to send its whole body once the headers are in: a body trickled a
    /// byte at a time must not hold a worker's connection and buffer forever.
    pub body_timeout: String,
    /// An idle connection between two requests is closed after this.
    pub keep_alive: String,
}

/// The server's durations, parsed (already checked by [`Config::validate`]).
impl ServerConfig {
    pub fn shutdown_grace(&self) -> Duration {
        parse_duration(&self.shutdown_grace).unwrap_or_default()
    }

    pub fn header_timeout(&self) -> Duration {
        parse_duration(&self.header_timeout).unwrap_or_default()
    }

    pub fn body_timeout(&self) -> Duration {
        parse_duration(&self.body_timeout).unwrap_or_default()
    }

    pub fn keep_alive(&self) -> Duration {
        parse_duration(&self.keep_alive).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: String,
    pub pool_size: u32,
    /// PostgreSQL: the database arbitrates every reservation so that several replicas never
    /// spend the same money, and keeps session pins. `false` saves that round trip when
    /// exactly one replica uses the database. (SQLite: one process, never needed.)
    pub arbitrate: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub dialect: Dialect,
    pub base_url: String,
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
    pub tier: Tier,
    pub models: Vec<String>,
    #[serde(default)]
    pub price_per_1k: Option<f64>,
    #[serde(default)]
    pub input_price_per_1k: Option<f64>,
    #[serde(default)]
    pub output_price_per_1k: Option<f64>,
    /// Prompt tokens the upstream served from its cache; unset: priced as ordinary input.
    #[serde(default)]
    pub cached_input_price_per_1k: Option<f64>,
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// The upstream serves OpenAI's `/responses` (OpenAI itself): Responses requests go to it
    /// natively instead of being translated to Chat Completions.
    #[serde(default)]
    pub responses_api: bool,
    /// Forward a client's non-standard `service_tier` (e.g. `priority`) to this upstream
    /// instead of refusing it; the request is still charged at the catalogue price.
    #[serde(default)]
    pub allow_service_tier: bool,
    /// `false` switches a provider off even when its key is present.
    #[serde(default = "yes")]
    pub enabled: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    pub default_model: String,
    /// Scores below this go to the cheap tier.
    pub cheap_below: f64,
    /// Scores at or above this go to the premium tier; between the two, mid.
    pub premium_from: f64,
    /// How long an upstream with an open circuit rests before one probe request.
    pub circuit_cooldown: String,
    pub aliases: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreeTierConfig {
    pub requests: i64,
    /// A request whose reserved worst case costs more than this is not served free: it is
    /// paid from the balance, or answered 402.
    pub max_request_usd: f64,
    /// Catalogue cost of free requests per UTC day across all keys and replicas; past it,
    /// requests are paid from the balance, or answered 402.
    pub daily_budget_usd: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub rpm: u32,
    pub default_daily_budget_usd: f64,
    pub default_monthly_budget_usd: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LightningConfig {
    pub backend: String,
    pub url: String,
    pub invoice_key_env: String,
    pub macaroon_env: String,
    pub tls_cert_path: String,
    pub usd_per_sat: f64,
    pub default_fund_sats: i64,
    pub min_fund_sats: i64,
    pub max_fund_sats: i64,
    pub invoice_expiry: String,
    pub poll_interval: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    pub smtp_url: String,
    pub from: String,
}

fn default_timeout() -> String {
    "60s".to_owned()
}

fn yes() -> bool {
    true
}

impl Config {
    /// Loads defaults, then `path` when given, then the process environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let file = match path {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .map_err(|e| ConfigError::Read(p.display().to_string(), e))?,
            ),
            None => None,
        };
        Config::from_parts(file.as_deref(), std::env::vars())
    }

    /// Builds a config from an optional TOML text and environment pairs (testable without globals).
    pub fn from_parts(
        file: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut root: Table = DEFAULTS
            .parse()
            .map_err(|e| ConfigError::Invalid(format!("defaults: {e}")))?;
        if let Some(text) = file {
            let user: Table = text
                .parse()
                .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
            merge(&mut root, user);
        }
        for (k, v) in env {
            if let Some(path) = k.strip_prefix(ENV_PREFIX) {
                apply_env(&mut root, path, &v)?;
            }
        }
        let config: Config = Value::Table(root)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let r = &self.routing;
        if !(0.0..=1.0).contains(&r.cheap_below)
            || r.cheap_below > r.premium_from
            || r.premium_from > 1.0
        {
            return Err(ConfigError::Invalid(
                "routing: need 0 <= cheap_below <= premium_from <= 1".into(),
            ));
        }
        for (name, p) in &self.providers {
            parse_duration(&p.timeout)
                .map_err(|e| ConfigError::Invalid(format!("providers.{name}.timeout: {e}")))?;
            if p.models.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "providers.{name}.models is empty"
                )));
            }
            if p.price_per_1k.is_none()
                && (p.input_price_per_1k.is_none() || p.output_price_per_1k.is_none())
            {
                return Err(ConfigError::Invalid(format!(
                    "providers.{name}: set price_per_1k, or input_price_per_1k and output_price_per_1k"
                )));
            }
        }
        parse_duration(&r.circuit_cooldown)
            .map_err(|e| ConfigError::Invalid(format!("routing.circuit_cooldown: {e}")))?;
        parse_duration(&self.lightning.invoice_expiry)
            .and(parse_duration(&self.lightning.poll_interval))
            .map_err(|e| ConfigError::Invalid(format!("lightning: {e}")))?;
        let server = &self.server;
        for (name, value) in [
            ("shutdown_grace", &server.shutdown_grace),
            ("header_timeout", &server.header_timeout),
            ("body_timeout", &server.body_timeout),
            ("keep_alive", &server.keep_alive),
        ] {
            parse_duration(value)
                .map_err(|e| ConfigError::Invalid(format!("server.{name}: {e}")))?;
        }
        parse_duration(&self.responses.retention)
            .map_err(|e| ConfigError::Invalid(format!("responses.retention: {e}")))?;
        Ok(())
    }

    /// The admin token, when its env var is set and non-empty.
    pub fn admin_token(&self) -> Option<String> {
        std::env::var(&self.server.admin_token_env)
            .ok()
            .filter(|t| !t.is_empty())
    }
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut Table, over: Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// `PURA__PROVIDERS__OPENAI__BASE_URL=…` sets `providers.openai.base_url`. The value is read
/// as a TOML literal when it is one (numbers, booleans, arrays), else as a string.
fn apply_env(root: &mut Table, path: &str, raw: &str) -> Result<(), ConfigError> {
    let keys: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
    let Some((last, parents)) = keys.split_last() else {
        return Ok(());
    };
    let mut table = root;
    for k in parents {
        let entry = table
            .entry(k.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        table = match entry {
            Value::Table(t) => t,
            _ => {
                return Err(ConfigError::Invalid(format!(
                    "{ENV_PREFIX}{path}: `{k}` is not a table"
                )))
            }
        };
    }
    let value = format!("v = {raw}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_owned()));
    let value = match value {
        // Keep secrets and addresses strings: `api_key=12345` in the environment means the text.
        v if !v.is_str()
            && (STRING_KEYS.contains(&last.as_str())
                || table.get(last).is_some_and(Value::is_str)) =>
        {
            Value::String(raw.to_owned())
        }
        v => v,
    };
    table.insert(last.clone(), value);
    Ok(())
}

/// Parses `500ms`, `2s`, `5m`, `1h` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("bad duration `{s}`"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return Err(format!("bad duration unit in `{s}` (use ms, s, m, h or d)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_alone_are_valid_and_have_four_seed_providers() {
        let c = Config::from_parts(None, env(&[])).expect("defaults parse");
        assert_eq!(c.server.bind, "127.0.0.1:8080");
        assert_eq!(c.providers.len(), 4);
        assert_eq!(c.providers["groq"].tier, Tier::Cheap);
    }

    #[test]
    fn unknown_key_is_named() {
        let err =
            Config::from_parts(Some("[server]\nbnid = \"x\"\n"), env(&[])).expect_err("must fail");
        assert!(err.to_string().contains("bnid"), "{err}");
        let err =
            Config::from_parts(None, env(&[("PURA__LIMITS__RPMM", "3")])).expect_err("must fail");
        assert!(err.to_string().contains("rpmm"), "{err}");
    }

    #[test]
    fn env_overrides_file_with_typed_values() {
        let file = "[free_tier]\nrequests = 10\n[providers.openai]\nbase_url = \"http://a/v1\"\n";
        let c = Config::from_parts(
            Some(file),
            env(&[
                ("PURA__FREE_TIER__REQUESTS", "3"),
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
        assert_eq!(c.free_tier.requests, 3);
        assert_eq!(c.providers["openai"].base_url, "http://a/v1");
        assert_eq!(c.providers["openai"].api_key.as_deref(), Some("12345"));
        assert_eq!(c.providers["local"].tier, Tier::Cheap);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("2 weeks").is_err());
    }

    #[test]
    fn example_file_parses_and_documents_every_key() {
        let example = include_str!("../config.example.toml");
        Config::from_parts(Some(example), env(&[])).expect("config.example.toml parses");
        let defaults: Table = DEFAULTS.parse().expect("defaults");
        let example: Table = example.parse().expect("example");
        for (section, v) in &defaults {
            let Some(t) = v.as_table() else { continue };
            for key in t.keys() {
                if section == "providers" {
                    continue;
                }
                let documented = example.get(section).and_then(|s| s.get(key)).is_some();
                assert!(documented, "config.example.toml lacks {section}.{key}");
            }
        }
    }
}
