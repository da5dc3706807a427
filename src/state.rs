//! Process-wide state shared by every worker (`web::Data<AppState>`), for the HTTP handlers
//! only: it gathers the components (pool, key cache, router, budgets, wallet, pins) that
//! `main` builds and hands, one by one, to the code that runs outside a request (the cluster
//! listener, the InvoiceWatcher). Nothing below the routes takes it. Per-worker state (the
//! `awc::Client`, which is `!Send`) is registered separately in the server factory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::actors::budgets::Budgets;
use crate::auth::KeyCache;
use crate::config::Config;
use crate::db::Pool;
use crate::routing::Router;
use crate::secret::Secret;
use crate::wallet::Wallet;

pub struct AppState {
    pub config: Config,
    pub pool: Pool,
    pub keys: KeyCache,
    pub router: Router,
    pub budgets: Budgets,
    pub wallet: Wallet,
    pub admin_token: Option<Secret>,
    pub mint_limiter: MintLimiter,
    /// Session pinning for `auto` conversations.
    pub pins: crate::routing::policy::Pins,
    /// This process's id in cluster announcements (to ignore its own).
    pub replica_id: String,
}

/// Per-IP limit on minting keys without the admin token (a sliding hour).
#[derive(Default)]
pub struct MintLimiter {
    seen: Mutex<HashMap<IpAddr, Vec<Instant>>>,
}

const MINT_WINDOW: Duration = Duration::from_secs(3600);

impl MintLimiter {
    /// Records a mint from `ip`; `Err(seconds until a slot frees)` when over `limit`.
    pub fn check(&self, ip: IpAddr, limit: u32) -> Result<(), u64> {
        let now = Instant::now();
        let Ok(mut seen) = self.seen.lock() else {
            return Ok(());
        };
        let times = seen.entry(ip).or_default();
        times.retain(|t| now.duration_since(*t) < MINT_WINDOW);
        if times.len() >= limit as usize {
            let oldest = times.first().copied().unwrap_or(now);
            let wait = MINT_WINDOW.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs().max(1));
        }
        times.push(now);
        Ok(())
    }
}
