//! CFactory's trace export: an adapter on the hexagon's edge that sends the server's
//! `tracing` spans (each request, each ingest, each action decision) to an OpenTelemetry
//! collector over OTLP/HTTP with protobuf bodies. Spans are batched and sent from a
//! thread of the exporter's own, so a slow or absent collector never holds a request up;
//! what it cannot take is dropped, and the log says so.
//!
//! OpenTelemetry and reqwest types stay in this crate: the server gets a `tracing` layer
//! and a handle that flushes at exit.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// The path OTLP/HTTP collectors take traces on.
pub const TRACES_PATH: &str = "/v1/traces";

/// The `service.name` the spans carry.
pub const SERVICE_NAME: &str = "cfactory";

/// Why the export could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The endpoint is not an absolute http(s) URL.
    #[error("the OTLP endpoint must be an absolute http:// or https:// URL, not `{0}`")]
    BadEndpoint(String),
    /// The exporter could not be built.
    #[error("the OTLP exporter could not start: {0}")]
    Exporter(String),
}

/// The URL spans are posted to: `endpoint` (a collector's OTLP/HTTP base URL, such as
/// `http://collector:4318`) with [`TRACES_PATH`], unless it already ends with it.
pub fn traces_url(endpoint: &str) -> Result<String, ExportError> {
    let endpoint = endpoint.trim();
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .ok_or_else(|| ExportError::BadEndpoint(endpoint.to_owned()))?;
    if rest.is_empty() || rest.starts_with('/') || endpoint.contains(char::is_whitespace) {
        return Err(ExportError::BadEndpoint(endpoint.to_owned()));
    }
    let base = endpoint.trim_end_matches('/');
    Ok(if base.ends_with(TRACES_PATH) {
        base.to_owned()
    } else {
        format!("{base}{TRACES_PATH}")
    })
}

/// A running export: the layer to add to the subscriber, and the provider that batches
/// and sends.
pub struct TraceExport {
    provider: SdkTracerProvider,
}

impl TraceExport {
    /// Starts exporting to the collector at `endpoint` (see [`traces_url`]), naming the
    /// service [`SERVICE_NAME`] at `version`.
    pub fn start(endpoint: &str, version: &'static str) -> Result<Self, ExportError> {
        let url = traces_url(endpoint)?;
        // reqwest's TLS (for an https collector) takes the process's crypto provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .build()
            .map_err(|e| ExportError::Exporter(e.to_string()))?;
        let resource = Resource::builder()
            .with_service_name(SERVICE_NAME)
            .with_attribute(opentelemetry::KeyValue::new("service.version", version))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        Ok(Self { provider })
    }

    /// The layer that turns the subscriber's spans into exported spans.
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer(SERVICE_NAME))
    }

    /// Sends what is still batched and stops the exporter.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("cfactory: the trace export did not shut down cleanly: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_added_once() {
        assert_eq!(
            traces_url("http://collector:4318").unwrap(),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://c.example/otel/").unwrap(),
            "https://c.example/otel/v1/traces"
        );
        assert_eq!(
            traces_url("http://c:4318/v1/traces").unwrap(),
            "http://c:4318/v1/traces"
        );
    }

    #[test]
    fn an_endpoint_that_is_not_an_http_url_is_refused() {
        for bad in [
            "collector:4318",
            "grpc://c:4317",
            "http://",
            "http:///x",
            "http://a b",
        ] {
            assert!(
                matches!(traces_url(bad), Err(ExportError::BadEndpoint(_))),
                "{bad}"
            );
        }
    }
}
