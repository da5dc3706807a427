//! The complexity router against its targets on the routing dev set in `data/routing/`
//! (issue 15), held-out figures only:
//!
//! - 5-fold cross-validation: accuracy >= 90%, premium -> cheap <= 3%, cheap -> premium <= 5%;
//! - leave-one-source-out: accuracy >= 70%, with the same two bounds;
//! - the agent-shaped set (the same tasks behind a coding agent's system prompt and tools),
//!   held out by the same folds: accuracy >= 85%, with the same two bounds;
//! - invariances over the whole set with the committed weights: under each rewrite, >= 98% of
//!   the prompts keep their tier under every variant of it (polite rewording of hard prompts:
//!   no drop), and >= 98% of all variants do.
//!
//! Also checks that the committed weights are what the trainer produces from that set. A
//! missing dev set fails the tests (it is the measurement), it does not skip them.

use pura::routing::{eval, scorer, train};

fn dev_set() -> (Vec<u8>, Vec<eval::Example>) {
    let (_, bytes) = eval::read_dev_set().unwrap_or_else(|e| panic!("{e}"));
    let examples = eval::parse(&bytes).expect("dev set parses");
    assert_eq!(examples.len(), 594, "unexpected dev set size");
    (bytes, examples)
}

fn thresholds() -> (f64, f64) {
    eval::default_thresholds().expect("default config")
}

fn assert_bounds(what: &str, r: &eval::Report, accuracy: f64) {
    println!("{what}\n{r}");
    assert!(r.accuracy() >= accuracy, "{what}: accuracy\n{r}");
    assert!(
        r.premium_to_cheap() <= 0.03,
        "{what}: premium -> cheap\n{r}"
    );
    assert!(
        r.cheap_to_premium() <= 0.05,
        "{what}: cheap -> premium\n{r}"
    );
}

#[test]
fn cross_validated_routing_meets_the_targets() {
    let (_, examples) = dev_set();
    let r = eval::cross_validate(
        &examples,
        &train::DEFAULT,
        thresholds(),
        eval::FOLDS,
        eval::SEED,
    );
    assert_bounds("5-fold cross-validation", &r, 0.90);
}

#[test]
fn leave_one_source_out_meets_the_targets() {
    let (_, examples) = dev_set();
    let r = eval::leave_one_source_out(&examples, &train::DEFAULT, thresholds());
    assert_bounds("leave-one-source-out", &r, 0.70);
}

#[test]
fn agent_shaped_requests_are_routed_by_their_task() {
    let (_, examples) = dev_set();
    let agents = eval::agent_set(&examples).expect("agent-shaped requests build");
    assert!(agents.iter().all(|e| e.request.tools.is_some()));
    let r = eval::cross_validate_shown(
        &examples,
        &agents,
        &train::DEFAULT,
        thresholds(),
        eval::FOLDS,
        eval::SEED,
    );
    assert_bounds("agent-shaped, held-out", &r, 0.85);
}

#[test]
fn invariances_hold_over_the_whole_dev_set() {
    let (_, examples) = dev_set();
    let shares = eval::invariances(scorer::committed_model(), &examples, thresholds());
    assert_eq!(shares.len(), 5);
    for s in &shares {
        println!("{s}");
        assert!(s.total > 0);
    }
    for s in &shares {
        assert!(
            s.share() >= 0.98 && s.prompt_share() >= 0.98,
            "{s}; broken: {:?}",
            &s.broken[..s.broken.len().min(20)]
        );
    }
}

#[test]
fn committed_weights_are_reproducible_from_the_dev_set() {
    let (bytes, examples) = dev_set();
    let committed: scorer::WeightsFile =
        serde_json::from_str(include_str!("../src/routing/weights.json")).expect("parses");
    assert_eq!(
        committed.dev_set_sha256,
        eval::sha256_hex(&bytes),
        "weights were trained on another dev set: rerun `cargo run --release --example train_scorer`"
    );
    let (xs, ys) = eval::featurise(&examples);
    let fresh = train::fit(&xs, &ys, &train::DEFAULT);
    let old = committed.model().expect("matches the features");
    let diff = old
        .weights
        .iter()
        .flatten()
        .chain(&old.bias)
        .zip(fresh.weights.iter().flatten().chain(&fresh.bias))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        diff < 1e-9,
        "weights.json differs from a fresh fit by {diff}: rerun `cargo run --release --example train_scorer`"
    );
}

#[test]
fn the_dev_set_is_carried_by_the_repository() {
    // The default path is inside the crate, never a sibling checkout.
    if std::env::var_os("PURA_ROUTING_DEV").is_none() {
        let p = eval::dev_set_path();
        assert!(
            p.starts_with(env!("CARGO_MANIFEST_DIR")) && !p.to_string_lossy().contains(".."),
            "{}",
            p.display()
        );
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/routing");
    for f in [
        "prompts.jsonl",
        "build.py",
        "build.sh",
        "README.md",
        "LICENSES.md",
    ] {
        assert!(root.join(f).is_file(), "data/routing/{f} is missing");
    }
}
