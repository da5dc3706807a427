//! Every Prometheus series Pura exports, defined in one place and served by `GET /metrics`
//! (`routes/metrics.rs`). The rest of the code calls the one-line functions below at the
//! point where something happens (the pipeline, fallback, relay, budgets, the settlement
//! writer, the wallet, key minting).
//!
//! This module is a leaf: it imports nothing from the crate, so storage (`db`) may call it
//! too. Labels are bounded: protocols, statuses, reasons and kinds are fixed strings, and
//! providers, models and tiers come from the configuration; never a key or a request id.
//!
//! Cost on the request path: a labelled series is found by hashing its label values (FNV)
//! under a read lock, then incremented with an atomic; nothing allocates once the series
//! exists. The circuit gauge is not touched on the request path at all: the scrape handler
//! copies the providers' published state in just before rendering.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a label says when the request never reached a provider (refused, or every upstream
/// failed).
pub const NONE: &str = "none";

/// Request latency: a fast cached answer up to a long agent stream.
const LATENCY_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
];
/// Time to the first streamed token.
const TTFT_BUCKETS: [f64; 10] = [0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0];
/// One group commit of settlements: a local SQLite fsync up to a slow remote PostgreSQL.
const COMMIT_BUCKETS: [f64; 11] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    ttft: HistogramVec,
    attempts: IntCounterVec,
    failures: IntCounterVec,
    fallbacks: IntCounterVec,
    circuit: IntGaugeVec,
    denials: IntCounterVec,
    tokens: IntCounterVec,
    spend: IntCounterVec,
    active_streams: IntGauge,
    settlement_queue: IntGauge,
    settlement_commit: Histogram,
    settlements: IntCounterVec,
    invoices: IntCounterVec,
    mint_refusals: IntCounterVec,
}

impl Metrics {
    fn new() -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let histogram = |name: &str, help: &str, buckets: &[f64], labels: &[&str]| {
            let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
            let h = HistogramVec::new(opts, labels)?;
            registry.register(Box::new(h.clone()))?;
            Ok::<_, prometheus::Error>(h)
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let circuit = IntGaugeVec::new(
            Opts::new(
                "pura_circuit_state",
                "Circuit breaker per provider: 0 closed, 1 open, 2 half-open.",
            ),
            &["provider"],
        )?;
        registry.register(Box::new(circuit.clone()))?;
        let settlement_commit = Histogram::with_opts(
            HistogramOpts::new(
                "pura_settlement_commit_seconds",
                "Duration of one group commit of settlements, retries included.",
            )
            .buckets(COMMIT_BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(settlement_commit.clone()))?;
        Ok(Metrics {
            requests: counter(
                "pura_requests_total",
                "Chat, responses and messages requests by client protocol, HTTP status, and the provider, model and tier that served them.",
                &["protocol", "status", "provider", "model", "tier"],
            )?,
            latency: histogram(
                "pura_request_duration_seconds",
                "Request duration until the answer was settled (a stream: until its end).",
                &LATENCY_BUCKETS,
                &["protocol", "provider", "tier"],
            )?,
            ttft: histogram(
                "pura_time_to_first_token_seconds",
                "Time from the upstream call to its first streamed chunk (streams only).",
                &TTFT_BUCKETS,
                &["provider", "model"],
            )?,
            attempts: counter(
                "pura_upstream_attempts_total",
                "Calls to an upstream, fallbacks included.",
                &["provider"],
            )?,
            failures: counter(
                "pura_upstream_failures_total",
                "Failed upstream calls by kind: status, timeout, reset, malformed, rejected (a 4xx the client must fix), rate_limited (a 429) or midstream (after the first byte).",
                &["provider", "kind"],
            )?,
            fallbacks: counter(
                "pura_fallbacks_total",
                "Requests answered by a provider after an earlier candidate failed, by the provider that answered.",
                &["provider"],
            )?,
            circuit,
            denials: counter(
                "pura_budget_denials_total",
                "Requests refused by a key's budget: payment (free tier and balance spent), daily, monthly, rpm, unavailable.",
                &["reason"],
            )?,
            tokens: counter(
                "pura_tokens_total",
                "Tokens billed, by provider, model and kind (prompt or completion).",
                &["provider", "model", "kind"],
            )?,
            spend: counter(
                "pura_spend_micros_total",
                "Cost billed, in micro-dollars (1e-6 USD).",
                &["provider", "model"],
            )?,
            active_streams: gauge(
                "pura_active_streams",
                "Streams being relayed to clients right now.",
            )?,
            settlement_queue: gauge(
                "pura_settlement_queue_depth",
                "Settlements queued for the group-commit writer and not yet committed.",
            )?,
            settlement_commit,
            settlements: counter(
                "pura_settlements_total",
                "Settlements by result: committed, or failed (given up after retries).",
                &["result"],
            )?,
            invoices: counter(
                "pura_invoices_total",
                "Lightning invoices by event: created, paid (credited), expired.",
                &["event"],
            )?,
            mint_refusals: counter(
                "pura_key_mint_refusals_total",
                "Refused key mints: admin_only (open minting off) or rate_limited (per IP).",
                &["reason"],
            )?,
            registry,
        })
    }
}

/// The process's metrics; `None` only if their definitions are inconsistent (logged once),
/// in which case every call below is a no-op rather than a panic on the request path.
fn get() -> Option<&'static Metrics> {
    static METRICS: OnceLock<Option<Metrics>> = OnceLock::new();
    METRICS
        .get_or_init(|| {
            Metrics::new()
                .map_err(|e| log::error!("metrics disabled: {e}"))
                .ok()
        })
        .as_ref()
}

