//! One `BudgetActor` per account serialises the money of all its keys: [`Reserve`] the worst
//! case before the upstream call (checking the key's budgets and RPM and the account's balance
//! or free requests together), [`Settle`] the actual cost afterwards (the difference is
//! refunded), or [`Release`] when nothing was served. Free-tier requests use one of the
//! account's free requests instead of money.
//! The actor loads its state from the database when it starts and hands every settlement to
//! the group-commit writer, so the database stays the source of truth.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::NaiveDateTime;

use super::free_spend::LocalFreeSpend;
use crate::db::models::{account, api_key, usage};
use crate::db::usage_writer::{HoldSettled, Pending, Settlement, UsageWriter};
use crate::db::{self, events, DbConn, DbError, Pool};
use crate::money::Window;
use crate::notify::{BudgetEvent, Notifier};
use crate::time;

/// The RPM window.
const MINUTE: Duration = Duration::from_secs(60);
/// An actor with no reservation and no traffic for this long stops.
pub const IDLE_STOP: Duration = Duration::from_secs(300);
const IDLE_CHECK: Duration = Duration::from_secs(30);
/// Budget shares that trigger a notification, in percent.
const THRESHOLDS: [i32; 2] = [80, 100];

/// Defaults for keys that set none of their own.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub daily_budget_micros: i64,
    pub monthly_budget_micros: i64,
    pub rpm: u32,
    /// `free_tier.max_request_usd`: a reservation above it is never free.
    pub free_max_request_micros: i64,
    /// `free_tier.daily_budget_usd`, the deployment's free spend per UTC day (held in the
    /// database by [`super::budgets::Budgets`], not here: it is shared by every key).
    pub free_daily_budget_micros: i64,
}

/// One key's limits and spend, inside its account's actor.
#[derive(Debug, Clone)]
pub struct KeyMoney {
    pub key_id: String,
    pub daily_budget_micros: i64,
    pub monthly_budget_micros: i64,
    pub rpm: u32,
    pub spent_day_micros: i64,
    pub spent_month_micros: i64,
    pub notify_email: Option<String>,
    pub webhook_url: Option<String>,
    /// Estimates held by this key's open reservations (they count against its budgets).
    reserved_budget: i64,
    /// When this key's requests of the last minute were counted (its RPM window).
    recent: VecDeque<Instant>,
}

impl KeyMoney {
    /// A key's limits (its own, or the defaults) with the spend already on record.
    pub fn new(key: &api_key::ApiKey, d: Defaults, spent_day: i64, spent_month: i64) -> KeyMoney {
        let mut k = KeyMoney {
            key_id: key.id.clone(),
            daily_budget_micros: 0,
            monthly_budget_micros: 0,
            rpm: 0,
            spent_day_micros: spent_day,
            spent_month_micros: spent_month,
            notify_email: None,
            webhook_url: None,
            reserved_budget: 0,
            recent: VecDeque::new(),
        };
        k.apply_settings(key, d);
        k
    }

    /// Reads a key's spend in the current day and month (a key its account's actor did not
    /// load: minted since, possibly on another replica).
    pub fn load(
        conn: &mut DbConn,
        key: &api_key::ApiKey,
        d: Defaults,
    ) -> Result<KeyMoney, DbError> {
        let now = time::now();
        let day = usage::spend_since(conn, &key.id, Window::Day.start(now))?;
        let month = usage::spend_since(conn, &key.id, Window::Month.start(now))?;
        Ok(KeyMoney::new(key, d, day, month))
    }

    fn apply_settings(&mut self, key: &api_key::ApiKey, d: Defaults) {
        self.daily_budget_micros = key.daily_budget_micros.unwrap_or(d.daily_budget_micros);
        self.monthly_budget_micros = key.monthly_budget_micros.unwrap_or(d.monthly_budget_micros);
        self.rpm = key.rpm_limit.map_or(d.rpm, |r| r.max(0) as u32);
        self.notify_email = key.notify_email.clone();
        self.webhook_url = key.webhook_url.clone();
    }

    /// What is left of the tighter budget, open reservations subtracted.
    fn budget_left(&self) -> i64 {
        let day = self.daily_budget_micros - self.spent_day_micros - self.reserved_budget;
        let month = self.monthly_budget_micros - self.spent_month_micros - self.reserved_budget;
        day.min(month)
    }

