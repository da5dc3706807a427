//! The registry of BudgetActors: one per account, started on first use, removed when it stops
//! idle. Also turns a refused reservation into the HTTP error the contract names (a 402 here
//! carries no invoice: the wallet adds one). Cloning shares the registry, so the cluster
//! listener and the InvoiceWatcher hold clones.
//!
//! An account's actor runs on the HTTP worker that first needed it, so that a request served
//! there reserves and settles without waking another thread (with one worker pinned to one
//! core, each wake was a context switch, and together they halved the throughput). A worker
//! stops at shutdown as soon as its own last connection ends, dropping its actors with what
//! is in their mailboxes: a settlement sent from another worker's stream may be among it.
//! Such a settlement is adopted ([`Budgets::adopt`]) by an actor on an arbiter of the
//! registry's own, which lives until [`Budgets::drain`] has every settlement committed.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;

use super::arbiter::{self, ReplicaArbiter};
use super::budget::{
    Account, AddKey, BudgetActor, CommitCredit, Credit, CreditWork, Defaults, Denied, GetAccount,
    InFlight, KeyMoney, NotFree, Orphan, Refresh, Release, Reservation, Reserve, Settle,
    SettleBody, SpentElsewhere,
};
use super::free_spend::LocalFreeSpend;
use crate::db::models::api_key::ApiKey;
use crate::db::models::free_spend;
use crate::db::models::hold::Verdict;
use crate::db::models::usage::UsageRow;
use crate::db::usage_writer::UsageWriter;
use crate::db::{self, Pool};
use crate::error::ApiError;
use crate::money::Micros;
use crate::notify::Notifier;

type Map = Arc<Mutex<HashMap<String, Addr<BudgetActor>, foldhash::fast::RandomState>>>;

/// Times a settlement may be handed on to another actor before it is given up (logged): only
/// an arbiter that is itself gone (the process exiting past its last flush) refuses it again.
const MAX_ADOPTIONS: u8 = 4;
/// How often [`Budgets::drain`] looks at the settlements still on their way.
const DRAIN_POLL: Duration = Duration::from_millis(5);

/// The registry; cloning shares it (one `Arc`).
#[derive(Clone)]
pub struct Budgets(Arc<Inner>);

impl Deref for Budgets {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

pub struct Inner {
    map: Map,
    pool: Pool,
    writer: UsageWriter,
    notifier: Notifier,
    defaults: Defaults,
    arbiter: Option<ReplicaArbiter>,
    /// The day's free spend in memory when this process is the only one serving (no arbiter).
    local_free: Option<Arc<LocalFreeSpend>>,
    /// Where actors that adopt orphaned settlements run: it outlives the HTTP workers.
    home: ArbiterHandle,
    /// Settlements made and not yet handed to the writer.
    in_flight: Arc<AtomicUsize>,
}

/// A held reservation and the actor holding it (settle and release go to the same one).
pub struct Ticket {
    pub actor: Addr<BudgetActor>,
    pub reservation: Reservation,
    /// The database hold arbitrating it between replicas (PostgreSQL), if any.
    pub hold: Option<String>,
    budgets: Budgets,
}

impl Ticket {
    /// The message that settles this reservation with the served request's row. `adoptable`:
    /// if the actor is gone before handling it, another actor settles it (the text was sent:
    /// it must be billed); otherwise it is dropped and the sender, told so, withdraws.
    pub fn settle(&self, row: UsageRow, adoptable: bool) -> Settle {
        let r = &self.reservation;
        Settle {
            body: Some(SettleBody {
                reservation: r.id,
                free: r.free,
                estimate_micros: r.estimate_micros,
                day: r.day,
                row,
                hold: self.hold.clone(),
                adoptions: 0,
                in_flight: InFlight::new(&self.budgets.in_flight),
            }),
            orphan: adoptable.then(|| self.budgets.orphan()),
        }
    }
}

impl Budgets {
    /// `arbiter` is the database's say between replicas (PostgreSQL), None for one process.
    /// Starts the arbiter of the actors that adopt orphaned settlements, so it is called inside
    /// the actix system.
    pub fn new(
        pool: Pool,
        writer: UsageWriter,
        notifier: Notifier,
        defaults: Defaults,
        arbiter: Option<ReplicaArbiter>,
    ) -> Budgets {
        let local_free = arbiter.is_none().then(LocalFreeSpend::shared);
        Budgets(Arc::new(Inner {
            map: Map::default(),
            pool,
            writer,
            notifier,
            defaults,
            arbiter,
            local_free,
            home: Arbiter::new().handle(),
            in_flight: Arc::default(),
        }))
    }

