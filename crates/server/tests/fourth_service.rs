//! A fourth upstream service, added the way `docs/adapters.md` says: one row in the
//! domain's service table, one adapter (here the `dfactory` module, standing in for its
//! crate) and one arm in the factory that builds adapters. Nothing else in the tree
//! learns its name, yet its events land on its own stage, its task list hydrates items,
//! the list filters by it and the services page watches it; on SQLite and PostgreSQL.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;

use cfactory_domain::Service;
use cfactory_domain::ports::Upstream;
use cfactory_domain::services::{ServiceRules, UsageAccounting};
use cfactory_server::settings::{RawSettings, Settings};
use serde_json::{Value, json};

use common::{Store, event};

/// The row: a deploy service after the test stage.
fn register_dfactory() -> Service {
    Service::register(ServiceRules {
        name: "dfactory",
        stage: Some("deploy"),
        synthetic_prefix: Some("df-"),
        usage: UsageAccounting::LatestTotal,
        review_statuses: &["awaiting_rollout"],
        proof: None,
    })
    .expect("the row is new and well spelled")
}

/// The adapter, as its crate would hold it: the shared plumbing does the HTTP.
mod dfactory {
    use std::sync::Arc;

    use async_trait::async_trait;
    use cfactory_domain::Service;
    use cfactory_domain::actions::{ActionStep, StepResult};
    use cfactory_domain::ports::{LiveSink, Upstream};
    use cfactory_domain::upstream::{
        HealthReport, ProcessGraph, TaskList, TaskSnapshot, UpstreamError,
    };
    use cfactory_upstream_http::{UpstreamClient, UpstreamConfig, fields, probe, read_task_list};
    use serde_json::Value;

    pub struct DFactory {
        pub service: Service,
        pub client: UpstreamClient,
    }

    impl DFactory {
        pub fn new(service: Service, config: UpstreamConfig) -> Self {
            Self {
                service,
                client: UpstreamClient::new(config),
            }
        }
    }

    fn paths() -> Vec<String> {
        vec!["/api/deployments".to_owned()]
    }

    fn row(service: Service, row: &Value) -> Option<TaskSnapshot> {
        Some(TaskSnapshot {
            service,
            task_id: fields::text(row, &["id"])?,
            issue_number: fields::number(row, &["issue"]),
            status: fields::text(row, &["status"]).unwrap_or_else(|| "unknown".into()),
            phase: None,
            title: fields::text(row, &["title"]),
            project: fields::text(row, &["repo"]),
            updated_at: fields::time(row, &["updated_at"]),
            correlation: Default::default(),
            review_reason: None,
        })
    }

    #[async_trait]
    impl Upstream for DFactory {
        fn service(&self) -> Service {
            self.service
        }

        async fn probe(&self) -> HealthReport {
            probe(&self.client, self.service, &paths()).await
        }

        async fn list_tasks(&self) -> Result<TaskList, UpstreamError> {
            let service = self.service;
            read_task_list(&self.client, &paths(), &["deployments"], |r| {
                row(service, r)
            })
            .await
        }

        async fn process(&self, _task_id: &str) -> Result<ProcessGraph, UpstreamError> {
            Err(UpstreamError::Malformed("no process view".into()))
        }

        async fn follow(&self, _sink: Arc<dyn LiveSink>) {}

        async fn send_step(&self, step: &ActionStep) -> StepResult {
            self.client.send_step(self.service, step).await
        }
    }
}

