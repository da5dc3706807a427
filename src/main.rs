//! Boot only: logging, config, migrations; then the components (pool, key cache, router,
//! budgets, wallet), each handed to what needs it (the cluster listener, the InvoiceWatcher)
//! and gathered in `AppState` for the handlers; then the HTTP server, until a signal stops it
//! (see [`pura::shutdown`]) and every settlement is flushed.

use std::path::PathBuf;
use std::time::Duration;

use actix_web::middleware::{from_fn, ErrorHandlers};
use actix_web::{web, App, HttpServer};

use pura::actors::arbiter::ReplicaArbiter;
use pura::actors::budget::Defaults;
use pura::actors::budgets::Budgets;
use pura::actors::invoice_watcher::InvoiceWatcher;
use pura::auth::KeyCache;
use pura::cluster;
use pura::config::Config;
use pura::db::journal::Journal;
use pura::db::usage_writer::{self, UsageWriter};
use pura::db::{self};
use pura::error::rewrite_plain_errors;
use pura::lightning::{Backend, LightningHttp};
use pura::notify::Notifier;
use pura::routes::limits::{body_deadline, BodyTimeout};
use pura::routing::policy::Pins;
use pura::routing::Router;
use pura::secret::Secret;
use pura::shutdown::{self, Shutdown};
use pura::state::{AppState, MintLimiter};
use pura::wallet::Wallet;

/// mimalloc instead of glibc's malloc: a request allocates and frees a few hundred small
/// blocks (headers, JSON values, the usage row), and glibc's free lists and consolidation
/// cost about 45,000 instructions of each non-streaming request (14%, callgrind). Built with
/// `no_thp`: mimalloc otherwise asks for transparent huge pages for its arenas, and the idle
/// process held 51 MB instead of 27 (the benchmark's target is 30).
/// Built with `override`: mimalloc defines `malloc`, `free` and the rest itself, and the
/// executable exports them, so Rust's `System` allocator and the C libraries (SQLite, OpenSSL,
/// glibc) all reach it through them. Through the `mimalloc::MiMalloc` global allocator instead,
/// Rust's allocations took mimalloc's aligned path (`mi_malloc_aligned`, for every layout): about
/// 56 instructions an allocation against 20, 4,000 a non-streaming request (callgrind). `main`
/// calls `MiMalloc.version()` so that the linker keeps the object that defines them.
#[global_allocator]
static ALLOC: std::alloc::System = std::alloc::System;

/// Upper bound for one upstream call; each provider's own `timeout` is applied per request.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(600);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Upstream connections one worker may hold open. awc's default of 100 queues every stream
/// past the hundredth behind the others (a 1,000-stream benchmark showed 19 s to first chunk).
const UPSTREAM_CONNECTIONS: usize = 4096;
/// After the shutdown grace, how long the cut streams have to send their last event and
/// settle (and idle keep-alive connections to close) before actix drops what is left.
const DRAIN_MARGIN: Duration = Duration::from_secs(10);
/// How long the last settlements may wait for an unreachable database at exit.
const FINAL_FLUSH: Duration = Duration::from_secs(60);

fn config_path() -> Option<PathBuf> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(p));
        }
    }
    std::env::var_os("PURA_CONFIG").map(PathBuf::from)
}

