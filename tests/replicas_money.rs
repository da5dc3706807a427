//! Several replicas on one PostgreSQL: not one request more than the money covers. Real `pura`
//! processes (2, then 3) share a database created for each run, behind a real nginx that
//! round-robins over them with the documented `deploy/nginx.conf.template` (or, without nginx,
//! requests spread round-robin over the replicas directly). Bursts of concurrent requests at
//! exact cost (estimate = cost = [`COST`]) against a balance, a daily and a monthly budget, the
//! free tier and an RPM limit, each covering exactly [`COVERED`] requests; one Lightning
//! payment seen by every replica's InvoiceWatcher; and a replica killed mid-burst.
//! PostgreSQL only (`PURA_TEST_DATABASE_URL`); `scripts/replicas.sh` runs it with nginx.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::fake_lnd::{FakeLnd, MACAROON};
use common::{
    exact_request, provider_toml, Behavior, FakeDialect, FakeUpstream, Replicas, ADMIN_TOKEN,
    EXACT_COST_MICROS,
};
use diesel::prelude::*;
use futures_util::future::join_all;
use pura::db::models::{account, hold, ledger, usage};
use serde_json::{json, Value};

const COST: i64 = EXACT_COST_MICROS;
/// 400 µ$ per sat at the default `usd_per_sat = 0.0004`.
const MICROS_PER_SAT: i64 = 400;
/// What the money of every scenario covers, in requests.
const COVERED: usize = 100;
const CHAT: &str = "/v1/chat/completions";
const REPLICA_COUNTS: [usize; 2] = [2, 3];
const TEMPLATE: &str = include_str!("../deploy/nginx.conf.template");

/// On PostgreSQL, a turn: this file's scenarios run one at a time even under a parallel
/// `cargo test` (each starts several replicas and a burst; two at once on a small machine
/// would time out rather than test anything). None without PostgreSQL.
fn postgres() -> Option<Turn> {
    match std::env::var("PURA_TEST_DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => Some(Turn::take()),
        _ => {
            eprintln!(
                "PostgreSQL only: PURA_TEST_DATABASE_URL is unset (scripts/replicas.sh sets it)"
            );
            None
        }
    }
}

static BUSY: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
static FREED: std::sync::Condvar = std::sync::Condvar::new();

/// Held for a whole scenario (each test has a thread and a runtime of its own).
struct Turn;

impl Turn {
    fn take() -> Turn {
        let mut busy = BUSY.lock().unwrap_or_else(|e| e.into_inner());
        while *busy {
            busy = FREED.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        *busy = true;
        Turn
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        *BUSY.lock().unwrap_or_else(|e| e.into_inner()) = false;
        FREED.notify_one();
    }
}

// ---- The load balancer ----

/// nginx running `deploy/nginx.conf.template` over the replicas, as a child process whose
/// pid file, logs and temp files live in a directory of its own.
struct Nginx {
    url: String,
    child: Child,
    dir: tempfile::TempDir,
}

/// The nginx binary: `PURA_TEST_NGINX`, else `nginx` on PATH (or in /usr/sbin);
/// `PURA_TEST_NGINX=off` sends the requests straight to the replicas.
fn nginx_binary() -> Option<String> {
    if let Ok(bin) = std::env::var("PURA_TEST_NGINX") {
        if bin == "off" {
            return None;
        }
        if !bin.is_empty() {
            assert!(
                std::path::Path::new(&bin).exists(),
                "PURA_TEST_NGINX={bin} does not exist"
            );
            return Some(bin);
        }
    }
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([std::path::PathBuf::from("/usr/sbin")])
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

/// The template with its two variables filled in.
fn render(listen: &str, upstreams: &[String]) -> String {
    let servers: Vec<String> = upstreams
        .iter()
        .map(|u| {
            let addr = u.trim_start_matches("http://");
            format!("server {addr} max_fails=1 fail_timeout=5s;")
        })
        .collect();
    assert!(TEMPLATE.contains("${PURA_LISTEN}") && TEMPLATE.contains("${PURA_UPSTREAMS}"));
    TEMPLATE
        .replace("${PURA_LISTEN}", listen)
        .replace("${PURA_UPSTREAMS}", &servers.join("\n        "))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

impl Nginx {
    fn start(bin: &str, upstreams: &[String]) -> Nginx {
        let dir = tempfile::tempdir().expect("tempdir");
        // Workers of a root master run as `nobody`: they must reach their temp directories.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
        }
        std::fs::create_dir_all(dir.path().join("tmp")).expect("tmp dir");
        let port = free_port();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, render(&format!("127.0.0.1:{port}"), upstreams))
            .expect("write nginx.conf");
        let out = std::fs::File::create(dir.path().join("stdout.log")).expect("log");
        let err = std::fs::File::create(dir.path().join("stderr.log")).expect("log");
        let mut child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf)
            .arg("-g")
            .arg("daemon off;")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn nginx");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "nginx exited ({status}):\n{}\n{}",
                    std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default(),
                    std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
                );
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "nginx did not listen in 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx {
            url: format!("http://127.0.0.1:{port}"),
            child,
            dir,
        }
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master (fast shutdown, its workers go with it); SIGKILL would leave
        // the workers behind.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- Traffic ----

