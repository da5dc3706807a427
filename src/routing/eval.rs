//! Evaluation of the scorer on the routing dev set (`data/routing/prompts.jsonl`):
//! stratified k-fold cross-validation (each fold scored by a model trained without it), and
//! the committed weights on the whole set. Shared by `examples/route_eval.rs`,
//! `examples/train_scorer.rs` and the test that holds the targets.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::augment::{self, Invariance};
use super::features::{self, Features};
use super::scorer::{self, Model};
use super::train::{self, TrainConfig};
use crate::api::ChatRequest;
use crate::config::Config;

/// Folds and seed of the reported cross-validation.
pub const FOLDS: usize = 5;
/// Seed of the fold assignment.
pub const SEED: u64 = 20_240_601;
/// Completion length assumed for every prompt when pricing it, in tokens.
pub const ASSUMED_COMPLETION_TOKENS: f64 = 400.0;
/// USD per 1K tokens of each tier's default model in the built-in catalogue (groq
/// llama-3.3-70b, gpt-4o, claude-sonnet-4). Mid is dearer than premium in this catalogue.
pub const TIER_PRICE_PER_1K: [f64; 3] = [0.0003, 0.005, 0.003];

/// One labelled dev-set record.
#[derive(Debug, Clone)]
pub struct Example {
    pub id: String,
    pub source: String,
    /// 0 cheap, 1 mid, 2 premium.
    pub label: usize,
    pub request: ChatRequest,
    /// Characters of every message, for the token estimate.
    pub chars: usize,
}

/// The dev set's path: `PURA_ROUTING_DEV`, else `data/routing/prompts.jsonl` in the crate
/// (the repository carries its data, with its build script and licences, in `data/routing/`).
pub fn dev_set_path() -> PathBuf {
    std::env::var_os("PURA_ROUTING_DEV").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/routing/prompts.jsonl"),
        PathBuf::from,
    )
}

/// The dev set's bytes, with a message that says where it was looked for.
pub fn read_dev_set() -> Result<(PathBuf, Vec<u8>), String> {
    let path = dev_set_path();
    std::fs::read(&path)
        .map(|b| (path.clone(), b))
        .map_err(|e| {
            format!(
                "cannot read the routing dev set at {} ({e}); set PURA_ROUTING_DEV to its path",
                path.display()
            )
        })
}

/// sha256 of the dev set, hex, recorded in the weights file.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Parses the JSONL dev set.
pub fn parse(bytes: &[u8]) -> Result<Vec<Example>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("dev set is not UTF-8: {e}"))?;
    let mut out = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |e: String| format!("dev set line {}: {e}", n + 1);
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let field = |k: &str| {
            v.get(k)
                .and_then(|s| s.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let label = scorer::TIERS
            .iter()
            .position(|t| *t == field("label"))
            .ok_or_else(|| bad(format!("unknown label `{}`", field("label"))))?;
        let messages = v.get("messages").cloned().unwrap_or_default();
        let request: ChatRequest =
            serde_json::from_value(serde_json::json!({ "messages": messages }))
                .map_err(|e| bad(e.to_string()))?;
        let chars = request
            .messages
            .iter()
            .map(|m| m.text().chars().count())
            .sum();
        out.push(Example {
            id: field("id"),
            source: field("source"),
            label,
            request,
            chars,
        });
    }
    Ok(out)
}

/// The router's default thresholds (`routing.cheap_below`, `routing.premium_from`).
pub fn default_thresholds() -> Result<(f64, f64), String> {
    let c = Config::from_parts(None, std::iter::empty()).map_err(|e| e.to_string())?;
    Ok((c.routing.cheap_below, c.routing.premium_from))
}

/// Tier index for a score, exactly as `Router::tier_for` cuts it.
pub fn tier_of(value: f64, (cheap_below, premium_from): (f64, f64)) -> usize {
    if value < cheap_below {
        0
    } else if value >= premium_from {
        2
    } else {
        1
    }
}

/// Routing outcomes on a set of examples.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// `confusion[label][routed]`.
    pub confusion: [[u32; 3]; 3],
    /// Per source: (correct, total).
    pub per_source: BTreeMap<String, (u32, u32)>,
    /// Estimated USD when routed, and when everything goes to premium.
    pub cost_routed: f64,
    pub cost_all_premium: f64,
    /// Examples routed wrongly, as (id, label, routed, score), for error analysis.
    pub misses: Vec<(String, usize, usize, f64)>,
}

