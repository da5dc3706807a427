//! Replicas on one PostgreSQL tell each other about changes that live in memory: a key was
//! disabled, rotated or changed (drop it from the key cache, refresh its BudgetActor), or a
//! balance was credited (tell the key's BudgetActor). Announcements are `NOTIFY pura_events`;
//! each replica LISTENs on its own diesel-async `AsyncPgConnection`, a natural fit for a
//! connection that mostly waits. SQLite means one process, so there is nothing to do.

use std::time::Duration;

use actix_web::web;
use diesel::connection::SimpleConnection;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::db::models::api_key;
use crate::db::DbConn;
use crate::state::AppState;

const CHANNEL: &str = "pura_events";
/// Pause before reconnecting a listener whose connection failed.
const RECONNECT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Event {
    /// The key's row changed (settings, disabled, secret): re-read it.
    Key { id: String },
    /// Money was committed to the key's ledger.
    Credit { id: String, micros: i64 },
    /// Requests were settled: `cost` counts toward the budgets, `debit` left the balance,
    /// `free` free requests were used.
    Spend {
        id: String,
        cost: i64,
        debit: i64,
        free: i64,
    },
}

impl Event {
    pub fn spend(key_id: &str, s: &crate::db::usage_writer::Spend) -> Event {
        Event::Spend {
            id: key_id.to_owned(),
            cost: s.cost_micros,
            debit: s.debit_micros,
            free: s.free,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    origin: String,
    event: Event,
}

fn notify_sql(replica_id: &str, event: Event) -> Option<String> {
    let payload = serde_json::to_string(&Envelope {
        origin: replica_id.to_owned(),
        event,
    })
    .ok()?;
    // The payload is our own JSON; quoted as an SQL string literal.
    Some(format!(
        "NOTIFY {CHANNEL}, '{}'",
        payload.replace('\'', "''")
    ))
}

/// Queues an announcement inside the caller's transaction (delivered at its commit).
pub fn notify_in_tx(
    conn: &mut diesel::PgConnection,
    replica_id: &str,
    event: Event,
) -> diesel::QueryResult<()> {
    match notify_sql(replica_id, event) {
        Some(sql) => conn.batch_execute(&sql),
        None => Ok(()),
    }
}

/// Announces an event to the other replicas (PostgreSQL only; best effort, logged).
pub async fn announce(state: &web::Data<AppState>, event: Event) {
    let Some(sql) = notify_sql(&state.replica_id, event) else {
        return;
    };
    let pool = state.pool.clone();
    let sent = web::block(move || {
        let mut conn = pool.get()?;
        if let DbConn::Pg(pg) = &mut *conn {
            pg.batch_execute(&sql)?;
        }
        Ok::<_, crate::db::DbError>(())
    })
    .await;
    if let Ok(Err(e)) | Err(e) = sent
        .map_err(|e| e.to_string())
        .map(|r| r.map_err(|e| e.to_string()))
    {
        log::warn!("cluster announcement failed: {e}");
    }
}

/// Starts the listener thread when the database is PostgreSQL.
pub fn start_listener(state: web::Data<AppState>) {
    let url = state.config.database.url.clone();
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("cluster-listen".into())
        .spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                loop {
                    if let Err(e) = listen(&state, &url).await {
                        log::warn!("cluster listener: {e}; reconnecting");
                    }
                    actix_web::rt::time::sleep(RECONNECT).await;
                }
            });
        });
    if let Err(e) = spawned {
        log::error!("cannot start the cluster listener: {e}");
    }
}

async fn listen(state: &web::Data<AppState>, url: &str) -> Result<(), String> {
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .map_err(|e| e.to_string())?;
    diesel::sql_query(format!("LISTEN {CHANNEL}"))
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    log::info!("cluster listener: listening on {CHANNEL}");
    let mut notifications = std::pin::pin!(conn.notifications_stream());
    while let Some(n) = notifications.next().await {
        let n = n.map_err(|e| e.to_string())?;
        match serde_json::from_str::<Envelope>(&n.payload) {
            Ok(env) if env.origin != state.replica_id => apply(state, env.event).await,
            Ok(_) => {}
            Err(e) => log::warn!("cluster listener: bad payload {:?}: {e}", n.payload),
        }
    }
    Err("notification stream ended".into())
}

/// Applies another replica's change to this replica's memory.
async fn apply(state: &web::Data<AppState>, event: Event) {
    match event {
        Event::Credit { id, micros } => state.budgets.credit(&id, micros),
        Event::Spend {
            id,
            cost,
            debit,
            free,
        } => state.budgets.spent_elsewhere(&id, cost, debit, free),
        Event::Key { id } => {
            let (pool, lookup) = (state.pool.clone(), id.clone());
            match web::block(move || api_key::find(&mut *pool.get()?, &lookup)).await {
                Ok(Ok(Some(row))) => {
                    state.keys.forget_id(&row.id);
                    state.budgets.refresh(&row);
                    state.keys.put(row);
                }
                Ok(Ok(None)) => state.keys.forget_id(&id),
                other => log::warn!("cluster listener: cannot re-read key {id}: {other:?}"),
            }
        }
    }
}
