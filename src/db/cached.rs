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
use diesel::sqlite::Sqlite;
use diesel::QueryResult;

use super::models::usage::UsageRow;
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

/// One usage row, on SQLite (each row of a batch goes through this one prepared statement).
/// Diesel's own insert is cached too, but by its SQL, which it rebuilds and hashes for every
/// row to find the statement: a third of what the insert cost. This one is found by type.
pub struct InsertUsage<'a>(pub &'a UsageRow);

impl QueryId for InsertUsage<'_> {
    type QueryId = InsertUsage<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

/// Writes `INSERT INTO usage (columns) VALUES (binds)` from one list of column, SQL type and
/// value, so a column's name and its value cannot drift apart.
macro_rules! insert_usage {
    ($out:ident, $first:ident: $fty:ty = $fval:expr, $($col:ident: $ty:ty = $val:expr),+ $(,)?) => {
        $out.push_sql(concat!(
            "INSERT INTO usage (", stringify!($first), $(", ", stringify!($col)),+, ") VALUES ("
        ));
        $out.push_bind_param::<$fty, _>($fval)?;
        $(
            $out.push_sql(", ");
            $out.push_bind_param::<$ty, _>($val)?;
        )+
        $out.push_sql(")");
    };
}

impl QueryFragment<Sqlite> for InsertUsage<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        let r = self.0;
        insert_usage!(out,
            id: Text = &r.id,
            key_id: Text = &r.key_id,
            provider: Text = &r.provider,
            model: Text = &r.model,
            tier: Text = &r.tier,
            prompt_tokens: BigInt = &r.prompt_tokens,
            completion_tokens: BigInt = &r.completion_tokens,
            cost_micros: BigInt = &r.cost_micros,
            latency_ms: BigInt = &r.latency_ms,
            ttft_ms: Nullable<BigInt> = &r.ttft_ms,
            status: Text = &r.status,
            stream: Bool = &r.stream,
            upstream_request_id: Nullable<Text> = &r.upstream_request_id,
            client_request_id: Nullable<Text> = &r.client_request_id,
            created_at: Timestamp = &r.created_at,
            premium_cost_micros: BigInt = &r.premium_cost_micros,
            protocol: Text = &r.protocol,
            cached_tokens: BigInt = &r.cached_tokens,
            reasoning_tokens: BigInt = &r.reasoning_tokens,
            account_id: Text = &r.account_id,
            body_sha256: Nullable<Text> = &r.body_sha256,
        );
        Ok(())
    }
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

    use crate::db::models::usage::UsageRow;
    use crate::db::models::{account, free_spend, ledger, usage};
    use crate::db::DbConn;

    #[derive(Default)]
    struct Seen {
        run: Vec<String>,
        cached: BTreeSet<String>,
    }

    /// Every statement a settlement runs is prepared once per connection: a statement that
    /// ran but never entered the cache is parsed again each time.
    #[test]
    fn the_settlement_statements_stay_prepared() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let pool = crate::db::pool(&url, 1).expect("pool");
        let mut conn = pool.get().expect("conn");
        crate::db::migrate(&mut conn).expect("migrate");
        // The usage rows name no real key: this test is about statements, not references.
        conn.batch_execute("PRAGMA foreign_keys = OFF")
            .expect("pragma");
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
                usage::insert_many(conn, &[row(crate::ids::ordered_id("u_"))])?;
                ledger::record_debits(conn, &[])?;
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
    /// what was written, nulls included.
    #[test]
    fn a_usage_row_reads_back_as_written() {
        use crate::db::schema::usage::dsl as u;
        use diesel::{QueryDsl, RunQueryDsl, SelectableHelper};
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let pool = crate::db::pool(&url, 1).expect("pool");
        let mut conn = pool.get().expect("conn");
        crate::db::migrate(&mut conn).expect("migrate");
        conn.batch_execute("PRAGMA foreign_keys = OFF")
            .expect("pragma");
        let full = row("u_full".into());
        let sparse = UsageRow {
            id: "u_sparse".into(),
            ttft_ms: None,
            stream: false,
            upstream_request_id: None,
            client_request_id: Some("client_9".into()),
            body_sha256: None,
            ..row(String::new())
        };
        usage::insert_many(&mut conn, &[full.clone(), sparse.clone()]).expect("insert");
        let back: Vec<UsageRow> = u::usage
            .order(u::id)
            .select(UsageRow::as_select())
            .load(&mut *conn)
            .expect("load");
        let show = |r: &UsageRow| format!("{r:?}");
        assert_eq!(
            back.iter().map(show).collect::<Vec<_>>(),
            vec![show(&full), show(&sparse)]
        );
    }
}
