//! Builds the adapter for each upstream service: the only module that names the
//! PFactory, AIFactory and TFactory adapter crates. A fourth service is one more arm here.
//! Which token an adapter carries is the registry's decision
//! ([`crate::live::upstreams::Upstreams`]): it binds each token to the origin it was set
//! for.

use std::sync::Arc;
use std::time::Duration;

use cfactory_domain::Service;
use cfactory_domain::ports::Upstream;
use cfactory_upstream_http::UpstreamConfig;

use crate::live::upstreams::UpstreamFactory;
use crate::settings::UpstreamSettings;

/// Per-call timeout of upstream requests.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);

/// The factory type the server starts with.
pub type Factory = UpstreamFactory;

/// A factory that builds each service's adapter for a base URL and the token to send
/// there. Fails when the TFactory time zone is not a known IANA name.
pub fn factory(settings: &UpstreamSettings) -> anyhow::Result<Factory> {
    let zone = cfactory_tfactory::parse_timezone(&settings.tfactory_timezone)
        .map_err(|e| anyhow::anyhow!("--tfactory-timezone: {e}"))?;
    Ok(Arc::new(
        move |service: Service, url: &str, token: Option<&str>| {
            let config = UpstreamConfig::new(url, token.map(str::to_owned), UPSTREAM_TIMEOUT)
                .map_err(|e| e.to_string())?;
            let upstream: Arc<dyn Upstream> = if service == Service::PFACTORY {
                Arc::new(cfactory_pfactory::PFactory::new(config))
            } else if service == Service::AIFACTORY {
                Arc::new(cfactory_aifactory::AIFactory::new(config))
            } else if service == Service::TFACTORY {
                Arc::new(cfactory_tfactory::TFactory::with_timezone(config, zone))
            } else {
                return Err(format!("no adapter for {service}"));
            };
            Ok(upstream)
        },
    ))
}
