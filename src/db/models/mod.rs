//! Queries, one file per table.

pub mod api_key;
pub mod usage;
