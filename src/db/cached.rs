//! The settlement's updates, written so that diesel keeps them prepared.
//!
//! Diesel prepares every `UPDATE` of its query builder afresh (its SQL may vary with the
//! changeset in general), and parsing a statement costs more than running it: on the
//! settlement path that was most of a request's database work. These few updates have the
//! same SQL every time, so each is a type of its own with a static query id, which diesel's
//! statement cache keeps by type. The SQL is plain enough for SQLite and PostgreSQL alike.

use chrono::NaiveDateTime;
use diesel::backend::Backend;
use diesel::connection::Connection;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Bool, HasSqlType, Nullable, Text, Timestamp};
use diesel::sqlite::{Sqlite, SqliteConnection};
use diesel::QueryResult;

use super::models::ledger::Entry;
use super::models::usage::UsageRow;
use super::sqlite_time::SqliteTime;
use super::DbConn;

/// The bind types these statements use, on either backend.
pub trait Binds: Backend + HasSqlType<BigInt> + HasSqlType<Text> + HasSqlType<Timestamp>
where
    i64: ToSql<BigInt, Self>,
    String: ToSql<Text, Self>,
    NaiveDateTime: ToSql<Timestamp, Self>,
{
}

impl Binds for Sqlite {}
impl Binds for Pg {}

