//! The official `openai` Python SDK against the real gateway, over fakes of every dialect.
//! Needs PURA_TEST_PYTHON: the interpreter of a venv with `openai` and `pytest`, which
//! `scripts/test.sh` creates.

mod common;

use common::{provider_toml, FakeDialect, FakeUpstream, Gateway};

#[actix_web::test]
async fn openai_python_sdk_is_a_happy_client() {
    let Ok(python) = std::env::var("PURA_TEST_PYTHON") else {
        eprintln!("PURA_TEST_PYTHON unset: run scripts/test.sh, which creates the SDK venv");
        return;
    };
    let openai = FakeUpstream::start(FakeDialect::OpenAi);
    let anthropic = FakeUpstream::start(FakeDialect::Anthropic);
    let gemini = FakeUpstream::start(FakeDialect::Gemini);
    let groq = FakeUpstream::start(FakeDialect::Groq);
    let toml = [
        provider_toml("openai", &openai, "mid", "gpt-4o", 0.005),
        provider_toml(
            "anthropic",
            &anthropic,
            "premium",
            "claude-sonnet-4-20250514",
            0.003,
        ),
        provider_toml("gemini", &gemini, "cheap", "gemini-2.0-flash", 0.0005),
        provider_toml("groq", &groq, "cheap", "llama-3.3-70b-versatile", 0.0003),
    ]
    .concat();
    let gw = Gateway::start(&toml, &[]);
    let (_, key) = gw.key().await;
    let models = "gpt-4o,claude-sonnet-4-20250514,gemini-2.0-flash,llama-3.3-70b-versatile";
    let out = std::process::Command::new(python)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/sdk/test_openai_sdk.py",
            "tests/sdk/test_openai_responses.py",
        ])
        .env("PURA_BASE", &gw.url)
        .env("PURA_KEY", &key)
        .env("PURA_MODELS", models)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run pytest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "the SDK suite failed:\n{stdout}\ngateway log:\n{}",
        gw.log()
    );
}
