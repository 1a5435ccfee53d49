//! Logs and traces: JSON lines on stdout, and OTLP traces when an endpoint is configured. Trace
//! context crosses process boundaries as W3C `traceparent`.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::TelemetryConfig;
use crate::error::{Error, Result};

/// Flushes and stops trace export when dropped; keep it alive for the life of the process.
pub struct TelemetryGuard {
    tracer_provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer_provider.take()
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "trace exporter did not shut down cleanly");
        }
    }
}

/// Installs the global subscriber: JSON logs filtered by `log_filter`, plus an OpenTelemetry
/// layer exporting to `otlp_endpoint` when set. Call once, inside a Tokio runtime.
pub fn init(service: &str, config: &TelemetryConfig) -> Result<TelemetryGuard> {
    let filter = EnvFilter::try_new(&config.log_filter)
        .map_err(|e| Error::Telemetry(format!("telemetry.log_filter: {e}")))?;
    let json_logs = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_target(true);
    let tracer_provider = match &config.otlp_endpoint {
        Some(endpoint) => Some(tracer_provider(
            service,
            endpoint,
            config.trace_sample_ratio,
        )?),
        None => None,
    };
    let otel_layer = tracer_provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer().with_tracer(provider.tracer(format!("cdc-{service}")))
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(json_logs)
        .with(otel_layer)
        .try_init()
        .map_err(|e| Error::Telemetry(format!("a global subscriber is already set: {e}")))?;
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    if let Some(provider) = &tracer_provider {
        opentelemetry::global::set_tracer_provider(provider.clone());
    }
    Ok(TelemetryGuard { tracer_provider })
}

fn tracer_provider(service: &str, endpoint: &url::Url, ratio: f64) -> Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.as_str())
        .build()
        .map_err(|e| Error::Telemetry(format!("telemetry.otlp_endpoint: {e}")))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(format!("cdc-{service}"))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))))
        .with_resource(resource)
        .build())
}
