//! A TCP proxy in front of a real server, which a test can block (connections cut, new ones refused) and
//! unblock on the same port, and slow down: a link between regions with its latency.

use std::{
    io::{Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

/// Forwards `127.0.0.1:{port}` to an upstream address.
#[derive(Debug)]
pub struct TcpProxy {
    port: u16,
    upstream: String,
    state: Arc<State>,
}

#[derive(Debug, Default)]
struct State {
    blocked: AtomicBool,
    stop: AtomicBool,
    live: Mutex<Vec<TcpStream>>,
    listener_up: AtomicBool,
    /// Milliseconds each chunk waits before it is passed on, each way.
    latency_ms: std::sync::atomic::AtomicU64,
}

impl TcpProxy {
    /// Starts forwarding to `upstream` (`host:port`) on a free local port.
    ///
    /// # Panics
    /// When no local port can be bound.
    pub fn start(upstream: &str) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a proxy port");
        let port = listener.local_addr().expect("proxy address").port();
        let proxy = TcpProxy {
            port,
            upstream: upstream.to_owned(),
            state: Arc::new(State::default()),
        };
        proxy.serve(listener);
        proxy
    }

    /// Starts forwarding to `upstream` with `latency` added to everything passed on, each way: a link between
    /// regions.
    ///
    /// # Panics
    /// When no local port can be bound.
    pub fn start_with_latency(upstream: &str, latency: Duration) -> TcpProxy {
        let proxy = TcpProxy::start(upstream);
        proxy.state.latency_ms.store(
            u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
        proxy
    }

    /// The local port clients should use.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:{port}`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn serve(&self, listener: TcpListener) {
        let state = self.state.clone();
        let upstream = self.upstream.clone();
        state.listener_up.store(true, Ordering::SeqCst);
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        thread::spawn(move || {
            loop {
                if state.stop.load(Ordering::SeqCst) || state.blocked.load(Ordering::SeqCst) {
                    // Dropping the listener makes new connections fail with "connection refused".
                    state.listener_up.store(false, Ordering::SeqCst);
                    return;
                }
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = TcpStream::connect(&upstream) else {
                            continue;
                        };
                        // A link passes each chunk on as it comes; Nagle's algorithm here would hold small
                        // writes for the peer's delayed acknowledgement (up to 40 ms) — the relay's own delay,
                        // not the link's.
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        if let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) {
                            let mut live = state.live.lock().unwrap_or_else(|p| p.into_inner());
                            live.push(c2);
                            live.push(s2);
                        }
                        pipe(client.try_clone(), server.try_clone(), state.clone());
                        pipe(server.try_clone(), client.try_clone(), state.clone());
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
    }

    /// Cuts every open connection and refuses new ones until [`TcpProxy::unblock`].
    pub fn block(&self) {
        self.state.blocked.store(true, Ordering::SeqCst);
        while self.state.listener_up.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(2));
        }
        let mut live = self.state.live.lock().unwrap_or_else(|p| p.into_inner());
        for s in live.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Accepts connections again, on the same port.
    ///
    /// # Panics
    /// When the port cannot be bound again.
    pub fn unblock(&self) {
        self.state.blocked.store(false, Ordering::SeqCst);
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(l) => break l,
                Err(e) if tries < 200 => {
                    tries += 1;
                    let _ = e;
                    thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("cannot re-bind proxy port {}: {e}", self.port),
            }
        };
        self.serve(listener);
    }
}

/// Copies `from` to `to`. With a latency, a reader stamps each chunk as it arrives and a writer passes it on
/// once that latency has passed since: chunks in flight wait together, as on a network link, not one after
/// another.
fn pipe(from: std::io::Result<TcpStream>, to: std::io::Result<TcpStream>, state: Arc<State>) {
    let (Ok(mut from), Ok(mut to)) = (from, to) else {
        return;
    };
    let (tx, rx) = std::sync::mpsc::channel::<(std::time::Instant, Vec<u8>)>();
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((std::time::Instant::now(), buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    thread::spawn(move || {
        for (arrived, chunk) in rx {
            let latency = Duration::from_millis(state.latency_ms.load(Ordering::Relaxed));
            let due = arrived + latency;
            let now = std::time::Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        let mut live = self.state.live.lock().unwrap_or_else(|p| p.into_inner());
        for s in live.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}
