//! A TCP proxy between the server under test and PostgreSQL that a test can cut, freeze
//! and restore, as a network fault, a firewall or a database restart would.
//!
//! It runs on its own threads, so it keeps forwarding while the test blocks.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const OPEN: u8 = 0;
const CUT: u8 = 1;
const FROZEN: u8 = 2;

/// A proxy listening on a free loopback port and forwarding to `target`.
pub struct Proxy {
    pub port: u16,
    state: Arc<AtomicU8>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(AtomicU8::new(OPEN));
        let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (s, all) = (state.clone(), streams.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                match s.load(Ordering::SeqCst) {
                    // A cut network: the connection is reset at once.
                    CUT => {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    }
                    // A black hole: the connection is held and nothing ever answers.
                    FROZEN => {
                        all.lock().unwrap().push(client);
                        continue;
                    }
                    _ => {}
                }
                let Ok(server) = TcpStream::connect(target) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                {
                    let mut all = all.lock().unwrap();
                    all.push(client.try_clone().unwrap());
                    all.push(server.try_clone().unwrap());
                }
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (st1, st2) = (s.clone(), s.clone());
                std::thread::spawn(move || pump(client, server, st1));
                std::thread::spawn(move || pump(s2, c2, st2));
            }
        });
        Proxy {
            port,
            state,
            streams,
        }
    }

    /// `url` (a PostgreSQL URL on 127.0.0.1:5432 or localhost:5432) through this proxy.
    pub fn route(&self, url: &str) -> String {
        let through = format!("127.0.0.1:{}", self.port);
        url.replacen("127.0.0.1:5432", &through, 1)
            .replacen("localhost:5432", &through, 1)
    }

    /// Cuts every connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.state.store(CUT, Ordering::SeqCst);
        self.drop_all();
    }

    /// Keeps every connection open but forwards nothing, and holds new connections
    /// unanswered: a peer that vanished without closing anything.
    pub fn freeze(&self) {
        self.state.store(FROZEN, Ordering::SeqCst);
    }

    /// Forwards again. Connections frozen meanwhile are closed (their peer has long given
    /// up on them), as a network that comes back after a long partition would find.
    pub fn restore(&self) {
        let was = self.state.swap(OPEN, Ordering::SeqCst);
        if was == FROZEN {
            self.drop_all();
        }
    }

    fn drop_all(&self) {
        for stream in self.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.store(CUT, Ordering::SeqCst);
        self.drop_all();
    }
}

/// Copies `from` to `to` while the proxy is open; holds the bytes while it is frozen.
fn pump(mut from: TcpStream, mut to: TcpStream, state: Arc<AtomicU8>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while state.load(Ordering::SeqCst) == FROZEN {
            std::thread::sleep(Duration::from_millis(20));
        }
        if state.load(Ordering::SeqCst) == CUT || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
