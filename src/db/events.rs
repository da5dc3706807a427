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
    /// Money was committed to the account's ledger.
    Credit {
        account: String,
        micros: i64,
        /// The committing transaction (PostgreSQL xid8), so a BudgetActor whose account was
        /// loaded after that commit does not count it twice (see [`Snapshot`]).
        #[serde(default)]
        xid: Option<u64>,
    },
    /// Requests of key `key` were settled: `cost` counts toward the key's budgets, `debit` left
    /// the account's balance, `free` of the account's free requests were used.
    Spend {
        account: String,
        key: String,
        cost: i64,
        debit: i64,
        free: i64,
        #[serde(default)]
        xid: Option<u64>,
    },
}

/// A PostgreSQL snapshot (`pg_current_snapshot()`: `xmin:xmax:xip,…`): which transactions'
/// effects a read taken under it saw. An announcement whose xid is visible here is already
/// counted in what was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    xmin: u64,
    xmax: u64,
    in_progress: Vec<u64>,
}

impl Snapshot {
    pub fn parse(s: &str) -> Option<Snapshot> {
        let mut parts = s.trim().splitn(3, ':');
        let xmin = parts.next()?.parse().ok()?;
        let xmax = parts.next()?.parse().ok()?;
        let in_progress = parts
            .next()
            .unwrap_or("")
            .split(',')
            .filter(|x| !x.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        Some(Snapshot {
            xmin,
            xmax,
            in_progress,
        })
    }

    /// Whether the transaction `xid` had committed for a read under this snapshot.
    pub fn sees(&self, xid: u64) -> bool {
        xid < self.xmin || (xid < self.xmax && !self.in_progress.contains(&xid))
    }
}

#[derive(diesel::QueryableByName)]
struct Text {
    #[diesel(sql_type = diesel::sql_types::Text)]
    value: String,
}

fn text_query(pg: &mut diesel::pg::PgConnection, sql: &str) -> Option<String> {
    use diesel::RunQueryDsl;
    diesel::sql_query(sql)
        .get_result::<Text>(pg)
        .ok()
        .map(|t| t.value)
}

/// Runs the reads in `f` in one transaction under one snapshot (PostgreSQL: REPEATABLE READ)
/// and returns that snapshot with the result (`None` on SQLite: one process, no replicas).
pub fn consistent_read<T>(
    conn: &mut DbConn,
    f: impl FnOnce(&mut DbConn) -> Result<T, DbError>,
) -> Result<(T, Option<Snapshot>), DbError> {
    use diesel::Connection;
    conn.transaction(|conn| {
        let seen = match conn {
            DbConn::Pg(pg) => {
                pg.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")?;
                // The snapshot is taken by this first query and holds for every later one.
                text_query(pg, "SELECT pg_current_snapshot()::text AS value")
                    .and_then(|s| Snapshot::parse(&s))
            }
            DbConn::Sqlite(_) => None,
        };
        Ok((f(conn)?, seen))
    })
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
pub fn notify(conn: &mut DbConn, origin: &str, mut event: Event) -> diesel::QueryResult<()> {
    let DbConn::Pg(pg) = conn else {
        return Ok(());
    };
    // Inside the settling transaction: its xid is the one the commit makes visible. (Credits
    // are announced after their commit, so they carry none.)
    if let Event::Spend { xid, .. } = &mut event {
        if xid.is_none() {
            *xid = text_query(pg, "SELECT pg_current_xact_id()::text AS value")
                .and_then(|x| x.parse().ok());
        }
    }
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
    fn a_snapshot_sees_what_committed_before_it() {
        let s = Snapshot::parse("100:105:101,103").expect("parses");
        assert!(s.sees(99) && s.sees(102) && s.sees(104));
        assert!(!s.sees(101) && !s.sees(103) && !s.sees(105) && !s.sees(200));
        assert_eq!(
            Snapshot::parse("7:7:"),
            Some(Snapshot {
                xmin: 7,
                xmax: 7,
                in_progress: vec![]
            })
        );
    }

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
