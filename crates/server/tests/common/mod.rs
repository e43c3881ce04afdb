//! Black-box harness: runs the built `cfactory` binary on free ports against a fresh
//! store, and talks to it over HTTP as a user would.

#![allow(dead_code)]

pub mod proxy;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cfactory")
}

/// A fresh store: a SQLite file in a temp dir, or a fresh Postgres database; each with
/// its own data dir (where a loopback server keeps its audit secret).
pub struct Store {
    pub url: String,
    pub data_dir: tempfile::TempDir,
    _pg: Option<cfactory_postgres::testing::TestDatabase>,
}

impl Store {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("cf.db").display());
        Self {
            url,
            data_dir: dir,
            _pg: None,
        }
    }

    pub async fn postgres() -> Self {
        let db = cfactory_postgres::testing::TestDatabase::create().await;
        Self {
            url: db.url().to_owned(),
            data_dir: tempfile::tempdir().unwrap(),
            _pg: Some(db),
        }
    }

    /// The same store reached at `url` (through a proxy, say).
    pub fn reached_at(mut self, url: String) -> Self {
        self.url = url;
        self
    }

    /// Runs SQL straight against the store's database, as someone with database access
    /// would (to damage or tamper with what is stored).
    #[allow(dead_code)]
    pub async fn run_sql(&self, sql: &str) {
        use sqlx::Connection;
        if self.url.starts_with("postgres") {
            let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&mut conn)
                .await
                .unwrap();
        } else {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }

    /// The data dir as text, for `--data-dir`.
    pub fn data_dir(&self) -> &str {
        self.data_dir.path().to_str().unwrap()
    }

    /// Runs a `cfactory` subcommand against this store; returns (status, stdout, stderr).
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> (ExitStatus, String, String) {
        self.cli_at(&self.url, args, stdin)
    }

    /// Runs a `cfactory` subcommand against the database at `url` with this store's data
    /// dir.
    pub fn cli_at(
        &self,
        url: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> (ExitStatus, String, String) {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .args(["--database-url", url, "--data-dir", self.data_dir()])
            .env_remove("CFACTORY_API_KEYS")
            .env_remove("CFACTORY_AUDIT_HMAC_SECRET")
            .env("CFACTORY_LOG", "warn")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(text) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Creates a key with the CLI and returns its secret.
    pub fn create_key(&self, scopes: &str, tenant: Option<&str>) -> String {
        let mut args = vec!["keys", "create", "--scopes", scopes];
        if let Some(t) = tenant {
            args.extend(["--tenant", t]);
        }
        let (status, out, err) = self.cli(&args, None);
        assert!(status.success(), "keys create failed: {err}");
        out.trim().to_owned()
    }
}

/// A running server.
pub struct Server {
    child: Child,
    pub api: String,
    pub ui: String,
    pub log: Arc<Mutex<Vec<String>>>,
    pub http: reqwest::Client,
}

impl Server {
    /// Starts `cfactory serve` on free loopback ports.
    pub fn start(store: &Store) -> Self {
        Self::start_with(store, &[], &[]).unwrap()
    }

    /// Starts with extra args and env; `Err(log)` when it exits before listening.
    pub fn start_with(store: &Store, args: &[&str], env: &[(&str, &str)]) -> Result<Self, String> {
        Self::run("serve", store, args, env)
    }

    /// Runs `cfactory <command>` (serve or demo) until it reports both listeners.
    pub fn run(
        command: &str,
        store: &Store,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self, String> {
        // The tests' HTTP clients use rustls with ring, the one provider compiled in.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut cmd = Command::new(bin());
        cmd.args([command, "--database-url", &store.url])
            .args(args)
            .env_remove("CFACTORY_API_KEYS")
            .env_remove("CFACTORY_AUDIT_HMAC_SECRET")
            .env("CFACTORY_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if !args.contains(&"--data-dir") {
            cmd.args(["--data-dir", store.data_dir()]);
        }
        if !args.contains(&"--api-addr") {
            cmd.args(["--api-addr", "127.0.0.1:0"]);
        }
        if !args.contains(&"--ui-addr") {
            cmd.args(["--ui-addr", "127.0.0.1:0"]);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line.clone());
                sink.lock().unwrap().push(line);
            }
        });
        let (mut api, mut ui) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        while api.is_none() || ui.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("cfactory: API listening on ") {
                        api = Some(url.to_owned());
                    }
                    if let Some(url) = line.strip_prefix("cfactory: cockpit listening on ") {
                        ui = Some(url.to_owned());
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    std::thread::sleep(Duration::from_millis(50));
                    return Err(log.lock().unwrap().join("\n"));
                }
            }
        }
        Ok(Self {
            child,
            api: api.unwrap(),
            ui: ui.unwrap(),
            log,
            http: reqwest::Client::new(),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api)
    }

    pub async fn post_raw(&self, path: &str, body: &str, key: Option<&str>) -> (u16, String) {
        let mut req = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    pub async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let (status, text) = self.post_raw(path, body, None).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get_with(&self, path: &str, key: Option<&str>) -> (u16, Value) {
        let mut req = self.http.get(self.url(path));
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.get_with(path, None).await
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit 30 s after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A valid completion event.
pub fn event(id: &str, key: &str, service: &str, task: &str, status: &str, time: &str) -> Value {
    json!({
        "id": id,
        "correlation_key": key,
        "service": service,
        "task_id": task,
        "status": status,
        "phase": status,
        "time": time,
    })
}
