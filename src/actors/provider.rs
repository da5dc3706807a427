//! One `ProviderActor` per upstream: EWMA latency and time to first token, an error ratio
//! over a sliding window, and a circuit breaker. The actor is the only writer of that state;
//! after every change it publishes a [`Published`] snapshot (atomics) that the router reads
//! without a message round trip. Only a half-open circuit needs a question: the router asks
//! [`Pick`] so that exactly one probe request is let through. Every attempt is reported back
//! with [`Observe`].

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

/// Consecutive failures that open the circuit.
const FAILURES_TO_OPEN: u32 = 3;
/// Error ratio over the window that opens the circuit (with at least `MIN_SAMPLES`).
const ERROR_RATIO_TO_OPEN: f64 = 0.5;
const MIN_SAMPLES: u64 = 10;
/// The error-ratio window: `BUCKETS` buckets of `BUCKET` each (60 s), so that updating and
/// reading it costs the same at 10 requests a minute and at 10,000 a second.
const BUCKET: Duration = Duration::from_secs(5);
const BUCKETS: usize = 12;
/// Weight of the newest sample in the moving averages.
const EWMA_ALPHA: f64 = 0.2;
/// How often the actor checks whether an open circuit's cool-down has passed.
const TICK: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Circuit {
    Closed,
    /// Refusing traffic until the instant, then half-open.
    Open(Instant),
    /// One probe request may go through; its outcome closes or re-opens the circuit.
    HalfOpen {
        probe_since: Option<Instant>,
    },
}

/// What the router learns about a provider.
#[derive(Debug, Clone, Copy)]
pub struct Health {
    pub ewma_latency_ms: f64,
    pub ewma_ttft_ms: f64,
    pub error_ratio: f64,
    pub circuit: Circuit,
}

/// The circuit's state as published to readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

/// The actor's latest health, readable from any worker without a message.
#[derive(Debug, Default)]
pub struct Published {
    gate: AtomicU8,
    ewma_latency_ms: AtomicU64,
    ewma_ttft_ms: AtomicU64,
}

impl Published {
    pub fn gate(&self) -> Gate {
        match self.gate.load(Ordering::Acquire) {
            0 => Gate::Closed,
            1 => Gate::Open,
            _ => Gate::HalfOpen,
        }
    }

    pub fn ewma_latency_ms(&self) -> f64 {
        f64::from_bits(self.ewma_latency_ms.load(Ordering::Relaxed))
    }

    pub fn ewma_ttft_ms(&self) -> f64 {
        f64::from_bits(self.ewma_ttft_ms.load(Ordering::Relaxed))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

/// May this provider take a request now? `None` while its circuit is open (or a half-open
/// probe is already in flight). Answering `Some` for a half-open circuit starts the probe.
#[derive(Message)]
#[rtype(result = "Option<Health>")]
pub struct Pick;

/// Read-only view for reports and tests.
#[derive(Message)]
#[rtype(result = "Health")]
pub struct Snapshot;

/// The result of one attempt against this provider.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Observe {
    pub latency: Duration,
    pub ttft: Option<Duration>,
    pub outcome: Outcome,
}

/// Success and failure counts per time bucket.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    epoch: u64,
    ok: u64,
    failed: u64,
}

pub struct ProviderActor {
    name: String,
    cooldown: Duration,
    /// A probe that never reported back (client gone) is forgotten after this long.
    probe_timeout: Duration,
    started: Instant,
    ewma_latency_ms: f64,
    ewma_ttft_ms: f64,
    buckets: [Bucket; BUCKETS],
    consecutive_failures: u32,
    circuit: Circuit,
    published: Arc<Published>,
}

impl ProviderActor {
    pub fn new(name: &str, cooldown: Duration, probe_timeout: Duration) -> Self {
        ProviderActor {
            name: name.to_owned(),
            cooldown,
            probe_timeout,
            started: Instant::now(),
            ewma_latency_ms: 0.0,
            ewma_ttft_ms: 0.0,
            buckets: [Bucket::default(); BUCKETS],
            consecutive_failures: 0,
            circuit: Circuit::Closed,
            published: Arc::default(),
        }
    }

