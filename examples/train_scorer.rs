//! Trains the complexity scorer's model on the routing dev set and writes
//! `src/routing/weights.json`. Deterministic: the same dev set gives the same file.
//!
//!     cargo run --release --example train_scorer
//!
//! The dev set is read from `PURA_ROUTING_DEV`, else `data/routing/prompts.jsonl`
//! from the crate root; `PURA_SCORER_WEIGHTS` overrides where the weights are written.

use std::path::PathBuf;

use pura::routing::{eval, scorer::WeightsFile, train};

fn main() -> Result<(), String> {
    let (path, bytes) = eval::read_dev_set()?;
    let examples = eval::parse(&bytes)?;
    let (xs, ys) = eval::featurise(&examples);
    let cfg = train::DEFAULT;
    let model = train::fit(&xs, &ys, &cfg);
    let mut file = WeightsFile::from_model(&model);
    file.dev_set_sha256 = eval::sha256_hex(&bytes);
    file.examples = examples.len();
    file.l2 = cfg.l2;
    file.iterations = cfg.iterations;
    let out = std::env::var_os("PURA_SCORER_WEIGHTS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/routing/weights.json"),
        PathBuf::from,
    );
    let json = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())? + "\n";
    std::fs::write(&out, json).map_err(|e| format!("writing {}: {e}", out.display()))?;
    println!(
        "trained on {} examples from {} (sha256 {}); wrote {}",
        examples.len(),
        path.display(),
        file.dev_set_sha256,
        out.display()
    );
    Ok(())
}
