//! What `ctxmesh serve` tells about itself: logs on stderr (`CTXMESH_LOG`)
//! and, when an OTLP endpoint is configured, OpenTelemetry traces exported
//! by OTLP over HTTP (protobuf). Without an endpoint nothing of
//! OpenTelemetry runs, and the server's spans (DEBUG level) cost nothing
//! unless the logs ask for them.

use anyhow::Context as _;
use clap::Args;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The standard variables that name an OTLP endpoint.
const ENDPOINT_VARS: [&str; 2] = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"];

/// The path of the traces signal under an OTLP/HTTP endpoint.
const TRACES_PATH: &str = "/v1/traces";

/// How long an export may take, unless `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`
/// or `OTEL_EXPORTER_OTLP_TIMEOUT` say otherwise (in milliseconds).
const EXPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The export timeout of the standard variables.
fn export_timeout() -> std::time::Duration {
    ["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"]
        .iter()
        .find_map(|var| std::env::var(var).ok()?.trim().parse().ok())
        .map_or(EXPORT_TIMEOUT, std::time::Duration::from_millis)
}

/// Options of `ctxmesh serve` for traces.
#[derive(Args, Debug)]
pub(crate) struct TelemetryArgs {
    /// Export traces by OTLP over HTTP (protobuf) to this collector, e.g.
    /// http://127.0.0.1:4318 (`/v1/traces` is added unless the URL ends
    /// with it). Without it, the standard OTEL_EXPORTER_OTLP_ENDPOINT or
    /// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; with none of them, no traces
    /// (docs/observability.md).
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
}

/// The installed logging and tracing; [`Telemetry::shutdown`] sends the
/// spans not yet exported.
pub(crate) struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still queued and stops the exporter.
    pub(crate) async fn shutdown(self) {
        let Some(provider) = self.provider else { return };
        // The provider waits for its export task, which runs on the runtime.
        match tokio::task::spawn_blocking(move || provider.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the last traces could not be exported"),
            Err(e) => tracing::warn!(error = %e, "the last traces could not be exported"),
        }
    }
}

/// Where traces go: the endpoint of the flag (with the signal's path), the
/// one of the environment (read by the exporter), or none.
fn endpoint(args: &TelemetryArgs) -> anyhow::Result<Option<Option<String>>> {
    if let Some(url) = &args.otlp_endpoint {
        let url = url.trim();
        let uri: http::Uri = url.parse().with_context(|| format!("--otlp-endpoint {url:?} is not a URL"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            anyhow::bail!("--otlp-endpoint {url:?} is not an http:// or https:// URL (e.g. http://127.0.0.1:4318)");
        }
        let full = if uri.path().trim_end_matches('/').ends_with(TRACES_PATH) {
            url.to_owned()
        } else {
            format!("{}{TRACES_PATH}", url.trim_end_matches('/'))
        };
        return Ok(Some(Some(full)));
    }
    if std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    let from_env = ENDPOINT_VARS.iter().any(|var| std::env::var(var).is_ok_and(|v| !v.trim().is_empty()));
    Ok(from_env.then_some(None))
}

/// The resource of the spans: the standard variables
/// (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`), with `ctxmesh` as
/// the service name unless they give one.
fn resource() -> Resource {
    let version = opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION"));
    let detected = Resource::builder().build();
    let named = detected
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    let builder = Resource::builder().with_attribute(version);
    if named { builder.build() } else { builder.with_service_name("ctxmesh").build() }
}

/// The HTTP client of the exporter.
fn http_client() -> anyhow::Result<reqwest::Client> {
    // reqwest is built without a TLS crypto provider of its own: use ring
    // unless the process chose one already.
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    reqwest::Client::builder().timeout(export_timeout()).build().context("cannot build the OTLP HTTP client")
}

/// The tracer provider exporting to `endpoint` (`None`: the one the
/// standard variables name).
fn provider(endpoint: Option<String>) -> anyhow::Result<SdkTracerProvider> {
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_http_client(http_client()?);
    if let Some(endpoint) = endpoint {
        exporter = exporter.with_endpoint(endpoint);
    }
    let exporter = exporter.build().context("cannot set up the OTLP trace exporter")?;
    // Exports run on the server's runtime (the HTTP client needs it); the
    // OTEL_BSP_* variables tune the batches.
    let processor = opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
        exporter,
        opentelemetry_sdk::runtime::Tokio,
    )
    .build();
    // The sampler is OTEL_TRACES_SAMPLER's, by default parentbased_always_on.
    Ok(SdkTracerProvider::builder().with_span_processor(processor).with_resource(resource()).build())
}

/// Installs the logs (as configured by `CTXMESH_LOG`, default `info`) and,
/// when an endpoint is configured, the trace exporter. Runs inside the
/// runtime.
pub(crate) fn init(args: &TelemetryArgs) -> anyhow::Result<Telemetry> {
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(tracing_subscriber::EnvFilter::try_from_env("CTXMESH_LOG").unwrap_or_else(|_| "info".into()));
    let provider = endpoint(args)?.map(provider).transpose()?;
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("ctxmesh"))
            .with_threads(false)
            .with_location(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            // ctxmesh's spans, and its events of INFO and above (as span
            // events).
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                meta.target().starts_with("ctxmesh") && (meta.is_span() || *meta.level() <= tracing::Level::INFO)
            }))
    });
    tracing_subscriber::registry().with(logs).with(traces).init();
    Ok(Telemetry { provider })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(url: &str) -> anyhow::Result<Option<Option<String>>> {
        endpoint(&TelemetryArgs { otlp_endpoint: Some(url.to_owned()) })
    }

    #[test]
    fn the_flag_names_the_collector_or_its_traces_url() {
        let traces = |url: &str| flag(url).unwrap().unwrap().unwrap();
        assert_eq!(traces("http://127.0.0.1:4318"), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(traces("http://127.0.0.1:4318/"), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(traces("https://otel.example/v1/traces"), "https://otel.example/v1/traces");
        assert_eq!(traces("http://collector:4318/prefix"), "http://collector:4318/prefix/v1/traces");
        let refused = flag("127.0.0.1:4318").unwrap_err().to_string();
        assert!(refused.contains("--otlp-endpoint"), "{refused}");
        assert!(flag("not a url").is_err());
        assert!(flag("ftp://collector/").is_err());
    }
}
