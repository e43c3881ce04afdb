//! Single sign-on end to end, over HTTP as a browser goes: a real OpenID provider (the
//! `oidc-provider` npm package, run by `tests/oidc-provider/provider.mjs`) signs people
//! in through its login page; its stand-in (`--forge`) hands out the ID tokens a real
//! provider will not (another audience, issuer or nonce, expired, tampered, unsigned,
//! signed with a key it has not published yet). The fixture's packages come from its
//! lockfile with `npm ci`, run here when they are missing.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::Path;
use axum::routing::post;
use common::{Server, Store, event};
use serde_json::{Value, json};

/// The fixture's folder.
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc-provider");
/// The client the fixture registers.
const CLIENT_ID: &str = "cfactory";
const CLIENT_SECRET: &str = "cfactory-test-secret";

/// Installs the fixture's packages from its lockfile when they are missing; one process
/// at a time (test processes run in parallel).
fn ensure_fixture() {
    let installed = || {
        std::path::Path::new(FIXTURE)
            .join("node_modules/oidc-provider/package.json")
            .exists()
    };
    if installed() {
        return;
    }
    let lock = std::fs::File::create(std::env::temp_dir().join("cfactory-oidc-fixture.lock"))
        .expect("creating the install lock");
    lock.lock().expect("taking the install lock");
    if !installed() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(FIXTURE)
            .status()
            .expect("running npm (Node.js and npm are needed for the single sign-on tests)");
        assert!(status.success(), "npm ci in {FIXTURE} failed: {status}");
    }
}

/// A free loopback port (the cockpit's, which the provider must know before it starts).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running identity provider from the fixture.
struct Provider {
    child: Child,
    issuer: String,
}

impl Provider {
    /// Starts the real provider (or, with `forge`, the stand-in) for a cockpit whose
    /// callback is `redirect`.
    fn start(redirect: &str, forge: bool) -> Self {
        ensure_fixture();
        let mut cmd = Command::new("node");
        cmd.arg("provider.mjs")
            .args(["--redirect", redirect])
            .current_dir(FIXTURE)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if forge {
            cmd.arg("--forge");
        }
        let mut child = cmd.spawn().expect("running node");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // The provider goes on printing notices; keep reading so it never writes to
            // a closed pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the provider printed its issuer within 30 s");
        let issuer =
            serde_json::from_str::<Value>(&line)
                .unwrap_or_else(|e| panic!("the provider's first line is not JSON ({e}): {line}"))
                ["issuer"]
                .as_str()
                .unwrap()
                .to_owned();
        Self { child, issuer }
    }

    /// POSTs a JSON knob to the stand-in (`/__test/shape`, `/__test/publish`).
    async fn set(&self, path: &str, body: Value) {
        let answer = reqwest::Client::new()
            .post(format!("{}{path}", self.issuer))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
    }

    /// How often the stand-in's key set was fetched.
    async fn key_fetches(&self) -> u64 {
        let stats: Value = reqwest::get(format!("{}/__test/stats", self.issuer))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["jwks_fetches"].as_u64().unwrap()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one request got back.
struct Page {
    status: u16,
    /// `Location`, made absolute.
    location: Option<String>,
    set_cookies: Vec<String>,
    body: String,
}

/// A browser: no redirect followed by itself, and a cookie jar (cookies are kept per
/// host, as browsers do; ports do not separate them).
struct Browser {
    http: reqwest::Client,
    jar: Mutex<BTreeMap<String, String>>,
}

impl Browser {
    fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar: Mutex::default(),
        }
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.jar.lock().unwrap().get(name).cloned()
    }

