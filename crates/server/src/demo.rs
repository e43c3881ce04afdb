//! `cfactory sim` and `cfactory demo`: the simulated services on their own, or wired to a
//! running cockpit (webhooks into its ingress, its adapters pointed at the simulator).

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

/// `cfactory demo`: the server on the configured store plus the simulator wired to it.
pub async fn demo(settings: Settings, args: &DemoArgs) -> anyhow::Result<()> {
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
    eprintln!("cfactory demo: Ctrl-C stops both");
    // The lines tests and supervisors read to find the bound ports.
    eprintln!("cfactory: API listening on http://{}", running.api_addr);
    eprintln!("cfactory: cockpit listening on http://{}", running.ui_addr);
    shutdown_signal().await;
    sim.shutdown().await;
    running.shutdown().await
}
