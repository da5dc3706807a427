//! Measures the complexity router on the routing dev set: stratified 5-fold cross-validation
//! (held-out figures, the ones that count), then the committed weights on the whole set
//! (training-set figures, optimistic by construction).
//!
//!     cargo run --release --example route_eval [-- --misses --by-source --thresholds 0.3,0.6]
//!
//! Thresholds default to the router's (`routing.cheap_below`, `routing.premium_from`).

use pura::routing::{eval, scorer, train};

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let show_misses = args.iter().any(|a| a == "--misses");
    let by_source = args.iter().any(|a| a == "--by-source");
    let thresholds = match args.iter().position(|a| a == "--thresholds") {
        Some(i) => parse_pair(args.get(i + 1).map_or("", String::as_str))?,
        None => eval::default_thresholds()?,
    };
    let (path, bytes) = eval::read_dev_set()?;
    let examples = eval::parse(&bytes)?;
    println!(
        "routing dev set: {} ({} prompts, sha256 {})",
        path.display(),
        examples.len(),
        eval::sha256_hex(&bytes)
    );
    println!(
        "thresholds: cheap below {}, premium from {}; cost: chars/4 prompt tokens + {} completion \
         tokens at $/1K cheap {} mid {} premium {}",
        thresholds.0,
        thresholds.1,
        eval::ASSUMED_COMPLETION_TOKENS,
        eval::TIER_PRICE_PER_1K[0],
        eval::TIER_PRICE_PER_1K[1],
        eval::TIER_PRICE_PER_1K[2]
    );
    let cv = eval::cross_validate(
        &examples,
        &train::DEFAULT,
        thresholds,
        eval::FOLDS,
        eval::SEED,
    );
    println!(
        "\nHELD-OUT: {}-fold stratified cross-validation (seed {}), each fold scored by a model \
         trained without it",
        eval::FOLDS,
        eval::SEED
    );
    print!("{cv}");
    let full = eval::evaluate(scorer::committed_model(), &examples, thresholds);
    println!("\nTRAINING SET: committed weights (src/routing/weights.json) on all prompts");
    print!("{full}");
    if by_source {
        let lo = eval::leave_one_source_out(&examples, &train::DEFAULT, thresholds);
        println!(
            "\nLEAVE-ONE-SOURCE-OUT: each source scored by a model trained on the others only"
        );
        print!("{lo}");
    }
    if show_misses {
        println!("\nheld-out misses (id, label -> routed, score):");
        for (id, label, routed, value) in &cv.misses {
            let t = scorer::TIERS;
            println!(
                "  {id:<48} {:>7} -> {:<7} {value:.3}",
                t[*label], t[*routed]
            );
        }
    }
    Ok(())
}

fn parse_pair(s: &str) -> Result<(f64, f64), String> {
    let bad = || format!("--thresholds wants `cheap_below,premium_from`, got `{s}`");
    let (a, b) = s.split_once(',').ok_or_else(bad)?;
    Ok((
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    ))
}
