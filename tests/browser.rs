//! The console in a real browser: tests/browser/console.mjs drives Debian's Chromium
//! (playwright-core) against this gateway, two fake upstreams and the real LNbits that
//! scripts/test.sh starts, checks every flow of the console and an axe-core pass, and saves a
//! screenshot of each state in target/ci-artifacts/console/. scripts/test.sh installs
//! Chromium and the node modules; without them this test is skipped, except in CI.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use common::{exact_request, provider_toml, FakeDialect, FakeUpstream, Gateway};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";

/// What the run needs from outside Cargo, or why it is missing.
fn prerequisites(modules: &std::path::Path) -> Result<HashMap<String, String>, String> {
    if !std::path::Path::new(CHROMIUM).exists() {
        return Err(format!("{CHROMIUM} is missing"));
    }
    for module in ["playwright-core", "axe-core"] {
        if !modules.join(module).is_dir() {
            return Err(format!("{} is missing", modules.join(module).display()));
        }
    }
    let path = std::env::var("PURA_TEST_LNBITS_KEYS")
        .map_err(|_| "PURA_TEST_LNBITS_KEYS is unset (LNbits not started)".to_owned())?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

async fn mint(gw: &Gateway, bearer: Option<&str>, body: Value) -> (String, String) {
    let mut req = gw.client().post(format!("{}/api/keys", gw.url));
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let mut resp = req.send_json(&body).await.expect("mint");
    assert_eq!(resp.status().as_u16(), 201);
    let v: Value = resp.json().await.expect("key json");
    (
        v["id"].as_str().expect("id").to_owned(),
        v["key"].as_str().expect("key").to_owned(),
    )
}

/// A fresh LNbits wallet for the gateway's invoices; its invoice key.
async fn merchant(lnbits_url: &str) -> String {
    let mut resp = awc::Client::default()
        .post(format!("{lnbits_url}/api/v1/account"))
        .send_json(&json!({"name": "pura-browser"}))
        .await
        .expect("create wallet");
    let v: Value = resp.json().await.expect("wallet json");
    v["inkey"].as_str().expect("inkey").to_owned()
}

#[actix_web::test]
async fn the_console_in_chromium() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let modules = root.join(".npm-browser/node_modules");
    let lnbits = match prerequisites(&modules) {
        Ok(vars) => vars,
        Err(why) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED the browser test: {why} (run scripts/test.sh, which installs it)");
            return;
        }
        Err(why) => panic!("CI is set and the browser test cannot run: {why}"),
    };
    let (lnbits_url, payer) = (&lnbits["LNBITS_URL"], &lnbits["PAYER_ADMIN_KEY"]);
    let inkey = merchant(lnbits_url).await;

    let openai = FakeUpstream::start(FakeDialect::OpenAi);
    let anthropic = FakeUpstream::start(FakeDialect::Anthropic);
    let toml = provider_toml("openai", &openai, "mid", "gpt-4o", 1.0)
        + &provider_toml("anthropic", &anthropic, "premium", "claude-3-5-sonnet", 3.0);
    // A database of its own on PostgreSQL: the invoice watcher asks LNbits about every open
    // invoice in the database, and other tests' invoices (other wallets) would make it back off.
    let gw = Gateway::start_isolated(
        &toml,
        &[
            ("PURA__LIMITS__RPM", "100000"),
            ("PURA__LIGHTNING__BACKEND", "lnbits"),
            ("PURA__LIGHTNING__URL", lnbits_url),
            ("LNBITS_INVOICE_KEY", &inkey),
            ("PURA__LIGHTNING__POLL_INTERVAL", "200ms"),
        ],
    );

    // An account with 30 requests over two providers (free-tier requests: the balance is the
    // credit below to the cent), a use key, and a key of another account.
    let (owner_id, owner) = mint(&gw, None, json!({"label": "owner"})).await;
    for i in 0..30 {
        let mut body = exact_request(i % 5 == 0);
        if i % 3 == 0 {
            body["model"] = json!("claude-3-5-sonnet");
        }
        let resp = gw
            .client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(&owner)
            .insert_header(("x-client-request-id", format!("browser-{i}")))
            .send_json(&body)
            .await
            .expect("chat");
        assert_eq!(resp.status().as_u16(), 200, "request {i}");
    }
    // 1,250 sats at the default $0.0004 a sat: $0.50 exactly.
    gw.admin_credit(&owner_id, 1250).await;
    let (_, tool) = mint(&gw, Some(&owner), json!({"label": "tool", "role": "use"})).await;
    let (_, other) = mint(&gw, None, json!({"label": "other"})).await;

    // A second gateway with no Lightning backend: its console offers no top-up.
    let plain = Gateway::start(&provider_toml("openai", &openai, "mid", "gpt-4o", 1.0), &[]);
    let (_, plain_key) = mint(&plain, None, json!({"label": "plain"})).await;

    let artifacts = root.join("target/ci-artifacts/console");
    println!("screenshots: {}", artifacts.display());
    let out = Command::new("node")
        .arg(root.join("tests/browser/console.mjs"))
        .env("PURA_URL", &gw.url)
        .env("PURA_KEY", &owner)
        .env("PURA_USE_KEY", &tool)
        .env("PURA_OTHER_KEY", &other)
        .env("PLAIN_URL", &plain.url)
        .env("PLAIN_KEY", &plain_key)
        .env("LNBITS_URL", lnbits_url)
        .env("LNBITS_PAYER_KEY", payer)
        .env("NODE_MODULES", &modules)
        .env("ARTIFACTS", &artifacts)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && !stdout.contains("not ok"),
        "browser checks failed:\n{stdout}\ngateway log:\n{}",
        gw.log()
    );
}
