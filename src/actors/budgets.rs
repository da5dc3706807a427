//! The registry of BudgetActors: one per key, started on first use, removed when it stops
//! idle. Also turns a refused reservation into the HTTP error the contract names (a 402 here
//! carries no invoice: the wallet adds one). Cloning shares the registry, so the cluster
//! listener and the InvoiceWatcher hold clones.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix::prelude::*;

use super::budget::{
    Account, BudgetActor, Credit, Defaults, Denied, GetAccount, NotFree, Refresh, Release,
    Reservation, Reserve, SpentElsewhere,
};
use crate::db::models::api_key::ApiKey;
use crate::db::models::free_spend;
use crate::db::usage_writer::UsageWriter;
use crate::db::{self, Pool};
use crate::error::ApiError;
use crate::money::Micros;
use crate::notify::Notifier;

type Map = Arc<Mutex<HashMap<String, Addr<BudgetActor>>>>;

#[derive(Clone)]
pub struct Budgets {
    map: Map,
    pool: Pool,
    writer: UsageWriter,
    notifier: Notifier,
    defaults: Defaults,
}

/// A held reservation and the actor holding it (settle and release go to the same one).
pub struct Ticket {
    pub actor: Addr<BudgetActor>,
    pub reservation: Reservation,
}

impl Budgets {
    pub fn new(pool: Pool, writer: UsageWriter, notifier: Notifier, defaults: Defaults) -> Budgets {
        Budgets {
            map: Map::default(),
            pool,
            writer,
            notifier,
            defaults,
        }
    }

    pub fn writer(&self) -> &UsageWriter {
        &self.writer
    }

    /// The key's actor, started on the current arbiter when none runs.
    pub fn actor(&self, key_id: &str) -> Addr<BudgetActor> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(addr) = map.get(key_id).filter(|a| a.connected()) {
            return addr.clone();
        }
        let registry = self.map.clone();
        let on_idle = Box::new(move |key: &str, me: &Addr<BudgetActor>| {
            let mut map = registry.lock().unwrap_or_else(|e| e.into_inner());
            if map.get(key).is_some_and(|a| a == me) {
                map.remove(key);
            }
        });
        let addr = BudgetActor::new(
            key_id,
            self.defaults,
            self.pool.clone(),
            self.writer.clone(),
            self.notifier.clone(),
            on_idle,
        )
        .start();
        map.insert(key_id.to_owned(), addr.clone());
        addr
    }

    fn forget(&self, key_id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key_id);
    }

    /// Reserves `estimate_micros` for one request, or the error to answer with.
    ///
    /// A request the key's actor would serve free must also fit in the deployment's free
    /// spend of the day, which is shared by every key and replica and so lives in the
    /// database (one conditional update, see [`free_spend`]). When it does not fit, the
    /// reservation is made again from the balance, which answers 402 when it is short.
    pub async fn reserve(&self, key_id: &str, estimate_micros: i64) -> Result<Ticket, ApiError> {
        let ticket = self.reserve_at(key_id, estimate_micros, true).await?;
        if !ticket.reservation.free {
            return Ok(ticket);
        }
        let (day, cap) = (
            ticket.reservation.day,
            self.defaults.free_daily_budget_micros,
        );
        let taken = db::run(&self.pool, move |conn| {
            free_spend::take(conn, day, estimate_micros, cap)
        })
        .await;
        match taken {
            Ok(true) => Ok(ticket),
            Ok(false) => {
                Self::unhold(&ticket, true);
                self.reserve_at(key_id, estimate_micros, false).await
            }
            Err(e) => {
                Self::unhold(&ticket, false);
                Err(e.into())
            }
        }
    }

    async fn reserve_at(
        &self,
        key_id: &str,
        estimate_micros: i64,
        allow_free: bool,
    ) -> Result<Ticket, ApiError> {
        // An actor may stop (idle) between lookup and send; a second try starts a fresh one.
        for _ in 0..2 {
            let actor = self.actor(key_id);
            let msg = Reserve {
                estimate_micros,
                allow_free,
            };
            match actor.send(msg).await {
                Ok(Ok(reservation)) => return Ok(Ticket { actor, reservation }),
                Ok(Err(denied)) => return Err(denial_error(denied)),
                Err(_) => self.forget(key_id),
            }
        }
        Err(ApiError::Unavailable(
            "The key's budget could not be loaded.".into(),
        ))
    }

    /// Nothing was served: the reservation goes back, and a free one's estimate goes back
    /// to the day's free spend (awaited, so an error answer leaves the count settled).
    pub async fn release(&self, ticket: &Ticket) {
        Self::unhold(ticket, false);
        let r = &ticket.reservation;
        if r.free {
            let (day, refund) = (r.day, -r.estimate_micros);
            let done = db::run(&self.pool, move |conn| {
                free_spend::adjust(conn, day, refund).map_err(Into::into)
            })
            .await;
            if let Err(e) = done {
                // The day's free spend stays higher than what was served: the safe side.
                log::warn!("free spend refund of {} µ$ not recorded: {e}", -refund);
            }
        }
    }

    /// Gives the reservation back to the key's actor, leaving the free spend as it is;
    /// `uncount` when the request is reserved again right away.
    fn unhold(ticket: &Ticket, uncount: bool) {
        ticket.actor.do_send(Release {
            reservation: ticket.reservation.id,
            uncount,
        });
    }

    /// The key's account as its actor sees it (reservations not subtracted).
    pub async fn account(&self, key_id: &str) -> Result<Account, ApiError> {
        for _ in 0..2 {
            match self.actor(key_id).send(GetAccount).await {
                Ok(Some(a)) => return Ok(a),
                Ok(None) => break,
                Err(_) => self.forget(key_id),
            }
        }
        Err(ApiError::Unavailable(
            "The key's account could not be loaded.".into(),
        ))
    }

    /// Tells a running actor about committed money; a stopped one reloads it when it starts.
    pub fn credit(&self, key_id: &str, micros: i64) {
        if let Some(a) = self
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key_id)
        {
            a.do_send(Credit { micros });
        }
    }

    /// Another replica settled requests of this key: keep this replica's view in step.
    pub fn spent_elsewhere(
        &self,
        key_id: &str,
        cost_micros: i64,
        debit_micros: i64,
        free: i64,
        xid: Option<u64>,
    ) {
        if let Some(a) = self
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key_id)
        {
            a.do_send(SpentElsewhere {
                cost_micros,
                debit_micros,
                free,
                xid,
            });
        }
    }

    pub fn refresh(&self, key: &ApiKey) {
        if let Some(a) = self
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key.id)
        {
            a.do_send(Refresh(key.clone()));
        }
    }
}