    fn rate(&mut self, count: bool) -> Result<RateInfo, Denied> {
        let (limit, now) = (self.rpm, Instant::now());
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= MINUTE)
        {
            self.recent.pop_front();
        }
        let reset = self
            .recent
            .front()
            .map_or(MINUTE, |t| MINUTE.saturating_sub(now.duration_since(*t)));
        if self.recent.len() >= limit as usize {
            return Err(Denied::RateLimited {
                limit,
                retry_after: reset,
            });
        }
        if count {
            self.recent.push_back(now);
        }
        Ok(RateInfo {
            limit,
            remaining: limit.saturating_sub(self.recent.len() as u32),
            reset,
        })
    }
}

/// An account's money as its actor keeps it: the balance and free requests shared by its
/// keys, and each key's own budgets, spend and RPM window.
#[derive(Debug, Clone)]
pub struct Account {
    pub account_id: String,
    pub balance_micros: i64,
    pub free_remaining: i64,
    pub day_start: NaiveDateTime,
    pub month_start: NaiveDateTime,
    pub keys: HashMap<String, KeyMoney, foldhash::fast::RandomState>,
    /// The limits of a key that sets none of its own.
    pub defaults: Defaults,
    /// The PostgreSQL snapshot the account was read under (None on SQLite).
    pub loaded_under: Option<events::Snapshot>,
}

impl Account {
    /// Reads the account, its keys and their spend in the current day and month in one
    /// repeatable-read transaction, so every figure comes from one snapshot, which is kept to
    /// tell which announced settlements it already includes.
    pub fn load(
        conn: &mut DbConn,
        account_id: &str,
        defaults: Defaults,
    ) -> Result<Account, DbError> {
        let (mut account, seen) =
            events::consistent_read(conn, |conn| Self::read(conn, account_id, defaults))?;
        account.loaded_under = seen;
        Ok(account)
    }

    fn read(conn: &mut DbConn, account_id: &str, defaults: Defaults) -> Result<Account, DbError> {
        let row = account::find(conn, account_id)?
            .ok_or(DbError::Query(diesel::result::Error::NotFound))?;
        let now = time::now();
        let (day_start, month_start) = (Window::Day.start(now), Window::Month.start(now));
        let month: HashMap<String, i64> = usage::spend_by_key_since(conn, account_id, month_start)?
            .into_iter()
            .collect();
        let day: HashMap<String, i64> = usage::spend_by_key_since(conn, account_id, day_start)?
            .into_iter()
            .collect();
        let keys = api_key::in_account(conn, account_id)?
            .iter()
            .map(|k| {
                let (d, m) = (day.get(&k.id).copied(), month.get(&k.id).copied());
                let money = KeyMoney::new(k, defaults, d.unwrap_or(0), m.unwrap_or(0));
                (k.id.clone(), money)
            })
            .collect();
        Ok(Account {
            account_id: row.id,
            balance_micros: row.balance_micros,
            free_remaining: row.free_requests_remaining,
            day_start,
            month_start,
            keys,
            defaults,
            loaded_under: None,
        })
    }

    /// One key's figures, if the account has that key.
    pub fn key(&self, key_id: &str) -> Option<&KeyMoney> {
        self.keys.get(key_id)
    }
}

/// Why a reservation was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Denied {
    RateLimited {
        limit: u32,
        retry_after: Duration,
    },
    /// `window` is "daily" or "monthly".
    Budget {
        window: &'static str,
        retry_after: Duration,
    },
    Payment {
        balance_micros: i64,
        needed_micros: i64,
        reason: NotFree,
    },
    /// The key's account could not be loaded (database down).
    Unavailable,
    /// The account's actor does not know this key yet (minted after it loaded): load the
    /// key's spend and send [`AddKey`], then ask again.
    UnknownKey,
}

/// Why a request that the balance does not cover could not be served free either.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NotFree {
    /// The key's free requests are used up.
    UsedUp,
    /// The reserved worst case is above `free_tier.max_request_usd`.
    OverRequestCap { cap_micros: i64 },
    /// The deployment's free spend of the day (`free_tier.daily_budget_usd`) is reached.
    DailyBudgetSpent,
}

