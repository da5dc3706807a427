//! Runs the test suite's fake upstreams (OpenAI, Groq, Anthropic, Gemini) on random local
//! ports and prints a pura config that routes to them, for trying the gateway by hand:
//!
//! ```sh
//! cargo run --example fake_upstreams > /tmp/fakes.toml &   # prints the [providers.*] tables
//! cargo run -- --config /tmp/fakes.toml
//! ```

#[path = "../tests/common/fake_upstream.rs"]
mod fake_upstream;

use fake_upstream::{FakeDialect, FakeUpstream};

fn main() {
    let fakes = [
        (
            "openai",
            FakeDialect::OpenAi,
            "openai",
            "mid",
            "gpt-4o",
            0.005,
        ),
        (
            "groq",
            FakeDialect::Groq,
            "openai",
            "cheap",
            "llama-3.3-70b-versatile",
            0.0003,
        ),
        (
            "anthropic",
            FakeDialect::Anthropic,
            "anthropic",
            "premium",
            "claude-sonnet-4-20250514",
            0.003,
        ),
        (
            "gemini",
            FakeDialect::Gemini,
            "gemini",
            "cheap",
            "gemini-2.0-flash",
            0.0005,
        ),
    ];
    let mut running = Vec::new();
    for (name, dialect, wire, tier, model, price) in fakes {
        let fake = FakeUpstream::start(dialect);
        println!(
            "[providers.{name}]\ndialect = \"{wire}\"\nbase_url = \"{}\"\napi_key = \"{}\"\ntier = \"{tier}\"\n\
             models = [\"{model}\"]\nprice_per_1k = {price}\n",
            fake.base_url(),
            fake.api_key()
        );
        running.push(fake);
    }
    loop {
        std::thread::park();
    }
}
