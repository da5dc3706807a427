//! OpenAI wire types shared by handlers and provider adapters.

pub mod chat;
pub mod messages;
pub mod usage;

pub use chat::{ChatRequest, Message, Role};
pub use usage::Usage;
