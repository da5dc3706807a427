//! The InvoiceWatcher asks the Lightning backend about open invoices on an interval; for each
//! paid one, the wallet credits it exactly once, in the turn of the account's BudgetActor.
//! It reads the open invoices from the database on every round, so a restart (or another
//! replica's watcher) loses nothing. Backend errors back off and are logged; nothing here can
//! bring the gateway down. It is given the wallet and the budgets, nothing else.

use std::time::{Duration, Instant};

use actix::prelude::*;

use super::budgets::Budgets;
use crate::db::models::invoice::Invoice;
use crate::wallet::Wallet;

/// The longest pause after repeated backend errors.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

pub struct InvoiceWatcher {
    wallet: Wallet,
    budgets: Budgets,
    interval: Duration,
    http: Option<awc::Client>,
    busy: bool,
    errors: u32,
    next_round: Instant,
}

impl InvoiceWatcher {
    pub fn new(wallet: Wallet, budgets: Budgets) -> Self {
        InvoiceWatcher {
            interval: wallet.poll_interval(),
            wallet,
            budgets,
            http: None,
            busy: false,
            errors: 0,
            next_round: Instant::now(),
        }
    }

    /// Starts the watcher on its own thread (its awc client is made and used there).
    pub fn start_on_own_thread(wallet: Wallet, budgets: Budgets) -> Addr<Self> {
        let arbiter = Arbiter::new();
        InvoiceWatcher::start_in_arbiter(&arbiter.handle(), move |_| {
            InvoiceWatcher::new(wallet, budgets)
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
        let (wallet, budgets) = (self.wallet.clone(), self.budgets.clone());
        ctx.spawn(
            poll_once(wallet, budgets, http)
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
        self.http = Some(self.wallet.http_client());
        ctx.run_interval(self.interval, |act, ctx| act.round(ctx));
    }
}

/// One round: expire what is due, ask about every open invoice, credit the paid ones.
/// Returns false when the backend or the database failed (the caller backs off).
pub async fn poll_once(wallet: Wallet, budgets: Budgets, http: awc::Client) -> bool {
    let open = match wallet.watchable().await {
        Ok(list) => list,
        Err(e) => {
            log::warn!("invoice watcher: cannot read open invoices: {e}");
            return false;
        }
    };
    for inv in open {
        match wallet.is_paid(&http, &inv).await {
            Ok(true) => {
                if !credit(&wallet, &budgets, &inv).await {
                    return false;
                }
            }
            Ok(false) => {}
            Err(e) => {
                log::warn!("invoice watcher: status of {} failed: {e}", inv.id);
                return false;
            }
        }
    }
    true
}

/// Credits a paid invoice once (in the turn of its account's BudgetActor). False on a database
/// error.
async fn credit(wallet: &Wallet, budgets: &Budgets, inv: &Invoice) -> bool {
    let commit = |work| budgets.commit_credit(&inv.account_id, work);
    match wallet.credit_paid(inv, commit).await {
        Ok(_) => true,
        Err(e) => {
            log::warn!("invoice watcher: crediting {} failed: {e}", inv.id);
            false
        }
    }
}