    pub fn writer(&self) -> &UsageWriter {
        &self.writer
    }

    /// The account's actor, started on the calling worker when none runs.
    pub fn actor(&self, account_id: &str) -> Addr<BudgetActor> {
        self.actor_on(account_id, &Arbiter::current())
    }

    fn actor_on(&self, account_id: &str, arbiter: &ArbiterHandle) -> Addr<BudgetActor> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(addr) = map.get(account_id).filter(|a| a.connected()) {
            return addr.clone();
        }
        let registry = self.map.clone();
        let on_idle = Box::new(move |key: &str, me: &Addr<BudgetActor>| {
            let mut map = registry.lock().unwrap_or_else(|e| e.into_inner());
            if map.get(key).is_some_and(|a| a == me) {
                map.remove(key);
            }
        });
        let actor = BudgetActor::new(
            account_id,
            self.defaults,
            self.pool.clone(),
            self.writer.clone(),
            self.notifier.clone(),
            self.local_free.clone(),
            on_idle,
        );
        let addr = BudgetActor::start_in_arbiter(arbiter, move |_| actor);
        map.insert(account_id.to_owned(), addr.clone());
        addr
    }

    /// At shutdown, once no request is left: waits until every settlement is committed,
    /// including those adopted from the actors of workers that stopped. False when the writer
    /// could not commit the last of them.
    pub async fn drain(&self) -> bool {
        while self.in_flight.load(Ordering::Acquire) > 0 {
            actix_web::rt::time::sleep(DRAIN_POLL).await;
        }
        self.writer.flush().await
    }

    fn orphan(&self) -> Orphan {
        let budgets = self.clone();
        Box::new(move |body| budgets.adopt(body))
    }

    /// A settlement whose actor was gone before handling it: the account's running actor
    /// settles it, or one started on the registry's own arbiter. It is never lost quietly:
    /// past [`MAX_ADOPTIONS`] (the process is past its last flush) it is logged.
    pub fn adopt(&self, mut body: SettleBody) {
        if body.adoptions >= MAX_ADOPTIONS {
            log::error!(
                "request {}: no actor took its settlement ({} µ$ not recorded)",
                body.row.id,
                body.row.cost_micros
            );
            return;
        }
        body.adoptions += 1;
        let actor = self.actor_on(&body.row.account_id, &self.home);
        actor.do_send(Settle {
            body: Some(body),
            orphan: Some(self.orphan()),
        });
    }

    fn forget(&self, account_id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(account_id);
    }