fn secs(d: std::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn denial_error(denied: Denied) -> ApiError {
    crate::metrics::denial(denied.reason());
    match denied {
        Denied::RateLimited { limit, retry_after } => ApiError::RateLimited {
            message: format!(
                "Rate limit reached: {limit} requests per minute for this key. Try again in {} s.",
                secs(retry_after)
            ),
            retry_after_secs: secs(retry_after).max(1),
            limit: Some(limit),
        },
        Denied::Budget {
            window,
            retry_after,
        } => ApiError::QuotaExceeded {
            message: format!(
                "The {window} budget of this key is spent; it resets in {} s (UTC calendar {}).",
                secs(retry_after),
                if window == "daily" { "day" } else { "month" }
            ),
            retry_after_secs: secs(retry_after).max(1),
        },
        Denied::Payment {
            balance_micros,
            needed_micros,
            reason,
        } => {
            let why = match reason {
                NotFree::UsedUp => "The free tier of this key is used up".to_owned(),
                NotFree::OverRequestCap { cap_micros } => format!(
                    "This request (up to ${}) is above the free tier's limit of ${} per request \
                     (lower max_tokens or shorten the prompt to stay free)",
                    Micros(needed_micros),
                    Micros(cap_micros)
                ),
                NotFree::DailyBudgetSpent => {
                    "The free tier of this gateway is spent for today (UTC)".to_owned()
                }
            };
            ApiError::PaymentRequired {
                message: format!(
                    "{why}, and the balance of this key (${}) does not cover this request (up to ${}). \
                     Fund it with POST /api/wallet/fund {{\"amount\": <sats>}} and pay the Lightning invoice.",
                    Micros(balance_micros),
                    Micros(needed_micros)
                ),
                invoice: None,
            }
        }
        Denied::Unavailable => {
            ApiError::Unavailable("The key's budget could not be loaded.".into())
        }
    }
}
