//! Actors hold state, not I/O: the handler performs upstream calls on its own worker (awc's
//! client is `!Send`) and tells the actors what happened.

pub mod arbiter;
pub mod budget;
pub mod budgets;
mod denied;
pub mod free_spend;
pub mod invoice_watcher;
pub mod provider;
