//! One `BudgetActor` per key serialises that key's money: [`Reserve`] the worst case before
//! the upstream call, [`Settle`] the actual cost afterwards (the difference is refunded), or
//! [`Release`] when nothing was served. Free-tier requests use a free request instead of money.
//! The actor loads its state from the database when it starts and hands every settlement to
//! the group-commit writer, so the database stays the source of truth.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::NaiveDateTime;
use tokio::sync::oneshot;

use crate::db::models::{api_key, usage};
use crate::db::usage_writer::{Settlement, UsageWriter};
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

/// A key's money as the actor keeps it.
#[derive(Debug, Clone)]
pub struct Account {
    pub key_id: String,
    pub balance_micros: i64,
    pub free_remaining: i64,
    pub daily_budget_micros: i64,
    pub monthly_budget_micros: i64,
    pub rpm: u32,
    pub day_start: NaiveDateTime,
    pub month_start: NaiveDateTime,
    pub spent_day_micros: i64,
    pub spent_month_micros: i64,
    pub notify_email: Option<String>,
    pub webhook_url: Option<String>,
    /// The PostgreSQL snapshot the account was read under (None on SQLite).
    pub loaded_under: Option<events::Snapshot>,
}

impl Account {
    /// Reads the key and its spend in the current day and month.
    /// Reads the account in one repeatable-read transaction, so every figure comes from one
    /// snapshot, which is kept to tell which announced settlements it already includes.
    pub fn load(conn: &mut DbConn, key_id: &str, defaults: Defaults) -> Result<Account, DbError> {
        let (mut account, seen) =
            events::consistent_read(conn, |conn| Self::read(conn, key_id, defaults))?;
        account.loaded_under = seen;
        Ok(account)
    }

    fn read(conn: &mut DbConn, key_id: &str, defaults: Defaults) -> Result<Account, DbError> {
        let key =
            api_key::find(conn, key_id)?.ok_or(DbError::Query(diesel::result::Error::NotFound))?;
        let now = time::now();
        let (day_start, month_start) = (Window::Day.start(now), Window::Month.start(now));
        let spent_month = usage::spend_since(conn, key_id, month_start)?;
        let spent_day = usage::spend_since(conn, key_id, day_start)?;
        let mut account = Account {
            key_id: key.id.clone(),
            balance_micros: key.balance_micros,
            free_remaining: key.free_requests_remaining,
            daily_budget_micros: 0,
            monthly_budget_micros: 0,
            rpm: 0,
            day_start,
            month_start,
            spent_day_micros: spent_day,
            spent_month_micros: spent_month,
            notify_email: None,
            webhook_url: None,
            loaded_under: None,
        };
        account.apply_settings(&key, defaults);
        Ok(account)
    }

    fn apply_settings(&mut self, key: &api_key::ApiKey, d: Defaults) {
        self.daily_budget_micros = key.daily_budget_micros.unwrap_or(d.daily_budget_micros);
        self.monthly_budget_micros = key.monthly_budget_micros.unwrap_or(d.monthly_budget_micros);
        self.rpm = key.rpm_limit.map_or(d.rpm, |r| r.max(0) as u32);
        self.notify_email = key.notify_email.clone();
        self.webhook_url = key.webhook_url.clone();
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
    pub estimate_micros: i64,
    /// False when the deployment's free spend of the day is reached: serve from the balance.
    pub allow_free: bool,
}

/// The request was served: record `row` (its `cost_micros` is the actual cost).
#[derive(Message)]
#[rtype(result = "Settled")]
pub struct Settle {
    pub reservation: u64,
    pub row: usage::UsageRow,
}

pub struct Settled {
    /// Resolves once the settlement is committed.
    pub committed: oneshot::Receiver<bool>,
    pub budget_remaining_micros: i64,
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

/// Another replica settled requests of this key (already committed there).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SpentElsewhere {
    pub cost_micros: i64,
    pub debit_micros: i64,
    pub free: i64,
    /// The settling transaction, to skip a settlement the account was loaded with.
    pub xid: Option<u64>,
}

/// The key's settings changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Refresh(pub api_key::ApiKey);

#[derive(Message)]
#[rtype(result = "Option<Account>")]
pub struct GetAccount;

/// Called when the actor stops idle, so the registry forgets it.
pub type OnIdle = Box<dyn Fn(&str, &Addr<BudgetActor>)>;

struct Held {
    free: bool,
    estimate: i64,
    day: NaiveDateTime,
}

pub struct BudgetActor {
    key_id: String,
    defaults: Defaults,
    pool: Pool,
    writer: UsageWriter,
    notifier: Notifier,
    on_idle: OnIdle,
    account: Option<Account>,
    held: HashMap<u64, Held>,
    next_id: u64,
    reserved_paid: i64,
    reserved_budget: i64,
    reserved_free: i64,
    recent: VecDeque<Instant>,
    last_used: Instant,
}

impl BudgetActor {
    pub fn new(
        key_id: &str,
        defaults: Defaults,
        pool: Pool,
        writer: UsageWriter,
        notifier: Notifier,
        on_idle: OnIdle,
    ) -> Self {
        BudgetActor {
            key_id: key_id.to_owned(),
            defaults,
            pool,
            writer,
            notifier,
            on_idle,
            account: None,
            held: HashMap::new(),
            next_id: 0,
            reserved_paid: 0,
            reserved_budget: 0,
            reserved_free: 0,
            recent: VecDeque::new(),
            last_used: Instant::now(),
        }
    }