/// Where requests go: through nginx, or round-robin straight to the replicas.
struct Traffic {
    nginx: Option<Nginx>,
    direct: std::sync::Mutex<Vec<String>>,
    next: AtomicUsize,
    client: awc::Client,
}

/// One chat request's outcome.
#[derive(Debug, Clone)]
struct Outcome {
    status: u16,
    /// The error code of a refusal (`payment_required`, `insufficient_quota`…), or what
    /// failed on the way.
    code: String,
    cid: String,
    /// A 200 whose body arrived whole (JSON with choices, or a stream ending in `[DONE]`).
    complete: bool,
}

impl Traffic {
    fn new(replicas: &Replicas) -> Traffic {
        let urls = replicas.urls();
        let nginx = match nginx_binary() {
            Some(bin) => Some(Nginx::start(&bin, &urls)),
            None => {
                eprintln!(
                    "no nginx (PURA_TEST_NGINX unset and none on PATH, or off): requests go \
                     round-robin straight to the {} replicas",
                    urls.len()
                );
                None
            }
        };
        Traffic {
            nginx,
            direct: std::sync::Mutex::new(urls),
            next: AtomicUsize::new(0),
            client: awc::Client::builder()
                .timeout(Duration::from_secs(60))
                .connector(awc::Connector::new().limit(0))
                .finish(),
        }
    }

    fn via(&self) -> &'static str {
        if self.nginx.is_some() {
            "nginx"
        } else {
            "direct"
        }
    }

    /// The next base URL: nginx's, or the next replica's.
    fn base(&self) -> String {
        match &self.nginx {
            Some(n) => n.url.clone(),
            None => {
                let urls = self.direct.lock().expect("urls");
                let i = self.next.fetch_add(1, Ordering::Relaxed);
                urls[i % urls.len()].clone()
            }
        }
    }

    /// A replica that is gone: requests sent straight to the replicas leave it out (nginx
    /// finds out by itself).
    fn forget(&self, url: &str) {
        self.direct.lock().expect("urls").retain(|u| u != url);
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        send_to(&self.client, &self.base(), method, path, bearer, body).await
    }

    async fn chat(&self, key: &str, stream: bool) -> Outcome {
        let cid = format!("cid_{}", pura::ids::random_alnum(20));
        let sent = self
            .client
            .post(format!("{}{CHAT}", self.base()))
            .bearer_auth(key)
            .insert_header(("x-client-request-id", cid.as_str()))
            .send_json(&exact_request(stream))
            .await;
        let mut resp = match sent {
            Ok(r) => r,
            // A replica killed under it (straight to the replicas; nginx answers 502).
            Err(_) => {
                return Outcome {
                    status: 0,
                    code: "(no answer)".to_owned(),
                    cid,
                    complete: false,
                }
            }
        };
        let status = resp.status().as_u16();
        let body = match resp.body().limit(16 * 1024 * 1024).await {
            Ok(b) => b.to_vec(),
            Err(_) => {
                return Outcome {
                    status,
                    code: "(body cut)".to_owned(),
                    cid,
                    complete: false,
                }
            }
        };
        let text = String::from_utf8_lossy(&body);
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let complete = status == 200
            && if stream {
                text.trim_end().ends_with("data: [DONE]") && !text.contains("{\"error\"")
            } else {
                json["choices"][0]["message"]["content"].is_string()
            };
        let code = match json["error"]["code"].as_str() {
            Some(c) => c.to_owned(),
            None if status == 200 => String::new(),
            // nginx's own pages (502 when a replica died under a request) are HTML.
            None => "(not JSON)".to_owned(),
        };
        Outcome {
            status,
            code,
            cid,
            complete,
        }
    }

    /// `n` chat requests at once (every fourth streamed).
    async fn burst(&self, key: &str, n: usize) -> Vec<Outcome> {
        join_all((0..n).map(|i| self.chat(key, i % 4 == 3))).await
    }

    /// Chat requests one at a time until one is refused (at most `max`): the money a burst
    /// left is neither lost nor stuck. Returns the served ones and the refusal.
    async fn drain(&self, key: &str, max: usize) -> (Vec<Outcome>, Option<Outcome>) {
        let mut served = Vec::new();
        for i in 0..max {
            let o = self.chat(key, i % 2 == 1).await;
            if o.status != 200 {
                return (served, Some(o));
            }
            assert!(o.complete, "a served request arrives whole: {o:?}");
            served.push(o);
        }
        (served, None)
    }

    fn nginx_errors(&self) -> String {
        self.nginx
            .as_ref()
            .map(Nginx::error_log)
            .unwrap_or_default()
    }
}

