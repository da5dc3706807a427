//! Replicas on one PostgreSQL tell each other about changes that live in memory: a key was
//! disabled, rotated, changed or minted (drop it from the key cache, refresh its account's
//! BudgetActor), a balance was credited or spent (tell the account's BudgetActor). Writers announce through
//! `db::events` (`NOTIFY pura_events`); this module only listens and applies. Each replica
//! LISTENs on its own diesel-async `AsyncPgConnection`, a natural fit for a connection that
//! mostly waits. SQLite means one process, so there is nothing to do.

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::StreamExt;

use crate::actors::budget::SpentElsewhere;
use crate::actors::budgets::Budgets;
use crate::auth::KeyCache;
use crate::db::events::{Envelope, Event, CHANNEL};
use crate::db::models::api_key;
use crate::db::{self, Pool};

/// Pause before reconnecting a listener whose connection failed.
const RECONNECT: Duration = Duration::from_secs(2);

/// What the listener changes when another replica announces something.
#[derive(Clone)]
pub struct Listener {
    pub pool: Pool,
    pub keys: KeyCache,
    pub budgets: Budgets,
    /// This replica's id: its own announcements are ignored.
    pub replica_id: String,
}

impl Listener {
    /// Starts the listener thread when `database_url` is PostgreSQL.
    pub fn start(self, database_url: &str) {
        let url = database_url.to_owned();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("cluster-listen".into())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    loop {
                        if let Err(e) = self.listen(&url).await {
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

    async fn listen(&self, url: &str) -> Result<(), String> {
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
                Ok(env) if env.origin != self.replica_id => self.apply(env.event).await,
                Ok(_) => {}
                Err(e) => log::warn!("cluster listener: bad payload {:?}: {e}", n.payload),
            }
        }
        Err("notification stream ended".into())
    }

    /// Applies another replica's change to this replica's memory.
    async fn apply(&self, event: Event) {
        match event {
            Event::Credit {
                account, micros, ..
            } => self.budgets.credit(&account, micros),
            Event::Spend {
                account,
                key,
                cost,
                debit,
                free,
                xid,
            } => {
                let spent = SpentElsewhere {
                    key_id: key,
                    cost_micros: cost,
                    debit_micros: debit,
                    free,
                    xid,
                };
                self.budgets.spent_elsewhere(&account, spent)
            }
            Event::Key { id } => {
                let lookup = id.clone();
                match db::run(&self.pool, move |conn| api_key::find(conn, &lookup)).await {
                    Ok(Some(row)) => {
                        self.keys.forget_id(&row.id);
                        self.budgets.refresh(&row);
                        self.keys.put(row);
                    }
                    Ok(None) => self.keys.forget_id(&id),
                    Err(e) => log::warn!("cluster listener: cannot re-read key {id}: {e}"),
                }
            }
        }
    }
}
