//! Test harness: the real `pura` binary on a random port, a fresh database per gateway
//! (a temp SQLite file, or the PostgreSQL of `PURA_TEST_DATABASE_URL`), and fake upstreams.

#![allow(dead_code, unused_imports)]

pub mod fake_lnd;
pub mod fake_upstream;
pub mod tcp_proxy;

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
    env: Vec<(String, String)>,
    client: awc::Client,
    /// A PostgreSQL database created for this gateway alone, dropped with it.
    own_db: Option<OwnDb>,
}

pub struct OwnDb {
    pub server_url: String,
    pub name: String,
}

/// Deployment-wide limits that tests not about them lift: on PostgreSQL every gateway of a
/// run shares one database, so deployment-wide counts (free spend of the day, keys minted from
/// 127.0.0.1 this hour) add up across tests. Tests of these limits set them and use
/// [`Gateway::start_isolated`].
const LIFTED: [(&str, &str); 3] = [
    ("PURA__FREE_TIER__MAX_REQUEST_USD", "1000000"),
    ("PURA__FREE_TIER__DAILY_BUDGET_USD", "1000000000"),
    ("PURA__SERVER__KEY_MINT_PER_IP_PER_HOUR", "1000000"),
];

/// The admin token every test gateway is started with.
pub const ADMIN_TOKEN: &str = "test-admin-token";

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
        Gateway::start_on(dir, db_url, None, extra, env)
    }

    /// As [`Gateway::start`], on a database of its own also on PostgreSQL (SQLite already
    /// gets a fresh file per gateway): for tests of deployment-wide state.
    pub fn start_isolated(extra: &str, env: &[(&str, &str)]) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let shared = database_url(dir.path());
        match fresh_pg_database("pura_iso") {
            Some((db_url, own)) => Gateway::start_on(dir, db_url, Some(own), extra, env),
            None => Gateway::start_on(dir, shared, None, extra, env),
        }
    }

    /// As [`Gateway::start`], on the database at `db_url` (dropped with the gateway when
    /// `own_db` is given).
    pub fn start_with_database(
        db_url: String,
        own_db: Option<OwnDb>,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        Gateway::start_on(dir, db_url, own_db, extra, env)
    }

    fn start_on(
        dir: tempfile::TempDir,
        db_url: String,
        own_db: Option<OwnDb>,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Gateway {
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
        std::fs::write(dir.path().join("pura.toml"), toml).expect("write config");
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if !env.iter().any(|(k, _)| k == "PURA_ADMIN_TOKEN") {
            env.push(("PURA_ADMIN_TOKEN".into(), ADMIN_TOKEN.into()));
        }
        for (k, v) in LIFTED {
            if !env.iter().any(|(set, _)| set == k) {
                env.push((k.into(), v.into()));
            }
        }
        let (child, url) = spawn(dir.path(), &env);
        Gateway {
            url,
            db_url,
            child,
            dir,
            env,
            client: awc::Client::builder()
                .timeout(Duration::from_secs(60))
                .connector(awc::Connector::new().limit(0))
                .finish(),
            own_db,
        }
    }

    /// `kill -9`: no shutdown, no flush.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the gateway again on the same config and database (after [`Gateway::kill9`]).
    pub fn restart(&mut self) {
        self.kill9();
        let (child, url) = spawn(self.dir.path(), &self.env);
        self.child = child;
        self.url = url;
    }

    /// Credits `sats` to a key through the admin API.
    pub async fn admin_credit(&self, key_id: &str, sats: i64) -> Value {
        let mut resp = self
            .client()
            .post(format!("{}/api/admin/keys/{key_id}/credit", self.url))
            .bearer_auth(ADMIN_TOKEN)
            .send_json(&json!({"sats": sats, "memo": "test credit"}))
            .await
            .expect("credit");
        assert_eq!(resp.status().as_u16(), 200);
        resp.json().await.expect("credit json")
    }

    /// GET with a bearer; returns status and JSON body.
    pub async fn get(&self, path: &str, bearer: &str) -> (u16, Value) {
        self.send("GET", path, bearer, None).await
    }

    /// Sends `method` with an optional JSON body and a bearer; returns status and JSON body.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
        let req = self
            .client()
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(bearer);
        let mut resp = match body {
            Some(b) => req.send_json(&b).await,
            None => req.send().await,
        }
        .expect("request");
        let status = resp.status().as_u16();
        let body = resp.body().await.expect("body");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// A pool on the gateway's database, for checking what it wrote (every request answered
    /// so far is in it: see [`Gateway::settle`]).
    pub fn db(&self) -> pura::db::Pool {
        self.settle();
        pura::db::pool(&self.db_url, 2).expect("pool")
    }

    /// Waits until the gateway has folded its settlement journal (SQLite) into the database:
    /// an admin read folds it first. Blocking, so that the synchronous readers above can call it (the
    /// gateway is another process). Nothing to wait for when the gateway is not running.
    pub fn settle(&self) {
        use std::io::{Read, Write};
        // Only SQLite has a journal (and on a shared PostgreSQL the admin list reads every
        // test's keys).
        if !self.db_url.starts_with("sqlite://") {
            return;
        }
        let token = self
            .env
            .iter()
            .find(|(k, _)| k == "PURA_ADMIN_TOKEN")
            .map_or(ADMIN_TOKEN, |(_, v)| v.as_str());
        let addr = self.url.trim_start_matches("http://");
        let Ok(mut conn) = std::net::TcpStream::connect(addr) else {
            return;
        };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
        let ask = format!(
            "GET /api/admin/keys HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Connection: close\r\n\r\n"
        );
        if conn.write_all(ask.as_bytes()).is_ok() {
            let mut answer = Vec::new();
            let _ = conn.read_to_end(&mut answer);
            assert!(
                answer.starts_with(b"HTTP/1.1 200"),
                "the admin read that folds the journal failed: {}",
                String::from_utf8_lossy(&answer[..answer.len().min(200)])
            );
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

    /// One client per gateway: a pool without a connection cap, so hundreds of concurrent
    /// test requests really reach the gateway at once.
    pub fn client(&self) -> awc::Client {
        self.client.clone()
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
        let resp = self
            .client()
            .post(format!("{}{path}", self.url))
            .bearer_auth(key)
            .send_json(body)
            .await
            .expect("request");
        Reply::read(resp).await
    }

    /// Usage rows of a key, read straight from the gateway's database.
    pub fn usage_rows(&self, key_id: &str) -> Vec<pura::db::models::usage::UsageRow> {
        self.settle();
        let pool = pura::db::pool(&self.db_url, 1).expect("pool");
        let mut conn = pool.get().expect("conn");
        pura::db::models::usage::for_key(&mut conn, key_id).expect("usage rows")
    }
}

/// Runs `pura --config dir/pura.toml` and waits for its listening line.
fn spawn(dir: &std::path::Path, env: &[(String, String)]) -> (Child, String) {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("stderr.log"))
        .expect("log file");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pura"));
    cmd.arg("--config")
        .arg(dir.join("pura.toml"))
        .current_dir(dir);
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
    loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(url) = line.strip_prefix("pura listening on ") {
                    // Keep draining stdout so the gateway never blocks on a full pipe.
                    std::thread::spawn(move || lines.for_each(drop));
                    return (child, url.to_owned());
                }
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
                panic!("pura exited before listening:\n{log}");
            }
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(own) = &self.own_db {
            use diesel::connection::SimpleConnection;
            if let Ok(mut conn) = pura::db::pool(&own.server_url, 1).and_then(|p| Ok(p.get()?)) {
                let _ = conn.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    own.name
                ));
            }
        }
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// Reads an answer whole: status, headers and body.
    pub async fn read<S>(mut resp: awc::ClientResponse<S>) -> Reply
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
    {
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

/// A 40-character prompt (10 tokens to the fake and to Pura's estimate) asking for at most
/// 5 tokens of a 5-word reply, at $1 per 1K tokens: the reserved estimate equals the actual
/// cost, [`EXACT_COST_MICROS`], so money tests can count exactly.
pub fn exact_request(stream: bool) -> Value {
    json!({"model": "gpt-4o", "max_tokens": 5, "stream": stream,
           "messages": [{"role": "user", "content": "0123456789012345678901234567890123456789"}]})
}

pub const EXACT_COST_MICROS: i64 = 15_000;

/// A gateway over one OpenAI fake priced for [`exact_request`], RPM out of the way.
pub fn exact_gateway(env: &[(&str, &str)]) -> (FakeUpstream, Gateway) {
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    fake.set_reply_text("one two three four five");
    let mut all = vec![("PURA__LIMITS__RPM", "100000")];
    all.extend_from_slice(env);
    let gw = Gateway::start(&provider_toml("openai", &fake, "mid", "gpt-4o", 1.0), &all);
    (fake, gw)
}

/// A new, empty PostgreSQL database on the server of `PURA_TEST_DATABASE_URL` (None when that
/// is unset or not PostgreSQL): its URL, and what drops it.
pub fn fresh_pg_database(prefix: &str) -> Option<(String, OwnDb)> {
    let shared = std::env::var("PURA_TEST_DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))?;
    use diesel::connection::SimpleConnection;
    let name = format!(
        "{prefix}_{}",
        pura::ids::random_alnum(12).to_ascii_lowercase()
    );
    let mut conn = pura::db::pool(&shared, 1)
        .expect("pool")
        .get()
        .expect("conn");
    conn.batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create database");
    let base = shared.rsplit_once('/').map_or(shared.as_str(), |(b, _)| b);
    let url = format!("{base}/{name}");
    Some((
        url,
        OwnDb {
            server_url: shared,
            name,
        },
    ))
}

/// Several replicas of the gateway (real `pura` processes) on one PostgreSQL database created
/// for them alone, so deployment-wide counts are exact; the database is dropped after the last
/// replica stops. PostgreSQL only.
pub struct Replicas {
    pub gateways: Vec<Gateway>,
    pub db_url: String,
    db: Option<OwnDb>,
}

impl Replicas {
    /// Starts `n` replicas with the same config (`extra`, `env`) one after the other (the
    /// first one migrates the fresh database). None when `PURA_TEST_DATABASE_URL` is not a
    /// PostgreSQL URL.
    pub fn start(n: usize, extra: &str, env: &[(&str, &str)]) -> Option<Replicas> {
        let (db_url, db) = fresh_pg_database("pura_rep")?;
        let mut replicas = Replicas {
            gateways: Vec::with_capacity(n),
            db_url,
            db: Some(db),
        };
        for _ in 0..n {
            let dir = tempfile::tempdir().expect("tempdir");
            let gw = Gateway::start_on(dir, replicas.db_url.clone(), None, extra, env);
            replicas.gateways.push(gw);
        }
        Some(replicas)
    }

    /// The base URLs of the replicas (`http://127.0.0.1:PORT`).
    pub fn urls(&self) -> Vec<String> {
        self.gateways.iter().map(|g| g.url.clone()).collect()
    }

    /// A pool on the replicas' database.
    pub fn db(&self) -> pura::db::Pool {
        pura::db::pool(&self.db_url, 2).expect("pool")
    }

    /// The stderr logs of every replica, for failure messages.
    pub fn logs(&self) -> String {
        self.gateways
            .iter()
            .enumerate()
            .map(|(i, g)| format!("---- replica {i} ({})\n{}", g.url, g.log()))
            .collect()
    }
}

impl std::ops::Index<usize> for Replicas {
    type Output = Gateway;
    fn index(&self, i: usize) -> &Gateway {
        &self.gateways[i]
    }
}

impl Drop for Replicas {
    fn drop(&mut self) {
        // Every replica stops before its database goes.
        self.gateways.clear();
        if let Some(own) = self.db.take() {
            use diesel::connection::SimpleConnection;
            if let Ok(mut conn) = pura::db::pool(&own.server_url, 1).and_then(|p| Ok(p.get()?)) {
                let _ = conn.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    own.name
                ));
            }
        }
    }
}

impl Gateway {
    /// Sends a signal (`"TERM"`, `"INT"`, `"KILL"`, …) to the gateway process, as a service
    /// manager would (`kill -TERM <pid>`: the crate forbids `unsafe`, so no `libc::kill`).
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{name} failed");
    }

    /// Waits up to `within` for the gateway process to exit; its exit status, or `None` when
    /// it is still running (blocks the thread: call it once nothing else is awaited).
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The events of an SSE body with `event:` lines (Responses, Anthropic): (event name, data).
pub fn sse_events(body: &[u8]) -> Vec<(Option<String>, String)> {
    String::from_utf8_lossy(body)
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = None;
            let mut data = String::new();
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event:") {
                    name = Some(n.trim().to_owned());
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            (name, data)
        })
        .collect()
}
