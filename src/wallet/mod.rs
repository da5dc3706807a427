//! The wallet: one service for the money that comes in over Lightning. It opens invoices (a
//! top-up through `POST /api/wallet/fund`, or the one a 402 carries, reusing a still-pending
//! one), answers what the client may see of them, and credits a paid invoice exactly once
//! (`credit.rs`; the conditional pending → paid transaction itself is in
//! `db/models/invoice.rs`). It talks to the node through a Lightning backend (`lightning/`),
//! stores through `db/`, and leaves telling the key's BudgetActor to its caller (the
//! InvoiceWatcher, the admin route), so it depends on no actor.

mod credit;
pub mod page;
mod view;

use std::time::Duration;

use crate::config::LightningConfig;
use crate::db::models::api_key::ApiKey;
use crate::db::models::invoice::{self, Invoice};
use crate::db::{self, Pool};
use crate::error::ApiError;
use crate::lightning::{self, Backend, InvoiceState, LightningBackend, LnError};

pub use view::visible_status;

/// A pending invoice is reused for a 402 only while it has at least this long to live.
const REUSE_MARGIN: chrono::Duration = chrono::Duration::minutes(2);
/// Expired invoices are still watched this long, so a late payment is credited, not lost.
const LATE_PAYMENT_GRACE: chrono::Duration = chrono::Duration::hours(24);

/// Cheap to clone: the pool and the backend are handles.
#[derive(Clone)]
pub struct Wallet {
    pool: Pool,
    /// `None` when `lightning.backend = "none"`.
    backend: Option<Backend>,
    config: LightningConfig,
    expiry: Duration,
    /// This replica's id in the credit announcements.
    replica_id: String,
}

impl Wallet {
    pub fn new(
        pool: Pool,
        backend: Option<Backend>,
        config: LightningConfig,
        replica_id: String,
    ) -> Wallet {
        let (_, expiry) = lightning::timings(&config);
        Wallet {
            pool,
            backend,
            config,
            expiry,
            replica_id,
        }
    }

    /// The configured backend, or the 503 that `backend = "none"` answers.
    pub fn backend(&self) -> Result<&Backend, ApiError> {
        self.backend.as_ref().ok_or_else(|| {
            ApiError::Unavailable(
                "Lightning funding is not configured on this gateway (lightning.backend = \"none\")."
                    .into(),
            )
        })
    }

    /// How often the InvoiceWatcher asks the backend.
    pub fn poll_interval(&self) -> Duration {
        lightning::timings(&self.config).0
    }

    /// An HTTP client for the backend (made on the thread that uses it: awc is `!Send`).
    pub fn http_client(&self) -> awc::Client {
        Backend::http_client(&self.config)
    }

    /// `POST /api/wallet/fund`: a new invoice of `amount_sats` within the configured range.
    pub async fn fund(
        &self,
        http: &awc::Client,
        key: &ApiKey,
        amount_sats: i64,
    ) -> Result<Invoice, ApiError> {
        let c = &self.config;
        if amount_sats < c.min_fund_sats || amount_sats > c.max_fund_sats {
            return Err(ApiError::bad_param(
                "amount",
                format!(
                    "amount must be a whole number of sats between {} and {}",
                    c.min_fund_sats, c.max_fund_sats
                ),
            ));
        }
        self.backend()?;
        self.open(http, key, amount_sats).await
    }

    /// Creates, checks and stores a new invoice of `amount_sats` funding the key's account.
    pub async fn open(
        &self,
        http: &awc::Client,
        key: &ApiKey,
        amount_sats: i64,
    ) -> Result<Invoice, ApiError> {
        let backend = self.backend()?;
        let memo = format!("Pura balance top-up ({amount_sats} sats)");
        let created = backend
            .create_invoice(http, amount_sats, &memo, self.expiry)
            .await
            .map_err(|e| {
                ApiError::Unavailable(format!("Could not create a Lightning invoice: {e}"))
            })?;
        let now = crate::time::now();
        let row = Invoice {
            id: format!("inv_{}", crate::ids::random_alnum(24)),
            key_id: key.id.clone(),
            backend: backend.name().to_owned(),
            payment_hash: created.payment_hash.to_ascii_lowercase(),
            bolt11: created.bolt11,
            amount_sats,
            status: invoice::PENDING.to_owned(),
            checkout_url: created.checkout_url,
            created_at: now,
            expires_at: now
                + chrono::Duration::from_std(self.expiry).unwrap_or(chrono::Duration::hours(1)),
            paid_at: None,
            account_id: key.account_id.clone(),
        };
        let stored = row.clone();
        db::run(&self.pool, move |conn| invoice::insert(conn, &stored)).await?;
        crate::metrics::invoices("created", 1);
        log::info!(
            "invoice {} opened for account {} (key {}): {amount_sats} sats",
            row.id,
            key.account_id,
            key.id
        );
        Ok(row)
    }

