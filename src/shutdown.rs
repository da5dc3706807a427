//! The end of a graceful shutdown, as one signal every live stream listens to. On SIGTERM the
//! server stops accepting and gives requests in flight `server.shutdown_grace`; then
//! [`Shutdown::cut_streams`] tells every relay still streaming to end now, with its protocol's
//! error event and a settlement for what it streamed, so that no stream is cut by the process
//! exiting, unbilled and without an ending the client can recognise. A leaf: anyone may hold it.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::rt::signal::unix::{signal, Signal, SignalKind};
use futures_util::future::{self, Either};
use tokio::sync::watch;

/// The process's shutdown signal; cloning shares it.
#[derive(Clone)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            tx: Arc::new(watch::channel(false).0),
        }
    }
}

impl Shutdown {
    /// Ends every stream now (the grace is over); streams started later end at once.
    pub fn cut_streams(&self) {
        self.tx.send_replace(true);
    }

    /// What one stream listens to.
    pub fn signal(&self) -> CutSignal {
        CutSignal(self.tx.subscribe())
    }
}

/// One stream's side of [`Shutdown`].
pub struct CutSignal(watch::Receiver<bool>);

impl CutSignal {
    /// Resolves once the streams are to be cut (at once if they already were); never when
    /// the process is not shutting down.
    pub async fn cut(&mut self) {
        if self.0.wait_for(|cut| *cut).await.is_err() {
            // The sender is gone with the state that held it: nobody can cut any more.
            std::future::pending::<()>().await;
        }
    }
}

/// SIGTERM (what service managers and container runtimes send) and SIGINT (Ctrl-C).
struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The name of the next signal to arrive.
    async fn next(&mut self) -> &'static str {
        match future::select(pin!(self.term.recv()), pin!(self.int.recv())).await {
            Either::Left(_) => "SIGTERM",
            Either::Right(_) => "SIGINT",
        }
    }
}

/// The shutdown sequence, run for the life of the process: on the first signal the servers
/// stop accepting and requests in flight get `grace`; when it is over (or at a second signal)
/// the streams still running are cut. The servers' own `shutdown_timeout` must be longer
/// than `grace`, so that they wait for the cut streams' last events instead of dropping them.
pub async fn on_signals(servers: Vec<ServerHandle>, shutdown: Shutdown, grace: Duration) {
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot listen for SIGTERM and SIGINT: {e}");
            return;
        }
    };
    let name = signals.next().await;
    log::info!(
        "{name}: no new connections; requests in flight have {grace:?} to finish (a second signal ends them now)"
    );
    for server in &servers {
        // The stop command is sent when `stop` is called; its future only reports completion.
        actix_web::rt::spawn(server.stop(true));
    }
    let grace_over = pin!(actix_web::rt::time::sleep(grace));
    if let Either::Right((name, _)) = future::select(grace_over, pin!(signals.next())).await {
        log::info!("{name} again: ending the streams in flight now");
    } else {
        log::info!("shutdown grace over: ending the streams still in flight");
    }
    shutdown.cut_streams();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn a_signal_resolves_only_after_the_cut_even_when_taken_late() {
        let shutdown = Shutdown::default();
        let mut early = shutdown.signal();
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), early.cut()).await;
        assert!(waited.is_err(), "no cut yet");
        shutdown.cut_streams();
        early.cut().await;
        let mut late = shutdown.signal();
        late.cut().await;
    }
}
