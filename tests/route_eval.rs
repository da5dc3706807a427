//! The complexity router against its targets on the routing dev set, held-out folds only:
//! accuracy >= 80%, premium -> cheap <= 3%, cheap -> premium <= 5%. Also checks that the
//! committed weights are what the trainer produces from that set. A missing dev set fails
//! the test (it is the measurement), it does not skip it.

use pura::routing::{eval, scorer, train};

fn dev_set() -> (Vec<u8>, Vec<eval::Example>) {
    let (_, bytes) = eval::read_dev_set().unwrap_or_else(|e| panic!("{e}"));
    let examples = eval::parse(&bytes).expect("dev set parses");
    assert_eq!(examples.len(), 594, "unexpected dev set size");
    (bytes, examples)
}

#[test]
fn cross_validated_routing_meets_the_targets() {
    let (_, examples) = dev_set();
    let thresholds = eval::default_thresholds().expect("default config");
    let r = eval::cross_validate(
        &examples,
        &train::DEFAULT,
        thresholds,
        eval::FOLDS,
        eval::SEED,
    );
    println!("{r}");
    assert!(r.accuracy() >= 0.80, "held-out accuracy\n{r}");
    assert!(r.premium_to_cheap() <= 0.03, "premium -> cheap\n{r}");
    assert!(r.cheap_to_premium() <= 0.05, "cheap -> premium\n{r}");
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