    /// The invoice a 402 carries: the account's still-pending one for the default amount, or a
    /// new one.
    pub async fn invoice_for_payment(
        &self,
        http: &awc::Client,
        key: &ApiKey,
    ) -> Result<Invoice, ApiError> {
        let amount = self.config.default_fund_sats;
        let good_until = crate::time::now() + REUSE_MARGIN;
        let account = key.account_id.clone();
        let existing = db::run(&self.pool, move |conn| {
            invoice::reusable(conn, &account, amount, good_until)
        })
        .await?;
        match existing {
            Some(inv) => Ok(inv),
            None => self.open(http, key, amount).await,
        }
    }

    /// The 402 for a reservation refused for payment: it carries an invoice for
    /// `lightning.default_fund_sats` (reusing a pending one), so that paying it is all the
    /// client has to do; without a working backend (or without `http`, the per-worker
    /// `LightningHttp`), the 402 says how to fund instead.
    pub async fn payment_required(
        &self,
        http: Option<&awc::Client>,
        key: &ApiKey,
        base_url: &str,
        message: String,
    ) -> ApiError {
        let Some(http) = http.filter(|_| self.backend.is_some()) else {
            return ApiError::PaymentRequired {
                message,
                invoice: None,
            };
        };
        match self.invoice_for_payment(http, key).await {
            Ok(inv) => ApiError::PaymentRequired {
                message: format!(
                    "{message} This response carries an invoice of {} sats.",
                    inv.amount_sats
                ),
                invoice: Some(Box::new(view::invoice(&inv, base_url))),
            },
            Err(e) => {
                log::warn!("402 without an invoice for key {}: {e}", key.id);
                ApiError::PaymentRequired {
                    message,
                    invoice: None,
                }
            }
        }
    }

    /// The account's own invoice with this id; another account's is as unknown as a made-up
    /// one (404).
    pub async fn invoice_of(&self, key: &ApiKey, id: &str) -> Result<Invoice, ApiError> {
        let (lookup, account) = (id.to_owned(), key.account_id.clone());
        db::run(&self.pool, move |conn| {
            invoice::find_for_account(conn, &lookup, &account)
        })
        .await?
        .ok_or_else(|| not_found(id))
    }

    /// Any invoice by id (the public invoice page: the id is the capability).
    pub async fn invoice(&self, id: &str) -> Result<Invoice, ApiError> {
        let lookup = id.to_owned();
        db::run(&self.pool, move |conn| invoice::find(conn, &lookup))
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// Expires what is due and returns the invoices worth asking the backend about: pending
    /// ones, and expired ones within a day of their expiry (a late payment is still credited).
    pub async fn watchable(&self) -> Result<Vec<Invoice>, db::DbError> {
        db::run(&self.pool, |conn| {
            let now = crate::time::now();
            crate::metrics::invoices("expired", invoice::expire_due(conn, now)?);
            invoice::watchable(conn, now, LATE_PAYMENT_GRACE)
        })
        .await
    }

    /// Whether the backend says the invoice is paid.
    pub async fn is_paid(&self, http: &awc::Client, inv: &Invoice) -> Result<bool, LnError> {
        match &self.backend {
            Some(b) => Ok(b.status(http, &inv.payment_hash).await? == InvoiceState::Paid),
            None => Ok(false),
        }
    }

    /// The JSON view of an invoice to pay (`POST /api/wallet/fund`, a 402's `invoice`).
    pub fn view(&self, inv: &Invoice, base_url: &str) -> crate::api::views::InvoiceView {
        view::invoice(inv, base_url)
    }

    /// The JSON view of `GET /api/wallet/status`.
    pub fn status_view(&self, inv: &Invoice) -> crate::api::views::InvoiceStatusView {
        view::status(inv)
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::BadRequest {
        message: format!("No invoice `{id}` for this key."),
        param: Some("invoiceId"),
        code: "invoice_not_found",
    }
    .into_not_found()
}

/// `scheme://host` of the request, for links back to this gateway (invoice pages).
pub fn base_url(req: &actix_web::HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}
