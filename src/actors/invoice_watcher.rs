//! The InvoiceWatcher polls the Lightning backend about open invoices on an interval and
//! credits paid ones exactly once (see `invoice::credit_paid`), then tells the key's
//! BudgetActor. It reads the open invoices from the database on every round, so a restart
//! (or another replica's watcher) loses nothing. Backend errors back off and are logged;
//! nothing here can bring the gateway down.

use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::web;

use crate::db::models::invoice::{self, Invoice};
use crate::lightning::{invoices, Backend, InvoiceState, LightningBackend};
use crate::state::AppState;

/// Expired invoices are still watched this long, so a late payment is credited, not lost.
const LATE_PAYMENT_GRACE: chrono::Duration = chrono::Duration::hours(24);
/// The longest pause after repeated backend errors.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

pub struct InvoiceWatcher {
    state: web::Data<AppState>,
    backend: Backend,
    interval: Duration,
    http: Option<awc::Client>,
    busy: bool,
    errors: u32,
    next_round: Instant,
}

impl InvoiceWatcher {
    pub fn new(state: web::Data<AppState>, backend: Backend, interval: Duration) -> Self {
        InvoiceWatcher {
            state,
            backend,
            interval,
            http: None,
            busy: false,
            errors: 0,
            next_round: Instant::now(),
        }
    }

    /// Starts the watcher on its own thread (its awc client is made and used there).
    pub fn start_on_own_thread(
        state: web::Data<AppState>,
        backend: Backend,
        interval: Duration,
    ) -> Addr<Self> {
        let arbiter = Arbiter::new();
        InvoiceWatcher::start_in_arbiter(&arbiter.handle(), move |_| {
            InvoiceWatcher::new(state, backend, interval)
        })
    }

    fn round(&mut self, ctx: &mut Context<Self>) {
        if self.busy || Instant::now() < self.next_round {
            return;
        }
        let Some(http) = self.http.clone() else {
            return;
        };
        self.busy = true;
        let (state, backend) = (self.state.clone(), self.backend.clone());
        ctx.spawn(
            poll_once(state, backend, http)
                .into_actor(self)
                .map(|ok, act, _| {
                    act.busy = false;
                    if ok {
                        act.errors = 0;
                        act.next_round = Instant::now();
                    } else {
                        act.errors = act.errors.saturating_add(1);
                        let pause = act
                            .interval
                            .saturating_mul(1 << act.errors.min(6))
                            .min(MAX_BACKOFF);
                        log::warn!(
                            "invoice watcher: backing off {pause:?} after {} failed rounds",
                            act.errors
                        );
                        act.next_round = Instant::now() + pause;
                    }
                }),
        );
    }
}

impl Actor for InvoiceWatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.http = Some(Backend::http_client(&self.state.config.lightning));
        ctx.run_interval(self.interval, |act, ctx| act.round(ctx));
    }
}

/// One round: expire what is due, ask about every open invoice, credit the paid ones.
/// Returns false when the backend or the database failed (the caller backs off).
pub async fn poll_once(state: web::Data<AppState>, backend: Backend, http: awc::Client) -> bool {
    let pool = state.pool.clone();
    let open = web::block(move || {
        let mut conn = pool.get()?;
        let now = crate::time::now();
        invoice::expire_due(&mut conn, now)?;
        invoice::watchable(&mut conn, now, LATE_PAYMENT_GRACE)
    })
    .await;
    let open = match open {
        Ok(Ok(list)) => list,
        other => {
            log::warn!("invoice watcher: cannot read open invoices: {other:?}");
            return false;
        }
    };
    for inv in open {
        match backend.status(&http, &inv.payment_hash).await {
            Ok(InvoiceState::Paid) => {
                if !credit(&state, &inv).await {
                    return false;
                }
            }
            Ok(_) => {}
            Err(e) => {
                log::warn!("invoice watcher: status of {} failed: {e}", inv.id);
                return false;
            }
        }
    }
    true
}

/// Credits a paid invoice once and tells the key's BudgetActor. False on a database error.
pub async fn credit(state: &web::Data<AppState>, inv: &Invoice) -> bool {
    let micros = invoices::credit_micros(inv.amount_sats, state.config.lightning.usd_per_sat);
    let (pool, row) = (state.pool.clone(), inv.clone());
    let result = web::block(move || {
        invoice::credit_paid(&mut *pool.get()?, &row, micros, crate::time::now())
    })
    .await;
    match result {
        Ok(Ok(Some(m))) => {
            if inv.status == invoice::EXPIRED {
                log::warn!(
                    "invoice {} was paid after it expired; credited anyway ({} sats)",
                    inv.id,
                    inv.amount_sats
                );
            }
            log::info!(
                "invoice {} paid: credited {} sats to key {}",
                inv.id,
                inv.amount_sats,
                inv.key_id
            );
            state.budgets.credit(&inv.key_id, m);
            let event = crate::cluster::Event::Credit {
                id: inv.key_id.clone(),
                micros: m,
            };
            crate::cluster::announce(state, event).await;
            true
        }
        Ok(Ok(None)) => true,
        other => {
            log::warn!("invoice watcher: crediting {} failed: {other:?}", inv.id);
            false
        }
    }
}
