//! `GET /api/requests`: a page of a key's (or an account's) usage rows, as JSON or CSV.

use serde::Serialize;

/// One request the gateway answered (one usage row).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestView {
    pub id: String,
    /// RFC 3339, UTC.
    pub time: String,
    pub key_id: String,
    pub protocol: String,
    pub model: String,
    pub provider: String,
    pub tier: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    pub cost_usd: f64,
    /// What the premium tier's default model would have cost, minus the cost.
    pub savings_usd: f64,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    pub status: String,
    pub stream: bool,
    pub client_request_id: Option<String>,
}

/// A page, newest first; `nextBefore` is the `before=` of the next (older) page, when there is one.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestsPage {
    pub data: Vec<RequestView>,
    pub has_more: bool,
    pub next_before: Option<String>,
}

const CSV_HEADER: &str = "id,time,keyId,protocol,model,provider,tier,promptTokens,\
completionTokens,cachedTokens,costUsd,savingsUsd,latencyMs,ttftMs,status,stream,clientRequestId";

/// RFC 4180: a field with a comma, quote or line break is quoted, its quotes doubled. A field a
/// spreadsheet would run as a formula (`=`, `+`, `-`, `@` first) gets a leading `'`, because a
/// client request id is whatever the client sent.
fn field(text: &str) -> String {
    let text = match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_owned(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// The page as CSV: a header line, then one line per row (CRLF, as RFC 4180 has it).
pub fn csv(rows: &[RequestView]) -> String {
    let mut out = String::with_capacity(64 * (rows.len() + 1));
    out.push_str(CSV_HEADER);
    out.push_str("\r\n");
    for r in rows {
        let cells = [
            field(&r.id),
            field(&r.time),
            field(&r.key_id),
            field(&r.protocol),
            field(&r.model),
            field(&r.provider),
            field(&r.tier),
            r.prompt_tokens.to_string(),
            r.completion_tokens.to_string(),
            r.cached_tokens.to_string(),
            r.cost_usd.to_string(),
            r.savings_usd.to_string(),
            r.latency_ms.to_string(),
            r.ttft_ms.map(|t| t.to_string()).unwrap_or_default(),
            field(&r.status),
            r.stream.to_string(),
            field(r.client_request_id.as_deref().unwrap_or("")),
        ];
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(field("=1+1"), "'=1+1");
        assert_eq!(field("-2,3"), "\"'-2,3\"");
    }
}