    async fn send(&self, url: &str, request: reqwest::RequestBuilder) -> Page {
        let cookies: Vec<String> = self
            .jar
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let request = if cookies.is_empty() {
            request
        } else {
            request.header("cookie", cookies.join("; "))
        };
        let answer = request.send().await.unwrap();
        let status = answer.status().as_u16();
        let base = url::Url::parse(url).unwrap();
        let location = answer
            .headers()
            .get("location")
            .map(|l| base.join(l.to_str().unwrap()).unwrap().to_string());
        let set_cookies: Vec<String> = answer
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        {
            let mut jar = self.jar.lock().unwrap();
            for c in &set_cookies {
                let pair = c.split(';').next().unwrap();
                let (name, value) = pair.split_once('=').unwrap();
                let gone = value.is_empty() || c.to_ascii_lowercase().contains("max-age=0");
                if gone {
                    jar.remove(name.trim());
                } else {
                    jar.insert(name.trim().to_owned(), value.to_owned());
                }
            }
        }
        Page {
            status,
            location,
            set_cookies,
            body: answer.text().await.unwrap(),
        }
    }

    async fn get(&self, url: &str) -> Page {
        self.send(url, self.http.get(url)).await
    }

    /// A JSON call to the cockpit with the browser's cookies, as the page makes it.
    async fn api(
        &self,
        server: &Server,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", server.ui);
        let mut request = self
            .http
            .request(method.parse().unwrap(), &url)
            .header("origin", &server.ui);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let page = self.send(&url, request).await;
        (
            page.status,
            serde_json::from_str(&page.body).unwrap_or(Value::String(page.body)),
        )
    }
}

/// The cockpit's callback address.
fn callback_of(server: &Server) -> String {
    format!("{}/api/auth/oidc/callback", server.ui)
}

/// Drives a sign-in from the cockpit's login to the moment the provider sends the
/// browser back: fills the real provider's login page as `account` when it shows one.
/// Returns the callback URL, not yet visited.
async fn to_callback(browser: &Browser, server: &Server, account: &str) -> String {
    let login = format!("{}/api/auth/oidc/login?return_to=/pipeline", server.ui);
    let mut page = browser.get(&login).await;
    assert_eq!(page.status, 302, "login: {}", page.body);
    assert!(
        page.set_cookies
            .iter()
            .any(|c| c.starts_with("cfactory_sso=")
                && c.contains("HttpOnly")
                && c.contains("SameSite=Lax")),
        "the login binds the sign-in to this browser: {:?}",
        page.set_cookies
    );
    for _ in 0..12 {
        let next = page
            .location
            .clone()
            .unwrap_or_else(|| panic!("no redirect ({}): {}", page.status, page.body));
        if next.starts_with(&callback_of(server)) {
            return next;
        }
        page = browser.get(&next).await;
        if page.status == 200 && page.body.contains("name=\"login\"") {
            let at = page
                .body
                .find("action=\"")
                .expect("the login form's action")
                + 8;
            let action = &page.body[at..at + page.body[at..].find('"').unwrap()];
            let action = url::Url::parse(&next)
                .unwrap()
                .join(action)
                .unwrap()
                .to_string();
            let form = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs([("prompt", "login"), ("login", account), ("password", "any")])
                .finish();
            let post = browser
                .http
                .post(&action)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form);
            page = browser.send(&action, post).await;
        }
    }
    panic!("the provider never sent the browser back to the cockpit");
}

/// A whole sign-in as `account`: the callback's answer.
async fn sign_in(browser: &Browser, server: &Server, account: &str) -> Page {
    let back = to_callback(browser, server, account).await;
    browser.get(&back).await
}

/// Starts a cockpit with single sign-on against `issuer` on `ui_port`, with `extra` flags.
fn start_sso(store: &Store, issuer: &str, ui_port: u16, extra: &[&str]) -> Server {
    let ui_addr = format!("127.0.0.1:{ui_port}");
    let public = format!("http://127.0.0.1:{ui_port}");
    let mut args = vec![
        "--ui-addr",
        &ui_addr,
        "--public-url",
        &public,
        "--oidc-issuer",
        issuer,
        "--oidc-client-id",
        CLIENT_ID,
        "--oidc-client-secret",
        CLIENT_SECRET,
        "--oidc-scopes",
        "email profile groups org",
        "--oidc-role",
        "cfactory-admins=read+write+approve+admin",
        "--oidc-role",
        "cfactory-readers=read",
        "--poll-interval-seconds",
        "0",
    ];
    args.extend_from_slice(extra);
    Server::start_with(store, &args, &[]).unwrap()
}

