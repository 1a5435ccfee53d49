//! Prometheus metrics on `/metrics`, plus `/healthz` (the process is up) and `/readyz` (it is
//! running and not failed) for orchestrators that do not speak gRPC health.

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::Router;
use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::proto::State;
use crate::state::ServiceState;

static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once and returns its handle.
pub fn install_recorder() -> Result<PrometheusHandle> {
    if let Some(handle) = RECORDER.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| Error::Telemetry(format!("cannot install the metrics recorder: {e}")))?;
    Ok(RECORDER.get_or_init(|| handle).clone())
}

/// Name of a service metric: `cdc_<service>_<what>`, `what` ending in its unit.
pub fn metric_name(service: &str, what: &str) -> String {
    format!("cdc_{service}_{what}")
}

/// Metrics every service exports through the kit.
pub fn describe_kit_metrics(state: &ServiceState) {
    let service = state.spec().name;
    metrics::describe_gauge!(
        metric_name(service, "build_info"),
        "Always 1; labels carry the version and instance id."
    );
    metrics::describe_gauge!(
        metric_name(service, "paused"),
        "1 while an operator has paused the service."
    );
    metrics::describe_gauge!(
        metric_name(service, "start_time_seconds"),
        "Start time of the process, seconds since the Unix epoch."
    );
    let labels = [
        ("version", state.spec().version.to_owned()),
        ("instance", state.instance_id().to_owned()),
    ];
    metrics::gauge!(metric_name(service, "build_info"), &labels).set(1.0);
    #[allow(clippy::cast_precision_loss)] // milliseconds since 1970 fit in f64's 53 bits
    let started = state.status().started_at_unix_ms as f64 / 1000.0;
    metrics::gauge!(metric_name(service, "start_time_seconds")).set(started);
}

/// A bound, not yet serving, metrics endpoint.
pub struct MetricsEndpoint {
    listener: TcpListener,
    router: Router,
}

impl MetricsEndpoint {
    /// Binds `addr`.
    pub async fn bind(
        addr: SocketAddr,
        handle: PrometheusHandle,
        state: ServiceState,
    ) -> Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind {
                what: "metrics",
                addr,
                source,
            })?;
        let router = Router::new()
            .route("/metrics", get(render))
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(ready))
            .with_state((handle, state));
        Ok(Self { listener, router })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `shutdown` fires.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
            .map_err(Error::MetricsServer)
    }
}

type Shared = (PrometheusHandle, ServiceState);

async fn render(AxumState((handle, state)): AxumState<Shared>) -> String {
    let paused = if state.pause_state().paused { 1.0 } else { 0.0 };
    metrics::gauge!(metric_name(state.spec().name, "paused")).set(paused);
    handle.render()
}

async fn ready(AxumState((_, state)): AxumState<Shared>) -> (StatusCode, &'static str) {
    let status = state.status();
    if status.state == State::Running as i32 || status.state == State::Paused as i32 {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}
