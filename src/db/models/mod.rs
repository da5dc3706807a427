//! Queries, one file per table.

pub mod account;
pub mod api_key;
pub mod free_spend;
pub mod hold;
pub mod invoice;
pub mod key_mint;
pub mod ledger;
pub mod notification;
pub mod pin;
pub mod response;
pub mod usage;
