//! `cfactory sim` and `cfactory demo`: the simulated services on their own, or wired to a
//! running cockpit (webhooks into its ingress, its adapters pointed at the simulator).
//!
//! The demo keeps its data apart from `serve`'s: its own SQLite store, audit secret and
//! anchor in `demo/` under the data dir, emptied at each start unless `--keep`, so
//! simulated items never mix with real ones (and `serve` never reads them). Both commands
//! need the `sim` cargo feature (on by default); a build without it says so.

use std::path::Path;

use anyhow::Context;

use crate::settings::{Database, Settings};

/// The folder of the data dir that holds the demo's own store.
pub const DEMO_DIR: &str = "demo";

/// The files of the demo's folder that a start without `--keep` removes: its store and
/// its audit secret and anchor. Nothing else there is touched.
const DEMO_FILES: &[&str] = &[
    "cfactory.db",
    "cfactory.db-wal",
    "cfactory.db-shm",
    crate::audit::ANCHOR_FILE,
    crate::audit::KEY_FILE,
];

/// The settings the demo runs on: `settings` with the data dir moved to its `demo/`
/// folder and the store to `cfactory.db` there (whatever database was configured), the
/// audit anchor beside it. Without `keep`, that folder's store and audit files are
/// removed first.
pub fn demo_settings(mut settings: Settings, keep: bool) -> anyhow::Result<Settings> {
    let dir = settings.data_dir.join(DEMO_DIR);
    if !keep {
        empty(&dir)?;
    }
    settings.database = Database::Sqlite(dir.join("cfactory.db"));
    settings.audit_anchor = None;
    settings.data_dir = dir;
    Ok(settings)
}

/// Removes the demo's store and audit files from `dir`, if there.
fn empty(dir: &Path) -> anyhow::Result<()> {
    for name in DEMO_FILES {
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("emptying the demo's store: removing {}", path.display())
                });
            }
        }
    }
    Ok(())
}

/// What a build without the simulator answers to `cfactory sim` and `cfactory demo`.
#[cfg(not(feature = "sim"))]
const NEEDS_SIM: &str = "this command needs the simulator, and this cfactory was built \
    without it (cargo feature `sim`, on by default): rebuild without \
    `--no-default-features`, or with `--features sim`";

/// The arguments of a command this build does not have (taken whole, so that the
/// command can say what is missing instead of what it does not understand).
#[cfg(not(feature = "sim"))]
#[derive(Debug, clap::Args)]
pub struct NotBuilt {
    /// Whatever was given, unread.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub args: Vec<String>,
}

/// `cfactory sim` in a build without the simulator: says what is missing.
#[cfg(not(feature = "sim"))]
pub async fn sim(_args: NotBuilt) -> anyhow::Result<()> {
    anyhow::bail!("cfactory sim: {NEEDS_SIM}")
}

/// `cfactory demo` in a build without the simulator: says what is missing.
#[cfg(not(feature = "sim"))]
pub async fn demo(_settings: Settings, _args: &crate::cli::DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("cfactory demo: {NEEDS_SIM}")
}

#[cfg(feature = "sim")]
pub use with_sim::{demo, sim};

#[cfg(feature = "sim")]
mod with_sim {
    use std::net::SocketAddr;

    use cfactory_domain::Service;
    use cfactory_sim::{SimArgs, SimConfig, Simulator};

    use crate::app::{self, shutdown_signal};
    use crate::cli::DemoArgs;
    use crate::settings::Settings;

    /// `cfactory sim`: serves the three simulated services until Ctrl-C or SIGTERM.
    pub async fn sim(args: SimArgs) -> anyhow::Result<()> {
        let handle = Simulator::start(args.into_config()).await?;
        eprintln!("cfactory sim: PFactory  {}", handle.pfactory_url);
        eprintln!("cfactory sim: AIFactory {}", handle.aifactory_url);
        eprintln!("cfactory sim: TFactory  {}", handle.tfactory_url);
        shutdown_signal().await;
        let stats = handle.stats();
        handle.shutdown().await;
        eprintln!(
            "cfactory sim: stopped after {} events ({} webhook failures)",
            stats.events_sent, stats.webhook_failures
        );
        Ok(())
    }

