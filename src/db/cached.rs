//! Statements diesel keeps prepared although it would not by itself.
//!
//! Diesel prepares every `UPDATE` (and every insert of a variable number of rows) afresh,
//! since in general their SQL may differ from one call to the next. Parsing the statement
//! then costs more than running it: on the settlement path that was most of a request's
//! database work. An update whose `SET` and `WHERE` are fixed by its type (no optional
//! changeset fields) has the same SQL every time, so [`DbConn::execute_cached`] lets the
//! statement cache keep it by type, as diesel does for its own static queries.

use diesel::backend::Backend;
use diesel::pg::{Pg, PgConnection};
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sqlite::{Sqlite, SqliteConnection};
use diesel::{QueryResult, RunQueryDsl};

use super::DbConn;

/// A statement whose SQL its type `Q` fixes; binds are owned, so `Q` is `'static`.
pub struct Cached<Q>(Q);

impl<Q: 'static> QueryId for Cached<Q> {
    type QueryId = Q;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<Q: QueryFragment<DB>, DB: Backend> QueryFragment<DB> for Cached<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q, Conn> RunQueryDsl<Conn> for Cached<Q> {}

impl DbConn {
    /// Runs `query` through the connection's statement cache. Only for statements whose SQL
    /// does not depend on their values (see the module's comment).
    pub fn execute_cached<Q>(&mut self, query: Q) -> QueryResult<usize>
    where
        Q: QueryFragment<Sqlite> + QueryFragment<Pg> + 'static,
    {
        let query = Cached(query);
        match self {
            DbConn::Sqlite(c) => RunQueryDsl::<SqliteConnection>::execute(query, c),
            DbConn::Pg(c) => RunQueryDsl::<PgConnection>::execute(query, c),
        }
    }
}
