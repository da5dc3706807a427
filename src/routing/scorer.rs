//! The complexity scorer: a pure function from a request to tier probabilities, a score in
//! [0, 1] and the signals that decided it. Features come from [`features`](super::features);
//! a multinomial logistic model, trained offline on the routing dev set by
//! `cargo run --release --example train_scorer` and committed as `weights.json`, turns them
//! into probabilities of cheap, mid and premium.
//!
//! The score is the expected tier on a 0 (cheap), 0.5 (mid), 1 (premium) scale, so the
//! router's two thresholds (`routing.cheap_below`, `routing.premium_from`) cut it as before,
//! and a request the model cannot place between cheap and premium lands on mid.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::features::{self, Features, FEATURE_NAMES, N_FEATURES};
use crate::api::ChatRequest;

/// One named contribution to the decision, in logit units toward the most probable tier.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Signal {
    pub name: &'static str,
    pub weight: f64,
}

/// What the scorer says about a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// Expected tier in [0, 1]: `0.5 * P(mid) + P(premium)`.
    pub value: f64,
    /// Probabilities of cheap, mid and premium, in that order.
    pub probs: [f64; 3],
    /// The largest contributions toward the most probable tier, largest first (at most 6).
    pub signals: Vec<Signal>,
}

/// Tier order used by the model's rows and by `Score::probs`.
pub const TIERS: [&str; 3] = ["cheap", "mid", "premium"];

/// A linear model over raw (unstandardised) features: one row of weights per tier.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub bias: [f64; 3],
    pub weights: [Features; 3],
}

impl Model {
    /// A model that knows nothing: every tier equally likely (so every request scores 0.5).
    pub const ZERO: Model = Model {
        bias: [0.0; 3],
        weights: [[0.0; N_FEATURES]; 3],
    };

    /// Per-tier logits for a feature vector.
    pub fn logits(&self, x: &Features) -> [f64; 3] {
        let mut z = self.bias;
        for (zk, row) in z.iter_mut().zip(&self.weights) {
            *zk += row.iter().zip(x).map(|(w, v)| w * v).sum::<f64>();
        }
        z
    }
}

/// Numerically stable softmax of three logits.
pub fn softmax(z: [f64; 3]) -> [f64; 3] {
    let m = z[0].max(z[1]).max(z[2]);
    let e = z.map(|v| (v - m).exp());
    let s = e[0] + e[1] + e[2];
    e.map(|v| v / s)
}

/// One feature's weights in the committed file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureWeights {
    pub name: String,
    /// Weights for cheap, mid, premium.
    pub weights: [f64; 3],
}

/// The committed weights file (`src/routing/weights.json`), as the trainer writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WeightsFile {
    pub about: String,
    /// sha256 of the dev set the weights were trained on.
    pub dev_set_sha256: String,
    pub examples: usize,
    pub l2: f64,
    pub iterations: usize,
    pub tiers: [String; 3],
    pub bias: [f64; 3],
    pub features: Vec<FeatureWeights>,
}

impl WeightsFile {
    /// The model, if the file lists exactly the features this build extracts, in order.
    pub fn model(&self) -> Result<Model, String> {
        if self.features.len() != N_FEATURES {
            return Err(format!(
                "weights file has {} features, the scorer extracts {N_FEATURES}",
                self.features.len()
            ));
        }
        let mut m = Model {
            bias: self.bias,
            ..Model::ZERO
        };
        for (j, (f, name)) in self.features.iter().zip(FEATURE_NAMES).enumerate() {
            if f.name != name {
                return Err(format!("feature {j} is `{}`, expected `{name}`", f.name));
            }
            for k in 0..3 {
                m.weights[k][j] = f.weights[k];
            }
        }
        Ok(m)
    }

    /// The file for a model, with the training metadata filled in by the caller.
    pub fn from_model(m: &Model) -> WeightsFile {
        WeightsFile {
            about: "Multinomial logistic regression (L2, Newton's method) over the features of \
                    src/routing/features.rs, trained on data/routing/prompts.jsonl; written by \
                    `cargo run --release --example train_scorer`, do not edit by hand."
                .into(),
            dev_set_sha256: String::new(),
            examples: 0,
            l2: 0.0,
            iterations: 0,
            tiers: TIERS.map(String::from),
            bias: m.bias,
            features: FEATURE_NAMES
                .iter()
                .enumerate()
                .map(|(j, n)| FeatureWeights {
                    name: (*n).to_owned(),
                    weights: [m.weights[0][j], m.weights[1][j], m.weights[2][j]],
                })
                .collect(),
        }
    }
}

