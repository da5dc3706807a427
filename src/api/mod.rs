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

/// A client's JSON body: read as text when it is UTF-8 (checked in one pass), where serde
/// reading bytes checks each string again; otherwise as bytes, for serde's own error.
pub fn from_json<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// Read as text or as bytes, a body gives the same value, and the same error.
    #[test]
    fn a_body_reads_the_same_as_text_or_as_bytes() {
        let bodies: [&[u8]; 6] = [
            br#"{"model":"m","messages":[{"role":"user","content":"h\u00e9 \"x\""}]}"#,
            "{\"a\":\"d\u{e9}j\u{e0} vu \u{1f600}\"}".as_bytes(),
            b"{\"a\":\"\xff\"}",
            b"{\"a\":\"\\ud800\"}",
            b"{\"a\":1,}",
            b"[1,2",
        ];
        for body in bodies {
            let text: serde_json::Result<Value> = super::from_json(body);
            let bytes: serde_json::Result<Value> = serde_json::from_slice(body);
            match (text, bytes) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                (a, b) => panic!("{body:?}: {a:?} against {b:?}"),
            }
        }
    }
}