    /// Starts new day and month windows when the calendar moved on.
    fn roll_windows(account: &mut Account) {
        let now = time::now();
        let day = Window::Day.start(now);
        if day != account.day_start {
            account.day_start = day;
            account.spent_day_micros = 0;
        }
        let month = Window::Month.start(now);
        if month != account.month_start {
            account.month_start = month;
            account.spent_month_micros = 0;
        }
    }

    fn budget_left(&self, a: &Account) -> i64 {
        let day = a.daily_budget_micros - a.spent_day_micros - self.reserved_budget;
        let month = a.monthly_budget_micros - a.spent_month_micros - self.reserved_budget;
        day.min(month)
    }

    fn rate(&mut self, limit: u32, count: bool) -> Result<RateInfo, Denied> {
        let now = Instant::now();
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

    fn notify_crossings(&self, a: &Account, before_day: i64, before_month: i64) {
        let windows = [
            (
                "daily",
                a.day_start,
                a.daily_budget_micros,
                before_day,
                a.spent_day_micros,
            ),
            (
                "monthly",
                a.month_start,
                a.monthly_budget_micros,
                before_month,
                a.spent_month_micros,
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
                        key_id: a.key_id.clone(),
                        window,
                        window_start: start,
                        threshold: t,
                        spent_micros: after,
                        budget_micros: budget,
                        email: a.notify_email.clone(),
                        webhook: a.webhook_url.clone(),
                    });
                }
            }
        }
    }
}