async fn send_to(
    client: &awc::Client,
    base: &str,
    method: &str,
    path: &str,
    bearer: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
    let req = client
        .request(method, format!("{base}{path}"))
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

/// Status × code counts, for messages: `200×100 402 payment_required×400`.
fn tally(outcomes: &[Outcome]) -> String {
    let mut counts: BTreeMap<(u16, String), usize> = BTreeMap::new();
    for o in outcomes {
        *counts.entry((o.status, o.code.clone())).or_default() += 1;
    }
    counts
        .iter()
        .map(|((s, c), n)| {
            if c.is_empty() {
                format!("{s}×{n}")
            } else {
                format!("{s} {c}×{n}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The requests served: a 200 that arrived whole (a stream cut short by a killed replica
/// was not served).
fn served(outcomes: &[Outcome]) -> Vec<&Outcome> {
    outcomes
        .iter()
        .filter(|o| o.status == 200 && o.complete)
        .collect()
}

// ---- Accounts and the books ----

struct Key {
    id: String,
    secret: String,
    account: String,
}

/// A new account's manage key, minted through the balancer.
async fn new_key(t: &Traffic) -> Key {
    let (status, v) = t
        .send("POST", "/api/keys", "", Some(json!({"label": "replicas"})))
        .await;
    assert_eq!(status, 201, "{v}");
    Key {
        id: v["id"].as_str().expect("id").to_owned(),
        secret: v["key"].as_str().expect("key").to_owned(),
        account: v["accountId"].as_str().expect("accountId").to_owned(),
    }
}

/// Every replica loads the key and starts the account's BudgetActor (so what follows also
/// reaches running actors through the replicas' announcements).
async fn warm(t: &Traffic, replicas: &Replicas, key: &Key) {
    for url in replicas.urls() {
        let (status, v) = send_to(
            &t.client,
            &url,
            "GET",
            "/api/wallet/balance",
            &key.secret,
            None,
        )
        .await;
        assert_eq!(status, 200, "{url}: {v}");
    }
}

async fn credit(t: &Traffic, key: &Key, sats: i64) {
    let (status, v) = t
        .send(
            "POST",
            &format!("/api/admin/keys/{}/credit", key.id),
            ADMIN_TOKEN,
            Some(json!({"sats": sats, "memo": "replicas test"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
}

/// Waits (up to 10 s) until every replica answers `path` with `field` == `want`.
async fn every_replica_sees(
    t: &Traffic,
    replicas: &Replicas,
    key: &Key,
    path: &str,
    field: &str,
    want: Value,
) {
    for url in replicas.urls() {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, v) = send_to(&t.client, &url, "GET", path, &key.secret, None).await;
            if v[field] == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{url} still says {field} = {} on {path}, expected {want}",
                v[field]
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The account's balance and free requests, read from the database every ~20 ms on a thread
/// of its own while a burst runs; the lowest values seen.
struct Poller {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<(i64, i64, usize)>,
}

impl Poller {
    fn start(replicas: &Replicas, key_id: &str) -> Poller {
        let pool = replicas.db();
        let key_id = key_id.to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let handle = std::thread::spawn(move || {
            let (mut balance, mut free, mut samples) = (i64::MAX, i64::MAX, 0);
            let mut conn = pool.get().expect("conn");
            loop {
                let done = stopped.load(Ordering::Relaxed);
                let acc = account::of_key(&mut conn, &key_id)
                    .expect("account")
                    .expect("the key's account");
                balance = balance.min(acc.balance_micros);
                free = free.min(acc.free_requests_remaining);
                samples += 1;
                if done {
                    return (balance, free, samples);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Poller { stop, handle }
    }

    /// (lowest balance, lowest free requests, samples)
    fn finish(self) -> (i64, i64, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("poller")
    }
}

/// What the database says about the account after the traffic.
struct Books {
    balance: i64,
    ledger_sum: i64,
    free_left: i64,
    rows: Vec<usage::UsageRow>,
    debits: Vec<ledger::Entry>,
    credits: Vec<ledger::Entry>,
}

impl Books {
    fn read(replicas: &Replicas, key: &Key) -> Books {
        let pool = replicas.db();
        let mut conn = pool.get().expect("conn");
        let acc = account::find(&mut conn, &key.account)
            .expect("query")
            .expect("account");
        let entries = ledger::for_account(&mut conn, &key.account).expect("ledger");
        let (debits, credits) = entries.into_iter().partition(|e| e.kind == ledger::DEBIT);
        Books {
            balance: acc.balance_micros,
            ledger_sum: ledger::sum_for_account(&mut conn, &key.account).expect("ledger sum"),
            free_left: acc.free_requests_remaining,
            rows: usage::for_key(&mut conn, &key.id).expect("usage rows"),
            debits,
            credits,
        }
    }

    fn debited(&self) -> i64 {
        -self.debits.iter().map(|d| d.amount_micros).sum::<i64>()
    }

    /// Every request the client saw served has exactly one usage row at [`COST`]; every row
    /// exactly one debit of its cost when `paid` (none when free); the cached balance is the
    /// ledger's sum.
    fn check(&self, served: &[&Outcome], paid: bool, what: &str) {
        assert_eq!(
            self.balance, self.ledger_sum,
            "{what}: the cached balance is the ledger's sum"
        );
        let mut by_cid: HashMap<&str, usize> = HashMap::new();
        for r in &self.rows {
            if let Some(c) = r.client_request_id.as_deref() {
                *by_cid.entry(c).or_default() += 1;
            }
            assert_eq!(r.cost_micros, COST, "{what}: exact cost: {r:?}");
            assert_eq!(r.status, "ok", "{what}: {r:?}");
        }
        for o in served {
            assert_eq!(
                by_cid.get(o.cid.as_str()).copied(),
                Some(1),
                "{what}: the served request {} has one usage row",
                o.cid
            );
        }
        let ids: HashSet<&str> = self.rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids.len(),
            self.rows.len(),
            "{what}: usage row ids are unique"
        );
        let mut per_row: HashMap<&str, Vec<i64>> = HashMap::new();
        for d in &self.debits {
            per_row
                .entry(d.reference.as_str())
                .or_default()
                .push(d.amount_micros);
        }
        if paid {
            let undebited: Vec<_> = self
                .rows
                .iter()
                .filter(|r| per_row.get(r.id.as_str()) != Some(&vec![-r.cost_micros]))
                .collect();
            assert!(
                undebited.is_empty(),
                "{what}: {} usage rows, {} debits (sum {} µ$, {} distinct references); rows \
                 without exactly one debit of their cost: {undebited:#?}",
                self.rows.len(),
                self.debits.len(),
                -self.debited(),
                per_row.len()
            );
            for r in &self.rows {
                assert_eq!(
                    per_row.get(r.id.as_str()),
                    Some(&vec![-r.cost_micros]),
                    "{what}: the usage row {} has exactly one debit of its cost",
                    r.id
                );
            }
            assert_eq!(
                per_row.len(),
                self.rows.len(),
                "{what}: no debit without its usage row"
            );
        } else {
            assert!(
                self.debits.is_empty(),
                "{what}: free requests debit nothing"
            );
        }
    }
}

/// Prints how many settlements the replicas debited less than their cost because their own
/// view of the balance said it was short (the BudgetActor's "above available" warning).
fn clamped(replicas: &Replicas) {
    let logs = replicas.logs();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("above available"))
        .collect();
    println!(
        "    settlements debited below their cost (\"above available\" in the logs): {}",
        lines.len()
    );
    for l in lines.iter().take(3) {
        println!("      {l}");
    }
}

/// One OpenAI fake at exact cost (a little latency, so holds overlap) and `n` replicas
/// behind the balancer.
fn deployment(n: usize, env: &[(&str, &str)]) -> (FakeUpstream, Replicas, Traffic) {
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    fake.set_reply_text("one two three four five");
    fake.set_behavior(Behavior::DelayFirstByte(Duration::from_millis(50)));
    // The default pool (the harness's 4 connections time out after 5 s under these bursts).
    let mut all = vec![
        ("PURA__LIMITS__RPM", "100000"),
        ("PURA__DATABASE__POOL_SIZE", "16"),
    ];
    all.extend_from_slice(env);
    let replicas = Replicas::start(
        n,
        &provider_toml("openai", &fake, "mid", "gpt-4o", 1.0),
        &all,
    )
    .expect("PostgreSQL");
    let traffic = Traffic::new(&replicas);
    (fake, replicas, traffic)
}

/// A request the replica shed: 503 `unavailable` after waiting the pool's 5 s for a database
/// connection (every connection of every replica queues on the account row's lock while the
/// burst is arbitrated; on a loaded 2-core machine a few waiters pass 5 s). Nothing is served
/// or charged for it, which the books check; the tally shows how many.
fn shed(o: &Outcome) -> bool {
    o.status == 503 && o.code == "unavailable"
}

/// Asserts that every refusal is `status` with `code` (or [`shed`]).
fn refused_as(
    outcomes: &[Outcome],
    status: u16,
    code: &str,
    what: &str,
    logs: impl Fn() -> String,
) {
    let others: Vec<_> = outcomes
        .iter()
        .filter(|o| o.status != 200 && (o.status != status || o.code != code) && !shed(o))
        .collect();
    assert!(
        others.is_empty(),
        "{what}: every refusal is {status} {code}; got {}\n{}",
        tally(outcomes),
        logs()
    );
    let cut: Vec<_> = outcomes
        .iter()
        .filter(|o| o.status == 200 && !o.complete)
        .collect();
    assert!(
        cut.is_empty(),
        "{what}: served requests arrive whole: {cut:?}"
    );
}

// ---- 1. balance ----

#[actix_web::test]
async fn replicas_never_serve_more_than_the_balance_covers() {
    let Some(_turn) = postgres() else {
        return;
    };
    for n in REPLICA_COUNTS {
        let started = Instant::now();
        let (_fake, replicas, t) = deployment(n, &[("PURA__FREE_TIER__REQUESTS", "0")]);
        let key = new_key(&t).await;
        warm(&t, &replicas, &key).await;
        credit(&t, &key, COVERED as i64 * COST / MICROS_PER_SAT).await;
        every_replica_sees(
            &t,
            &replicas,
            &key,
            "/api/wallet/balance",
            "balanceUsd",
            json!(1.5),
        )
        .await;

        let poller = Poller::start(&replicas, &key.id);
        let outcomes = t.burst(&key.secret, 500).await;
        let (lowest, _, samples) = poller.finish();
        let ok = served(&outcomes);
        let what = format!("balance, {n} replicas");
        refused_as(&outcomes, 402, "payment_required", &what, || {
            replicas.logs() + &t.nginx_errors()
        });
        let books = Books::read(&replicas, &key);
        let served_cost = ok.len() as i64 * COST;
        let debited = books.debited();
        let (drained, refusal) = t.drain(&key.secret, COVERED + 1).await;
        println!(
            "balance: replicas={n} via={} served={} covered={COVERED} refused={} [{}] \
             lowest balance seen={lowest} µ$ ({samples} samples) debited={debited} µ$ vs served \
             cost={served_cost} µ$; left after the burst for {} more ({:.1} s)",
            t.via(),
            ok.len(),
            outcomes.len() - ok.len(),
            tally(&outcomes),
            drained.len(),
            started.elapsed().as_secs_f64()
        );
        clamped(&replicas);
        assert!(
            ok.len() <= COVERED,
            "{what}: {} served on money for {COVERED}",
            ok.len()
        );
        assert!(lowest >= 0, "{what}: the balance went to {lowest} µ$");
        books.check(&ok, true, &what);
        assert_eq!(debited, served_cost, "{what}: debited == served cost");
        assert_eq!(books.balance, (COVERED - ok.len()) as i64 * COST);
        // Nothing is stuck or lost: what the burst left serves exactly the rest.
        assert_eq!(
            ok.len() + drained.len(),
            COVERED,
            "{what}: then {refusal:?}"
        );
        let refusal = refusal.expect("refused when spent");
        assert_eq!(
            (refusal.status, refusal.code.as_str()),
            (402, "payment_required")
        );
        let books = Books::read(&replicas, &key);
        let all: Vec<&Outcome> = ok.iter().copied().chain(drained.iter()).collect();
        books.check(&all, true, &what);
        assert_eq!((books.balance, books.rows.len()), (0, COVERED));
    }
}

// ---- 2, 3. daily and monthly budgets ----

async fn budget_scenario(field: &str, window: &str) {
    for n in REPLICA_COUNTS {
        let started = Instant::now();
        let (_fake, replicas, t) = deployment(n, &[("PURA__FREE_TIER__REQUESTS", "0")]);
        let key = new_key(&t).await;
        warm(&t, &replicas, &key).await;
        // $10: the balance never stands in the way of 500 requests' $7.50.
        credit(&t, &key, 25_000).await;
        let budget = COVERED as f64 * COST as f64 / 1e6;
        let (status, v) = t
            .send(
                "PATCH",
                "/api/keys/me",
                &key.secret,
                Some(json!({ field: budget })),
            )
            .await;
        assert_eq!((status, v[field].as_f64()), (200, Some(budget)), "{v}");
        every_replica_sees(&t, &replicas, &key, "/api/keys/me", field, json!(budget)).await;

        let outcomes = t.burst(&key.secret, 500).await;
        let ok = served(&outcomes);
        let what = format!("{window} budget, {n} replicas");
        refused_as(&outcomes, 429, "insufficient_quota", &what, || {
            replicas.logs() + &t.nginx_errors()
        });
        let books = Books::read(&replicas, &key);
        let served_cost = ok.len() as i64 * COST;
        let (drained, refusal) = t.drain(&key.secret, COVERED + 1).await;
        println!(
            "{window} budget: replicas={n} via={} served={} covered={COVERED} refused={} [{}] \
             spent={} µ$ of a {} µ$ budget (served cost {served_cost} µ$); left after the burst \
             for {} more ({:.1} s)",
            t.via(),
            ok.len(),
            outcomes.len() - ok.len(),
            tally(&outcomes),
            books.debited(),
            COVERED as i64 * COST,
            drained.len(),
            started.elapsed().as_secs_f64()
        );
        clamped(&replicas);
        books.check(&ok, true, &what);
        assert!(
            ok.len() <= COVERED,
            "{what}: {} served on a budget for {COVERED}",
            ok.len()
        );
        assert_eq!(books.debited(), served_cost);
        assert_eq!(
            ok.len() + drained.len(),
            COVERED,
            "{what}: then {refusal:?}"
        );
        let refusal = refusal.expect("refused when spent");
        assert_eq!(
            (refusal.status, refusal.code.as_str()),
            (429, "insufficient_quota")
        );
        let books = Books::read(&replicas, &key);
        books.check(
            &ok.iter().copied().chain(drained.iter()).collect::<Vec<_>>(),
            true,
            &what,
        );
        assert_eq!(books.debited(), COVERED as i64 * COST);
        assert_eq!(
            books.balance,
            25_000 * MICROS_PER_SAT - COVERED as i64 * COST
        );
    }
}

#[actix_web::test]
async fn replicas_never_serve_more_than_the_daily_budget_covers() {
    let Some(_turn) = postgres() else {
        return;
    };
    budget_scenario("dailyBudgetUsd", "daily").await;
}

#[actix_web::test]
async fn replicas_never_serve_more_than_the_monthly_budget_covers() {
    let Some(_turn) = postgres() else {
        return;
    };
    budget_scenario("monthlyBudgetUsd", "monthly").await;
}

// ---- 4. free tier ----

#[actix_web::test]
async fn replicas_never_serve_more_free_requests_than_the_account_has() {
    let Some(_turn) = postgres() else {
        return;
    };
    for n in REPLICA_COUNTS {
        let started = Instant::now();
        let free = COVERED.to_string();
        let (_fake, replicas, t) = deployment(n, &[("PURA__FREE_TIER__REQUESTS", free.as_str())]);
        let key = new_key(&t).await;
        warm(&t, &replicas, &key).await;

        let poller = Poller::start(&replicas, &key.id);
        let outcomes = t.burst(&key.secret, 500).await;
        let (_, lowest_free, samples) = poller.finish();
        let ok = served(&outcomes);
        let what = format!("free tier, {n} replicas");
        refused_as(&outcomes, 402, "payment_required", &what, || {
            replicas.logs() + &t.nginx_errors()
        });
        let books = Books::read(&replicas, &key);
        let (drained, refusal) = t.drain(&key.secret, COVERED + 1).await;
        let after = Books::read(&replicas, &key);
        println!(
            "free tier: replicas={n} via={} served={} covered={COVERED} refused={} [{}] free \
             requests left={} after the burst, {} at the end, lowest seen={lowest_free} \
             ({samples} samples); balance {} µ$ (ledger {} µ$); left after the burst for {} more \
             ({:.1} s)",
            t.via(),
            ok.len(),
            outcomes.len() - ok.len(),
            tally(&outcomes),
            books.free_left,
            after.free_left,
            after.balance,
            after.ledger_sum,
            drained.len(),
            started.elapsed().as_secs_f64()
        );
        clamped(&replicas);
        books.check(&ok, false, &what);
        assert!(
            ok.len() <= COVERED,
            "{what}: {} served free of {COVERED}",
            ok.len()
        );
        assert!(
            lowest_free >= 0,
            "{what}: free requests went to {lowest_free}"
        );
        assert_eq!(books.free_left, (COVERED - ok.len()) as i64);
        assert_eq!(
            ok.len() + drained.len(),
            COVERED,
            "{what}: then {refusal:?}"
        );
        let refusal = refusal.expect("refused when used up");
        assert_eq!(
            (refusal.status, refusal.code.as_str()),
            (402, "payment_required")
        );
        after.check(
            &ok.iter().copied().chain(drained.iter()).collect::<Vec<_>>(),
            false,
            &what,
        );
        assert_eq!(
            (after.free_left, after.balance, after.ledger_sum),
            (0, 0, 0)
        );
    }
}

// ---- 5. RPM ----

#[actix_web::test]
async fn replicas_never_serve_more_than_the_rpm_limit_in_a_minute() {
    let Some(_turn) = postgres() else {
        return;
    };
    for n in REPLICA_COUNTS {
        let started = Instant::now();
        let (_fake, replicas, t) = deployment(n, &[("PURA__FREE_TIER__REQUESTS", "0")]);
        let key = new_key(&t).await;
        warm(&t, &replicas, &key).await;
        credit(&t, &key, 25_000).await;
        let (status, v) = t
            .send(
                "PATCH",
                "/api/keys/me",
                &key.secret,
                Some(json!({"rpmLimit": COVERED})),
            )
            .await;
        assert_eq!(
            (status, v["rpmLimit"].as_u64()),
            (200, Some(COVERED as u64)),
            "{v}"
        );
        every_replica_sees(
            &t,
            &replicas,
            &key,
            "/api/keys/me",
            "rpmLimit",
            json!(COVERED),
        )
        .await;

        // 300 requests in three waves of 100 a second apart: all inside one minute.
        let burst_start = Instant::now();
        let mut outcomes = Vec::new();
        for wave in 0..3 {
            if wave > 0 {
                actix_web::rt::time::sleep(Duration::from_secs(1)).await;
            }
            outcomes.extend(t.burst(&key.secret, 100).await);
        }
        let took = burst_start.elapsed();
        let ok = served(&outcomes);
        let what = format!("rpm, {n} replicas");
        refused_as(&outcomes, 429, "rate_limit_exceeded", &what, || {
            replicas.logs() + &t.nginx_errors()
        });
        let books = Books::read(&replicas, &key);
        let served_cost = ok.len() as i64 * COST;
        println!(
            "rpm: replicas={n} via={} sent=300 in {:.1} s served={} covered={COVERED} refused={} \
             [{}] debited={} µ$ vs served cost {served_cost} µ$ ({:.1} s)",
            t.via(),
            took.as_secs_f64(),
            ok.len(),
            outcomes.len() - ok.len(),
            tally(&outcomes),
            books.debited(),
            started.elapsed().as_secs_f64()
        );
        clamped(&replicas);
        books.check(&ok, true, &what);
        assert!(
            took < Duration::from_secs(50),
            "{what}: the traffic fits in one minute"
        );
        assert!(
            ok.len() <= COVERED,
            "{what}: {} served in a minute with rpm {COVERED}",
            ok.len()
        );
        assert_eq!(books.debited(), served_cost);
        assert_eq!(books.rows.len(), ok.len());
    }
}

// ---- 6. Lightning ----

#[actix_web::test]
async fn a_paid_invoice_is_credited_once_by_every_replicas_watcher() {
    let Some(_turn) = postgres() else {
        return;
    };
    for n in REPLICA_COUNTS {
        let started = Instant::now();
        let lnd = FakeLnd::start();
        let cert = lnd.cert_path.display().to_string();
        let (_fake, replicas, t) = deployment(
            n,
            &[
                ("PURA__FREE_TIER__REQUESTS", "0"),
                ("PURA__LIGHTNING__BACKEND", "lnd"),
                ("PURA__LIGHTNING__URL", lnd.url.as_str()),
                ("PURA__LIGHTNING__TLS_CERT_PATH", cert.as_str()),
                ("LND_MACAROON_HEX", MACAROON),
                ("PURA__LIGHTNING__POLL_INTERVAL", "50ms"),
            ],
        );
        let key = new_key(&t).await;
        warm(&t, &replicas, &key).await;
        // One invoice asked through each replica, every watcher polling them all.
        let mut invoices = Vec::new();
        for (i, url) in replicas.urls().iter().enumerate() {
            let sats = 1000 + i as i64;
            let (status, inv) = send_to(
                &t.client,
                url,
                "POST",
                "/api/wallet/fund",
                &key.secret,
                Some(json!({ "amount": sats })),
            )
            .await;
            assert_eq!(status, 201, "{inv}\n{}", replicas.logs());
            invoices.push((
                inv["invoiceId"].as_str().expect("invoiceId").to_owned(),
                sats,
            ));
        }
        lnd.settle_all();
        for (id, _) in &invoices {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let (_, s) = t
                    .send(
                        "GET",
                        &format!("/api/wallet/status?invoiceId={id}"),
                        &key.secret,
                        None,
                    )
                    .await;
                if s["status"] == "paid" {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{id} not paid: {s}\n{}",
                    replicas.logs()
                );
                actix_web::rt::time::sleep(Duration::from_millis(50)).await;
            }
        }
        // Every watcher has gone round many more times since.
        actix_web::rt::time::sleep(Duration::from_secs(1)).await;
        let books = Books::read(&replicas, &key);
        let total_sats: i64 = invoices.iter().map(|(_, s)| s).sum();
        let lightning: Vec<_> = books
            .credits
            .iter()
            .filter(|e| e.kind == ledger::LIGHTNING_CREDIT)
            .collect();
        let mut per_invoice: HashMap<&str, Vec<i64>> = HashMap::new();
        for e in &lightning {
            per_invoice
                .entry(e.reference.as_str())
                .or_default()
                .push(e.amount_micros);
        }
        println!(
            "lightning: replicas={n} via={} invoices paid={} credits={} balance={} µ$ (ledger {} \
             µ$, paid {} µ$) ({:.1} s)",
            t.via(),
            invoices.len(),
            lightning.len(),
            books.balance,
            books.ledger_sum,
            total_sats * MICROS_PER_SAT,
            started.elapsed().as_secs_f64()
        );
        for (id, sats) in &invoices {
            assert_eq!(
                per_invoice.get(id.as_str()),
                Some(&vec![sats * MICROS_PER_SAT]),
                "{n} replicas: invoice {id} credited exactly once"
            );
        }
        assert_eq!(lightning.len(), invoices.len(), "no other credit");
        assert_eq!(
            (books.balance, books.ledger_sum),
            (total_sats * MICROS_PER_SAT, total_sats * MICROS_PER_SAT)
        );
        every_replica_sees(
            &t,
            &replicas,
            &key,
            "/api/wallet/balance",
            "balanceSats",
            json!(total_sats),
        )
        .await;
    }
}

// ---- 7. a replica killed mid-burst ----

/// Holds of the account still in the table, and the balance left for new holds: the
/// balance minus the paid holds of replicas seen within `hold::ALIVE` (as the arbiter counts).
fn holds_and_available(replicas: &Replicas, key: &Key) -> (i64, i64) {
    use pura::db::schema::{holds, replicas as seen};
    let pool = replicas.db();
    let mut conn = pool.get().expect("conn");
    let rows: i64 = holds::table
        .filter(holds::account_id.eq(&key.account))
        .count()
        .get_result(&mut *conn)
        .expect("holds");
    let alive = seen::table
        .filter(seen::seen_at.gt(pura::time::now() - hold::ALIVE))
        .select(seen::id);
    let held: Vec<i64> = holds::table
        .filter(holds::account_id.eq(&key.account))
        .filter(holds::free.eq(false))
        .filter(holds::replica_id.eq_any(alive))
        .select(holds::estimate_micros)
        .load(&mut *conn)
        .expect("live holds");
    let balance = account::find(&mut conn, &key.account)
        .expect("query")
        .expect("account")
        .balance_micros;
    (rows, balance - held.iter().sum::<i64>())
}

#[actix_web::test]
async fn survivors_stay_exact_when_a_replica_is_killed_mid_burst() {
    let Some(_turn) = postgres() else {
        return;
    };
    for n in REPLICA_COUNTS {
        let started = Instant::now();
        let (fake, mut replicas, t) = deployment(n, &[("PURA__FREE_TIER__REQUESTS", "0")]);
        // Long enough upstream calls that the victim dies holding money.
        fake.set_behavior(Behavior::DelayFirstByte(Duration::from_millis(300)));
        let key = new_key(&t).await;
        warm(&t, &replicas, &key).await;
        credit(&t, &key, COVERED as i64 * COST / MICROS_PER_SAT).await;
        every_replica_sees(
            &t,
            &replicas,
            &key,
            "/api/wallet/balance",
            "balanceUsd",
            json!(1.5),
        )
        .await;

        let poller = Poller::start(&replicas, &key.id);
        let done = AtomicUsize::new(0);
        let (traffic, secret, count) = (&t, key.secret.as_str(), &done);
        let burst = join_all((0..500).map(|i| async move {
            let o = traffic.chat(secret, i % 4 == 3).await;
            count.fetch_add(1, Ordering::Relaxed);
            o
        }));
        let victim = n - 1;
        let killer = async {
            // Mid-burst: once 30 answers are back, while the rest are in flight.
            while done.load(Ordering::Relaxed) < 30 {
                actix_web::rt::time::sleep(Duration::from_millis(5)).await;
            }
            let at = Instant::now();
            replicas.gateways[victim].kill9();
            at
        };
        let (outcomes, killed_at) = futures_util::join!(burst, killer);
        let (lowest, _, samples) = poller.finish();
        t.forget(&replicas[victim].url);
        let ok = served(&outcomes);
        let what = format!("kill -9, {n} replicas");
        let books = Books::read(&replicas, &key);
        let served_cost = ok.len() as i64 * COST;
        let (stuck_holds, available) = holds_and_available(&replicas, &key);
        let unexplained: Vec<_> = outcomes
            .iter()
            .filter(|o| ![200, 402, 502, 0].contains(&o.status) && !shed(o))
            .collect();
        let cut = outcomes
            .iter()
            .filter(|o| o.status == 200 && !o.complete)
            .count();

        // The dead replica's holds stop counting once its heartbeat is 30 s old.
        let deadline = killed_at + Duration::from_secs(45);
        while holds_and_available(&replicas, &key).1 < books.balance {
            assert!(
                Instant::now() < deadline,
                "{what}: the dead replica's holds still count 45 s after the kill"
            );
            actix_web::rt::time::sleep(Duration::from_millis(250)).await;
        }
        let freed_after = killed_at.elapsed();
        let (drained, refusal) = t.drain(&key.secret, COVERED + 1).await;
        let end = Books::read(&replicas, &key);
        println!(
            "kill -9: replicas={n} via={} victim=replica {victim} killed after 30 answers; \
             served={} covered={COVERED} others [{}] (200 cut short: {cut}); usage rows={} \
             (committed by the victim without an answer: {}); lowest balance seen={lowest} µ$ \
             ({samples} samples); debited={} µ$ vs served cost={served_cost} µ$; holds left \
             {stuck_holds}, balance {} µ$ of which {available} µ$ available right after the \
             burst, all available {:.1} s after the kill; then {} more served, ledger {} == \
             balance {} ({:.1} s)",
            t.via(),
            ok.len(),
            tally(&outcomes),
            books.rows.len(),
            books.rows.len() - ok.len(),
            books.debited(),
            books.balance,
            freed_after.as_secs_f64(),
            drained.len(),
            end.ledger_sum,
            end.balance,
            started.elapsed().as_secs_f64()
        );
        clamped(&replicas);
        books.check(&ok, true, &what);
        assert!(
            unexplained.is_empty(),
            "{what}: {}\n{}",
            tally(&outcomes),
            t.nginx_errors()
        );
        assert!(
            ok.len() <= COVERED,
            "{what}: {} served on money for {COVERED}",
            ok.len()
        );
        assert!(
            books.rows.len() <= COVERED,
            "{what}: {} rows",
            books.rows.len()
        );
        assert!(lowest >= 0, "{what}: the balance went to {lowest} µ$");
        assert_eq!(books.debited(), books.rows.len() as i64 * COST);
        assert_eq!(books.balance, (COVERED - books.rows.len()) as i64 * COST);
        assert!(
            freed_after < Duration::from_secs(36),
            "{what}: freed {freed_after:?} after the kill"
        );
        if books.balance >= COST {
            assert!(
                !drained.is_empty(),
                "{what}: a follow-up the balance covers is served: {refusal:?}"
            );
        }
        // Nothing lost or stuck: the rest of the money serves exactly the rest.
        assert_eq!(
            books.rows.len() + drained.len(),
            COVERED,
            "{what}: then {refusal:?}"
        );
        let refusal = refusal.expect("refused when spent");
        assert_eq!(
            (refusal.status, refusal.code.as_str()),
            (402, "payment_required")
        );
        end.check(
            &ok.iter().copied().chain(drained.iter()).collect::<Vec<_>>(),
            true,
            &what,
        );
        assert_eq!((end.balance, end.rows.len()), (0, COVERED));
    }
}