/// The RPM state after a request was counted, for the `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateInfo {
    pub limit: u32,
    pub remaining: u32,
    pub reset: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    pub id: u64,
    pub free: bool,
    pub estimate_micros: i64,
    /// The UTC day the reservation was made on: a free one counts on that day's free spend.
    pub day: NaiveDateTime,
    /// Free requests left once this one is used.
    pub free_remaining: i64,
    /// What is left of the tighter budget once the estimate is spent.
    pub budget_remaining_micros: i64,
    pub rate: RateInfo,
}

#[derive(Message)]
#[rtype(result = "Result<Reservation, Denied>")]
pub struct Reserve {
    pub key_id: Arc<str>,
    pub estimate_micros: i64,
    /// False when the deployment's free spend of the day is reached: serve from the balance.
    pub allow_free: bool,
}

/// The request was served: record its row (whose `cost_micros` is the actual cost).
///
/// A settlement outlives the actor it is sent to. Actors run on the HTTP workers, and a worker
/// that stops at shutdown drops its actors with whatever is in their mailboxes (a stream on
/// another worker may still be settling with one of them). A `Settle` dropped before an actor
/// handled it goes to its `orphan` handler (`Budgets::adopt`), which gives it to an actor
/// that outlives the workers. One sent without (a JSON answer not given yet) is withdrawn
/// instead: its sender learns it (no answer) and answers 503.
#[derive(Message)]
#[rtype(result = "Option<Settled>")]
pub struct Settle {
    /// None once handled or handed on.
    pub body: Option<SettleBody>,
    pub orphan: Option<Orphan>,
}

/// Takes a settlement no actor handled.
pub type Orphan = Box<dyn FnOnce(SettleBody) + Send>;

pub struct SettleBody {
    /// The reservation as the reserving actor made it.
    pub reservation: u64,
    pub free: bool,
    pub estimate_micros: i64,
    pub day: NaiveDateTime,
    pub row: usage::UsageRow,
    /// The reservation's database hold, if it has one (see `db::models::hold`).
    pub hold: Option<String>,
    /// Times an actor other than the reserving one was asked to settle it (its books do not
    /// hold the reservation; the fields above stand for it).
    pub adoptions: u8,
    /// Counts the settlement as on its way until the writer has it (`Budgets::drain`).
    pub in_flight: InFlight,
}

/// One settlement not yet handed to the writer; the count goes down when this is dropped.
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub fn new(count: &Arc<AtomicUsize>) -> InFlight {
        count.fetch_add(1, Ordering::AcqRel);
        InFlight(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Settle {
    /// Unhandled (its actor's mailbox was closed or dropped): handed to the orphan handler.
    fn drop(&mut self) {
        if let (Some(body), Some(orphan)) = (self.body.take(), self.orphan.take()) {
            orphan(body);
        }
    }
}

pub struct Settled {
    /// The settlement on its way to the database.
    pub committed: Pending,
    pub budget_remaining_micros: i64,
    /// What to send back if the request withdraws it.
    pub undo: Unsettle,
}

/// A settlement its request withdrew (the database was away and the client got a 503): the
/// money it took in this actor's view comes back, as if the request had never been served.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Unsettle {
    pub key_id: String,
    pub cost_micros: i64,
    pub debit_micros: i64,
    /// For a free request, the day whose free spend it counted in.
    pub free_day: Option<NaiveDateTime>,
}

/// Nothing was served: give the reservation back.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Release {
    pub reservation: u64,
    /// The same request is about to be reserved again (from the balance, the day's free
    /// spend being reached): take it off the RPM count so it is not counted twice.
    pub uncount: bool,
}

/// Money arrived (already committed to the ledger by whoever sends this).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Credit {
    pub micros: i64,
}

/// A credit to commit and apply in the actor's turn: `work` commits it (idempotently: `None`
/// when it was already committed), and the actor handles nothing else until it has, so a
/// balance asked for after the commit is visible (an invoice read as paid) includes it.
#[derive(Message)]
#[rtype(result = "Result<Option<i64>, DbError>")]
pub struct CommitCredit(pub CreditWork);

pub type CreditWork = db::Retryable<Option<i64>>;

/// Another replica settled requests of one of this account's keys (already committed there).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SpentElsewhere {
    pub key_id: String,
    pub cost_micros: i64,
    pub debit_micros: i64,
    pub free: i64,
    /// The settling transaction, to skip a settlement the account was loaded with.
    pub xid: Option<u64>,
}