    fn any_port() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    /// `cfactory demo`: the server on the demo's own store plus the simulator wired to it.
    pub async fn demo(settings: Settings, args: &DemoArgs) -> anyhow::Result<()> {
        let serves = super::Database::Sqlite(settings.data_dir.join("cfactory.db"));
        let configured = (settings.database != serves).then(|| settings.database.describe());
        let settings = super::demo_settings(settings, args.keep)?;
        if let Some(configured) = configured {
            eprintln!(
                "cfactory demo: the configured database ({configured}) is not used: the \
                 demo keeps its own"
            );
        }
        let factory = crate::upstream_factory::factory(&settings.upstreams)?;
        let running = app::start(&settings, factory).await?;
        let webhook = format!("http://{}/api/events/completion", running.api_addr);
        let sim = Simulator::start(SimConfig {
            pfactory_addr: any_port(),
            aifactory_addr: any_port(),
            tfactory_addr: any_port(),
            token: None,
            admin_token: None,
            webhook_url: Some(webhook),
            webhook_token: args.webhook_token.clone(),
            scenarios: args.scenarios.clone(),
            seed: args.seed,
            speed: args.speed,
            units: args.units,
        })
        .await;
        let sim = match sim {
            Ok(sim) => sim,
            Err(e) => {
                running.shutdown().await?;
                return Err(e);
            }
        };
        for (service, url) in [
            (Service::PFACTORY, &sim.pfactory_url),
            (Service::AIFACTORY, &sim.aifactory_url),
            (Service::TFACTORY, &sim.tfactory_url),
        ] {
            let pointed = running
                .state
                .upstreams
                .set_for_now(&settings.tenant, service, url)
                .await;
            if let Err(e) = pointed {
                tracing::warn!(%service, error = %e, "could not point the adapter at the simulator");
            }
        }
        eprintln!("cfactory demo: cockpit  http://{}", running.ui_addr);
        eprintln!("cfactory demo: API      http://{}", running.api_addr);
        eprintln!(
            "cfactory demo: simulated PFactory {}, AIFactory {}, TFactory {}",
            sim.pfactory_url, sim.aifactory_url, sim.tfactory_url
        );
        eprintln!(
            "cfactory demo: data     {} (the demo's own store, {})",
            settings.data_dir.display(),
            if args.keep {
                "kept from the last run"
            } else {
                "emptied at this start; --keep keeps it"
            }
        );
        eprintln!("cfactory demo: Ctrl-C stops both");
        // The lines tests and supervisors read to find the bound ports.
        eprintln!("cfactory: API listening on http://{}", running.api_addr);
        eprintln!("cfactory: cockpit listening on http://{}", running.ui_addr);
        shutdown_signal().await;
        sim.shutdown().await;
        running.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::RawSettings;

    fn settings_in(dir: &Path) -> Settings {
        let raw = RawSettings {
            data_dir: Some(dir.to_owned()),
            database_url: Some("postgres://cf@db/cf".into()),
            audit_anchor: Some(dir.join("serve.anchor")),
            ..RawSettings::default()
        };
        Settings::resolve(raw).unwrap()
    }

    #[test]
    fn the_demo_runs_in_its_own_folder_whatever_store_is_configured() {
        let dir = tempfile::tempdir().unwrap();
        let s = demo_settings(settings_in(dir.path()), true).unwrap();
        let own = dir.path().join(DEMO_DIR);
        assert_eq!(s.data_dir, own);
        assert_eq!(s.database, Database::Sqlite(own.join("cfactory.db")));
        assert_eq!(s.audit_anchor_path(), own.join(crate::audit::ANCHOR_FILE));
    }

    #[test]
    fn a_start_without_keep_removes_the_demos_files_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join(DEMO_DIR);
        std::fs::create_dir_all(&own).unwrap();
        for name in DEMO_FILES {
            std::fs::write(own.join(name), "x").unwrap();
        }
        let others = [
            own.join("notes.txt"),
            dir.path().join("cfactory.db"),
            dir.path().join(crate::audit::KEY_FILE),
        ];
        for path in &others {
            std::fs::write(path, "keep me").unwrap();
        }

        demo_settings(settings_in(dir.path()), true).unwrap();
        assert!(
            DEMO_FILES.iter().all(|n| own.join(n).exists()),
            "--keep kept all"
        );

        demo_settings(settings_in(dir.path()), false).unwrap();
        for name in DEMO_FILES {
            assert!(!own.join(name).exists(), "{name} is still there");
        }
        for path in &others {
            assert_eq!(std::fs::read_to_string(path).unwrap(), "keep me");
        }
        // Nothing there yet is no error either.
        demo_settings(settings_in(dir.path()), false).unwrap();
    }
}
