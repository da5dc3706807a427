//! Whether PostgreSQL answers, known without asking it on the request path. A thread keeps a
//! connection of its own (outside the pool, so a pool busy under load never reads as an
//! outage) and pings it every [`PROBE_EVERY`]. While the database is down, [`super::run`]
//! fails at once instead of waiting out the pool's connection timeout, `/health` and `/ready`
//! answer 503 at once, and the settlement writer stops trying and waits; when the ping
//! answers again everything resumes by itself. SQLite is a file of this process: never down.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::Connection;

/// One database per process, so one flag (the pool is a plain `r2d2::Pool`, which carries no
/// state of ours).
static DOWN: AtomicBool = AtomicBool::new(false);

/// How often the database is pinged: an outage is seen within about this long.
const PROBE_EVERY: Duration = Duration::from_millis(500);
/// libpq's own connect timeout for the probe, in seconds: without it a connect to an address
/// that drops packets waits for the kernel's TCP timeout (minutes).
const PROBE_CONNECT_TIMEOUT_SECS: u32 = 2;

/// True while the last ping of the database failed.
pub fn is_down() -> bool {
    DOWN.load(Ordering::Relaxed)
}

/// Starts the probe for a PostgreSQL `url` (nothing to watch for SQLite).
pub fn start_monitor(url: &str) {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return;
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}connect_timeout={PROBE_CONNECT_TIMEOUT_SECS}");
    let spawned = thread::Builder::new()
        .name("db-health".into())
        .spawn(move || probe_forever(&url));
    if let Err(e) = spawned {
        log::error!("cannot start the database health probe: {e}");
    }
}

fn probe_forever(url: &str) {
    let mut conn: Option<PgConnection> = None;
    loop {
        let alive = conn.as_mut().is_some_and(ping);
        // A dead connection is not yet a dead database: connect again before saying so.
        let up = alive || {
            conn = PgConnection::establish(url).ok();
            conn.as_mut().is_some_and(ping)
        };
        let was_down = DOWN.swap(!up, Ordering::Relaxed);
        if was_down == up {
            if up {
                log::info!("database reachable again");
            } else {
                log::error!("database unreachable: requests answer 503 until it returns");
            }
        }
        thread::sleep(PROBE_EVERY);
    }
}

fn ping(conn: &mut PgConnection) -> bool {
    conn.batch_execute("SELECT 1").is_ok()
}