/// A key's settings changed, or the key is new (minted into this account).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Refresh(pub api_key::ApiKey);

/// A key the actor did not know, with its spend read from the database; kept only if the
/// actor still does not know it (a concurrent load may have won).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AddKey(pub KeyMoney);

#[derive(Message)]
#[rtype(result = "Option<Account>")]
pub struct GetAccount;

/// Called when the actor stops idle, so the registry forgets it.
pub type OnIdle = Box<dyn Fn(&str, &Addr<BudgetActor>) + Send>;

struct Held {
    key_id: Arc<str>,
    free: bool,
    estimate: i64,
    day: NaiveDateTime,
}

/// One per account: serialises the money of all its keys, so two keys of one account can
/// never spend the same balance or free request.
pub struct BudgetActor {
    account_id: String,
    defaults: Defaults,
    pool: Pool,
    writer: UsageWriter,
    notifier: Notifier,
    /// The day's free spend, when this process keeps it (see `free_spend`).
    local_free: Option<Arc<LocalFreeSpend>>,
    on_idle: OnIdle,
    account: Option<Account>,
    held: HashMap<u64, Held, foldhash::fast::RandomState>,
    next_id: u64,
    reserved_paid: i64,
    reserved_free: i64,
    last_used: Instant,
}

impl BudgetActor {
    pub fn new(
        account_id: &str,
        defaults: Defaults,
        pool: Pool,
        writer: UsageWriter,
        notifier: Notifier,
        local_free: Option<Arc<LocalFreeSpend>>,
        on_idle: OnIdle,
    ) -> Self {
        BudgetActor {
            account_id: account_id.to_owned(),
            defaults,
            pool,
            writer,
            notifier,
            local_free,
            on_idle,
            account: None,
            held: HashMap::default(),
            next_id: 0,
            reserved_paid: 0,
            reserved_free: 0,
            last_used: Instant::now(),
        }
    }

    /// Starts new day and month windows when the calendar moved on.
    fn roll_windows(account: &mut Account) {
        let now = time::now();
        // Still the day the books are on: neither window moved (both starts are set together,
        // and a month starts at a day's midnight), and neither needs computing.
        if now.date() == account.day_start.date() {
            return;
        }
        let day = Window::Day.start(now);
        if day != account.day_start {
            account.day_start = day;
            for k in account.keys.values_mut() {
                k.spent_day_micros = 0;
            }
        }
        let month = Window::Month.start(now);
        if month != account.month_start {
            account.month_start = month;
            for k in account.keys.values_mut() {
                k.spent_month_micros = 0;
            }
        }
    }

    fn notify_crossings(
        &self,
        (day_start, month_start): (NaiveDateTime, NaiveDateTime),
        k: &KeyMoney,
        before_day: i64,
        before_month: i64,
    ) {
        let windows = [
            (
                "daily",
                day_start,
                k.daily_budget_micros,
                before_day,
                k.spent_day_micros,
            ),
            (
                "monthly",
                month_start,
                k.monthly_budget_micros,
                before_month,
                k.spent_month_micros,
            ),
        ];
        for (window, start, budget, before, after) in windows {
            if budget <= 0 {
                continue;
            }
            for t in THRESHOLDS {
                let line = budget * i64::from(t) / 100;
                if before < line && after >= line {
                    self.notifier.send(BudgetEvent {
                        key_id: k.key_id.clone(),
                        window,
                        window_start: start,
                        threshold: t,
                        spent_micros: after,
                        budget_micros: budget,
                        email: k.notify_email.clone(),
                        webhook: k.webhook_url.clone(),
                    });
                }
            }
        }
    }
}

impl Actor for BudgetActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (pool, id, defaults) = (self.pool.clone(), self.account_id.clone(), self.defaults);
        let writer = self.writer.clone();
        // `wait` holds every message until the account is loaded. Journalled settlements of
        // an earlier actor of this account are folded first, so the load counts them.
        ctx.wait(
            async move {
                writer.settled().await;
                db::run(&pool, move |conn| Account::load(conn, &id, defaults)).await
            }
            .into_actor(self)
            .map(|loaded, act, ctx| match loaded {
                Ok(account) => act.account = Some(account),
                Err(e) => {
                    log::error!(
                        "budget actor for {}: cannot load account: {e}",
                        act.account_id
                    );
                    ctx.stop();
                }
            }),
        );
        ctx.run_interval(IDLE_CHECK, |act, ctx| {
            if act.held.is_empty() && act.last_used.elapsed() >= IDLE_STOP {
                (act.on_idle)(&act.account_id, &ctx.address());
                ctx.stop();
            }
        });
    }
}

