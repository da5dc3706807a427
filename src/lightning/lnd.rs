//! LND's REST API: `POST /v1/invoices` (`value` in sats) answers `r_hash` in base64 and the
//! `payment_request`; `GET /v1/invoice/{r_hash hex}` reports `state` (OPEN, ACCEPTED,
//! SETTLED, CANCELED). The macaroon travels as hex in `Grpc-Metadata-macaroon`; TLS uses the
//! node's own certificate (see `Backend::http_client`).

use std::time::Duration;

use base64::Engine;
use serde::Serialize;
use serde_json::Value;

use super::{json_body, InvoiceState, LightningBackend, LnError, NewInvoice};
use crate::secret::Secret;

const MACAROON_HEADER: &str = "Grpc-Metadata-macaroon";

#[derive(Debug, Clone)]
pub struct Lnd {
    url: String,
    macaroon_hex: Secret,
}

impl Lnd {
    pub fn new(url: String, macaroon_hex: Secret) -> Lnd {
        Lnd { url, macaroon_hex }
    }
}

/// The body of `POST /v1/invoices`. int64 fields are strings in LND's JSON mapping; it
/// accepts both on input.
#[derive(Serialize)]
struct AddInvoice<'a> {
    value: String,
    memo: &'a str,
    expiry: String,
}

/// LND encodes bytes fields as standard base64 in JSON.
fn hash_hex(r_hash_b64: &str) -> Result<String, LnError> {
    let engine = base64::engine::general_purpose::STANDARD;
    let bytes = engine
        .decode(r_hash_b64)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(r_hash_b64))
        .map_err(|e| LnError::Malformed(format!("r_hash is not base64: {e}")))?;
    if bytes.len() != 32 {
        return Err(LnError::Malformed(format!(
            "r_hash has {} bytes",
            bytes.len()
        )));
    }
    Ok(hex::encode(bytes))
}

impl LightningBackend for Lnd {
    async fn create_invoice(
        &self,
        http: &awc::Client,
        amount_sats: i64,
        memo: &str,
        expiry: Duration,
    ) -> Result<NewInvoice, LnError> {
        let body = AddInvoice {
            value: amount_sats.to_string(),
            memo,
            expiry: expiry.as_secs().to_string(),
        };
        let resp = http
            .post(format!("{}/v1/invoices", self.url))
            .insert_header((MACAROON_HEADER, self.macaroon_hex.expose()))
            .send_json(&body)
            .await
            .map_err(|e| LnError::Unreachable(e.to_string()))?;
        let v = json_body(resp).await?;
        let r_hash = v
            .get("r_hash")
            .and_then(Value::as_str)
            .ok_or_else(|| LnError::Malformed(format!("no r_hash in {v}")))?;
        let bolt11 = v
            .get("payment_request")
            .and_then(Value::as_str)
            .ok_or_else(|| LnError::Malformed(format!("no payment_request in {v}")))?;
        Ok(NewInvoice {
            payment_hash: hash_hex(r_hash)?,
            bolt11: bolt11.to_owned(),
            checkout_url: None,
        })
    }

    async fn status(
        &self,
        http: &awc::Client,
        payment_hash: &str,
    ) -> Result<InvoiceState, LnError> {
        let resp = http
            .get(format!("{}/v1/invoice/{payment_hash}", self.url))
            .insert_header((MACAROON_HEADER, self.macaroon_hex.expose()))
            .send()
            .await
            .map_err(|e| LnError::Unreachable(e.to_string()))?;
        let v = json_body(resp).await?;
        Ok(match v.get("state").and_then(Value::as_str) {
            Some("SETTLED") => InvoiceState::Paid,
            Some("CANCELED") => InvoiceState::Failed,
            Some(_) => InvoiceState::Pending,
            None => return Err(LnError::Malformed(format!("no state in {v}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_hash_base64_becomes_hex() {
        let b64 = base64::engine::general_purpose::STANDARD.encode([0xabu8; 32]);
        assert_eq!(hash_hex(&b64).expect("valid"), "ab".repeat(32));
        assert!(hash_hex("not base64!").is_err());
        assert!(hash_hex("AAAA").is_err());
    }
}