fn budget_defaults(config: &Config) -> Defaults {
    Defaults {
        daily_budget_micros: pura::money::Micros::from_usd(config.limits.default_daily_budget_usd)
            .get(),
        monthly_budget_micros: pura::money::Micros::from_usd(
            config.limits.default_monthly_budget_usd,
        )
        .get(),
        rpm: config.limits.rpm,
        free_max_request_micros: pura::money::Micros::from_usd(config.free_tier.max_request_usd)
            .get(),
        free_daily_budget_micros: pura::money::Micros::from_usd(config.free_tier.daily_budget_usd)
            .get(),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let fail = |e: String| std::io::Error::other(e);
    // Keeps mimalloc, which defines `malloc` (see `ALLOC`), in the executable.
    let _ = mimalloc::MiMalloc.version();
    // The config first: it says how to log.
    let config = Config::load(config_path().as_deref()).map_err(|e| fail(e.to_string()))?;
    // Before the workers and the database threads start (see `fds`).
    let fd_table = pura::fds::reserve();
    let json_logs = config.log.format == pura::config::LogFormat::Json;
    pura::access::init(json_logs);
    log::debug!("descriptor table reserved for {fd_table} descriptors");
    pura::metrics::init();
    pura::telemetry::init(&config.telemetry.otlp_endpoint);
    let pool = db::pool(&config.database.url, config.database.pool_size)
        .map_err(|e| fail(e.to_string()))?;
    {
        let mut conn = pool.get().map_err(|e| fail(e.to_string()))?;
        db::migrate(&mut conn).map_err(|e| fail(e.to_string()))?;
    }
    db::start_checkpointer(&pool);
    db::health::start_monitor(&config.database.url);
    let specs = pura::providers::catalog::specs(&config, |k| std::env::var(k).ok());
    if specs.is_empty() {
        log::warn!("no provider is configured: chat will answer 503 until one is");
    }
    for s in &specs {
        log::info!(
            "provider {} ({:?}, {}) at {}",
            s.name,
            s.dialect,
            s.tier.as_str(),
            s.base_url
        );
    }
    let lightning =
        Backend::from_config(&config.lightning, |k| std::env::var(k).ok()).map_err(fail)?;
    let replica_id = pura::ids::random_alnum(12);
    let keys = KeyCache::default();
    // Several replicas share a PostgreSQL database: it arbitrates money and keeps session pins.
    let arbiter = if config.database.arbitrate {
        ReplicaArbiter::start(&pool, &replica_id).map_err(|e| fail(e.to_string()))?
    } else {
        None
    };
    let arbiter_shared = arbiter.is_some();
    // SQLite: settlements are journalled. What a process that died left in the journal is
    // committed now, before anything reads money.
    let journal = match db::sqlite_file(&config.database.url) {
        Some(path) => {
            let journal = Journal::open(&Journal::path_for(path))
                .map_err(|e| fail(format!("settlement journal: {e}")))?;
            let found = usage_writer::replay(&pool, &journal, &replica_id)
                .map_err(|e| fail(e.to_string()))?;
            if found > 0 {
                log::info!(
                    "settlement journal: {found} settlements a stopped process had not committed are committed now"
                );
            }
            Some(journal)
        }
        None => None,
    };
    let budgets = Budgets::new(
        pool.clone(),
        UsageWriter::start(pool.clone(), replica_id.clone(), journal),
        Notifier::start(
            pool.clone(),
            config.notify.smtp_url.clone(),
            config.notify.from.clone(),
        ),
        budget_defaults(&config),
        arbiter,
    );
    let wallet = Wallet::new(
        pool.clone(),
        lightning.clone(),
        config.lightning.clone(),
        replica_id.clone(),
    );
    cluster::Listener {
        pool: pool.clone(),
        keys: keys.clone(),
        budgets: budgets.clone(),
        replica_id: replica_id.clone(),
    }
    .start(&config.database.url);
    if let Some(backend) = &lightning {
        log::info!(
            "lightning backend {} at {}",
            backend.name(),
            config.lightning.url
        );
        InvoiceWatcher::start_on_own_thread(wallet.clone(), budgets.clone());
    }
    let state = web::Data::new(AppState {
        router: Router::start(&config, specs),
        budgets,
        wallet,
        admin_token: config.admin_token().map(Secret::new),
        keys,
        mint_limiter: MintLimiter::new(pool.clone()),
        pins: if arbiter_shared {
            Pins::shared(pool.clone())
        } else {
            Pins::default()
        },
        replica_id,
        pool,
        config: config.clone(),
        shutdown: Shutdown::default(),
    });
    let (shutdown, budgets) = (state.shutdown.clone(), state.budgets.clone());
    let grace = config.server.shutdown_grace();
    let metrics_state = state.clone();
    let max_body = config.server.max_body_bytes;
    let body_timeout = config.server.body_timeout();
    let ln_config = config.lightning.clone();
    let mut server = HttpServer::new(move || {
        // awc::Client is !Send: one per worker, made here, used by that worker's handlers.
        let client = awc::Client::builder()
            .timeout(CLIENT_TIMEOUT)
            .connector(
                awc::Connector::new()
                    .timeout(CONNECT_TIMEOUT)
                    .limit(UPSTREAM_CONNECTIONS),
            )
            .finish();
        App::new()
            .app_data(state.clone())
            .app_data(web::Data::new(client))
            .app_data(web::Data::new(LightningHttp(Backend::http_client(
                &ln_config,
            ))))
            .app_data(web::Data::new(BodyTimeout(body_timeout)))
            .wrap(from_fn(body_deadline))
            .wrap(ErrorHandlers::new().default_handler(rewrite_plain_errors))
            // One access line per request (JSON: the pipeline writes its own at settlement).
            .wrap(pura::access::AccessLog)
            .configure(|cfg| pura::configure(cfg, max_body))
    });
    if let Some(w) = config.server.workers {
        server = server.workers(w);
    }
    // Signals are ours (see `shutdown::on_signals`): actix's own would stop at once and cut
    // streams at its 30 s default, unbilled and without an ending.
    let server = server
        .disable_signals()
        .shutdown_timeout((grace + DRAIN_MARGIN).as_secs_f64().ceil() as u64)
        .client_request_timeout(config.server.header_timeout())
        .keep_alive(config.server.keep_alive())
        // A stream's chunks are small writes: with Nagle's algorithm each one after the first
        // waits for the client's ACK of the one before, which a client delays up to 40 ms.
        .tcp_nodelay(true);
    let metrics = match config.server.metrics_bind.as_str() {
        "" => None,
        bind => {
            // Operators keep metrics off the public port: a one-worker server of its own.
            let metrics = HttpServer::new(move || {
                App::new()
                    .app_data(metrics_state.clone())
                    .route("/metrics", web::get().to(pura::routes::metrics::dedicated))
            })
            .workers(1)
            .disable_signals()
            .bind(bind)?;
            for addr in metrics.addrs() {
                println!("pura metrics on http://{addr}/metrics");
            }
            Some(metrics.run())
        }
    };
    let server = server.bind(&config.server.bind)?;
    for addr in server.addrs() {
        // Tests and scripts read this line to learn the port when binding to :0.
        println!("pura listening on http://{addr}");
    }
    let server = server.run();
    let mut handles = vec![server.handle()];
    handles.extend(metrics.as_ref().map(|m| m.handle()));
    actix_web::rt::spawn(shutdown::on_signals(handles, shutdown, grace));
    match metrics {
        Some(metrics) => futures_util::try_join!(server, metrics).map(|_| ())?,
        None => server.await?,
    }
    // Every connection is closed: what is left is settlements on their way to the database.
    // The writer holds settlements while the database is away; past this, exit without them
    // (logged) rather than never.
    let drained = tokio::time::timeout(FINAL_FLUSH, budgets.drain()).await;
    if drained == Ok(true) {
        log::info!("stopped; every settlement is committed");
    } else {
        log::error!("stopped; some settlements could not be committed (see above)");
    }
    Ok(())
}
