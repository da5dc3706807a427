//! The real Codex CLI (`@openai/codex` from npm, its native binary) runs `codex exec` against
//! the gateway over fake upstreams: a one-shot answer, and an agent turn where the upstream
//! first calls a tool (Codex runs the shell command) and answers with text once the tool's
//! output comes back — with an OpenAI upstream (Responses natively) and with an Anthropic
//! upstream behind `auto` (translated). Needs PURA_TEST_CODEX (the `codex` launcher), which
//! `scripts/test.sh` installs; under CI its absence is a failure, elsewhere a skip.

mod common;

use std::process::Command;

use common::{provider_toml, FakeDialect, FakeUpstream, Gateway};

fn codex() -> Option<String> {
    match std::env::var("PURA_TEST_CODEX") {
        Ok(c) => Some(c),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("PURA_TEST_CODEX unset under CI: scripts/test.sh installs Codex")
        }
        Err(_) => {
            eprintln!("PURA_TEST_CODEX unset: run scripts/test.sh, which installs Codex");
            None
        }
    }
}

/// Runs `codex exec PROMPT` with its own CODEX_HOME pointed at the gateway; (exit code, stdout
/// and stderr), printed as a transcript.
fn run(codex: &str, gw: &Gateway, key: &str, prompt: &str) -> (i32, String) {
    let home = tempfile::tempdir().expect("codex home");
    let repo = tempfile::tempdir().expect("repo");
    let config = format!(
        "model_provider = \"pura\"\nmodel = \"auto\"\nweb_search = \"disabled\"\n\n\
         [model_providers.pura]\nname = \"Pura\"\nbase_url = \"{}/v1\"\nwire_api = \"responses\"\n\
         env_key = \"PURA_API_KEY\"\nsupports_websockets = false\n",
        gw.url
    );
    std::fs::write(home.path().join("config.toml"), config).expect("config.toml");
    let args = [
        "exec",
        "--skip-git-repo-check",
        "-C",
        &repo.path().to_string_lossy(),
        prompt,
    ];
    let out = Command::new(codex)
        .args(args)
        .env("CODEX_HOME", home.path())
        .env("PURA_API_KEY", key)
        .env_remove("OPENAI_API_KEY")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run codex");
    let code = out.status.code().unwrap_or(-1);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("$ codex {}\nexit {code}\n{text}", args.join(" "));
    (code, text)
}

#[actix_web::test]
async fn codex_exec_answers_and_runs_a_tool_turn_through_pura() {
    let Some(codex) = codex() else { return };
    for (dialect, name, tier, model) in [
        (FakeDialect::OpenAi, "openai", "mid", "gpt-4o"),
        (
            FakeDialect::Anthropic,
            "anthropic",
            "premium",
            "claude-sonnet-4-20250514",
        ),
    ] {
        let fake = FakeUpstream::start(dialect);
        let gw = Gateway::start(&provider_toml(name, &fake, tier, model, 0.002), &[]);
        let (key_id, key) = gw.key().await;
        let reply = format!(
            "Hello from fake {}!",
            if name == "openai" {
                "OpenAI"
            } else {
                "Anthropic"
            }
        );

        fake.set_tool_calls(false);
        let (code, out) = run(&codex, &gw, &key, "Say hello.");
        assert_eq!(code, 0, "{name}: one-shot\n{out}\n{}", gw.log());
        assert!(out.contains(&reply), "{name}: one-shot\n{out}");
        assert_eq!(fake.hits(), 1, "{name}: one request for a one-shot answer");

        fake.set_tool_calls(true);
        let (code, out) = run(&codex, &gw, &key, "List the files here, then say hello.");
        assert_eq!(code, 0, "{name}: tool turn\n{out}\n{}", gw.log());
        assert!(out.contains(&reply), "{name}: tool turn\n{out}");
        assert_eq!(
            fake.hits(),
            3,
            "{name}: a tool call, then the answer after its output"
        );
        let last = fake.last_request().unwrap_or_default().to_string();
        let tool_result = if name == "openai" {
            "function_call_output"
        } else {
            "tool_result"
        };
        assert!(
            last.contains(tool_result),
            "{name}: the tool's output went back: {last}"
        );
        let rows = gw.usage_rows(&key_id);
        assert_eq!(rows.len(), 3, "{name}: every request billed once");
        assert!(rows.iter().all(|r| r.status == "ok"), "{name}: {rows:?}");
    }
}
