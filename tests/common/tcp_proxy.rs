//! A TCP proxy that can be cut: the database going away, as a network sees it. While cut,
//! every proxied connection is shut down and every new one is closed as soon as it is
//! accepted (the client reads end-of-stream at once, as from a host that refuses); restored,
//! it forwards again.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

#[derive(Default)]
struct Shared {
    cut: AtomicBool,
    /// Both sides of every proxied connection, to shut down on a cut.
    open: Mutex<Vec<TcpStream>>,
}

pub struct TcpProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl TcpProxy {
    /// Listens on a free local port and forwards to `target` (`host:port`).
    pub fn start(target: &str) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let shared = Arc::new(Shared::default());
        let (s, target) = (shared.clone(), target.to_owned());
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if s.cut.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                if let Err(e) = forward(&s, client, &target) {
                    eprintln!("tcp proxy: {e}");
                }
            }
        });
        TcpProxy { addr, shared }
    }

    /// `url` (a `postgres://…@host:port/db` URL) with its host and port replaced by the proxy's.
    pub fn url_through(&self, url: &str) -> String {
        let (scheme_user, rest) = url.split_once('@').expect("url with user@host");
        let path = rest.split_once('/').map_or("", |(_, p)| p);
        format!("{scheme_user}@{}/{path}", self.addr)
    }

    /// Drops every connection and refuses new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        let open = std::mem::take(&mut *self.shared.open.lock().expect("lock"));
        for s in open {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }
}

/// The `host:port` of a `postgres://user@host:port/db` URL.
pub fn host_port(url: &str) -> String {
    let rest = url.split_once('@').map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

fn forward(s: &Shared, client: TcpStream, target: &str) -> io::Result<()> {
    let server = TcpStream::connect(target)?;
    {
        let mut open = s.open.lock().expect("lock");
        open.push(client.try_clone()?);
        open.push(server.try_clone()?);
    }
    for (mut from, mut to) in [(client.try_clone()?, server.try_clone()?), (server, client)] {
        thread::spawn(move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        });
    }
    Ok(())
}
