//! TCP options for the store's connections: Nagle off, keepalive on.
//!
//! sqlx 0.9.0 opens its TCP sockets with Nagle's algorithm on. A statement whose message
//! spans more than one TCP segment (a group commit's item documents easily do) then sends
//! its last, partial segment only once the server acknowledges the first, and the server
//! delays that acknowledgement by up to 40 ms: every such statement stalls for 40 ms with
//! both machines idle. It also leaves keepalive off, so a connection whose server vanished
//! without a reset (a cut cable, a firewall dropping the flow, a host that lost power)
//! looks alive for hours; the change listener, idle by nature, would never hear of it.
//!
//! sqlx exposes neither its socket nor an option for these, so right after each
//! connection opens this module finds the connection's socket among the process's file
//! descriptors (by the local port the server reports through `inet_client_port()`), takes
//! a duplicate of it through a pidfd (which refers to the same socket) and sets the
//! options there: Nagle off; keepalive probes after [`KEEPALIVE_IDLE`] of silence, every
//! [`KEEPALIVE_INTERVAL`], the connection dropped after [`KEEPALIVE_PROBES`] unanswered;
//! and data left unacknowledged for [`USER_TIMEOUT`] drops it too. Best effort: a
//! connection over a Unix socket has no TCP options, and where the duplicate cannot be
//! taken (a kernel before 5.6, a proxy between us and the server) the connection works as
//! before.

use std::time::Duration;

use std::os::fd::OwnedFd;

use rustix::net::SocketAddrAny;
use rustix::process::{PidfdFlags, PidfdGetfdFlags, getpid, pidfd_getfd, pidfd_open};

/// Silence before the first keepalive probe.
pub(crate) const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
/// Time between unanswered probes.
pub(crate) const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// Unanswered probes before the connection is dropped.
pub(crate) const KEEPALIVE_PROBES: u32 = 3;
/// How long sent data may stay unacknowledged before the connection is dropped.
pub(crate) const USER_TIMEOUT: Duration = Duration::from_secs(20);

/// Sets Nagle off and keepalive on for this process's TCP sockets bound to
/// `local_port`. Returns how many sockets it changed.
pub(crate) fn tune_for_local_port(local_port: u16) -> std::io::Result<usize> {
    use rustix::net::sockopt;
    let mut changed = 0;
    for fd in sockets_on_local_port(local_port)? {
        let tuned = sockopt::set_tcp_nodelay(&fd, true)
            .and_then(|()| sockopt::set_socket_keepalive(&fd, true))
            .and_then(|()| sockopt::set_tcp_keepidle(&fd, KEEPALIVE_IDLE))
            .and_then(|()| sockopt::set_tcp_keepintvl(&fd, KEEPALIVE_INTERVAL))
            .and_then(|()| sockopt::set_tcp_keepcnt(&fd, KEEPALIVE_PROBES))
            .and_then(|()| {
                let millis = u32::try_from(USER_TIMEOUT.as_millis()).unwrap_or(u32::MAX);
                sockopt::set_tcp_user_timeout(&fd, millis)
            });
        if tuned.is_ok() {
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

/// Whether every socket of this process bound to `local_port` has Nagle off and
/// keepalive on (`None` when there is none).
#[cfg(test)]
pub(crate) fn is_tuned_for_local_port(local_port: u16) -> Option<bool> {
    let sockets = sockets_on_local_port(local_port).ok()?;
    if sockets.is_empty() {
        return None;
    }
    Some(sockets.iter().all(|fd| is_tuned(fd).unwrap_or(false)))
}

#[cfg(test)]
fn is_tuned(fd: &OwnedFd) -> std::io::Result<bool> {
    use rustix::net::sockopt;
    Ok(sockopt::tcp_nodelay(fd)?
        && sockopt::socket_keepalive(fd)?
        && sockopt::tcp_keepidle(fd)? == KEEPALIVE_IDLE
        && sockopt::tcp_keepcnt(fd)? == KEEPALIVE_PROBES)
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
    fn tunes_the_socket_with_that_port_only() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let one =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let two =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        assert!(!one.nodelay().expect("read"), "sockets start with Nagle on");
        assert!(!rustix::net::sockopt::socket_keepalive(&one).expect("read"));
        let port = one.local_addr().expect("addr").port();
        assert_eq!(tune_for_local_port(port).expect("set"), 1);
        assert_eq!(is_tuned_for_local_port(port), Some(true));
        assert!(one.nodelay().expect("read"));
        assert!(
            !two.nodelay().expect("read"),
            "another socket is left alone"
        );
        assert!(!rustix::net::sockopt::socket_keepalive(&two).expect("read"));
    }
}