/// A stand-in AIFactory whose corrections succeed.
async fn fake_aifactory() -> String {
    async fn correction(Path(id): Path<String>) -> Json<Value> {
        Json(json!({"success": true, "task_id": id}))
    }
    let app = Router::new().route("/api/tasks/{id}/apply-correction", post(correction));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Item 301: coded, then its tests failed (a handback can be proposed).
async fn seed_handback(server: &Server, key: &str) {
    let t = |m: i64| (chrono::Utc::now() - chrono::Duration::minutes(m)).to_rfc3339();
    let mut code = event("c301", "301", "aifactory", "t301", "done", &t(30));
    code["evidence"] = json!({"total_tokens": 100, "phases_completed": ["act"]});
    let mut test = event("x301", "301", "tfactory", "s301", "failed", &t(20));
    test["outcome"] = json!("failure");
    test["correlation"] = json!({"aifactory_task_id": "t301"});
    let (status, body) = server
        .post_raw("/api/events", &json!([code, test]).to_string(), Some(key))
        .await;
    assert!(status == 200 || status == 202, "{body}");
    for _ in 0..200 {
        let (_, offered) = server
            .get_with("/api/workitems/301/actions", Some(key))
            .await;
        if offered["available"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("kick_handback")))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("item 301 never offered a handback");
}

#[tokio::test]
async fn a_person_signs_in_through_a_real_provider_and_acts_as_themselves() {
    let ui_port = free_port();
    let provider = Provider::start(
        &format!("http://127.0.0.1:{ui_port}/api/auth/oidc/callback"),
        false,
    );
    let upstream = fake_aifactory().await;
    let store = Store::sqlite();
    let admin_key = store.create_key("admin", None);
    let server = start_sso(
        &store,
        &provider.issuer,
        ui_port,
        &["--aifactory-url", &upstream],
    );

    let (status, methods) = server.get("/api/auth/methods").await;
    assert_eq!(status, 200);
    assert_eq!(
        methods["sso"]["login_url"], "/api/auth/oidc/login",
        "{methods}"
    );
    assert_eq!(methods["key"], true);

    let alice = Browser::new();
    let callback = to_callback(&alice, &server, "alice").await;
    let done = alice.get(&callback).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(
        done.location.as_deref(),
        Some(format!("{}/pipeline", server.ui).as_str()),
        "back where the sign-in started"
    );
    let session = done
        .set_cookies
        .iter()
        .find(|c| c.starts_with("cfactory_session="))
        .expect("the session cookie is set");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(flag), "{session}");
    }
    assert!(
        alice.cookie("cfactory_sso").is_none(),
        "the binding cookie is cleared"
    );

    let (status, me) = alice.api(&server, "GET", "/api/session", None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["tenant"], "default");
    assert_eq!(me["open_mode"], false);
    assert_eq!(me["scopes"], json!(["read", "write", "approve", "admin"]));
    assert_eq!(me["user"]["name"], "alice@example.test");
    assert_eq!(me["user"]["groups"], json!(["cfactory-admins", "staff"]));
    let user_id = me["user"]["id"].as_str().unwrap().to_owned();
    assert!(user_id.starts_with("usr_"), "{me}");
    // The access log names the person's id (never a token).
    let needle = format!("user_id={user_id}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server
        .log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains(&needle))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no access line names {user_id}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The same callback again: its state was used up.
    let replay = alice.get(&callback).await;
    assert_eq!(replay.status, 400);
    assert!(replay.body.contains("already used"), "{}", replay.body);
    assert!(
        !replay
            .set_cookies
            .iter()
            .any(|c| c.starts_with("cfactory_session=")),
        "a replay opens no session"
    );

    // Propose and confirm as Alice: the action and the audit log name her.
    seed_handback(&server, &admin_key).await;
    let (status, action) = alice
        .api(
            &server,
            "POST",
            "/api/actions/propose",
            Some(json!({"kind": "kick_handback", "correlation_key": "301", "note": "retry"})),
        )
        .await;
    assert_eq!(status, 201, "{action}");
    assert_eq!(action["proposed_by"], "user:alice@example.test", "{action}");
    let id = action["id"].as_str().unwrap();
    let (status, confirmed) = alice
        .api(
            &server,
            "POST",
            &format!("/api/actions/{id}/confirm"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{confirmed}");
    assert_eq!(confirmed["action"]["status"], "executed", "{confirmed}");
    let (_, audit) = server
        .get_with("/api/audit?limit=50", Some(&admin_key))
        .await;
    let entries = audit["entries"].as_array().unwrap();
    let confirm = entries
        .iter()
        .find(|e| e["kind"] == "action.confirmed" && e["action_id"] == id)
        .unwrap_or_else(|| panic!("no confirm on the chain: {audit}"));
    assert_eq!(
        confirm["actor"],
        "user:alice@example.test via ui; proposed by user:alice@example.test via ui",
        "{confirm}"
    );
    let signed_in = entries
        .iter()
        .find(|e| e["kind"] == "user.signed_in")
        .unwrap_or_else(|| panic!("the sign-in is not on the chain: {audit}"));
    assert_eq!(signed_in["actor"], "user:alice@example.test");
    assert_eq!(signed_in["target"], user_id.as_str());

    // Alice is an admin: she sees herself among the users.
    let (status, users) = alice.api(&server, "GET", "/api/users", None).await;
    assert_eq!(status, 200, "{users}");
    let listed = &users["users"][0];
    assert_eq!(users["users"].as_array().unwrap().len(), 1, "{users}");
    assert_eq!(listed["id"], user_id.as_str());
    assert_eq!(listed["subject"], "alice");
    assert_eq!(listed["display_name"], "Alice Admin");
    assert_eq!(listed["active"], true);
    assert_eq!(
        listed["scopes"],
        json!(["read", "write", "approve", "admin"])
    );
    assert!(listed["last_sign_in_at"].is_string(), "{listed}");

    // Signing out ends the session.
    let (status, _) = alice.api(&server, "DELETE", "/api/session", None).await;
    assert_eq!(status, 204);
    let (status, _) = alice.api(&server, "GET", "/api/session", None).await;
    assert_eq!(status, 401, "a signed-out session is refused");
    drop(provider);
}

#[tokio::test]
async fn a_sign_in_is_refused_to_another_browser_and_to_groups_that_grant_nothing() {
    let ui_port = free_port();
    let provider = Provider::start(
        &format!("http://127.0.0.1:{ui_port}/api/auth/oidc/callback"),
        false,
    );
    let store = Store::sqlite();
    let admin_key = store.create_key("admin", None);
    let read_key = store.create_key("read", None);
    let server = start_sso(&store, &provider.issuer, ui_port, &[]);

    // Carol's only group is mapped to nothing: a page says so, and no session opens.
    let carol = Browser::new();
    let page = sign_in(&carol, &server, "carol").await;
    assert_eq!(page.status, 403, "{}", page.body);
    for needle in [
        "grant no access in CFactory",
        "`groups` claim",
        "marketing",
        "[roles]",
    ] {
        assert!(page.body.contains(needle), "{needle}: {}", page.body);
    }
    assert!(carol.cookie("cfactory_session").is_none());
    let (_, users) = server.get_with("/api/users", Some(&admin_key)).await;
    assert_eq!(
        users["users"],
        json!([]),
        "a refused person is not recorded"
    );

    // A sign-in started in one browser cannot be finished in another, nor afterwards.
    let first = Browser::new();
    let back = to_callback(&first, &server, "rita").await;
    let other = Browser::new();
    let stolen = other.get(&back).await;
    assert_eq!(stolen.status, 400, "{}", stolen.body);
    assert!(stolen.body.contains("another browser"), "{}", stolen.body);
    assert!(other.cookie("cfactory_session").is_none());
    let late = first.get(&back).await;
    assert_eq!(late.status, 400);
    assert!(late.body.contains("already used"), "{}", late.body);

    // Rita reads; she may not list users, nor may a read-only key.
    let rita = Browser::new();
    assert_eq!(sign_in(&rita, &server, "rita").await.status, 303);
    let (_, me) = rita.api(&server, "GET", "/api/session", None).await;
    assert_eq!(me["scopes"], json!(["read"]), "{me}");
    let (status, refused) = rita.api(&server, "GET", "/api/users", None).await;
    assert_eq!(status, 403);
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("your groups do not grant the `admin` scope"),
        "{refused}"
    );
    let (status, _) = server.get_with("/api/users", Some(&read_key)).await;
    assert_eq!(status, 403);
    let (status, workitems) = rita.api(&server, "GET", "/api/workitems", None).await;
    assert_eq!(status, 200, "{workitems}");
    drop(provider);
}

