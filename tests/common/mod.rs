//! Test harness: the real `pura` binary on a random port, a fresh database per gateway
//! (a temp SQLite file, or the PostgreSQL of `PURA_TEST_DATABASE_URL`), and fake upstreams.

#![allow(dead_code, unused_imports)]

pub mod fake_upstream;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

pub use fake_upstream::{Behavior, FakeDialect, FakeUpstream};

/// Seed providers' key variables, removed so a developer's real keys never leak into tests.
const SEED_KEYS: [&str; 4] = [
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GROQ_API_KEY",
];

pub struct Gateway {
    pub url: String,
    pub db_url: String,
    child: Child,
    dir: tempfile::TempDir,
}

/// The database a gateway of this test run uses.
fn database_url(dir: &std::path::Path) -> String {
    match std::env::var("PURA_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => format!("sqlite://{}", dir.join("pura.db").display()),
    }
}

/// A `[providers.NAME]` table pointing at a fake upstream.
pub fn provider_toml(
    name: &str,
    fake: &FakeUpstream,
    tier: &str,
    model: &str,
    price: f64,
) -> String {
    let dialect = match fake.dialect() {
        FakeDialect::OpenAi | FakeDialect::Groq => "openai",
        FakeDialect::Anthropic => "anthropic",
        FakeDialect::Gemini => "gemini",
    };
    format!(
        "[providers.{name}]\ndialect = \"{dialect}\"\nbase_url = \"{}\"\napi_key = \"{}\"\ntier = \"{tier}\"\n\
         models = [\"{model}\"]\nprice_per_1k = {price}\ntimeout = \"3s\"\n\n",
        fake.base_url(),
        fake.api_key()
    )
}

impl Gateway {
    /// Starts the gateway with `extra` TOML appended (provider tables, routing…) and env pairs.
    pub fn start(extra: &str, env: &[(&str, &str)]) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let db_url = database_url(dir.path());
        // The seed providers are switched off so only the fakes of the test are routed to.
        let mut toml = format!(
            "[server]\nbind = \"127.0.0.1:0\"\nworkers = 2\n\n[database]\nurl = \"{db_url}\"\npool_size = 4\n\n\
             [routing]\ncircuit_cooldown = \"1s\"\n\n"
        );
        for seed in ["openai", "anthropic", "gemini", "groq"] {
            if !extra.contains(&format!("[providers.{seed}]")) {
                toml.push_str(&format!("[providers.{seed}]\nenabled = false\n\n"));
            }
        }
        toml.push_str(extra);
        let config = dir.path().join("pura.toml");
        std::fs::write(&config, toml).expect("write config");
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pura"));
        cmd.arg("--config").arg(&config).current_dir(dir.path());
        for k in SEED_KEYS {
            cmd.env_remove(k);
        }
        cmd.env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn pura");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("pura listening on ") {
                        break url.to_owned();
                    }
                }
                _ => {
                    let log =
                        std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
                    panic!("pura exited before listening:\n{log}");
                }
            }
        };
        Gateway {
            url,
            db_url,
            child,
            dir,
        }
    }

    /// Starts the gateway and expects it to fail; returns its stderr.
    pub fn start_failing(file: &str) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("pura.toml");
        std::fs::write(&config, file).expect("write config");
        let out = Command::new(env!("CARGO_BIN_EXE_pura"))
            .arg("--config")
            .arg(&config)
            .current_dir(dir.path())
            .output()
            .expect("run pura");
        assert!(!out.status.success(), "pura should refuse this config");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    pub fn client(&self) -> awc::Client {
        awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish()
    }

    /// Mints a key; returns (id, secret).
    pub async fn key(&self) -> (String, String) {
        let mut resp = self
            .client()
            .post(format!("{}/api/keys", self.url))
            .send_json(&json!({"label": "test"}))
            .await
            .expect("mint key");
        assert_eq!(resp.status().as_u16(), 201);
        let v: Value = resp.json().await.expect("key json");
        (
            v["id"].as_str().expect("id").to_owned(),
            v["key"].as_str().expect("key").to_owned(),
        )
    }

    /// POSTs JSON with a bearer key; returns status, headers and the raw body.
    pub async fn post(&self, path: &str, key: &str, body: &Value) -> Reply {
        let mut resp = self
            .client()
            .post(format!("{}{path}", self.url))
            .bearer_auth(key)
            .send_json(body)
            .await
            .expect("request");
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = resp
            .body()
            .limit(64 * 1024 * 1024)
            .await
            .expect("body")
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Usage rows of a key, read straight from the gateway's database.
    pub fn usage_rows(&self, key_id: &str) -> Vec<pura::db::models::usage::UsageRow> {
        let pool = pura::db::pool(&self.db_url, 1).expect("pool");
        let mut conn = pool.get().expect("conn");
        pura::db::models::usage::for_key(&mut conn, key_id).expect("usage rows")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `data:` payloads of an SSE body, in order (`[DONE]` included).
    pub fn sse_data(&self) -> Vec<String> {
        let text = self.text();
        assert!(
            !text.contains("\nevent:") && !text.starts_with("event:"),
            "no event: lines allowed:\n{text}"
        );
        text.split("\n\n")
            .filter(|e| !e.trim().is_empty())
            .map(|e| {
                e.strip_prefix("data: ")
                    .unwrap_or_else(|| panic!("not a data line: {e:?}"))
                    .to_owned()
            })
            .collect()
    }

    /// Parsed JSON chunks of an SSE body (without `[DONE]`), asserting it ends with `[DONE]`.
    pub fn chunks(&self) -> Vec<Value> {
        let data = self.sse_data();
        assert_eq!(
            data.last().map(String::as_str),
            Some("[DONE]"),
            "stream must end with [DONE]"
        );
        data[..data.len() - 1]
            .iter()
            .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("bad chunk {d}: {e}")))
            .collect()
    }
}

/// Concatenated `delta.content` of chunks.
pub fn streamed_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        })
        .collect()
}
