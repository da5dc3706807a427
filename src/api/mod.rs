//! OpenAI wire types shared by handlers and provider adapters.

pub mod breakdown;
pub mod chat;
pub mod history;
pub mod messages;
pub mod requests;
pub mod responses;
pub mod usage;
pub mod views;

pub use chat::{ChatRequest, Message, Role};
pub use usage::Usage;