impl Actor for BudgetActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (pool, key, defaults) = (self.pool.clone(), self.key_id.clone(), self.defaults);
        // `wait` holds every message until the account is loaded.
        ctx.wait(
            async move { db::run(&pool, move |conn| Account::load(conn, &key, defaults)).await }
                .into_actor(self)
                .map(|loaded, act, ctx| match loaded {
                    Ok(account) => act.account = Some(account),
                    Err(e) => {
                        log::error!("budget actor for {}: cannot load account: {e}", act.key_id);
                        ctx.stop();
                    }
                }),
        );
        ctx.run_interval(IDLE_CHECK, |act, ctx| {
            if act.held.is_empty() && act.last_used.elapsed() >= IDLE_STOP {
                (act.on_idle)(&act.key_id, &ctx.address());
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
        let result = self.reserve(&a, msg.estimate_micros, msg.allow_free);
        self.account = Some(a);
        result
    }
}

impl BudgetActor {
    fn reserve(
        &mut self,
        a: &Account,
        estimate: i64,
        allow_free: bool,
    ) -> Result<Reservation, Denied> {
        self.rate(a.rpm, false)?;
        if a.spent_day_micros + self.reserved_budget + estimate > a.daily_budget_micros {
            return Err(Denied::Budget {
                window: "daily",
                retry_after: time::until(Window::Day.end(a.day_start)),
            });
        }
        if a.spent_month_micros + self.reserved_budget + estimate > a.monthly_budget_micros {
            return Err(Denied::Budget {
                window: "monthly",
                retry_after: time::until(Window::Month.end(a.month_start)),
            });
        }
        // A free request is bounded: one whose worst case is above the cap is paid from the
        // balance like any other (or refused), never served free without a limit.
        let has_free = a.free_remaining - self.reserved_free > 0;
        let cap = self.defaults.free_max_request_micros;
        let free = has_free && allow_free && estimate <= cap;
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
        let rate = self.rate(a.rpm, true)?;
        if free {
            self.reserved_free += 1;
        } else {
            self.reserved_paid += estimate;
        }
        self.reserved_budget += estimate;
        self.next_id += 1;
        let day = a.day_start;
        self.held.insert(
            self.next_id,
            Held {
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
            budget_remaining_micros: self.budget_left(a),
            rate,
        })
    }

    fn unhold(&mut self, id: u64) -> Option<Held> {
        let held = self.held.remove(&id)?;
        if held.free {
            self.reserved_free -= 1;
        } else {
            self.reserved_paid -= held.estimate;
        }
        self.reserved_budget -= held.estimate;
        Some(held)
    }
}

impl Handler<Settle> for BudgetActor {
    type Result = MessageResult<Settle>;

    fn handle(&mut self, msg: Settle, _: &mut Context<Self>) -> Self::Result {
        self.last_used = Instant::now();
        let held = self.unhold(msg.reservation);
        let cost = msg.row.cost_micros;
        let mut settlement = Settlement {
            row: msg.row,
            debit_micros: 0,
            free: false,
            free_spend: None,
        };
        let mut budget_remaining = 0;
        if let Some(mut a) = self.account.take() {
            Self::roll_windows(&mut a);
            let (before_day, before_month) = (a.spent_day_micros, a.spent_month_micros);
            match held {
                Some(Held {
                    free: true,
                    estimate,
                    day,
                }) => {
                    settlement.free = true;
                    // The day's free spend took the estimate; the actual cost replaces it.
                    settlement.free_spend = Some((day, cost - estimate));
                    a.free_remaining -= 1;
                }
                _ => {
                    // Never below zero: a request that cost more than the balance had left is
                    // charged what was left, and the shortfall is logged.
                    let available = (a.balance_micros - self.reserved_paid).max(0);
                    if cost > available {
                        log::warn!(
                            "key {}: cost {cost} µ$ above available {available} µ$",
                            a.key_id
                        );
                    }
                    settlement.debit_micros = cost.min(available);
                    a.balance_micros -= settlement.debit_micros;
                }
            }
            a.spent_day_micros += cost;
            a.spent_month_micros += cost;
            self.notify_crossings(&a, before_day, before_month);
            budget_remaining = self.budget_left(&a);
            self.account = Some(a);
        }
        MessageResult(Settled {
            committed: self.writer.write(settlement),
            budget_remaining_micros: budget_remaining,
        })
    }
}

impl Handler<Release> for BudgetActor {
    type Result = ();

    fn handle(&mut self, msg: Release, _: &mut Context<Self>) {
        if self.unhold(msg.reservation).is_some() && msg.uncount {
            // The newest entry may be another request's: the count is what the limit reads.
            self.recent.pop_back();
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
            a.spent_day_micros += msg.cost_micros;
            a.spent_month_micros += msg.cost_micros;
        }
    }
}

impl Handler<Refresh> for BudgetActor {
    type Result = ();

    fn handle(&mut self, msg: Refresh, _: &mut Context<Self>) {
        let defaults = self.defaults;
        if let Some(a) = self.account.as_mut() {
            a.apply_settings(&msg.0, defaults);
        }
    }
}

impl Handler<GetAccount> for BudgetActor {
    type Result = Option<Account>;

    fn handle(&mut self, _: GetAccount, _: &mut Context<Self>) -> Option<Account> {
        let mut a = self.account.clone()?;
        Self::roll_windows(&mut a);
        Some(a)
    }
}