#[tokio::test]
async fn users_belong_to_their_tenant_and_each_request_reads_them_again() {
    let ui_port = free_port();
    let provider = Provider::start(
        &format!("http://127.0.0.1:{ui_port}/api/auth/oidc/callback"),
        false,
    );
    let store = Store::postgres().await;
    let acme_admin = store.create_key("admin", Some("acme"));
    let server = start_sso(
        &store,
        &provider.issuer,
        ui_port,
        &["--oidc-tenant-claim", "org"],
    );

    let alice = Browser::new();
    assert_eq!(sign_in(&alice, &server, "alice").await.status, 303);
    let olga = Browser::new();
    assert_eq!(sign_in(&olga, &server, "olga").await.status, 303);
    let (_, me) = olga.api(&server, "GET", "/api/session", None).await;
    assert_eq!(
        me["tenant"], "globex",
        "the tenant comes from the `org` claim"
    );

    let names = |users: &Value| -> Vec<String> {
        users["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["email"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, acme) = server.get_with("/api/users", Some(&acme_admin)).await;
    assert_eq!(status, 200, "{acme}");
    assert_eq!(
        names(&acme),
        ["alice@example.test"],
        "another tenant's users are not seen"
    );
    let (_, globex) = olga.api(&server, "GET", "/api/users", None).await;
    assert_eq!(names(&globex), ["olga@example.test"]);

    // A changed group changes the scopes at the next request.
    store
        .run_sql(
            "UPDATE user_groups SET group_name = 'cfactory-readers' \
             WHERE group_name = 'cfactory-admins' \
             AND user_id = (SELECT id FROM users WHERE subject = 'alice')",
        )
        .await;
    let (_, me) = alice.api(&server, "GET", "/api/session", None).await;
    assert_eq!(me["scopes"], json!(["read"]), "{me}");

    // A deactivated user's session is refused at once, and they cannot sign in again.
    store
        .run_sql("UPDATE users SET active = FALSE WHERE subject = 'alice'")
        .await;
    let (status, refused) = alice.api(&server, "GET", "/api/session", None).await;
    assert_eq!(status, 401, "{refused}");
    let again = sign_in(&Browser::new(), &server, "alice").await;
    assert_eq!(again.status, 403);
    assert!(again.body.contains("deactivated"), "{}", again.body);
    let (status, _) = olga.api(&server, "GET", "/api/session", None).await;
    assert_eq!(status, 200, "the other tenant's user is untouched");
    drop(provider);
}

#[tokio::test]
async fn forged_id_tokens_are_refused() {
    let ui_port = free_port();
    let provider = Provider::start(
        &format!("http://127.0.0.1:{ui_port}/api/auth/oidc/callback"),
        true,
    );
    let store = Store::sqlite();
    let server = start_sso(&store, &provider.issuer, ui_port, &[]);

    for (shape, needle) in [
        (json!({"aud": "someone-else"}), "audience"),
        (json!({"iss": "http://127.0.0.1:1"}), "issuer"),
        (json!({"nonce": "not-the-one-sent"}), "nonce"),
        (json!({"exp_in": -3600}), "expired"),
        (json!({"tamper": true}), "signature"),
        (json!({"unsigned": true}), "not accepted"),
    ] {
        provider.set("/__test/shape", shape.clone()).await;
        let browser = Browser::new();
        let page = sign_in(&browser, &server, "").await;
        assert_eq!(page.status, 401, "{shape}: {}", page.body);
        assert!(
            page.body.to_lowercase().contains(needle),
            "{shape} should be refused for its {needle}: {}",
            page.body
        );
        assert!(
            browser.cookie("cfactory_session").is_none(),
            "{shape} opened a session"
        );
    }

    // The same stand-in with a well-formed token signs the person in.
    provider.set("/__test/shape", json!({})).await;
    let browser = Browser::new();
    assert_eq!(sign_in(&browser, &server, "").await.status, 303);
    let (_, me) = browser.api(&server, "GET", "/api/session", None).await;
    assert_eq!(me["user"]["name"], "forged@example.test", "{me}");
}

#[tokio::test]
async fn a_token_signed_with_a_new_key_fetches_the_keys_once_more() {
    let ui_port = free_port();
    let provider = Provider::start(
        &format!("http://127.0.0.1:{ui_port}/api/auth/oidc/callback"),
        true,
    );
    let store = Store::sqlite();
    let server = start_sso(&store, &provider.issuer, ui_port, &[]);

    assert_eq!(sign_in(&Browser::new(), &server, "").await.status, 303);
    assert_eq!(
        provider.key_fetches().await,
        1,
        "the keys came with discovery"
    );

    // The provider rotates to a key CFactory has not seen: one more fetch finds it.
    provider
        .set("/__test/publish", json!({"keys": ["k1", "k2"]}))
        .await;
    provider.set("/__test/shape", json!({"key": "k2"})).await;
    assert_eq!(sign_in(&Browser::new(), &server, "").await.status, 303);
    assert_eq!(provider.key_fetches().await, 2);
    assert_eq!(sign_in(&Browser::new(), &server, "").await.status, 303);
    assert_eq!(
        provider.key_fetches().await,
        2,
        "a known key is not fetched again"
    );

    // A key the provider does not publish: one fetch, then no more for a while.
    provider.set("/__test/shape", json!({"key": "k3"})).await;
    let page = sign_in(&Browser::new(), &server, "").await;
    assert_eq!(page.status, 401, "{}", page.body);
    assert!(page.body.contains("signature"), "{}", page.body);
    assert_eq!(provider.key_fetches().await, 3);
    assert_eq!(sign_in(&Browser::new(), &server, "").await.status, 401);
    assert_eq!(
        provider.key_fetches().await,
        3,
        "an unknown key id cannot make CFactory hammer the provider"
    );
}

#[tokio::test]
async fn single_sign_on_is_off_unless_configured_and_bad_settings_stop_the_start() {
    let store = Store::sqlite();
    let plain = Server::start(&store);
    let (_, methods) = plain.get("/api/auth/methods").await;
    assert_eq!(methods["sso"], Value::Null, "{methods}");
    let (status, problem) = plain.get("/api/auth/oidc/login").await;
    assert_eq!(status, 404);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("--oidc-issuer"),
        "{problem}"
    );
    drop(plain);

    let refused = |args: &[&str]| {
        Server::start_with(&store, args, &[])
            .err()
            .expect("the start is refused")
    };
    let log = refused(&[
        "--oidc-issuer",
        "http://id.example.com",
        "--oidc-client-id",
        CLIENT_ID,
        "--public-url",
        "https://cockpit.example.com",
        "--oidc-role",
        "ops=read",
    ]);
    assert!(log.contains("must be https"), "{log}");
    let log = refused(&[
        "--oidc-issuer",
        "https://id.example.com",
        "--oidc-client-id",
        CLIENT_ID,
        "--oidc-role",
        "ops=read",
    ]);
    assert!(log.contains("--public-url"), "{log}");

    // A provider that does not answer: the sign-in page says so.
    let ui_port = free_port();
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let server = start_sso(&store, &nobody, ui_port, &[]);
    let page = Browser::new()
        .get(&format!("{}/api/auth/oidc/login", server.ui))
        .await;
    assert_eq!(page.status, 502, "{}", page.body);
    assert!(page.body.contains("could not be reached"), "{}", page.body);
}
