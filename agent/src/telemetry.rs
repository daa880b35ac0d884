//! Logs and traces: the process-wide `tracing` subscriber.
//!
//! Log lines go to stderr, pretty or one JSON object per line (with the
//! fields of the current span: `method`, `protocol`, `subject`, `trace_id`),
//! filtered by `RUST_LOG` or else `log_level`. When `otlp_endpoint` is set, a
//! second layer turns spans into OpenTelemetry spans and a batch processor on
//! the tokio runtime exports them over OTLP/gRPC. Without an endpoint there is
//! no exporter and no OpenTelemetry layer at all; the W3C propagator is
//! installed either way, so request logs still carry the caller's trace id.

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{AgentConfig, LogFormat};

/// The `service.name` of exported spans.
const SERVICE_NAME: &str = "proglog";

/// Longest one export request may take: a slow collector must not keep a
/// batch (and, at shutdown, the process) waiting for long.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest shutdown waits for the last spans to be exported: one export
/// timeout plus room for the batch that was being sent.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Targets never given to the OpenTelemetry layer: the exporter's own
/// client stack and the SDK's diagnostics, so exporting never traces itself.
const NOT_EXPORTED: [&str; 5] = ["opentelemetry", "tonic", "h2", "hyper", "tower"];

/// Crates whose `debug` spans (append, read, read_batch) are exported, so a
/// trace shows where a request spent its time.
const OUR_CRATES: [&str; 3] = ["log_server", "log_core", "agent"];

/// The installed telemetry; [`Telemetry::shutdown`] exports what is left.
#[derive(Debug)]
pub struct Telemetry {
    /// Present only when spans are exported.
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Installs the global subscriber for `config`: logs always, OTLP span
    /// export when `otlp_endpoint` is set. Must run inside a tokio runtime
    /// (the exporter's batch task is spawned on it).
    ///
    /// If a global subscriber is already installed (several nodes in one
    /// test process), it is kept and a warning is logged through it.
    ///
    /// # Errors
    /// The OTLP exporter cannot be built from `otlp_endpoint`.
    pub fn init(config: &AgentConfig) -> anyhow::Result<Self> {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let filter =
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log_level));
        let provider = if config.otlp_endpoint.is_empty() {
            None
        } else {
            Some(tracer_provider(config)?)
        };
        let installed = match &provider {
            // A global filter: disabled levels cost one comparison.
            None => tracing_subscriber::registry()
                .with(filter)
                .with(fmt_layer(config.log_format))
                .try_init(),
            // Per-layer filters: spans are exported whatever the log level.
            Some(provider) => {
                let otel = tracing_opentelemetry::layer()
                    .with_tracer(provider.tracer(SERVICE_NAME))
                    .with_filter(tracing_subscriber::filter::filter_fn(exported));
                tracing_subscriber::registry()
                    .with(fmt_layer(config.log_format).with_filter(filter))
                    .with(otel)
                    .try_init()
            }
        };
        if installed.is_err() {
            tracing::warn!("a tracing subscriber was already installed; keeping it");
        }
        if provider.is_some() {
            tracing::info!(
                endpoint = %config.otlp_endpoint,
                sampling_ratio = config.otlp_sampling_ratio,
                "exporting trace spans over OTLP"
            );
        }
        Ok(Self { provider })
    }

    /// Exports the spans still queued and stops the exporter. Call it last,
    /// after the log is closed, so the shutdown's own spans are included.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        // The processor's shutdown blocks until its task has exported.
        let shutdown = tokio::task::spawn_blocking(move || provider.shutdown());
        match tokio::time::timeout(SHUTDOWN_TIMEOUT, shutdown).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "exporting the last spans failed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "the span exporter's shutdown failed"),
            Err(_) => tracing::warn!(
                timeout_ms = SHUTDOWN_TIMEOUT.as_millis(),
                "gave up exporting the last spans"
            ),
        }
    }
}

/// Log lines on stderr, in `format`.
fn fmt_layer<S>(format: LogFormat) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        // One object per line: the event's fields at the top level, the
        // current span's fields under "span" (the request's, for its events).
        LogFormat::Json => layer
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        LogFormat::Pretty => layer
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
    }
}

/// What the OpenTelemetry layer sees: spans and events at `info` and above,
/// plus our own `debug` spans; never the exporter's own stack.
fn exported(metadata: &Metadata<'_>) -> bool {
    is_exported(metadata.target(), *metadata.level(), metadata.is_span())
}

fn is_exported(target: &str, level: Level, is_span: bool) -> bool {
    if NOT_EXPORTED.iter().any(|prefix| target.starts_with(prefix)) {
        return false;
    }
    let ours = OUR_CRATES.iter().any(|name| {
        target
            .strip_prefix(name)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    });
    level <= Level::INFO || (is_span && ours && level <= Level::DEBUG)
}

/// The SDK pipeline: OTLP/gRPC exporter, batch processor on the tokio
/// runtime, parent-based ratio sampler, and this node's resource.
fn tracer_provider(config: &AgentConfig) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(config.otlp_endpoint.clone())
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .with_context(|| {
            format!(
                "otlp_endpoint {}: cannot build the exporter",
                config.otlp_endpoint
            )
        })?;
    let processor =
        BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
    let resource = Resource::builder()
        .with_service_name(SERVICE_NAME)
        .with_attribute(KeyValue::new(
            "service.instance.id",
            config.node_name.clone(),
        ))
        .build();
    // A caller's sampling decision wins; new traces are sampled by ratio.
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
        config.otlp_sampling_ratio,
    )));
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(sampler)
        .with_resource(resource)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_debug_spans_are_exported_but_not_the_exporters_own_stack() {
        assert!(is_exported("log_server::trace", Level::INFO, true));
        assert!(is_exported("log_server::local", Level::DEBUG, true));
        assert!(is_exported("log_core::log", Level::WARN, false));
        assert!(!is_exported("log_server::trace", Level::DEBUG, false));
        assert!(!is_exported("log_server::trace", Level::TRACE, true));
        assert!(!is_exported("agentx", Level::DEBUG, true));
        assert!(!is_exported("h2::proto", Level::DEBUG, true));
        assert!(!is_exported("tonic::transport", Level::INFO, true));
        assert!(!is_exported("opentelemetry_sdk", Level::ERROR, false));
    }
}
