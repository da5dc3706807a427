//! Queries, one file per table.

pub mod api_key;
pub mod invoice;
pub mod ledger;
pub mod notification;
pub mod response;
pub mod usage;