impl Handler<Reserve> for BudgetActor {
    type Result = Result<Reservation, Denied>;

    fn handle(&mut self, msg: Reserve, _: &mut Context<Self>) -> Self::Result {
        self.last_used = Instant::now();
        let Some(mut a) = self.account.take() else {
            return Err(Denied::Unavailable);
        };
        Self::roll_windows(&mut a);
        let result = self.reserve(&mut a, msg);
        self.account = Some(a);
        result
    }
}

impl BudgetActor {
    /// The key's budgets and RPM and the account's money, checked and taken together.
    fn reserve(&mut self, a: &mut Account, msg: Reserve) -> Result<Reservation, Denied> {
        let estimate = msg.estimate_micros;
        let Some(k) = a.keys.get_mut(&*msg.key_id) else {
            return Err(Denied::UnknownKey);
        };
        k.rate(false)?;
        if k.spent_day_micros + k.reserved_budget + estimate > k.daily_budget_micros {
            return Err(Denied::Budget {
                window: "daily",
                retry_after: time::until(Window::Day.end(a.day_start)),
            });
        }
        if k.spent_month_micros + k.reserved_budget + estimate > k.monthly_budget_micros {
            return Err(Denied::Budget {
                window: "monthly",
                retry_after: time::until(Window::Month.end(a.month_start)),
            });
        }
        // A free request is bounded: one whose worst case is above the cap is paid from the
        // balance like any other (or refused), never served free without a limit.
        let has_free = a.free_remaining - self.reserved_free > 0;
        let cap = self.defaults.free_max_request_micros;
        let free = has_free && msg.allow_free && estimate <= cap;
        if !free && a.balance_micros - self.reserved_paid < estimate {
            let reason = if !has_free {
                NotFree::UsedUp
            } else if estimate > cap {
                NotFree::OverRequestCap { cap_micros: cap }
            } else {
                NotFree::DailyBudgetSpent
            };
            return Err(Denied::Payment {
                balance_micros: a.balance_micros - self.reserved_paid,
                needed_micros: estimate,
                reason,
            });
        }
        let rate = k.rate(true)?;
        if free {
            self.reserved_free += 1;
        } else {
            self.reserved_paid += estimate;
        }
        k.reserved_budget += estimate;
        self.next_id += 1;
        let day = a.day_start;
        let budget_remaining_micros = k.budget_left();
        self.held.insert(
            self.next_id,
            Held {
                key_id: msg.key_id,
                free,
                estimate,
                day,
            },
        );
        Ok(Reservation {
            id: self.next_id,
            free,
            estimate_micros: estimate,
            day,
            free_remaining: a.free_remaining - self.reserved_free,
            budget_remaining_micros,
            rate,
        })
    }

    /// Takes a reservation off the books (its key's budget hold and the account's money).
    fn unhold(&mut self, id: u64) -> Option<Held> {
        let held = self.held.remove(&id)?;
        if held.free {
            self.reserved_free -= 1;
        } else {
            self.reserved_paid -= held.estimate;
        }
        if let Some(k) = self
            .account
            .as_mut()
            .and_then(|a| a.keys.get_mut(&*held.key_id))
        {
            k.reserved_budget -= held.estimate;
        }
        Some(held)
    }
}

impl Handler<Settle> for BudgetActor {
    type Result = Option<Settled>;