impl Report {
    fn add(&mut self, e: &Example, routed: usize, value: f64) {
        self.confusion[e.label][routed] += 1;
        let s = self.per_source.entry(e.source.clone()).or_default();
        s.0 += u32::from(e.label == routed);
        s.1 += 1;
        let ktok = (e.chars as f64 / 4.0 + ASSUMED_COMPLETION_TOKENS) / 1000.0;
        self.cost_routed += ktok * TIER_PRICE_PER_1K[routed];
        self.cost_all_premium += ktok * TIER_PRICE_PER_1K[2];
        if e.label != routed {
            self.misses.push((e.id.clone(), e.label, routed, value));
        }
    }

    /// Share of all examples routed to their label's tier.
    pub fn accuracy(&self) -> f64 {
        let total: u32 = self.confusion.iter().flatten().sum();
        let right: u32 = (0..3).map(|k| self.confusion[k][k]).sum();
        f64::from(right) / f64::from(total.max(1))
    }

    fn share(&self, label: usize, routed: usize) -> f64 {
        let row: u32 = self.confusion[label].iter().sum();
        f64::from(self.confusion[label][routed]) / f64::from(row.max(1))
    }

    /// Share of premium-labelled prompts routed to cheap.
    pub fn premium_to_cheap(&self) -> f64 {
        self.share(2, 0)
    }

    /// Share of cheap-labelled prompts routed to premium.
    pub fn cheap_to_premium(&self) -> f64 {
        self.share(0, 2)
    }

    /// Cost saved against sending everything to premium, as a share (negative: dearer).
    pub fn savings(&self) -> f64 {
        1.0 - self.cost_routed / self.cost_all_premium.max(f64::MIN_POSITIVE)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  confusion (rows = label, cols = routed tier)")?;
        writeln!(
            f,
            "  {:>9} {:>7} {:>7} {:>7}",
            "", "cheap", "mid", "premium"
        )?;
        for (k, row) in self.confusion.iter().enumerate() {
            let t = scorer::TIERS[k];
            writeln!(f, "  {t:>9} {:>7} {:>7} {:>7}", row[0], row[1], row[2])?;
        }
        writeln!(
            f,
            "  accuracy (3-way)         {:.1}%",
            100.0 * self.accuracy()
        )?;
        let (pc, cp) = (self.premium_to_cheap(), self.cheap_to_premium());
        writeln!(f, "  premium -> cheap         {:.1}%", 100.0 * pc)?;
        writeln!(f, "  cheap -> premium         {:.1}%", 100.0 * cp)?;
        writeln!(
            f,
            "  est. cost routed ${:.4} vs always-premium ${:.4}: saved {:.1}%",
            self.cost_routed,
            self.cost_all_premium,
            100.0 * self.savings()
        )?;
        writeln!(f, "  per source (correct/total)")?;
        for (s, (ok, n)) in &self.per_source {
            writeln!(f, "    {s:<26} {ok:>3}/{n:<3}")?;
        }
        Ok(())
    }
}

/// Feature vectors and labels of a set, extracted once.
pub fn featurise(examples: &[Example]) -> (Vec<Features>, Vec<usize>) {
    examples
        .iter()
        .map(|e| (features::extract(&e.request), e.label))
        .unzip()
}

/// Routes every example with `model` (the full scoring path, request priors included).
pub fn evaluate(model: &Model, examples: &[Example], thresholds: (f64, f64)) -> Report {
    let mut r = Report::default();
    for e in examples {
        let s = scorer::score_with(model, &e.request);
        r.add(e, tier_of(s.value, thresholds), s.value);
    }
    r
}

/// Stratified k-fold cross-validation: every example is scored by a model trained on the
/// other folds only, so the report is held-out performance.
pub fn cross_validate(
    examples: &[Example],
    cfg: &TrainConfig,
    thresholds: (f64, f64),
    folds: usize,
    seed: u64,
) -> Report {
    cross_validate_shown(examples, examples, cfg, thresholds, folds, seed)
}

/// Cross-validation that trains on `examples` but scores `shown[i]` in place of
/// `examples[i]` (another shape of the same task, such as its agent-shaped request), so that
/// no task is scored by a model that was trained on it.
pub fn cross_validate_shown(
    examples: &[Example],
    shown: &[Example],
    cfg: &TrainConfig,
    thresholds: (f64, f64),
    folds: usize,
    seed: u64,
) -> Report {
    let (xs, ys) = featurise(examples);
    let fold = train::stratified_folds(&ys, folds, seed);
    let mut r = Report::default();
    for f in 0..folds {
        let (tx, ty): (Vec<Features>, Vec<usize>) = (0..xs.len())
            .filter(|&i| fold[i] != f)
            .map(|i| (xs[i], ys[i]))
            .unzip();
        let model = train::fit(&tx, &ty, cfg);
        for (_, e) in shown.iter().enumerate().filter(|(i, _)| fold[*i] == f) {
            let s = scorer::score_with(&model, &e.request);
            r.add(e, tier_of(s.value, thresholds), s.value);
        }
    }
    r
}