    /// The snapshot this actor keeps up to date.
    pub fn published(&self) -> Arc<Published> {
        self.published.clone()
    }

    fn epoch(&self, now: Instant) -> u64 {
        (now.duration_since(self.started).as_secs() / BUCKET.as_secs()) + 1
    }

    /// (successes, failures) over the window.
    fn counts(&self, now: Instant) -> (u64, u64) {
        let current = self.epoch(now);
        self.buckets
            .iter()
            .filter(|b| b.epoch + (BUCKETS as u64) > current)
            .fold((0, 0), |(ok, failed), b| (ok + b.ok, failed + b.failed))
    }

    fn record(&mut self, now: Instant, outcome: Outcome) {
        let epoch = self.epoch(now);
        let slot = &mut self.buckets[(epoch % BUCKETS as u64) as usize];
        if slot.epoch != epoch {
            *slot = Bucket {
                epoch,
                ..Bucket::default()
            };
        }
        match outcome {
            Outcome::Success => slot.ok += 1,
            Outcome::Failure => slot.failed += 1,
        }
    }

    fn health(&self) -> Health {
        let (ok, failed) = self.counts(Instant::now());
        let total = ok + failed;
        Health {
            ewma_latency_ms: self.ewma_latency_ms,
            ewma_ttft_ms: self.ewma_ttft_ms,
            error_ratio: if total == 0 {
                0.0
            } else {
                failed as f64 / total as f64
            },
            circuit: self.circuit,
        }
    }

    fn publish(&self) {
        let gate = match self.circuit {
            Circuit::Closed => Gate::Closed,
            Circuit::Open(_)
            | Circuit::HalfOpen {
                probe_since: Some(_),
            } => Gate::Open,
            Circuit::HalfOpen { probe_since: None } => Gate::HalfOpen,
        };
        let p = &self.published;
        p.gate.store(gate as u8, Ordering::Release);
        p.ewma_latency_ms
            .store(self.ewma_latency_ms.to_bits(), Ordering::Relaxed);
        p.ewma_ttft_ms
            .store(self.ewma_ttft_ms.to_bits(), Ordering::Relaxed);
    }

    fn open(&mut self, now: Instant) {
        log::warn!(
            "provider {}: circuit open for {:?}",
            self.name,
            self.cooldown
        );
        self.circuit = Circuit::Open(now + self.cooldown);
    }

    fn tick(&mut self) {
        let now = Instant::now();
        match self.circuit {
            Circuit::Open(until) if now >= until => {
                log::info!("provider {}: circuit half-open", self.name);
                self.circuit = Circuit::HalfOpen { probe_since: None };
            }
            Circuit::HalfOpen {
                probe_since: Some(t),
            } if now.duration_since(t) > self.probe_timeout => {
                self.circuit = Circuit::HalfOpen { probe_since: None };
            }
            _ => return,
        }
        self.publish();
    }
}

fn ewma(old: f64, sample: f64) -> f64 {
    if old == 0.0 {
        sample
    } else {
        old + EWMA_ALPHA * (sample - old)
    }
}

impl Actor for ProviderActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.publish();
        ctx.run_interval(TICK, |act, _| act.tick());
    }
}

impl Handler<Pick> for ProviderActor {
    type Result = Option<Health>;

    fn handle(&mut self, _: Pick, _: &mut Context<Self>) -> Option<Health> {
        match self.circuit {
            Circuit::Closed => Some(self.health()),
            Circuit::Open(_)
            | Circuit::HalfOpen {
                probe_since: Some(_),
            } => None,
            Circuit::HalfOpen { probe_since: None } => {
                self.circuit = Circuit::HalfOpen {
                    probe_since: Some(Instant::now()),
                };
                self.publish();
                Some(self.health())
            }
        }
    }
}

impl Handler<Snapshot> for ProviderActor {
    type Result = MessageResult<Snapshot>;

    fn handle(&mut self, _: Snapshot, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.health())
    }
}

impl Handler<Observe> for ProviderActor {
    type Result = ();

    fn handle(&mut self, msg: Observe, _: &mut Context<Self>) {
        self.learn(msg);
        self.publish();
    }
}

