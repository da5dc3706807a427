//! Lightning backends behind one trait: create an invoice, look up whether it is paid. Two real
//! implementations, LNbits and LND REST, and the BOLT11 checks on what they return. They only
//! speak to the node: storing invoices and crediting them is the wallet's (`src/wallet/`).
//! Backends do HTTP with an `awc::Client` that the caller owns (the handler's per-worker
//! client, or the InvoiceWatcher's own), because awc is `!Send`.

pub mod bolt11;
pub mod lnbits;
pub mod lnd;

use std::time::Duration;

use crate::config::{parse_duration, LightningConfig};
use crate::secret::Secret;

/// The per-worker HTTP client for the Lightning backend (awc is `!Send`).
pub struct LightningHttp(pub awc::Client);

/// An invoice as a backend created it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewInvoice {
    /// Hex.
    pub payment_hash: String,
    pub bolt11: String,
    /// A hosted checkout page, for backends that have one.
    pub checkout_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceState {
    Pending,
    Paid,
    /// Expired or failed on the backend's side.
    Failed,
}

#[derive(Debug, thiserror::Error)]
pub enum LnError {
    #[error("lightning backend unreachable: {0}")]
    Unreachable(String),
    #[error("lightning backend answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("lightning backend answer is malformed: {0}")]
    Malformed(String),
    #[error("lightning backend returned an invalid invoice: {0}")]
    BadInvoice(String),
}

/// What every backend offers.
#[expect(
    async_fn_in_trait,
    reason = "backends run on one thread with awc, whose futures are !Send anyway"
)]
pub trait LightningBackend {
    /// Creates an invoice for `amount_sats`.
    async fn create_invoice(
        &self,
        http: &awc::Client,
        amount_sats: i64,
        memo: &str,
        expiry: Duration,
    ) -> Result<NewInvoice, LnError>;

    /// The state of the invoice with this payment hash.
    async fn status(&self, http: &awc::Client, payment_hash: &str)
        -> Result<InvoiceState, LnError>;
}

/// The configured backend.
#[derive(Debug, Clone)]
pub enum Backend {
    Lnbits(lnbits::Lnbits),
    Lnd(lnd::Lnd),
}

impl Backend {
    /// `None` for `backend = "none"`; an error names what is missing.
    pub fn from_config(
        c: &LightningConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Backend>, String> {
        let url = c.url.trim_end_matches('/').to_owned();
        match c.backend.as_str() {
            "none" => Ok(None),
            "lnbits" => {
                let key = env(&c.invoice_key_env)
                    .filter(|k| !k.is_empty())
                    .ok_or_else(|| {
                        format!(
                            "lightning.backend = \"lnbits\" needs ${}",
                            c.invoice_key_env
                        )
                    })?;
                Ok(Some(Backend::Lnbits(lnbits::Lnbits::new(
                    url,
                    Secret::new(key),
                ))))
            }
            "lnd" => {
                let macaroon = env(&c.macaroon_env)
                    .filter(|k| !k.is_empty())
                    .ok_or_else(|| {
                        format!("lightning.backend = \"lnd\" needs ${}", c.macaroon_env)
                    })?;
                Ok(Some(Backend::Lnd(lnd::Lnd::new(
                    url,
                    Secret::new(macaroon),
                ))))
            }
            other => Err(format!(
                "lightning.backend `{other}` is not one of lnbits, lnd, none"
            )),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Lnbits(_) => "lnbits",
            Backend::Lnd(_) => "lnd",
        }
    }

    /// An HTTP client for this backend: LND's self-signed certificate is trusted when given.
    pub fn http_client(c: &LightningConfig) -> awc::Client {
        let mut connector = awc::Connector::new().timeout(Duration::from_secs(5));
        if !c.tls_cert_path.is_empty() {
            match tls_with_cert(&c.tls_cert_path) {
                Ok(ssl) => connector = connector.openssl(ssl),
                Err(e) => log::error!("lightning.tls_cert_path {}: {e}", c.tls_cert_path),
            }
        }
        awc::Client::builder()
            .timeout(Duration::from_secs(15))
            .connector(connector)
            .finish()
    }
}

fn tls_with_cert(path: &str) -> Result<openssl::ssl::SslConnector, openssl::error::ErrorStack> {
    let mut b = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls())?;
    b.set_ca_file(path)?;
    b.set_alpn_protos(b"\x08http/1.1")?;
    Ok(b.build())
}

impl LightningBackend for Backend {
    async fn create_invoice(
        &self,
        http: &awc::Client,
        amount_sats: i64,
        memo: &str,
        expiry: Duration,
    ) -> Result<NewInvoice, LnError> {
        let invoice = match self {
            Backend::Lnbits(b) => b.create_invoice(http, amount_sats, memo, expiry).await?,
            Backend::Lnd(b) => b.create_invoice(http, amount_sats, memo, expiry).await?,
        };
        // Never hand out an invoice we have not checked: right amount, right hash, valid signature.
        bolt11::verify(&invoice.bolt11, amount_sats, &invoice.payment_hash)
            .map_err(LnError::BadInvoice)?;
        Ok(invoice)
    }

    async fn status(
        &self,
        http: &awc::Client,
        payment_hash: &str,
    ) -> Result<InvoiceState, LnError> {
        match self {
            Backend::Lnbits(b) => b.status(http, payment_hash).await,
            Backend::Lnd(b) => b.status(http, payment_hash).await,
        }
    }
}

/// Poll interval and invoice expiry from config.
pub fn timings(c: &LightningConfig) -> (Duration, Duration) {
    (
        parse_duration(&c.poll_interval).unwrap_or(Duration::from_secs(2)),
        parse_duration(&c.invoice_expiry).unwrap_or(Duration::from_secs(3600)),
    )
}

/// Reads a JSON body of a backend response, turning non-2xx into [`LnError::Status`].
pub(crate) async fn json_body<S>(
    mut resp: awc::ClientResponse<S>,
) -> Result<serde_json::Value, LnError>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
{
    let status = resp.status();
    let body = resp
        .body()
        .limit(1024 * 1024)
        .await
        .map_err(|e| LnError::Unreachable(e.to_string()))?;
    if !status.is_success() {
        return Err(LnError::Status {
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body).chars().take(300).collect(),
        });
    }
    serde_json::from_slice(&body).map_err(|e| LnError::Malformed(e.to_string()))
}
