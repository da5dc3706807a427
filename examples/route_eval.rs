//! Measures the complexity router on the routing dev set (`data/routing/prompts.jsonl`):
//!
//! - stratified 5-fold cross-validation (held-out figures);
//! - leave-one-source-out (each source scored by a model trained on the others only: how the
//!   scorer does on a kind of prompt it never saw), with the per-source table;
//! - the agent-shaped set (the same tasks behind a coding agent's system prompt and tools),
//!   held-out by the same folds, and with the committed weights;
//! - the invariance shares of the committed weights (generic system prompt, greeting,
//!   markdown, earlier small talk, polite rewording);
//! - the committed weights on the whole set (training-set figures, optimistic by construction).
//!
//! Usage:
//!
//!     cargo run --release --example route_eval [-- --misses --prior --thresholds 0.3,0.6]
//!     cargo run --release --example route_eval -- --explain mmlu:13194
//!
//! Thresholds default to the router's (`routing.cheap_below`, `routing.premium_from`).

use pura::routing::{eval, features, policy, scorer, train};

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let show_misses = args.iter().any(|a| a == "--misses");
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
    let cfg = match std::env::var("PURA_SCORER_L2") {
        Ok(v) => train::TrainConfig {
            l2: v.parse().map_err(|_| format!("PURA_SCORER_L2 `{v}`"))?,
            ..train::DEFAULT
        },
        Err(_) => train::DEFAULT,
    };
    if let Some(i) = args.iter().position(|a| a == "--explain") {
        explain(&examples, args.get(i + 1).map_or("", String::as_str));
        return Ok(());
    }
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
    let cv = eval::cross_validate(&examples, &cfg, thresholds, eval::FOLDS, eval::SEED);
    println!(
        "\nHELD-OUT: {}-fold stratified cross-validation (seed {}), each fold scored by a model \
         trained without it",
        eval::FOLDS,
        eval::SEED
    );
    print!("{cv}");
    let lo = eval::leave_one_source_out(&examples, &cfg, thresholds);
    println!("\nLEAVE-ONE-SOURCE-OUT: each source scored by a model trained on the others only");
    print!("{lo}");
    let agents = eval::agent_set(&examples)?;
    let agent_cv = eval::cross_validate_shown(
        &examples,
        &agents,
        &cfg,
        thresholds,
        eval::FOLDS,
        eval::SEED,
    );
    println!(
        "\nAGENT-SHAPED, HELD-OUT: the same tasks behind a {}-byte coding-agent system prompt and \
         6 tools (every other one after a tool call and its result), each scored by the fold \
         model that never saw the task",
        pura::routing::augment::AGENT_SYSTEM_PROMPT.len()
    );
    print!("{agent_cv}");
    let committed = scorer::committed_model();
    let agent_full = eval::evaluate(committed, &agents, thresholds);
    println!("\nAGENT-SHAPED, committed weights (tasks seen in training)");
    print!("{agent_full}");
    println!("\nINVARIANCES, committed weights");
    let inv = eval::invariances(committed, &examples, thresholds);
    for s in &inv {
        println!("{s}");
    }
    if args.iter().any(|a| a == "--prior") {
        let r = eval::evaluate(&train::prior(), &examples, thresholds);
        println!("\nPRIOR: the hand-set model the trainer starts from, untrained, on all prompts");
        print!("{r}");
    }
    let full = eval::evaluate(committed, &examples, thresholds);
    println!("\nTRAINING SET: committed weights (src/routing/weights.json) on all prompts");
    print!("{full}");
    if show_misses {
        println!("\nheld-out misses (id, label -> routed, score):");
        print_misses(&cv.misses);
        println!("\nleave-one-source-out misses (id, label -> routed, score):");
        print_misses(&lo.misses);
        println!("\nagent-shaped held-out misses (id, label -> routed, score):");
        print_misses(&agent_cv.misses);
        println!("\ninvariance breaks (id, variant, tier before -> after):");
        for s in &inv {
            for (id, v, a, b) in &s.broken {
                let t = scorer::TIERS;
                println!(
                    "  {:<28} {id:<40} #{v} {} -> {}",
                    s.kind.name(),
                    t[*a],
                    t[*b]
                );
            }
        }
    }
    Ok(())
}

/// Prints the features and score of every example whose id starts with `prefix`.
fn explain(examples: &[eval::Example], prefix: &str) {
    for e in examples.iter().filter(|e| e.id.starts_with(prefix)) {
        let x = features::extract(&e.request);
        let s = scorer::score(&e.request);
        println!(
            "{} [{}] X-Pura-Score: {}",
            e.id,
            scorer::TIERS[e.label],
            policy::score_header(&s)
        );
        for (n, v) in features::FEATURE_NAMES.iter().zip(x) {
            if v != 0.0 {
                print!(" {n}={v:.2}");
            }
        }
        println!();
    }
}

fn print_misses(misses: &[(String, usize, usize, f64)]) {
    let t = scorer::TIERS;
    for (id, label, routed, value) in misses {
        println!(
            "  {id:<48} {:>7} -> {:<7} {value:.3}",
            t[*label], t[*routed]
        );
    }
}

fn parse_pair(s: &str) -> Result<(f64, f64), String> {
    let bad = || format!("--thresholds wants `cheap_below,premium_from`, got `{s}`");
    let (a, b) = s.split_once(',').ok_or_else(bad)?;
    Ok((
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    ))
}
