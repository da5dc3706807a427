//! LNbits: `POST /api/v1/payments` with the wallet's invoice key creates an invoice (amount in
//! sats), `GET /api/v1/payments/{hash}` reports it. Only `paid: true` counts as paid.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::{json_body, InvoiceState, LightningBackend, LnError, NewInvoice};
use crate::secret::Secret;

#[derive(Debug, Clone)]
pub struct Lnbits {
    url: String,
    invoice_key: Secret,
}

impl Lnbits {
    pub fn new(url: String, invoice_key: Secret) -> Lnbits {
        Lnbits { url, invoice_key }
    }
}

/// The body of `POST /api/v1/payments` for an incoming payment.
#[derive(Serialize)]
struct CreateInvoice<'a> {
    out: bool,
    amount: i64,
    memo: &'a str,
    expiry: u64,
    unit: &'static str,
}

fn field(v: &Value, name: &str) -> Result<String, LnError> {
    v.get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| LnError::Malformed(format!("no `{name}` in {v}")))
}

impl LightningBackend for Lnbits {
    async fn create_invoice(
        &self,
        http: &awc::Client,
        amount_sats: i64,
        memo: &str,
        expiry: Duration,
    ) -> Result<NewInvoice, LnError> {
        let body = CreateInvoice {
            out: false,
            amount: amount_sats,
            memo,
            expiry: expiry.as_secs(),
            unit: "sat",
        };
        let resp = http
            .post(format!("{}/api/v1/payments", self.url))
            .insert_header(("X-Api-Key", self.invoice_key.expose()))
            .send_json(&body)
            .await
            .map_err(|e| LnError::Unreachable(e.to_string()))?;
        let v = json_body(resp).await?;
        let bolt11 = field(&v, "bolt11").or_else(|_| field(&v, "payment_request"))?;
        Ok(NewInvoice {
            payment_hash: field(&v, "payment_hash")?,
            bolt11,
            checkout_url: None,
        })
    }

    async fn status(
        &self,
        http: &awc::Client,
        payment_hash: &str,
    ) -> Result<InvoiceState, LnError> {
        let resp = http
            .get(format!("{}/api/v1/payments/{payment_hash}", self.url))
            .insert_header(("X-Api-Key", self.invoice_key.expose()))
            .send()
            .await
            .map_err(|e| LnError::Unreachable(e.to_string()))?;
        let v = json_body(resp).await?;
        let paid = v.get("paid").and_then(Value::as_bool).unwrap_or(false);
        let status = v
            .get("status")
            .or_else(|| v.pointer("/details/status"))
            .and_then(Value::as_str)
            .unwrap_or("");
        Ok(if paid || status == "success" {
            InvoiceState::Paid
        } else if status == "failed" {
            InvoiceState::Failed
        } else {
            InvoiceState::Pending
        })
    }
}