/// Declares one statement: its fields (the binds) and its `walk_ast` (the SQL with the binds
/// in place). The type is its cache key, so the SQL must not depend on the values.
macro_rules! statement {
    ($(#[$doc:meta])* $name:ident { $($field:ident: $ty:ty),* $(,)? }
     |$self:ident, $out:ident| $body:block) => {
        $(#[$doc])*
        pub struct $name { $(pub $field: $ty),* }

        impl QueryId for $name {
            type QueryId = $name;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl<DB: Binds> QueryFragment<DB> for $name
        where
            i64: ToSql<BigInt, DB>,
            String: ToSql<Text, DB>,
            NaiveDateTime: ToSql<Timestamp, DB>,
        {
            fn walk_ast<'b>(&'b $self, mut $out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
                $body
                Ok(())
            }
        }
    };
}

statement! {
    /// Moves an account's cached balance.
    MoveBalance { account: String, delta: i64 }
    |self, out| {
        out.push_sql("UPDATE accounts SET balance_micros = balance_micros + ");
        out.push_bind_param::<BigInt, _>(&self.delta)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<Text, _>(&self.account)?;
    }
}

statement! {
    /// Uses `n` of an account's free requests, when it has that many.
    UseFreeRequests { account: String, n: i64 }
    |self, out| {
        out.push_sql(
            "UPDATE accounts SET free_requests_remaining = free_requests_remaining - ",
        );
        out.push_bind_param::<BigInt, _>(&self.n)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<Text, _>(&self.account)?;
        out.push_sql(" AND free_requests_remaining >= ");
        out.push_bind_param::<BigInt, _>(&self.n)?;
    }
}

statement! {
    /// Moves a day's free spend.
    AddFreeSpend { day: NaiveDateTime, delta: i64 }
    |self, out| {
        out.push_sql("UPDATE free_spend SET spent_micros = spent_micros + ");
        out.push_bind_param::<BigInt, _>(&self.delta)?;
        out.push_sql(" WHERE day = ");
        out.push_bind_param::<Timestamp, _>(&self.day)?;
    }
}

statement! {
    /// Adds to a day's free spend unless that would pass `cap`.
    AddFreeSpendWithin { day: NaiveDateTime, delta: i64, cap: i64 }
    |self, out| {
        out.push_sql("UPDATE free_spend SET spent_micros = spent_micros + ");
        out.push_bind_param::<BigInt, _>(&self.delta)?;
        out.push_sql(" WHERE day = ");
        out.push_bind_param::<Timestamp, _>(&self.day)?;
        out.push_sql(" AND spent_micros + ");
        out.push_bind_param::<BigInt, _>(&self.delta)?;
        out.push_sql(" <= ");
        out.push_bind_param::<BigInt, _>(&self.cap)?;
    }
}

/// The rows of one multi-row statement: 21 binds a row keeps it far below SQLite's limit.
pub const CHUNK: usize = 16;

/// Declares a multi-row `INSERT` on SQLite, `$name<N>`: `N` rows in one statement, written
/// from one list of column, SQL type and field so a column's name and its value cannot drift
/// apart. Diesel's own insert is cached too, but by its SQL, which it rebuilds and hashes for
/// every statement to find it: this one is found by type, one per `N`. `$all` runs a batch
/// through the `CHUNK`-row statement and its rest through the 1-row one, so only two statements
/// are ever prepared, and each runs (binds, steps, resets) once per `CHUNK` rows rather than
/// once per row.
macro_rules! multi_insert {
    ($(#[$doc:meta])* $name:ident, $all:ident, $row:ty, $table:literal,
     $first:ident: $fty:ty, $($col:ident: $ty:ty),+ $(,)?) => {
        $(#[$doc])*
        pub struct $name<'a, const N: usize>(pub &'a [&'a $row; N]);

        impl<const N: usize> QueryId for $name<'_, N> {
            type QueryId = $name<'static, N>;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl<const N: usize> QueryFragment<Sqlite> for $name<'_, N> {
            fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
                out.push_sql(concat!(
                    "INSERT INTO ", $table, " (", stringify!($first),
                    $(", ", stringify!($col)),+, ") VALUES "
                ));
                for (i, r) in self.0.iter().enumerate() {
                    out.push_sql(if i == 0 { "(" } else { ", (" });
                    out.push_bind_param::<$fty, _>(&r.$first)?;
                    $(
                        out.push_sql(", ");
                        out.push_bind_param::<$ty, _>(&r.$col)?;
                    )+
                    out.push_sql(")");
                }
                Ok(())
            }
        }

        /// Inserts `rows` through the two cached statements (see `multi_insert!`).
        pub fn $all(c: &mut SqliteConnection, rows: &[&$row]) -> QueryResult<()> {
            let chunks = rows.chunks_exact(CHUNK);
            let rest = chunks.remainder();
            for chunk in chunks {
                if let Ok(chunk) = <&[&$row; CHUNK]>::try_from(chunk) {
                    c.execute_returning_count(&$name(chunk))?;
                }
            }
            for row in rest {
                c.execute_returning_count(&$name(&[*row]))?;
            }
            Ok(())
        }
    };
}

multi_insert! {
    /// Usage rows.
    InsertUsage, insert_usage, UsageRow, "usage",
    id: Text,
    key_id: Text,
    provider: Text,
    model: Text,
    tier: Text,
    prompt_tokens: BigInt,
    completion_tokens: BigInt,
    cost_micros: BigInt,
    latency_ms: BigInt,
    ttft_ms: Nullable<BigInt>,
    status: Text,
    stream: Bool,
    upstream_request_id: Nullable<Text>,
    client_request_id: Nullable<Text>,
    created_at: SqliteTime,
    premium_cost_micros: BigInt,
    protocol: Text,
    cached_tokens: BigInt,
    reasoning_tokens: BigInt,
    account_id: Text,
    body_sha256: Nullable<Text>,
}

multi_insert! {
    /// Ledger entries (the settlement's debits).
    InsertLedger, insert_ledger, Entry, "ledger",
    id: Text,
    key_id: Text,
    kind: Text,
    reference: Text,
    amount_micros: BigInt,
    memo: Nullable<Text>,
    created_at: SqliteTime,
    account_id: Text,
}

impl DbConn {
    /// Runs one of the statements above on whichever backend this is; the number of rows.
    pub fn execute_cached<Q>(&mut self, query: Q) -> QueryResult<usize>
    where
        Q: QueryFragment<Sqlite> + QueryFragment<Pg> + QueryId,
    {
        match self {
            DbConn::Sqlite(c) => c.execute_returning_count(&query),
            DbConn::Pg(c) => c.execute_returning_count(&query),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::{Arc, Mutex};

    use chrono::NaiveDateTime;
    use diesel::connection::{Connection, InstrumentationEvent};

    use diesel::connection::SimpleConnection;

    use super::CHUNK;
    use crate::db::models::usage::UsageRow;
    use crate::db::models::{account, free_spend, ledger, usage};
    use crate::db::DbConn;

    #[derive(Default)]
    struct Seen {
        run: Vec<String>,
        cached: BTreeSet<String>,
    }

    /// A migrated SQLite database in a temporary directory (kept alive by the first half) and
    /// a connection to it. The rows these tests write name no real key or account: they are
    /// about statements and binds, not references, so foreign keys are off.
    fn migrated() -> (
        tempfile::TempDir,
        r2d2::PooledConnection<crate::db::Manager>,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let pool = crate::db::pool(&url, 1).expect("pool");
        let mut conn = pool.get().expect("conn");
        crate::db::migrate(&mut conn).expect("migrate");
        conn.batch_execute("PRAGMA foreign_keys = OFF")
            .expect("pragma");
        (dir, conn)
    }

    /// Every statement a settlement runs is prepared once per connection: a statement that
    /// ran but never entered the cache is parsed again each time.
    #[test]
    fn the_settlement_statements_stay_prepared() {
        let (_dir, mut conn) = migrated();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let log = seen.clone();
        let DbConn::Sqlite(c) = &mut *conn else {
            panic!("sqlite");
        };
        c.set_instrumentation(move |ev: InstrumentationEvent<'_>| {
            let mut s = log.lock().unwrap_or_else(|e| e.into_inner());
            match ev {
                InstrumentationEvent::StartQuery { query, .. } => {
                    let sql = query.to_string();
                    let sql = sql.split(" -- binds").next().unwrap_or_default().to_owned();
                    s.run.push(sql);
                }
                InstrumentationEvent::CacheQuery { sql, .. } => {
                    s.cached.insert(sql.to_owned());
                }
                _ => {}
            }
        });
        let day = NaiveDateTime::default();
        {
            use crate::db::schema::accounts::dsl::*;
            use diesel::{ExpressionMethods, RunQueryDsl};
            diesel::insert_into(accounts)
                .values((
                    id.eq("acct_x"),
                    created_at.eq(day),
                    balance_micros.eq(0),
                    free_requests_remaining.eq(10),
                ))
                .execute(&mut *conn)
                .expect("account");
        }
        for _ in 0..2 {
            conn.transaction::<_, crate::db::DbError, _>(|conn| {
                account::move_balance(conn, "acct_x", 5)?;
                account::use_free_requests(conn, "acct_x", 1)?;
                free_spend::adjust(conn, day, 7)?;
                usage::insert_many(conn, &[&row(crate::ids::ordered_id("u_"))])?;
                ledger::record_debits(conn, &[entry(crate::ids::ordered_id("l_"), 1)])?;
                Ok(())
            })
            .expect("runs");
        }
        let s = seen.lock().unwrap_or_else(|e| e.into_inner());
        let parsed_each_time: Vec<&String> = s
            .run
            .iter()
            .filter(|sql| !s.cached.contains(*sql))
            .filter(|sql| !matches!(sql.as_str(), "BEGIN" | "COMMIT" | "ROLLBACK"))
            .collect();
        assert!(parsed_each_time.is_empty(), "{parsed_each_time:#?}");
    }

    fn row(id: String) -> UsageRow {
        UsageRow {
            id,
            key_id: "key_1".into(),
            provider: "openai".into(),
            model: "gpt-4o-mini".into(),
            tier: "cheap".into(),
            prompt_tokens: 11,
            completion_tokens: 22,
            cost_micros: 33,
            latency_ms: 44,
            ttft_ms: Some(5),
            status: "ok".into(),
            stream: true,
            upstream_request_id: Some("up_1".into()),
            client_request_id: None,
            created_at: chrono::DateTime::from_timestamp_micros(1_764_000_000_123_456)
                .expect("time")
                .naive_utc(),
            premium_cost_micros: 66,
            protocol: "messages".into(),
            cached_tokens: 7,
            reasoning_tokens: 8,
            account_id: "acct_x".into(),
            body_sha256: Some("ab".repeat(32)),
        }
    }

    /// The hand-written insert binds every column to its own field: what is read back is
    /// what was written, nulls included, whether a row went through the multi-row statement
    /// or the single-row one (batches of 2, of `CHUNK` and of two chunks and some).
    #[test]
    fn a_usage_row_reads_back_as_written() {
        use crate::db::schema::usage::dsl as u;
        use diesel::{QueryDsl, RunQueryDsl, SelectableHelper};
        let (_dir, mut conn) = migrated();
        // Every field differs from row to row, so a bind shifted by one row or one column
        // reads back as a different row.
        let make = |batch: usize, i: usize| {
            let n = (batch * 100 + i) as i64;
            let full = row(format!("u_{batch}_{i:03}"));
            if i.is_multiple_of(2) {
                return UsageRow {
                    key_id: format!("key_{n}"),
                    provider: format!("p{n}"),
                    model: format!("m{n}"),
                    prompt_tokens: n,
                    completion_tokens: n + 1,
                    cost_micros: n + 2,
                    latency_ms: n + 3,
                    ttft_ms: Some(n + 4),
                    upstream_request_id: Some(format!("up_{n}")),
                    premium_cost_micros: n + 5,
                    cached_tokens: n + 6,
                    reasoning_tokens: n + 7,
                    account_id: format!("acct_{n}"),
                    ..full
                };
            }
            UsageRow {
                ttft_ms: None,
                stream: false,
                upstream_request_id: None,
                client_request_id: Some(format!("client_{n}")),
                body_sha256: None,
                status: "withdrawn".into(),
                prompt_tokens: n,
                ..full
            }
        };
        let mut written = Vec::new();
        for (batch, size) in [2, CHUNK, 2 * CHUNK + 3].into_iter().enumerate() {
            let rows: Vec<UsageRow> = (0..size).map(|i| make(batch, i)).collect();
            let refs: Vec<&UsageRow> = rows.iter().collect();
            usage::insert_many(&mut conn, &refs).expect("insert");
            written.extend(rows);
        }
        let back: Vec<UsageRow> = u::usage
            .order(u::id)
            .select(UsageRow::as_select())
            .load(&mut *conn)
            .expect("load");
        let show = |r: &UsageRow| format!("{r:?}");
        assert_eq!(
            back.iter().map(show).collect::<Vec<_>>(),
            written.iter().map(show).collect::<Vec<_>>()
        );
    }

    fn entry(id: String, n: i64) -> ledger::Entry {
        ledger::Entry {
            key_id: format!("key_{n}"),
            kind: ledger::DEBIT.into(),
            reference: format!("ref_{id}"),
            amount_micros: -n,
            memo: (n % 3 != 0).then(|| format!("memo {n}")),
            created_at: chrono::DateTime::from_timestamp_micros(1_764_000_000_000_000 + n)
                .expect("time")
                .naive_utc(),
            account_id: format!("acct_{n}"),
            id,
        }
    }

    /// Debits read back as written, through the multi-row statement and the single-row one.
    #[test]
    fn ledger_entries_read_back_as_written() {
        use crate::db::schema::ledger::dsl as l;
        use diesel::{QueryDsl, RunQueryDsl, SelectableHelper};
        let (_dir, mut conn) = migrated();
        let mut written = Vec::new();
        for (batch, size) in [1, CHUNK, 2 * CHUNK + 3].into_iter().enumerate() {
            let entries: Vec<ledger::Entry> = (0..size)
                .map(|i| entry(format!("l_{batch}_{i:03}"), (batch * 100 + i) as i64))
                .collect();
            ledger::record_debits(&mut conn, &entries).expect("insert");
            written.extend(entries);
        }
        let back: Vec<ledger::Entry> = l::ledger
            .order(l::id)
            .select(ledger::Entry::as_select())
            .load(&mut *conn)
            .expect("load");
        let show = |e: &ledger::Entry| format!("{e:?}");
        assert_eq!(
            back.iter().map(show).collect::<Vec<_>>(),
            written.iter().map(show).collect::<Vec<_>>()
        );
    }
}
