//! Builds the adapter for each upstream service: the only module that names the
//! PFactory, AIFactory and TFactory adapter crates. A fourth service is one more arm here.

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

/// The origin (scheme, host, port) of a base URL, the unit a token is bound to.
fn origin(url: &str) -> Option<url::Origin> {
    url::Url::parse(url)
        .ok()
        .map(|u| u.origin())
        .filter(url::Origin::is_tuple)
}

/// A factory that builds each service's adapter. A service's token is bound to the
/// origin of the URL it was configured with (`--aifactory-url` beside `--upstream-token`):
/// an adapter for any other origin (a URL changed in the cockpit, or stored) runs without
/// it, so a token never reaches a host it was not set for. A token configured without a
/// URL is sent nowhere. Fails when the TFactory time zone is not a known IANA name.
pub fn factory(settings: &UpstreamSettings) -> anyhow::Result<Factory> {
    let zone = cfactory_tfactory::parse_timezone(&settings.tfactory_timezone)
        .map_err(|e| anyhow::anyhow!("--tfactory-timezone: {e}"))?;
    let mut tokens: Vec<(Service, url::Origin, crate::settings::Secret)> = Vec::new();
    for (service, target) in &settings.targets {
        let Some(token) = target.token.clone() else {
            continue;
        };
        match target.url.as_deref().and_then(origin) {
            Some(bound) => tokens.push((*service, bound, token)),
            None => tracing::warn!(
                %service,
                "a token is configured without a URL to bind it to: it will not be sent \
                 (set the service's URL flag beside its token)"
            ),
        }
    }
    Ok(Arc::new(move |service: Service, url: &str| {
        let here = origin(url);
        let token = tokens
            .iter()
            .find(|(s, bound, _)| *s == service && Some(bound) == here.as_ref())
            .map(|(_, _, t)| t.expose().to_owned());
        let config =
            UpstreamConfig::new(url, token, UPSTREAM_TIMEOUT).map_err(|e| e.to_string())?;
        let upstream: Arc<dyn Upstream> = match service {
            Service::Pfactory => Arc::new(cfactory_pfactory::PFactory::new(config)),
            Service::Aifactory => Arc::new(cfactory_aifactory::AIFactory::new(config)),
            Service::Tfactory => Arc::new(cfactory_tfactory::TFactory::with_timezone(config, zone)),
            other => return Err(format!("no adapter for {other}")),
        };
        Ok(upstream)
    }))
}
