//! Process-wide state shared by every worker (`web::Data<AppState>`), for the HTTP handlers
//! only: it gathers the components (pool, key cache, router, budgets, wallet, pins) that
//! `main` builds and hands, one by one, to the code that runs outside a request (the cluster
//! listener, the InvoiceWatcher). Nothing below the routes takes it. Per-worker state (the
//! `awc::Client`, which is `!Send`) is registered separately in the server factory.

use std::net::{IpAddr, Ipv6Addr};

use chrono::Timelike;

use crate::actors::budgets::Budgets;
use crate::auth::KeyCache;
use crate::config::Config;
use crate::db::models::key_mint;
use crate::db::{self, DbError, Pool};
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
    /// Ends live streams when the shutdown grace is over (handed to each relay).
    pub shutdown: crate::shutdown::Shutdown,
}

/// Per-address limit on minting keys without the admin token, `limit` per clock hour. The
/// count lives in the database (`key_mints`), so a restart or another replica does not hand
/// out a fresh allowance.
pub struct MintLimiter {
    pool: Pool,
}

impl MintLimiter {
    pub fn new(pool: Pool) -> MintLimiter {
        MintLimiter { pool }
    }

    /// Records a mint from `ip`; `Ok(Err(seconds until the next hour))` when over `limit`.
    pub async fn check(&self, ip: IpAddr, limit: u32) -> Result<Result<(), u64>, DbError> {
        let now = crate::time::now();
        let window = now.date().and_hms_opt(now.hour(), 0, 0).unwrap_or(now);
        let who = address_key(ip);
        let counted = db::run(&self.pool, move |conn| {
            key_mint::record(conn, &who, window, i64::from(limit))
        })
        .await?;
        if counted {
            return Ok(Ok(()));
        }
        let wait = crate::time::until(window + chrono::Duration::hours(1));
        Ok(Err(wait.as_secs().max(1)))
    }
}

/// What one client is counted as: its IPv4 address, or its IPv6 /64 (one subscriber's
/// network usually holds a whole /64, so single IPv6 addresses would be free to vary).
fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let net = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{net}/64")
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().expect("ip");
        assert_eq!(address_key(a), address_key(b));
        assert_eq!(address_key(a), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert_eq!(address_key(mapped), "10.0.0.1");
    }
}
