//! TCP_NODELAY for the store's connections.
//!
//! sqlx 0.9.0 opens its TCP sockets with Nagle's algorithm on. A statement whose message
//! spans more than one TCP segment (a group commit's item documents easily do) then sends
//! its last, partial segment only once the server acknowledges the first, and the server
//! delays that acknowledgement by up to 40 ms: every such statement stalls for 40 ms with
//! both machines idle. sqlx exposes neither its socket nor an option for it, so right after
//! each connection opens this module finds the connection's socket among the process's
//! file descriptors (by the local port the server reports through `inet_client_port()`),
//! takes a duplicate of it through a pidfd (which refers to the same socket) and turns
//! Nagle off there. Best effort: a connection over a Unix socket has no Nagle to turn off,
//! and where the duplicate cannot be taken (a kernel before 5.6, a proxy between us and
//! the server) the connection works as before.

use std::os::fd::OwnedFd;

use rustix::net::SocketAddrAny;
use rustix::process::{PidfdFlags, PidfdGetfdFlags, getpid, pidfd_getfd, pidfd_open};

/// Turns Nagle's algorithm off on this process's TCP sockets bound to `local_port`.
/// Returns how many sockets it changed.
pub(crate) fn set_for_local_port(local_port: u16) -> std::io::Result<usize> {
    let mut changed = 0;
    for fd in sockets_on_local_port(local_port)? {
        if rustix::net::sockopt::set_tcp_nodelay(&fd, true).is_ok() {
            changed += 1;
        }
    }
    Ok(changed)
}

/// Duplicates of this process's sockets bound to `local_port`.
fn sockets_on_local_port(local_port: u16) -> std::io::Result<Vec<OwnedFd>> {
    let pidfd = pidfd_open(getpid(), PidfdFlags::empty())?;
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let Some(number) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        let Ok(fd) = pidfd_getfd(&pidfd, number, PidfdGetfdFlags::empty()) else {
            continue;
        };
        if rustix::net::getsockname(&fd).ok().and_then(port_of) == Some(local_port) {
            found.push(fd);
        }
    }
    Ok(found)
}

/// Whether every socket of this process bound to `local_port` has Nagle off (`None`
/// when there is none).
#[cfg(test)]
pub(crate) fn is_off_for_local_port(local_port: u16) -> Option<bool> {
    let sockets = sockets_on_local_port(local_port).ok()?;
    if sockets.is_empty() {
        return None;
    }
    Some(
        sockets
            .iter()
            .all(|fd| rustix::net::sockopt::tcp_nodelay(fd).unwrap_or(false)),
    )
}

fn port_of(address: SocketAddrAny) -> Option<u16> {
    std::net::SocketAddr::try_from(address)
        .ok()
        .map(|a| a.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_nagle_off_on_the_socket_with_that_port_only() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let one =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let two =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        assert!(!one.nodelay().expect("read"), "sockets start with Nagle on");
        let port = one.local_addr().expect("addr").port();
        assert_eq!(set_for_local_port(port).expect("set"), 1);
        assert!(one.nodelay().expect("read"));
        assert!(
            !two.nodelay().expect("read"),
            "another socket is left alone"
        );
    }
}