    fn handle(&mut self, mut msg: Settle, _: &mut Context<Self>) -> Self::Result {
        self.last_used = Instant::now();
        let body = msg.body.take()?;
        let held = if body.adoptions == 0 {
            self.unhold(body.reservation)
        } else {
            // Reserved by an actor that is gone: these books never held it.
            Some(Held {
                key_id: body.row.key_id.as_str().into(),
                free: body.free,
                estimate: body.estimate_micros,
                day: body.day,
            })
        };
        let cost = body.row.cost_micros;
        let mut settlement = Settlement {
            row: body.row,
            debit_micros: 0,
            free: false,
            free_spend: None,
            hold: None,
        };
        if let Some(id) = body.hold {
            let day = held
                .as_ref()
                .map(|h| h.day)
                .or(self.account.as_ref().map(|a| a.day_start));
            let day = day.unwrap_or_else(|| Window::Day.start(time::now()));
            settlement.hold = Some(HoldSettled {
                id,
                day_start: day,
                month_start: Window::Month.start(day),
            });
        }
        let mut budget_remaining = 0;
        if let Some(mut a) = self.account.take() {
            Self::roll_windows(&mut a);
            match &held {
                Some(Held {
                    free: true,
                    estimate,
                    day,
                    ..
                }) => {
                    settlement.free = true;
                    // The day's free spend took the estimate; the actual cost replaces it. Kept
                    // in memory, the estimate never reached the database, which gets the cost.
                    let to_database = match &self.local_free {
                        Some(local) => {
                            local.adjust(*day, cost - estimate);
                            cost
                        }
                        None => cost - estimate,
                    };
                    settlement.free_spend = Some((*day, to_database));
                    a.free_remaining -= 1;
                }
                _ => {
                    // Never below zero: a request that cost more than the balance had left is
                    // charged what was left, and the shortfall is logged. A request the database
                    // held (several replicas) had its estimate set aside there, which this
                    // actor's view cannot judge (its reservations include requests the database
                    // has not decided yet, its balance already counts other replicas' debits):
                    // it is charged up to that estimate.
                    let available = match (&settlement.hold, &held) {
                        (Some(_), Some(h)) => h.estimate,
                        _ => (a.balance_micros - self.reserved_paid).max(0),
                    };
                    if cost > available {
                        log::warn!(
                            "account {}: cost {cost} µ$ above available {available} µ$",
                            a.account_id
                        );
                    }
                    settlement.debit_micros = cost.min(available);
                    a.balance_micros -= settlement.debit_micros;
                }
            }
            let windows = (a.day_start, a.month_start);
            if let Some(k) = a.keys.get_mut(settlement.row.key_id.as_str()) {
                let (before_day, before_month) = (k.spent_day_micros, k.spent_month_micros);
                k.spent_day_micros += cost;
                k.spent_month_micros += cost;
                budget_remaining = k.budget_left();
                // Borrowed, not cloned: a key's RPM window holds a minute of request times.
                self.notify_crossings(windows, k, before_day, before_month);
            }
            self.account = Some(a);
        }
        let undo = Unsettle {
            key_id: settlement.row.key_id.clone(),
            cost_micros: cost,
            debit_micros: settlement.debit_micros,
            free_day: settlement.free_spend.map(|(day, _)| day),
        };
        let committed = self.writer.write(settlement);
        drop(body.in_flight);
        Some(Settled {
            committed,
            budget_remaining_micros: budget_remaining,
            undo,
        })
    }
}

impl Handler<Unsettle> for BudgetActor {
    type Result = ();

    fn handle(&mut self, msg: Unsettle, _: &mut Context<Self>) {
        let Some(a) = self.account.as_mut() else {
            return;
        };
        a.balance_micros += msg.debit_micros;
        if let Some(day) = msg.free_day {
            a.free_remaining += 1;
            // The count in memory holds the cost since the settlement; the database never got it.
            if let Some(local) = &self.local_free {
                local.adjust(day, -msg.cost_micros);
            }
        }
        if let Some(k) = a.keys.get_mut(msg.key_id.as_str()) {
            // A window that rolled over since starts from zero: never below it.
            k.spent_day_micros = (k.spent_day_micros - msg.cost_micros).max(0);
            k.spent_month_micros = (k.spent_month_micros - msg.cost_micros).max(0);
        }
    }
}

impl Handler<Release> for BudgetActor {
    type Result = ();

    fn handle(&mut self, msg: Release, _: &mut Context<Self>) {
        let Some(held) = self.unhold(msg.reservation) else {
            return;
        };
        if msg.uncount {
            if let Some(k) = self
                .account
                .as_mut()
                .and_then(|a| a.keys.get_mut(&*held.key_id))
            {
                // The newest entry may be another request's: the count is what the limit reads.
                k.recent.pop_back();
            }
        }
    }
}

impl Handler<Credit> for BudgetActor {
    type Result = ();