/// Several attempts' results at once (see [`observe`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Observations(Vec<Observe>);

impl Handler<Observations> for ProviderActor {
    type Result = ();

    fn handle(&mut self, msg: Observations, _: &mut Context<Self>) {
        for o in msg.0 {
            self.learn(o);
        }
        self.publish();
    }
}

/// How long a worker gathers its successful attempts' results before it sends them. A success
/// on a closed circuit only moves the provider's averages and its window's counts, which lose
/// nothing by arriving a tenth of a second late; sent per request, each woke the providers'
/// thread: at a modest rate, one cross-thread wake per request (about 2,500 instructions of
/// that thread alone, callgrind, one request at a time).
const GATHER: Duration = Duration::from_millis(100);

thread_local! {
    /// This worker's results not yet sent.
    static BATCH: std::cell::RefCell<Vec<(Addr<ProviderActor>, Observe)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Tells `actor` the result of an attempt. On an HTTP worker a success waits up to [`GATHER`]
/// with the others gathered meanwhile, then all go in one message per provider. A failure, or
/// the result of a half-open circuit's probe (`probe`), can change the circuit: it goes at once,
/// with whatever has gathered. Elsewhere than on a worker, the message goes at once.
pub fn observe(actor: &Addr<ProviderActor>, o: Observe, probe: bool) {
    if Arbiter::try_current().is_none() || tokio::runtime::Handle::try_current().is_err() {
        actor.do_send(o);
        return;
    }
    let urgent = probe || o.outcome == Outcome::Failure;
    let first = BATCH.with_borrow_mut(|b| {
        b.push((actor.clone(), o));
        b.len() == 1
    });
    if urgent {
        send_gathered();
    } else if first {
        actix_web::rt::spawn(async {
            tokio::time::sleep(GATHER).await;
            send_gathered();
        });
    }
}

/// Sends this worker's gathered results, one message per provider.
fn send_gathered() {
    let mut batch = BATCH.take();
    while let Some((actor, _)) = batch.first() {
        let actor = actor.clone();
        let (mine, rest): (Vec<_>, Vec<_>) = batch.into_iter().partition(|(a, _)| *a == actor);
        actor.do_send(Observations(mine.into_iter().map(|(_, o)| o).collect()));
        batch = rest;
    }
}

impl ProviderActor {
    fn learn(&mut self, msg: Observe) {
        let now = Instant::now();
        self.record(now, msg.outcome);
        match msg.outcome {
            Outcome::Success => {
                self.ewma_latency_ms =
                    ewma(self.ewma_latency_ms, msg.latency.as_secs_f64() * 1000.0);
                if let Some(t) = msg.ttft {
                    self.ewma_ttft_ms = ewma(self.ewma_ttft_ms, t.as_secs_f64() * 1000.0);
                }
                self.consecutive_failures = 0;
                if matches!(self.circuit, Circuit::HalfOpen { .. }) {
                    log::info!("provider {}: probe succeeded, circuit closed", self.name);
                    self.buckets = [Bucket::default(); BUCKETS];
                    self.circuit = Circuit::Closed;
                }
            }
            Outcome::Failure => {
                self.consecutive_failures += 1;
                let (ok, failed) = self.counts(now);
                let ratio_bad = ok + failed >= MIN_SAMPLES
                    && failed as f64 / (ok + failed) as f64 >= ERROR_RATIO_TO_OPEN;
                let half_open = matches!(self.circuit, Circuit::HalfOpen { .. });
                if half_open || self.consecutive_failures >= FAILURES_TO_OPEN || ratio_bad {
                    self.open(now);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail() -> Observe {
        Observe {
            latency: Duration::from_millis(5),
            ttft: None,
            outcome: Outcome::Failure,
        }
    }

    #[actix_web::test]
    async fn opens_after_repeated_failures_then_probes_and_closes() {
        let actor = ProviderActor::new("t", Duration::from_millis(300), Duration::from_secs(5));
        let published = actor.published();
        let addr = actor.start();
        for _ in 0..FAILURES_TO_OPEN {
            assert!(addr.send(Pick).await.ok().flatten().is_some());
            addr.do_send(fail());
        }
        assert!(
            addr.send(Pick).await.ok().flatten().is_none(),
            "circuit should be open"
        );
        assert_eq!(published.gate(), Gate::Open);
        actix_web::rt::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(published.gate(), Gate::HalfOpen);
        assert!(
            addr.send(Pick).await.ok().flatten().is_some(),
            "half-open grants one probe"
        );
        assert!(
            addr.send(Pick).await.ok().flatten().is_none(),
            "only one probe at a time"
        );
        addr.do_send(Observe {
            latency: Duration::from_millis(40),
            ttft: Some(Duration::from_millis(10)),
            outcome: Outcome::Success,
        });
        let h = addr.send(Pick).await.ok().flatten().expect("closed again");
        assert_eq!(h.circuit, Circuit::Closed);
        assert!((h.ewma_latency_ms - 40.0).abs() < 1e-6);
        assert_eq!(published.gate(), Gate::Closed);
        assert!((published.ewma_latency_ms() - 40.0).abs() < 1e-6);
    }

    #[actix_web::test]
    async fn failed_probe_reopens() {
        let addr =
            ProviderActor::new("t", Duration::from_millis(300), Duration::from_secs(5)).start();
        for _ in 0..FAILURES_TO_OPEN {
            addr.do_send(fail());
        }
        actix_web::rt::time::sleep(Duration::from_millis(700)).await;
        assert!(addr.send(Pick).await.ok().flatten().is_some());
        addr.do_send(fail());
        assert!(addr.send(Pick).await.ok().flatten().is_none());
    }

    #[actix_web::test]
    async fn error_ratio_over_the_window_opens_the_circuit() {
        let addr = ProviderActor::new("t", Duration::from_secs(60), Duration::from_secs(5)).start();
        for i in 0..20 {
            // Two failures, one success: never three in a row, so the ratio is what trips it.
            let outcome = if i % 3 == 2 {
                Outcome::Success
            } else {
                Outcome::Failure
            };
            addr.do_send(Observe {
                latency: Duration::from_millis(5),
                ttft: None,
                outcome,
            });
        }
        let h = addr.send(Snapshot).await.expect("snapshot");
        assert!(h.error_ratio >= 0.5, "{h:?}");
        assert!(matches!(h.circuit, Circuit::Open(_)));
    }

    /// On a worker, successes wait out the gather window and then arrive together; a failure
    /// goes at once and takes what had gathered with it; a probe's success goes at once.
    #[actix_web::test]
    async fn successes_are_gathered_while_failures_and_probes_go_at_once() {
        let ok = |ms| Observe {
            latency: Duration::from_millis(ms),
            ttft: None,
            outcome: Outcome::Success,
        };
        let addr = ProviderActor::new("t", Duration::from_secs(60), Duration::from_secs(5)).start();
        observe(&addr, ok(40), false);
        observe(&addr, ok(40), false);
        // A message sent now is handled after any sent before it: none was.
        let h = addr.send(Snapshot).await.expect("snapshot");
        assert_eq!(h.ewma_latency_ms, 0.0, "{h:?}");
        actix_web::rt::time::sleep(GATHER * 3).await;
        let h = addr.send(Snapshot).await.expect("snapshot");
        assert!((h.ewma_latency_ms - 40.0).abs() < 1e-6, "{h:?}");

        let addr = ProviderActor::new("t", Duration::from_secs(60), Duration::from_secs(5)).start();
        observe(&addr, ok(40), false);
        observe(&addr, fail(), false);
        let h = addr.send(Snapshot).await.expect("snapshot");
        assert!((h.ewma_latency_ms - 40.0).abs() < 1e-6, "{h:?}");
        assert!((h.error_ratio - 0.5).abs() < 1e-6, "{h:?}");

        let addr = ProviderActor::new("t", Duration::from_secs(60), Duration::from_secs(5)).start();
        observe(&addr, ok(30), true);
        let h = addr.send(Snapshot).await.expect("snapshot");
        assert!((h.ewma_latency_ms - 30.0).abs() < 1e-6, "{h:?}");
    }
}