/// DFactory's own API: two deployments, one for an issue only it knows.
async fn serve_dfactory() -> String {
    let app = axum::Router::new().route(
        "/api/deployments",
        axum::routing::get(|| async {
            Json(json!({"deployments": [
                {"id": "dep-77", "issue": 77, "repo": "acme/shop", "status": "rolling_out",
                 "title": "Ship #77", "updated_at": "2026-12-01T10:00:00Z"},
                {"id": "dep-78", "issue": 78, "repo": "acme/shop", "status": "awaiting_rollout",
                 "title": "Ship #78", "updated_at": "2026-12-01T10:05:00Z"},
            ]}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn get(client: &reqwest::Client, base: &str, path: &str) -> (u16, Value) {
    let res = client.get(format!("{base}{path}")).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Waits up to 10 s for `check` to hold on the answer to `path`.
async fn eventually(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = get(client, base, path).await;
        if status == 200 && check(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never held: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_fourth_service_works_end_to_end(store: Store) {
    let dfactory = register_dfactory();
    let upstream_url = serve_dfactory().await;
    let raw = RawSettings {
        database_url: Some(store.url.clone()),
        data_dir: Some(store.data_dir.path().to_owned()),
        api_addr: Some("127.0.0.1:0".into()),
        ui_addr: Some("127.0.0.1:0".into()),
        poll_interval_seconds: Some(1),
        service_urls: Some(vec![format!("dfactory={upstream_url}")]),
        ..RawSettings::default()
    };
    let settings = Settings::resolve(raw).unwrap();
    // The factory arm: the built-in factory, and DFactory's adapter for its service.
    let built_in = cfactory_server::upstream_factory::factory(&settings.upstreams).unwrap();
    let factory: cfactory_server::upstream_factory::Factory =
        Arc::new(move |service: Service, url: &str, token: Option<&str>| {
            if service != dfactory {
                return built_in(service, url, token);
            }
            let config = cfactory_upstream_http::UpstreamConfig::new(
                url,
                token.map(str::to_owned),
                Duration::from_secs(5),
            )
            .map_err(|e| e.to_string())?;
            let upstream: Arc<dyn Upstream> = Arc::new(dfactory::DFactory::new(service, config));
            Ok(upstream)
        });
    let running = cfactory_server::app::start(&settings, factory)
        .await
        .unwrap();
    let base = format!("http://{}", running.api_addr);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();

    // Its completion event lands on its own stage, classified by its own review words.
    let mut done = event(
        "d-1",
        "acme/shop#77",
        "dfactory",
        "dep-77",
        "done",
        "2026-12-01T11:00:00Z",
    );
    done["repo"] = json!("acme/shop");
    let res = client
        .post(format!("{base}/api/events/completion"))
        .header("content-type", "application/json")
        .body(done.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 202, "{}", res.text().await.unwrap());
    let item = eventually(&client, &base, "/api/workitems/acme%2Fshop%2377", |b| {
        b["stages"]["deploy"]["status"] == "done"
    })
    .await;
    assert_eq!(item["liveness"]["active_stage"], "deploy", "{item}");
    assert_eq!(item["stages"]["deploy"]["status_class"], "done");

    // Its task list hydrates an item only it knows, with its review word read as review.
    let hydrated = eventually(&client, &base, "/api/workitems/acme%2Fshop%2378", |b| {
        b["stages"]["deploy"]["from_api"] == true
    })
    .await;
    assert_eq!(hydrated["stages"]["deploy"]["status_class"], "review");
    assert_eq!(hydrated["title"], "Ship #78");
    assert!(hydrated["stages"]["plan"].is_null());

    // The list filters by it (the store looks into the document for a stage it has no
    // column for), and by its stage.
    for query in ["service=dfactory", "stage=deploy"] {
        let (status, list) = get(&client, &base, &format!("/api/workitems?{query}")).await;
        assert_eq!(status, 200, "{list}");
        let mut keys: Vec<&str> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["correlation_key"].as_str().unwrap())
            .collect();
        keys.sort();
        assert_eq!(keys, ["acme/shop#77", "acme/shop#78"], "{query}: {list}");
    }
    let (_, others) = get(&client, &base, "/api/workitems?service=aifactory").await;
    assert_eq!(others["items"], json!([]), "{others}");

    // The services page watches it, online.
    let services = eventually(&client, &base, "/api/services", |b| {
        b["services"].as_array().is_some_and(|s| {
            s.iter()
                .any(|s| s["service"] == "dfactory" && s["health"]["status"] == "online")
        })
    })
    .await;
    let names: Vec<&str> = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["pfactory", "aifactory", "tfactory", "dfactory"]);

    // The rollups count items on its stage.
    let rollups = eventually(&client, &base, "/api/rollups", |b| {
        b["by_stage"]["deploy"] == 2
    })
    .await;
    assert_eq!(rollups["by_stage"]["none"], 0, "{rollups}");

    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_service_on_sqlite() {
    a_fourth_service_works_end_to_end(Store::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_service_on_postgres() {
    a_fourth_service_works_end_to_end(Store::postgres().await).await;
}