fn inc(vec: &IntCounterVec, labels: &[&str], by: u64) {
    if let Ok(c) = vec.get_metric_with_label_values(labels) {
        c.inc_by(by);
    }
}

fn observe(vec: &HistogramVec, labels: &[&str], d: Duration) {
    if let Ok(h) = vec.get_metric_with_label_values(labels) {
        h.observe(d.as_secs_f64());
    }
}

/// Creates the registry and, at zero, every series whose labels are a fixed vocabulary, so
/// that a scrape right after start lists them and `rate()` sees their first increment.
/// Series labelled by provider or model appear on first use.
pub fn init() {
    let Some(m) = get() else { return };
    for reason in ["payment", "daily", "monthly", "rpm", "unavailable"] {
        inc(&m.denials, &[reason], 0);
    }
    for event in ["created", "paid", "expired"] {
        inc(&m.invoices, &[event], 0);
    }
    for reason in ["admin_only", "rate_limited"] {
        inc(&m.mint_refusals, &[reason], 0);
    }
    for result in ["committed", "failed"] {
        inc(&m.settlements, &[result], 0);
    }
}

/// A finished request (`status` as its three digits). Refused and failed requests have
/// [`NONE`] as provider, model and tier.
pub fn request(
    protocol: &str,
    status: &str,
    provider: &str,
    model: &str,
    tier: &str,
    latency: Duration,
) {
    if let Some(m) = get() {
        inc(&m.requests, &[protocol, status, provider, model, tier], 1);
        observe(&m.latency, &[protocol, provider, tier], latency);
    }
}

/// What one served request adds to the series: `request` with status 200, `ttft` when
/// streamed, and `billed`, through this thread's handles on the series of its protocol,
/// provider and model (found by comparing a few short strings, where each series' own lookup
/// hashes its labels under a lock: five of those were most of the metrics' cost per request).
pub struct Served<'a> {
    pub protocol: &'static str,
    pub provider: &'a str,
    pub model: &'a str,
    pub tier: &'static str,
    pub latency: Duration,
    pub ttft: Option<Duration>,
    pub prompt: u64,
    pub completion: u64,
    pub cost_micros: i64,
}

/// A worker's handles on the series a served request of one protocol, provider and model adds
/// to. Handles stay valid: no series is ever removed.
struct Handles {
    protocol: &'static str,
    provider: Box<str>,
    model: Box<str>,
    tier: &'static str,
    requests: IntCounter,
    latency: Histogram,
    /// Resolved at the first stream: a JSON-only model has no time-to-first-token series.
    ttft: Option<Histogram>,
    prompt: IntCounter,
    completion: IntCounter,
    spend: IntCounter,
}

/// More combinations than a configuration makes are counted without handles.
const MAX_HANDLES: usize = 256;

