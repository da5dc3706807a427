//! The `usage` table: one row per chat request that reached an upstream.

use chrono::NaiveDateTime;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::super::schema::{api_keys, usage};
use super::super::{DbConn, DbError};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = usage, treat_none_as_default_value = false)]
pub struct UsageRow {
    pub id: String,
    pub key_id: String,
    pub provider: String,
    pub model: String,
    pub tier: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_micros: i64,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    pub status: String,
    pub stream: bool,
    pub upstream_request_id: Option<String>,
    pub client_request_id: Option<String>,
    pub created_at: NaiveDateTime,
    /// The same usage priced at the premium tier's default model (the savings baseline).
    pub premium_cost_micros: i64,
    /// The client protocol: `chat`, `responses` or `messages`.
    pub protocol: String,
    pub cached_tokens: i64,
    pub reasoning_tokens: i64,
    pub account_id: String,
    /// Hex SHA-256 of the request body as received (`X-Pura-Body-Sha256`); none on older rows.
    pub body_sha256: Option<String>,
}

/// Inserts rows with multi-row statements (inside the group commit's transaction).
pub fn insert_many(conn: &mut DbConn, rows: &[&UsageRow]) -> Result<(), diesel::result::Error> {
    // Multi-row VALUES is backend-specific in diesel (SQLite has no DEFAULT keyword), so this
    // is one of the few places that matches on the connection.
    match conn {
        // Diesel never caches a statement whose row count varies, and preparing this one costs
        // more than running it: on SQLite (no round trips) the rows go through two cached
        // statements of fixed size instead.
        DbConn::Sqlite(c) => crate::db::cached::insert_usage(c, rows)?,
        DbConn::Pg(c) => {
            diesel::insert_into(usage::table)
                .values(rows.to_vec())
                .execute(c)?;
        }
    };
    Ok(())
}

/// Which of `ids` have a row (the settlement writer, after a commit whose answer was lost).
pub fn existing_ids(conn: &mut DbConn, ids: &[&str]) -> Result<Vec<String>, diesel::result::Error> {
    usage::table
        .filter(usage::id.eq_any(ids))
        .select(usage::id)
        .load(conn)
}

/// Total cost in micro-dollars of a key's requests since `since`.
pub fn spend_since(conn: &mut DbConn, key: &str, since: NaiveDateTime) -> Result<i64, DbError> {
    // CAST keeps the type BigInt on PostgreSQL, whose SUM(bigint) is numeric.
    Ok(usage::table
        .filter(usage::key_id.eq(key))
        .filter(usage::created_at.ge(since))
        .select(sql::<BigInt>(
            "CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT)",
        ))
        .first(conn)?)
}

/// The ids of an account's keys, as a subquery. An account's rows are read through its keys
/// (a key never changes account) on the `(key_id, created_at)` index: a second index on
/// `(account_id, created_at)` cost every inserted row another B-tree insert, about a quarter of
/// the insert (migration `2026-12-01-000011_usage_one_index`).
fn keys_of(
    account_id: &str,
) -> diesel::dsl::Select<
    diesel::dsl::Filter<api_keys::table, diesel::dsl::Eq<api_keys::account_id, String>>,
    api_keys::id,
> {
    api_keys::table
        .filter(api_keys::account_id.eq(account_id.to_owned()))
        .select(api_keys::id)
}

/// Total cost of each of an account's keys since `since` (keys with no rows are absent).
pub fn spend_by_key_since(
    conn: &mut DbConn,
    account_id: &str,
    since: NaiveDateTime,
) -> Result<Vec<(String, i64)>, DbError> {
    Ok(usage::table
        .filter(usage::key_id.eq_any(keys_of(account_id)))
        .filter(usage::created_at.ge(since))
        .group_by(usage::key_id)
        .select((
            usage::key_id,
            sql::<BigInt>("CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT)"),
        ))
        .load(conn)?)
}

/// All rows of a key, newest first (tests and reports).
pub fn for_key(conn: &mut DbConn, key: &str) -> Result<Vec<UsageRow>, DbError> {
    Ok(usage::table
        .filter(usage::key_id.eq(key))
        .order(usage::created_at.desc())
        .select(UsageRow::as_select())
        .load(conn)?)
}

/// The columns a report needs, for one key's rows since `since`.
#[derive(Debug, Clone, Queryable)]
pub struct ReportRow {
    pub key_id: String,
    pub provider: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_micros: i64,
    pub latency_ms: i64,
    pub created_at: NaiveDateTime,
    pub premium_cost_micros: i64,
    pub model: String,
    pub tier: String,
}

/// Whose rows a report reads.
#[derive(Debug, Clone)]
pub enum Scope {
    Key(String),
    Account(String),
}

pub fn report_rows(
    conn: &mut DbConn,
    scope: &Scope,
    since: NaiveDateTime,
) -> Result<Vec<ReportRow>, DbError> {
    let query = usage::table
        .filter(usage::created_at.ge(since))
        .into_boxed();
    let query = match scope {
        Scope::Key(id) => query.filter(usage::key_id.eq(id.clone())),
        Scope::Account(id) => query.filter(usage::key_id.eq_any(keys_of(id))),
    };
    Ok(query
        .select((
            usage::key_id,
            usage::provider,
            usage::prompt_tokens,
            usage::completion_tokens,
            usage::cost_micros,
            usage::latency_ms,
            usage::created_at,
            usage::premium_cost_micros,
            usage::model,
            usage::tier,
        ))
        .load(conn)?)
}

/// Which rows a page of `GET /api/requests` holds.
#[derive(Debug, Clone)]
pub struct PageFilter {
    pub scope: Scope,
    /// Only rows whose id sorts before this one: ids are time-ordered (`ids::ordered_id`), so
    /// the cursor pages stably backwards through time even while new rows arrive.
    pub before: Option<String>,
    pub model: Option<String>,
    pub status: Option<String>,
    pub limit: i64,
}

/// A page of rows, newest first.
pub fn page(conn: &mut DbConn, filter: &PageFilter) -> Result<Vec<UsageRow>, DbError> {
    let mut query = usage::table.into_boxed();
    query = match &filter.scope {
        Scope::Key(id) => query.filter(usage::key_id.eq(id.clone())),
        Scope::Account(id) => query.filter(usage::key_id.eq_any(keys_of(id))),
    };
    if let Some(before) = &filter.before {
        query = query.filter(usage::id.lt(before.clone()));
    }
    if let Some(model) = &filter.model {
        query = query.filter(usage::model.eq(model.clone()));
    }
    if let Some(status) = &filter.status {
        query = query.filter(usage::status.eq(status.clone()));
    }
    Ok(query
        .order(usage::id.desc())
        .limit(filter.limit)
        .select(UsageRow::as_select())
        .load(conn)?)
}