    /// The running actor of an account, if any (announcements for others need no action: an
    /// actor reads everything when it starts).
    fn running(&self, account_id: &str) -> Option<Addr<BudgetActor>> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(account_id)
            .cloned()
    }

    /// Reserves `estimate_micros` for one request of `key`, or the error to answer with.
    ///
    /// A request the account's actor would serve free must also fit in the deployment's free
    /// spend of the day, which is shared by every key and replica and so lives in the
    /// database (one conditional update, see [`free_spend`]). When it does not fit, the
    /// reservation is made again from the balance, which answers 402 when it is short. With
    /// several replicas (PostgreSQL) the database then arbitrates (see [`ReplicaArbiter`]): a free
    /// request it cannot grant is likewise tried again from the balance.
    pub async fn reserve(&self, key: &ApiKey, estimate_micros: i64) -> Result<Ticket, ApiError> {
        let mut allow_free = true;
        // Why the request is not free when it ends up paid: said in a 402.
        let mut not_free = NotFree::UsedUp;
        loop {
            let mut ticket = self.reserve_at(key, estimate_micros, allow_free).await?;
            let r = &ticket.reservation;
            if r.free && !self.take_free_spend(&ticket).await? {
                Self::unhold(&ticket, true);
                (allow_free, not_free) = (false, NotFree::DailyBudgetSpent);
                continue;
            }
            let Some(arbiter) = &self.arbiter else {
                return Ok(ticket);
            };
            let verdict = arbiter.hold(key, &ticket, self.defaults).await;
            let verdict = match verdict {
                Ok((id, Verdict::Held)) => {
                    ticket.hold = Some(id);
                    return Ok(ticket);
                }
                Ok((_, v)) => v,
                Err(e) => {
                    self.give_back(&ticket).await;
                    return Err(e.into());
                }
            };
            self.refund_free_spend(&ticket).await;
            // Refused by the deployment: this replica does not count it toward the RPM either.
            Self::unhold(&ticket, true);
            if verdict == Verdict::NoFree && allow_free {
                (allow_free, not_free) = (false, NotFree::UsedUp);
                continue;
            }
            if estimate_micros > self.defaults.free_max_request_micros {
                not_free = NotFree::OverRequestCap {
                    cap_micros: self.defaults.free_max_request_micros,
                };
            }
            let rpm = key.rpm_limit.map_or(self.defaults.rpm, |l| l.max(0) as u32);
            return Err(denial_error(arbiter::denial(
                verdict, &ticket, rpm, not_free,
            )));
        }
    }

    /// A free reservation's estimate joins the day's free spend; false when it would pass the
    /// cap (the reservation is then given back by the caller).
    async fn take_free_spend(&self, ticket: &Ticket) -> Result<bool, ApiError> {
        let r = &ticket.reservation;
        let (day, estimate, cap) = (
            r.day,
            r.estimate_micros,
            self.defaults.free_daily_budget_micros,
        );
        let taken = match &self.local_free {
            Some(local) => local.take(&self.pool, day, estimate, cap).await,
            None => db::run(&self.pool, move |conn| {
                free_spend::take(conn, day, estimate, cap)
            })
            .await
            .map_err(ApiError::from),
        };
        taken.inspect_err(|_| Self::unhold(ticket, false))
    }

    /// A free reservation that served nothing gives its estimate back to the day's free spend.
    async fn refund_free_spend(&self, ticket: &Ticket) {
        let r = &ticket.reservation;
        if !r.free {
            return;
        }
        let (day, refund) = (r.day, -r.estimate_micros);
        if let Some(local) = &self.local_free {
            local.adjust(day, refund);
            return;
        }
        let done = db::run(&self.pool, move |conn| {
            free_spend::adjust(conn, day, refund).map_err(Into::into)
        })
        .await;
        if let Err(e) = done {
            // The day's free spend stays higher than what was served: the safe side.
            log::warn!("free spend refund of {} µ$ not recorded: {e}", -refund);
        }
    }

    /// Gives a reservation back everywhere it was taken.
    async fn give_back(&self, ticket: &Ticket) {
        Self::unhold(ticket, false);
        self.refund_free_spend(ticket).await;
        if let (Some(arbiter), Some(id)) = (&self.arbiter, &ticket.hold) {
            arbiter.release(id).await;
        }
    }

    async fn reserve_at(
        &self,
        key: &ApiKey,
        estimate_micros: i64,
        allow_free: bool,
    ) -> Result<Ticket, ApiError> {
        let key_id: std::sync::Arc<str> = key.id.as_str().into();
        // An actor may stop (idle) between lookup and send, or not know a key minted after it
        // loaded: each is mended once and the reservation asked for again.
        for _ in 0..3 {
            let actor = self.actor(&key.account_id);
            let msg = Reserve {
                key_id: key_id.clone(),
                estimate_micros,
                allow_free,
            };
            match actor.send(msg).await {
                Ok(Ok(reservation)) => {
                    return Ok(Ticket {
                        actor,
                        reservation,
                        hold: None,
                        budgets: self.clone(),
                    })
                }
                Ok(Err(Denied::UnknownKey)) => self.add_key(&actor, key).await?,
                Ok(Err(denied)) => return Err(denial_error(denied)),
                Err(_) => self.forget(&key.account_id),
            }
        }
        Err(ApiError::Unavailable(
            "The key's budget could not be loaded.".into(),
        ))
    }

    /// Nothing was served: the reservation goes back, and a free one's estimate goes back
    /// to the day's free spend (awaited, so an error answer leaves the count settled).
    pub async fn release(&self, ticket: &Ticket) {
        self.give_back(ticket).await;
    }

    /// Gives the reservation back to the key's actor, leaving the free spend as it is;
    /// `uncount` when the request is reserved again right away.
    fn unhold(ticket: &Ticket, uncount: bool) {
        ticket.actor.do_send(Release {
            reservation: ticket.reservation.id,
            uncount,
        });
    }

    /// Tells the account's actor about a key it did not load, with the key's spend so far.
    async fn add_key(&self, actor: &Addr<BudgetActor>, key: &ApiKey) -> Result<(), ApiError> {
        let (row, defaults) = (key.clone(), self.defaults);
        let money = db::run(&self.pool, move |conn| KeyMoney::load(conn, &row, defaults)).await?;
        actor
            .send(AddKey(money))
            .await
            .map_err(|_| ApiError::Unavailable("The key's budget could not be loaded.".into()))
    }

    /// The key's account as its actor sees it (reservations not subtracted), with `key` in it.
    pub async fn account(&self, key: &ApiKey) -> Result<Account, ApiError> {
        for _ in 0..3 {
            let actor = self.actor(&key.account_id);
            match actor.send(GetAccount).await {
                Ok(Some(a)) if a.key(&key.id).is_some() => return Ok(a),
                Ok(Some(_)) => self.add_key(&actor, key).await?,
                Ok(None) => break,
                Err(_) => self.forget(&key.account_id),
            }
        }
        Err(ApiError::Unavailable(
            "The key's account could not be loaded.".into(),
        ))
    }

    /// The account of `key` with every key in `keys` (all of one account) known to its actor.
    pub async fn account_with(&self, key: &ApiKey, keys: &[ApiKey]) -> Result<Account, ApiError> {
        let mut account = self.account(key).await?;
        let actor = self.actor(&key.account_id);
        let mut added = false;
        for k in keys.iter().filter(|k| account.key(&k.id).is_none()) {
            self.add_key(&actor, k).await?;
            added = true;
        }
        if added {
            account = self.account(key).await?;
        }
        Ok(account)
    }

    /// Tells a running actor about committed money; a stopped one reloads it when it starts.
    pub fn credit(&self, account_id: &str, micros: i64) {
        if let Some(a) = self.running(account_id) {
            a.do_send(Credit { micros });
        }
    }

    /// Commits a credit (`work`, which must be idempotent) in the turn of the account's actor,
    /// which adds it to the balance it serves before it answers anything else: a balance read
    /// after the commit can be seen includes it. With no actor to take it, `work` runs alone
    /// (an actor started later loads the committed balance).
    pub async fn commit_credit(
        &self,
        account_id: &str,
        work: CreditWork,
    ) -> Result<Option<i64>, db::DbError> {
        for _ in 0..3 {
            let actor = self.actor(account_id);
            match actor.send(CommitCredit(work.clone())).await {
                Ok(done) => return done,
                // Stopped (idle, or its worker stopping): a retry commits nothing twice.
                Err(_) => self.forget(account_id),
            }
        }
        db::run(&self.pool, move |conn| work(conn)).await
    }

    /// Another replica settled requests of this account: keep this replica's view in step.
    pub fn spent_elsewhere(&self, account_id: &str, spent: SpentElsewhere) {
        if let Some(a) = self.running(account_id) {
            a.do_send(spent);
        }
    }

    /// A key's settings changed, or a key was minted into its account.
    pub fn refresh(&self, key: &ApiKey) {
        if let Some(a) = self.running(&key.account_id) {
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
                NotFree::UsedUp => "The free tier of this account is used up".to_owned(),
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
                    "{why}, and the balance of this account (${}) does not cover this request (up to ${}). \
                     Fund it with POST /api/wallet/fund {{\"amount\": <sats>}} and pay the Lightning invoice.",
                    Micros(balance_micros),
                    Micros(needed_micros)
                ),
                invoice: None,
            }
        }
        Denied::Unavailable | Denied::UnknownKey => {
            ApiError::Unavailable("The key's budget could not be loaded.".into())
        }
    }
}
