//! Scoring latency for a typical ~2 KB multi-turn conversation (target: p99 <= 20 µs), and
//! for a coding agent's request (a few KB of system prompt and six tools, which the scorer
//! skips, around one task).
//! Criterion reports the mean; criterion does not report tail latency, so a second pass
//! times 200,000 single calls and prints their percentiles.
//!
//!     cargo bench --bench scorer

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use pura::api::ChatRequest;
use pura::routing::{augment, features, scorer};

/// A system prompt, a question, a worked answer and a follow-up: about 2 KB of text.
fn conversation() -> ChatRequest {
    let body = serde_json::json!({
        "model": "auto",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant for a logistics company. Answer precisely and say when you are unsure."},
            {"role": "user", "content": "We ship pallets from three warehouses (Leeds, Bristol, Glasgow) to 40 stores. Each store needs between 2 and 9 pallets a week, trucks carry at most 26 pallets, and a truck may visit at most 4 stores per route. Fuel costs $1.80 per mile and drivers are paid $22 per hour. How should we think about planning the weekly routes, and what data do we need to collect first?"},
            {"role": "assistant", "content": "This is a capacitated vehicle routing problem with multiple depots. Start by collecting: 1) the distance and travel-time matrix between every warehouse and store; 2) each store's weekly demand and delivery windows; 3) truck availability per warehouse; 4) loading times. Then: assign stores to their nearest warehouse as a first cut, build routes per warehouse with a savings heuristic (Clarke-Wright), and check the capacity (26 pallets) and stop (4 stores) constraints on every route. Cost each route as miles x $1.80 plus hours x $22. Finally, try moving border stores between warehouses and re-run the heuristic; keep a change only when the total weekly cost falls. For 40 stores a solver such as OR-Tools will find near-optimal plans in seconds, and it can take the time windows into account too. Expect the first plan to be rough: measure actual loading and driving times for a month, feed them back into the matrix, and re-plan weekly. Keep one spare truck per warehouse for demand spikes, and review stores whose demand swings by more than three pallets week to week, since they drive most of the re-planning."},
            {"role": "user", "content": "Thanks, that helps. Suppose Glasgow closes for two weeks in March: how would you rebalance its 11 stores across Leeds and Bristol while keeping every route under 9 hours of driving? Please show the steps and the rough cost impact, and list the assumptions you make."}
        ],
        "max_tokens": 800,
        "temperature": 0.2
    });
    serde_json::from_value(body).expect("valid request")
}

fn bench(c: &mut Criterion) {
    let req = conversation();
    let bytes: usize = req.messages.iter().map(|m| m.text().len()).sum();
    println!(
        "conversation: {} messages, {bytes} bytes of text",
        req.messages.len()
    );
    c.bench_function("score_2kb_conversation", |b| {
        b.iter(|| scorer::score(black_box(&req)))
    });
    c.bench_function("features_2kb_conversation", |b| {
        b.iter(|| features::extract(black_box(&req)))
    });
    let agent = augment::agent_request(&req, 1).expect("agent request");
    c.bench_function("score_agent_request", |b| {
        b.iter(|| scorer::score(black_box(&agent)))
    });
    percentiles("2 KB conversation", &req);
    percentiles("agent request", &agent);
}

/// Times single calls and prints percentiles, which criterion's summary lacks.
fn percentiles(what: &str, req: &ChatRequest) {
    for _ in 0..10_000 {
        black_box(scorer::score(black_box(req)));
    }
    let mut ns: Vec<u128> = (0..200_000)
        .map(|_| {
            let t = Instant::now();
            black_box(scorer::score(black_box(req)));
            t.elapsed().as_nanos()
        })
        .collect();
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    println!(
        "score {what}, 200000 single calls: p50 {:.2} µs, p90 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs, max {:.2} µs",
        at(0.5),
        at(0.9),
        at(0.99),
        at(0.999),
        at(1.0)
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
