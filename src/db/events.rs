//! Announcements between replicas on one PostgreSQL: `NOTIFY pura_events` with a JSON
//! [`Envelope`]. Writers queue them here, inside their own transaction when they have one (a
//! NOTIFY inside a transaction is delivered at its COMMIT, so the other replicas learn of a
//! change when, and only if, it is committed). `cluster.rs` LISTENs and applies them. SQLite
//! means one process, so nothing is sent.

use diesel::connection::SimpleConnection;
use serde::{Deserialize, Serialize};

use super::{DbConn, DbError, Pool};

/// The channel every replica LISTENs on.
pub const CHANNEL: &str = "pura_events";

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

/// What travels on the channel: the event and the replica it came from (which ignores it).
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    pub origin: String,
    pub event: Event,
}

fn notify_sql(origin: &str, event: Event) -> Option<String> {
    let payload = serde_json::to_string(&Envelope {
        origin: origin.to_owned(),
        event,
    })
    .ok()?;
    // The payload is our own JSON; quoted as an SQL string literal.
    Some(format!(
        "NOTIFY {CHANNEL}, '{}'",
        payload.replace('\'', "''")
    ))
}

/// Queues an announcement on `conn` (inside the caller's transaction, if any, so it is
/// delivered at its commit). Does nothing on SQLite.
pub fn notify(conn: &mut DbConn, origin: &str, event: Event) -> diesel::QueryResult<()> {
    let DbConn::Pg(pg) = conn else {
        return Ok(());
    };
    match notify_sql(origin, event) {
        Some(sql) => pg.batch_execute(&sql),
        None => Ok(()),
    }
}

/// Announces a change already committed (best effort: a failure is logged, and the other
/// replicas' caches catch up within their TTL).
pub async fn announce(pool: &Pool, origin: &str, event: Event) {
    let origin = origin.to_owned();
    let sent = super::run(pool, move |conn| {
        Ok::<_, DbError>(notify(conn, &origin, event)?)
    })
    .await;
    if let Err(e) = sent {
        log::warn!("cluster announcement failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_is_quoted_and_reads_back() {
        let event = Event::Key { id: "k'1".into() };
        let sql = notify_sql("r1", event.clone()).expect("sql");
        assert!(sql.starts_with("NOTIFY pura_events, '"));
        assert!(sql.contains("k''1"));
        let quoted = sql
            .trim_start_matches("NOTIFY pura_events, '")
            .trim_end_matches('\'');
        let back: Envelope = serde_json::from_str(&quoted.replace("''", "'")).expect("json");
        assert_eq!((back.origin.as_str(), back.event), ("r1", event));
    }
}