    fn handle(&mut self, msg: Credit, _: &mut Context<Self>) {
        if let Some(a) = self.account.as_mut() {
            a.balance_micros += msg.micros;
        }
    }
}

impl Handler<CommitCredit> for BudgetActor {
    type Result = AtomicResponse<Self, Result<Option<i64>, DbError>>;

    fn handle(&mut self, msg: CommitCredit, _: &mut Context<Self>) -> Self::Result {
        let pool = self.pool.clone();
        AtomicResponse::new(Box::pin(
            async move { db::run(&pool, move |conn| (msg.0)(conn)).await }
                .into_actor(self)
                .map(|done, act, _| {
                    if let (Ok(Some(micros)), Some(a)) = (&done, act.account.as_mut()) {
                        a.balance_micros += micros;
                    }
                    done
                }),
        ))
    }
}

impl Handler<SpentElsewhere> for BudgetActor {
    type Result = ();

    fn handle(&mut self, msg: SpentElsewhere, _: &mut Context<Self>) {
        if let Some(a) = self.account.as_mut() {
            // Loaded after that settlement committed: already counted.
            if let (Some(seen), Some(xid)) = (&a.loaded_under, msg.xid) {
                if seen.sees(xid) {
                    return;
                }
            }
            Self::roll_windows(a);
            a.balance_micros -= msg.debit_micros;
            a.free_remaining -= msg.free;
            if let Some(k) = a.keys.get_mut(&msg.key_id) {
                k.spent_day_micros += msg.cost_micros;
                k.spent_month_micros += msg.cost_micros;
            }
        }
    }
}

impl Handler<Refresh> for BudgetActor {
    type Result = ();

    fn handle(&mut self, msg: Refresh, _: &mut Context<Self>) {
        let defaults = self.defaults;
        if let Some(a) = self.account.as_mut() {
            match a.keys.get_mut(&msg.0.id) {
                Some(k) => k.apply_settings(&msg.0, defaults),
                // A key minted after the account was loaded has spent nothing yet.
                None => {
                    let k = KeyMoney::new(&msg.0, defaults, 0, 0);
                    a.keys.insert(msg.0.id.clone(), k);
                }
            }
        }
    }
}

impl Handler<AddKey> for BudgetActor {
    type Result = ();

    fn handle(&mut self, msg: AddKey, _: &mut Context<Self>) {
        if let Some(a) = self.account.as_mut() {
            a.keys.entry(msg.0.key_id.clone()).or_insert(msg.0);
        }
    }
}

impl Handler<GetAccount> for BudgetActor {
    type Result = Option<Account>;

    fn handle(&mut self, _: GetAccount, _: &mut Context<Self>) -> Option<Account> {
        let a = self.account.as_mut()?;
        // A copy without the keys' RPM windows (a minute of request times each, which no
        // reader of the copy looks at): they are set aside while it is made.
        let windows: Vec<VecDeque<Instant>> = a
            .keys
            .values_mut()
            .map(|k| std::mem::take(&mut k.recent))
            .collect();
        let mut copy = a.clone();
        for (k, w) in a.keys.values_mut().zip(windows) {
            k.recent = w;
        }
        Self::roll_windows(&mut copy);
        Some(copy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(day_start: NaiveDateTime) -> Account {
        Account {
            account_id: "acc".into(),
            balance_micros: 0,
            free_remaining: 0,
            day_start,
            month_start: Window::Month.start(day_start),
            keys: HashMap::default(),
            defaults: Defaults {
                daily_budget_micros: 0,
                monthly_budget_micros: 0,
                rpm: 0,
                free_max_request_micros: 0,
                free_daily_budget_micros: 0,
            },
            loaded_under: None,
        }
    }

    /// Books on an earlier day (or month) roll to the current windows; books on today stay.
    #[test]
    fn the_windows_roll_to_today_and_stay_there() {
        let today = Window::Day.start(time::now());
        for days_ago in [0, 1, 40, 400] {
            let mut a = account(today - chrono::Duration::days(days_ago));
            BudgetActor::roll_windows(&mut a);
            let now = time::now();
            // A test run across midnight UTC sees the next day's windows.
            assert!(
                a.day_start == Window::Day.start(now) || a.day_start == today,
                "{days_ago} days ago"
            );
            assert_eq!(
                a.month_start,
                Window::Month.start(a.day_start),
                "{days_ago}"
            );
        }
    }
}
