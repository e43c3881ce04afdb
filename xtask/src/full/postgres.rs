//! Finding a PostgreSQL server for tests and benchmarks: `DATABASE_URL` when set, else a
//! local server on 127.0.0.1:5432, else a local cluster started with `pg_ctlcluster`,
//! else testcontainers when a Docker daemon answers, else a clear failure.

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use anyhow::bail;

/// How the tests reach PostgreSQL.
pub enum Postgres {
    /// A server at this URL (the `postgres` maintenance database of it).
    Url(String),
    /// No server, but a Docker daemon: the tests start containers themselves.
    Testcontainers,
}

fn local_answers() -> bool {
    let addr: SocketAddr = "127.0.0.1:5432".parse().expect("valid address");
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

fn try_start_local_cluster() -> bool {
    let Ok(entries) = std::fs::read_dir("/etc/postgresql") else {
        return false;
    };
    for version in entries.flatten() {
        let version = version.file_name().to_string_lossy().into_owned();
        eprintln!("xtask: starting the local PostgreSQL {version} cluster");
        let _ = Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &version, "main", "start"])
            .status();
        for _ in 0..20 {
            if local_answers() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    false
}

fn docker_answers() -> bool {
    Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Finds or starts a server, or explains what to provide.
pub fn locate() -> anyhow::Result<Postgres> {
    if let Ok(url) = std::env::var("DATABASE_URL")
        && !url.is_empty()
    {
        return Ok(Postgres::Url(url));
    }
    if local_answers() || try_start_local_cluster() {
        let user = std::env::var("PGUSER").unwrap_or_else(|_| "postgres".into());
        return Ok(Postgres::Url(format!(
            "postgres://{user}@127.0.0.1:5432/postgres"
        )));
    }
    if docker_answers() {
        return Ok(Postgres::Testcontainers);
    }
    bail!(
        "no PostgreSQL for the Postgres tests: set DATABASE_URL to a server this user may \
         create databases on (e.g. postgres://postgres@127.0.0.1:5432/postgres), run one on \
         127.0.0.1:5432, or start a Docker daemon so testcontainers can run one"
    )
}
