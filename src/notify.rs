//! Budget notifications: when a key crosses 80% or 100% of its daily or monthly budget, a JSON
//! event is POSTed to its webhook and an email goes out through the configured SMTP server.
//! Delivery runs on its own thread (with its own actix system for awc), so a slow webhook or
//! mail server never holds up a request; each threshold of each window is claimed in the
//! database first, so it is announced once even across restarts and replicas. The
//! BudgetActor sends the events; this module is given the pool and the SMTP settings.

use std::time::Duration;

use chrono::NaiveDateTime;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::db::models::notification;
use crate::db::{self, Pool};
use crate::money::Micros;

const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct BudgetEvent {
    pub key_id: String,
    pub window: &'static str,
    pub window_start: NaiveDateTime,
    pub threshold: i32,
    pub spent_micros: i64,
    pub budget_micros: i64,
    pub email: Option<String>,
    pub webhook: Option<String>,
}

/// Cloneable sender of budget events.
#[derive(Clone)]
pub struct Notifier {
    tx: mpsc::UnboundedSender<BudgetEvent>,
}

impl Notifier {
    /// Starts the delivery thread. `smtp_url` empty disables email.
    pub fn start(pool: Pool, smtp_url: String, from: String) -> Notifier {
        let (tx, rx) = mpsc::unbounded_channel();
        let spawned = std::thread::Builder::new()
            .name("notifier".into())
            .spawn(move || {
                actix_web::rt::System::new().block_on(run(pool, smtp_url, from, rx));
            });
        if let Err(e) = spawned {
            log::error!("cannot start the notifier: {e}");
        }
        Notifier { tx }
    }

    pub fn send(&self, event: BudgetEvent) {
        if self.tx.send(event).is_err() {
            log::error!("notifier is gone; a budget notification was dropped");
        }
    }
}

async fn run(
    pool: Pool,
    smtp_url: String,
    from: String,
    mut rx: mpsc::UnboundedReceiver<BudgetEvent>,
) {
    let client = awc::Client::builder().timeout(WEBHOOK_TIMEOUT).finish();
    while let Some(event) = rx.recv().await {
        if event.email.is_none() && event.webhook.is_none() {
            continue;
        }
        let e = event.clone();
        let claim = db::run(&pool, move |conn| {
            notification::claim(
                conn,
                &e.key_id,
                e.window,
                e.window_start,
                e.threshold,
                crate::time::now(),
            )
        })
        .await;
        match claim {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                log::warn!("notification claim failed for {}: {e}", event.key_id);
                continue;
            }
        }
        let body = Payload::of(&event);
        if let Some(url) = &event.webhook {
            match client.post(url).send_json(&body).await {
                Ok(resp) if resp.status().is_success() => {}
                Ok(resp) => log::warn!("webhook for {} answered {}", event.key_id, resp.status()),
                Err(e) => log::warn!("webhook for {} failed: {e}", event.key_id),
            }
        }
        if let (Some(to), false) = (&event.email, smtp_url.is_empty()) {
            let text = serde_json::to_string(&body).unwrap_or_default();
            let (to, smtp, from) = (to.clone(), smtp_url.clone(), from.clone());
            let subject = format!(
                "Pura: {}% of your {} budget used",
                event.threshold, event.window
            );
            let sent =
                actix_web::web::block(move || send_mail(&smtp, &from, &to, &subject, &text)).await;
            if let Ok(Err(e)) | Err(e) = sent.map_err(|e| e.to_string()) {
                log::warn!("budget email for {} failed: {e}", event.key_id);
            }
        }
    }
}

/// The JSON POSTed to a webhook (and sent as the email's text).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    event: &'static str,
    key_id: &'a str,
    window: &'static str,
    window_start: String,
    threshold_percent: i32,
    spent_usd: f64,
    budget_usd: f64,
}

impl Payload<'_> {
    fn of(e: &BudgetEvent) -> Payload<'_> {
        Payload {
            event: "budget.threshold",
            key_id: &e.key_id,
            window: e.window,
            window_start: crate::time::rfc3339(e.window_start),
            threshold_percent: e.threshold,
            spent_usd: Micros(e.spent_micros).usd(),
            budget_usd: Micros(e.budget_micros).usd(),
        }
    }
}

fn send_mail(
    smtp_url: &str,
    from: &str,
    to: &str,
    subject: &str,
    text: &str,
) -> Result<(), String> {
    use lettre::{Message, SmtpTransport, Transport};
    let message = Message::builder()
        .from(from.parse().map_err(|e| format!("from address: {e}"))?)
        .to(to.parse().map_err(|e| format!("to address: {e}"))?)
        .subject(subject)
        .body(text.to_owned())
        .map_err(|e| e.to_string())?;
    let transport = SmtpTransport::from_url(smtp_url)
        .map_err(|e| e.to_string())?
        .build();
    transport
        .send(&message)
        .map(|_| ())
        .map_err(|e| e.to_string())
}