thread_local! {
    static HANDLES: std::cell::RefCell<Vec<Handles>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Handles {
    fn of(m: &Metrics, s: &Served) -> prometheus::Result<Handles> {
        let (provider, model) = (s.provider, s.model);
        Ok(Handles {
            protocol: s.protocol,
            provider: provider.into(),
            model: model.into(),
            tier: s.tier,
            requests: m
                .requests
                .get_metric_with_label_values(&[s.protocol, "200", provider, model, s.tier])?,
            latency: m
                .latency
                .get_metric_with_label_values(&[s.protocol, provider, s.tier])?,
            ttft: None,
            prompt: m
                .tokens
                .get_metric_with_label_values(&[provider, model, "prompt"])?,
            completion: m
                .tokens
                .get_metric_with_label_values(&[provider, model, "completion"])?,
            spend: m.spend.get_metric_with_label_values(&[provider, model])?,
        })
    }

    fn is(&self, s: &Served) -> bool {
        *self.provider == *s.provider
            && *self.model == *s.model
            && self.protocol == s.protocol
            && self.tier == s.tier
    }

    fn add(&mut self, m: &Metrics, s: &Served) {
        self.requests.inc();
        self.latency.observe(s.latency.as_secs_f64());
        if let Some(t) = s.ttft {
            if self.ttft.is_none() {
                self.ttft = m
                    .ttft
                    .get_metric_with_label_values(&[s.provider, s.model])
                    .ok();
            }
            if let Some(h) = &self.ttft {
                h.observe(t.as_secs_f64());
            }
        }
        self.prompt.inc_by(s.prompt);
        self.completion.inc_by(s.completion);
        self.spend.inc_by(s.cost_micros.max(0) as u64);
    }
}

pub fn served(s: &Served) {
    let Some(m) = get() else { return };
    let added = HANDLES.with(|cell| {
        let Ok(mut handles) = cell.try_borrow_mut() else {
            return false;
        };
        if let Some(h) = handles.iter_mut().find(|h| h.is(s)) {
            h.add(m, s);
            return true;
        }
        if handles.len() >= MAX_HANDLES {
            return false;
        }
        match Handles::of(m, s) {
            Ok(mut h) => {
                h.add(m, s);
                handles.push(h);
                true
            }
            Err(_) => false,
        }
    });
    if !added {
        request(s.protocol, "200", s.provider, s.model, s.tier, s.latency);
        if let Some(t) = s.ttft {
            ttft(s.provider, s.model, t);
        }
        billed(s.provider, s.model, s.prompt, s.completion, s.cost_micros);
    }
}

/// A request of an LLM route refused before the pipeline (its key was not accepted): counted
/// with no provider, and no latency observed (nothing was served).
pub fn refused(protocol: &str, status: &str) {
    if let Some(m) = get() {
        inc(&m.requests, &[protocol, status, NONE, NONE, NONE], 1);
    }
}

pub fn ttft(provider: &str, model: &str, ttft: Duration) {
    if let Some(m) = get() {
        observe(&m.ttft, &[provider, model], ttft);
    }
}

/// Tokens and cost billed for one request.
pub fn billed(provider: &str, model: &str, prompt: u64, completion: u64, cost_micros: i64) {
    if let Some(m) = get() {
        inc(&m.tokens, &[provider, model, "prompt"], prompt);
        inc(&m.tokens, &[provider, model, "completion"], completion);
        inc(&m.spend, &[provider, model], cost_micros.max(0) as u64);
    }
}

pub fn attempt(provider: &str) {
    if let Some(m) = get() {
        inc(&m.attempts, &[provider], 1);
    }
}

/// A failed upstream call; `kind` is one of the kinds listed in the series' help.
pub fn failure(provider: &str, kind: &str) {
    if let Some(m) = get() {
        inc(&m.failures, &[provider, kind], 1);
    }
}

/// `provider` answered after an earlier candidate failed.
pub fn fallback(provider: &str) {
    if let Some(m) = get() {
        inc(&m.fallbacks, &[provider], 1);
    }
}

/// Sets a provider's circuit gauge (0 closed, 1 open, 2 half-open); called when scraped.
pub fn circuit(provider: &str, state: i64) {
    if let Some(m) = get() {
        if let Ok(g) = m.circuit.get_metric_with_label_values(&[provider]) {
            g.set(state);
        }
    }
}

pub fn denial(reason: &str) {
    if let Some(m) = get() {
        inc(&m.denials, &[reason], 1);
    }
}

/// Counts a stream as active for as long as it lives: a relay holds one, so the gauge goes
/// down however the stream ends (finished, failed, or dropped by a client that went away).
pub struct ActiveStream(());

impl ActiveStream {
    pub fn start() -> ActiveStream {
        if let Some(m) = get() {
            m.active_streams.inc();
        }
        ActiveStream(())
    }
}

impl Drop for ActiveStream {
    fn drop(&mut self) {
        if let Some(m) = get() {
            m.active_streams.dec();
        }
    }
}

/// A settlement was handed to the writer.
pub fn settlement_queued() {
    if let Some(m) = get() {
        m.settlement_queue.inc();
    }
}

/// The writer finished a batch of `n` settlements (committed or given up) in `took`.
pub fn settlements_done(n: usize, committed: bool, took: Duration) {
    if let Some(m) = get() {
        m.settlement_queue.sub(n as i64);
        m.settlement_commit.observe(took.as_secs_f64());
        let result = if committed { "committed" } else { "failed" };
        inc(&m.settlements, &[result], n as u64);
    }
}

/// Settlements taken back before they were written (their request answered 503): off the
/// queue and counted as failed, with no commit to time.
pub fn settlements_withdrawn(n: usize) {
    if let Some(m) = get() {
        m.settlement_queue.sub(n as i64);
        inc(&m.settlements, &["failed"], n as u64);
    }
}

/// `event`: created, paid or expired.
pub fn invoices(event: &str, n: usize) {
    if let Some(m) = get() {
        inc(&m.invoices, &[event], n as u64);
    }
}

pub fn mint_refused(reason: &str) {
    if let Some(m) = get() {
        inc(&m.mint_refusals, &[reason], 1);
    }
}

/// Every series in the Prometheus text format.
pub fn render() -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(m) = get() {
        if let Err(e) = TextEncoder::new().encode(&m.registry.gather(), &mut out) {
            log::error!("metrics: encoding failed: {e}");
        }
    }
    out
}
