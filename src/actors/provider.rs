//! One `ProviderActor` per upstream: EWMA latency and time to first token, an error ratio
//! over a sliding window, and a circuit breaker. The handler asks [`Pick`] before trying the
//! provider and reports every attempt with [`Observe`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use actix::prelude::*;

/// Consecutive failures that open the circuit.
const FAILURES_TO_OPEN: u32 = 3;
/// Error ratio over the window that opens the circuit (with at least `MIN_SAMPLES`).
const ERROR_RATIO_TO_OPEN: f64 = 0.5;
const MIN_SAMPLES: usize = 10;
/// Outcomes older than this leave the error-ratio window.
const WINDOW: Duration = Duration::from_secs(60);
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

pub struct ProviderActor {
    name: String,
    cooldown: Duration,
    /// A probe that never reported back (client gone) is forgotten after this long.
    probe_timeout: Duration,
    ewma_latency_ms: f64,
    ewma_ttft_ms: f64,
    window: VecDeque<(Instant, Outcome)>,
    consecutive_failures: u32,
    circuit: Circuit,
}

impl ProviderActor {
    pub fn new(name: &str, cooldown: Duration, probe_timeout: Duration) -> Self {
        ProviderActor {
            name: name.to_owned(),
            cooldown,
            probe_timeout,
            ewma_latency_ms: 0.0,
            ewma_ttft_ms: 0.0,
            window: VecDeque::new(),
            consecutive_failures: 0,
            circuit: Circuit::Closed,
        }
    }

    fn health(&self) -> Health {
        let failures = self
            .window
            .iter()
            .filter(|(_, o)| *o == Outcome::Failure)
            .count();
        let error_ratio = if self.window.is_empty() {
            0.0
        } else {
            failures as f64 / self.window.len() as f64
        };
        Health {
            ewma_latency_ms: self.ewma_latency_ms,
            ewma_ttft_ms: self.ewma_ttft_ms,
            error_ratio,
            circuit: self.circuit,
        }
    }

    fn prune(&mut self, now: Instant) {
        while self
            .window
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > WINDOW)
        {
            self.window.pop_front();
        }
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
        self.prune(now);
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
            _ => {}
        }
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
        let now = Instant::now();
        self.prune(now);
        self.window.push_back((now, msg.outcome));
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
                    self.window.clear();
                    self.circuit = Circuit::Closed;
                }
            }
            Outcome::Failure => {
                self.consecutive_failures += 1;
                let ratio_bad = self.window.len() >= MIN_SAMPLES
                    && self.health().error_ratio >= ERROR_RATIO_TO_OPEN;
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
        let addr =
            ProviderActor::new("t", Duration::from_millis(300), Duration::from_secs(5)).start();
        for _ in 0..FAILURES_TO_OPEN {
            assert!(addr.send(Pick).await.ok().flatten().is_some());
            addr.do_send(fail());
        }
        assert!(
            addr.send(Pick).await.ok().flatten().is_none(),
            "circuit should be open"
        );
        actix_web::rt::time::sleep(Duration::from_millis(700)).await;
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
}