const WEIGHTS_JSON: &str = include_str!("weights.json");

/// The committed model, parsed once. A broken file (which a unit test rules out) degrades to
/// [`Model::ZERO`], routing everything to mid, rather than failing requests.
pub fn committed_model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        serde_json::from_str::<WeightsFile>(WEIGHTS_JSON)
            .map_err(|e| e.to_string())
            .and_then(|w| w.model())
            .unwrap_or_else(|e| {
                log::error!("scorer weights unusable ({e}); routing every auto request to mid");
                Model::ZERO
            })
    })
}

/// Scores a request with the committed model.
pub fn score(req: &ChatRequest) -> Score {
    score_with(committed_model(), req)
}

/// Scores a request with a given model (the evaluation scores held-out folds this way).
pub fn score_with(model: &Model, req: &ChatRequest) -> Score {
    let x = features::extract(req);
    let mut z = model.logits(&x);
    let priors = request_priors(req);
    for (_, d) in priors.iter().flatten() {
        for (zk, dk) in z.iter_mut().zip(d) {
            *zk += dk;
        }
    }
    let probs = softmax(z);
    let top = (0..3).fold(0, |b, k| if probs[k] > probs[b] { k } else { b });
    // A contribution's pull toward the chosen tier, relative to the other two.
    let pull = |d: [f64; 3]| d[top] - (d[0] + d[1] + d[2]) / 3.0;
    let mut signals = Vec::with_capacity(N_FEATURES + 3);
    for (j, name) in FEATURE_NAMES.iter().enumerate() {
        let w = pull([0, 1, 2].map(|k| model.weights[k][j] * x[j]));
        if w > 0.0 {
            signals.push(Signal { name, weight: w });
        }
    }
    for (name, d) in priors.iter().flatten() {
        signals.push(Signal {
            name,
            weight: pull(*d),
        });
    }
    signals.retain(|s| s.weight > 0.0);
    signals.sort_by(|a, b| b.weight.total_cmp(&a.weight));
    signals.truncate(6);
    Score {
        value: 0.5 * probs[1] + probs[2],
        probs,
        signals,
    }
}

/// How many tools an ordinary coding agent sends (read, write, edit, search, list, run...).
const TOOLS_EVERY_AGENT_HAS: usize = 8;

/// Logit nudges (cheap, mid, premium) for what the dev set cannot teach: it has no tools, no
/// `response_format` and no `max_tokens`. Hand-set and deliberately small, so the text still
/// decides: agents with many tools and strict JSON schemas fail more often on small models,
/// a tiny output cap signals a short answer, and a huge one a long generation. The tool nudge
/// grows only past the handful of tools every coding agent carries, so that an agent's cheap
/// question (what does this error mean?) is still placed by its text.
pub fn request_priors(req: &ChatRequest) -> [Option<(&'static str, [f64; 3])>; 3] {
    let tools = req.tools.as_ref().map_or(0, Vec::len);
    let tools = (tools > 0).then(|| {
        let t = (tools.saturating_sub(TOOLS_EVERY_AGENT_HAS) as f64).ln_1p();
        ("tools", [-0.15 - 0.5 * t, 0.0, 0.2 * t])
    });
    let kind = req
        .response_format
        .as_ref()
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str);
    let format = match kind {
        Some("json_schema") => Some(("json_schema", [-0.7, 0.0, 0.0])),
        Some("json_object") => Some(("json_output", [-0.35, 0.0, 0.0])),
        _ => None,
    };
    let output = match req.max_output_tokens() {
        Some(n) if n <= 100 => Some(("output_size", [0.7, 0.0, -0.3])),
        Some(n) if n >= 16_000 => Some(("output_size", [-1.2, 0.0, 0.7])),
        Some(n) if n >= 4_000 => Some(("output_size", [-0.7, 0.0, 0.35])),
        _ => None,
    };
    [tools, format, output]
}

#[cfg(test)]
#[path = "scorer_tests.rs"]
mod tests;