/// Leave-one-source-out: every example is scored by a model that never saw its source (nor
/// that source's house style). Harsher than k-fold: a source found in one tier only must be
/// placed from what other sources teach.
pub fn leave_one_source_out(
    examples: &[Example],
    cfg: &TrainConfig,
    thresholds: (f64, f64),
) -> Report {
    let (xs, ys) = featurise(examples);
    let sources: std::collections::BTreeSet<&str> =
        examples.iter().map(|e| e.source.as_str()).collect();
    let mut r = Report::default();
    for s in sources {
        let (tx, ty): (Vec<Features>, Vec<usize>) = (0..xs.len())
            .filter(|&i| examples[i].source != s)
            .map(|i| (xs[i], ys[i]))
            .unzip();
        let model = train::fit(&tx, &ty, cfg);
        for e in examples.iter().filter(|e| e.source == s) {
            let v = scorer::score_with(&model, &e.request).value;
            r.add(e, tier_of(v, thresholds), v);
        }
    }
    r
}

/// The dev set as a coding agent sends it (see [`augment::agent_request`]), same labels.
pub fn agent_set(examples: &[Example]) -> Result<Vec<Example>, String> {
    examples
        .iter()
        .enumerate()
        .map(|(i, e)| {
            Ok(Example {
                id: format!("agent:{}", e.id),
                request: augment::agent_request(&e.request, i)?,
                ..e.clone()
            })
        })
        .collect()
}

/// How many variants of one invariance kept their request's tier.
#[derive(Debug, Clone)]
pub struct InvarianceShare {
    pub kind: Invariance,
    pub kept: u32,
    pub total: u32,
    /// Prompts all of whose variants kept the tier, and prompts tried.
    pub prompts_kept: u32,
    pub prompts: u32,
    /// Variants that changed tier, as (id, variant index, tier before, tier after).
    pub broken: Vec<(String, usize, usize, usize)>,
}

impl InvarianceShare {
    /// Share of variants that kept their prompt's tier.
    pub fn share(&self) -> f64 {
        f64::from(self.kept) / f64::from(self.total.max(1))
    }

    /// Share of prompts that kept their tier under every variant (the stricter figure).
    pub fn prompt_share(&self) -> f64 {
        f64::from(self.prompts_kept) / f64::from(self.prompts.max(1))
    }
}

/// Routes every variant of every example under each invariance with `model`, against the
/// tier the unchanged example gets. Polite rewording is applied to the premium-labelled
/// (hard) prompts only, and only a drop counts as broken; the rest apply to every prompt.
pub fn invariances(
    model: &Model,
    examples: &[Example],
    thresholds: (f64, f64),
) -> Vec<InvarianceShare> {
    let tier = |r: &ChatRequest| tier_of(scorer::score_with(model, r).value, thresholds);
    Invariance::ALL
        .iter()
        .map(|&kind| {
            let mut s = InvarianceShare {
                kind,
                kept: 0,
                total: 0,
                prompts_kept: 0,
                prompts: 0,
                broken: Vec::new(),
            };
            for e in examples {
                if kind == Invariance::Polite && e.label != 2 {
                    continue;
                }
                let before = tier(&e.request);
                let broken_before = s.broken.len();
                for (v, variant) in kind.variants(&e.request).iter().enumerate() {
                    let after = tier(variant);
                    let ok = if kind.only_down_breaks() {
                        after >= before
                    } else {
                        after == before
                    };
                    s.total += 1;
                    if ok {
                        s.kept += 1;
                    } else {
                        s.broken.push((e.id.clone(), v, before, after));
                    }
                }
                s.prompts += 1;
                s.prompts_kept += u32::from(s.broken.len() == broken_before);
            }
            s
        })
        .collect()
}

impl fmt::Display for InvarianceShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "  {:<28} {:>5.1}% of prompts kept their tier under every variant ({}/{}); \
             {:>5.1}% of variants ({}/{})",
            self.kind.name(),
            100.0 * self.prompt_share(),
            self.prompts_kept,
            self.prompts,
            100.0 * self.share(),
            self.kept,
            self.total
        )
    }
}
