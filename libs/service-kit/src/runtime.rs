//! The life of a service process: read configuration, resolve secrets, start logging, metrics,
//! traces and the control endpoint, run the service's work until SIGTERM/SIGINT, stop cleanly.
//!
//! Exit codes: 0 after a clean stop, 2 for bad configuration or unresolvable secrets (retrying
//! will not help), 1 for any other failure.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use futures::future::BoxFuture;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::config::{ServiceConfig, ServiceSpec};
use crate::error::Error;
use crate::grpc::{ExtraServices, GrpcEndpoint};
use crate::metrics::MetricsEndpoint;
use crate::proto::State;
use crate::secrets::SecretResolver;
use crate::state::ServiceState;

/// How long the work loop gets to finish its batch after a stop signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Exit code for configuration and secret errors.
const EXIT_CONFIG: u8 = 2;

/// Command line shared by every service binary.
#[derive(Debug, Parser)]
struct Cli {
    /// TOML configuration file (default: the `CDC_<SERVICE>_CONFIG` environment variable;
    /// without either, only defaults and environment overrides apply).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Validate the configuration and resolve every secret, then exit.
    #[arg(long)]
    check_config: bool,
}

/// Secrets resolved at start-up, by configuration key.
#[derive(Clone)]
pub struct Secrets {
    by_key: Arc<HashMap<&'static str, SecretString>>,
}

impl Secrets {
    /// Secrets given directly, by configuration key (tests and tools that resolve them
    /// themselves).
    pub fn from_values(by_key: HashMap<&'static str, SecretString>) -> Secrets {
        Secrets {
            by_key: Arc::new(by_key),
        }
    }

    /// The secret stored under configuration key `key` (as listed by
    /// [`ServiceConfig::secret_refs`]).
    pub fn get(&self, key: &str) -> anyhow::Result<&SecretString> {
        self.by_key.get(key).ok_or_else(|| {
            anyhow::anyhow!("no secret was resolved for `{key}`: list it in secret_refs")
        })
    }
}

/// What a service gets to start its work.
pub struct ServiceContext<C> {
    /// The validated configuration.
    pub config: Arc<C>,
    /// Live state, shared with the control API.
    pub state: ServiceState,
    /// Resolved secrets.
    pub secrets: Secrets,
    /// Fires on SIGTERM/SIGINT; the work loop finishes its batch and returns.
    pub shutdown: CancellationToken,
    /// The configuration file read at start-up, for services that reload parts of it.
    pub config_file: Option<PathBuf>,
}

/// What a service hands back once it has started: its own gRPC services and its work loop.
pub struct Started {
    /// Per-service control services, served next to the common ones.
    pub services: ExtraServices,
    /// The work loop; returns after `shutdown` fires, or with an error.
    pub worker: BoxFuture<'static, anyhow::Result<()>>,
}

/// Runs a service binary to completion and returns its exit code. Call from `main`.
pub fn main<C, F, Fut>(spec: ServiceSpec, start: F) -> ExitCode
where
    C: ServiceConfig + Send + Sync + 'static,
    F: FnOnce(ServiceContext<C>) -> Fut,
    Fut: Future<Output = anyhow::Result<Started>>,
{
    let cli = Cli::parse();
    let file = cli
        .config
        .or_else(|| std::env::var_os(format!("{}_CONFIG", spec.env_prefix())).map(PathBuf::from));
    let config: C = match crate::config::load(&spec, file.as_deref()) {
        Ok(config) => config,
        Err(e) => return report_startup_error(&spec, &e),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!(
                "{}: cannot start the async runtime: {e}",
                spec.binary_name()
            );
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(spec, config, file, cli.check_config, start))
}

/// For one-shot commands of a service binary (such as `cdc-reconciler run`): reads the
/// configuration file (or `CDC_<SERVICE>_CONFIG`) and resolves every secret, as the service
/// would at start-up, without serving anything. Errors name the key; exit with
/// [`exit_code`] of them.
pub async fn load_for_command<C: ServiceConfig>(
    spec: &ServiceSpec,
    file: Option<PathBuf>,
) -> Result<(C, Secrets), Error> {
    let file = file
        .or_else(|| std::env::var_os(format!("{}_CONFIG", spec.env_prefix())).map(PathBuf::from));
    let config: C = crate::config::load(spec, file.as_deref())?;
    let resolver = SecretResolver::connect(config.vault())?;
    let secrets = resolve_all(&resolver, &config).await?;
    Ok((config, secrets))
}

/// The exit code for an error of start-up: 2 for configuration and secrets, 1 otherwise.
pub fn exit_code(error: &Error) -> ExitCode {
    match error {
        Error::ConfigSource(_) | Error::ConfigInvalid(_) | Error::Secret { .. } => {
            ExitCode::from(EXIT_CONFIG)
        }
        _ => ExitCode::FAILURE,
    }
}

fn report_startup_error(spec: &ServiceSpec, error: &Error) -> ExitCode {
    eprintln!("{}: {error}", spec.binary_name());
    exit_code(error)
}

async fn run<C, F, Fut>(
    spec: ServiceSpec,
    config: C,
    config_file: Option<PathBuf>,
    check_only: bool,
    start: F,
) -> ExitCode
where
    C: ServiceConfig + Send + Sync + 'static,
    F: FnOnce(ServiceContext<C>) -> Fut,
    Fut: Future<Output = anyhow::Result<Started>>,
{
    let resolver = match SecretResolver::connect(config.vault()) {
        Ok(resolver) => resolver,
        Err(e) => return report_startup_error(&spec, &e),
    };
    let secrets = match resolve_all(&resolver, &config).await {
        Ok(secrets) => secrets,
        Err(e) => return report_startup_error(&spec, &e),
    };
    if check_only {
        eprintln!(
            "{}: configuration is valid and every secret resolves",
            spec.binary_name()
        );
        return ExitCode::SUCCESS;
    }
    let _telemetry = match crate::telemetry::init(spec.name, config.telemetry()) {
        Ok(guard) => guard,
        Err(e) => return report_startup_error(&spec, &e),
    };
    match serve(spec, config, config_file, resolver, secrets, start).await {
        Ok(()) => {
            tracing::info!("stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "stopped with an error");
            ExitCode::FAILURE
        }
    }
}

async fn resolve_all<C: ServiceConfig>(
    resolver: &SecretResolver,
    config: &C,
) -> Result<Secrets, Error> {
    let mut by_key = HashMap::new();
    for (key, reference) in crate::config::secret_refs(config) {
        by_key.insert(key, resolver.resolve(key, reference).await?);
    }
    Ok(Secrets {
        by_key: Arc::new(by_key),
    })
}

async fn serve<C, F, Fut>(
    spec: ServiceSpec,
    config: C,
    config_file: Option<PathBuf>,
    resolver: SecretResolver,
    secrets: Secrets,
    start: F,
) -> anyhow::Result<()>
where
    C: ServiceConfig + Send + Sync + 'static,
    F: FnOnce(ServiceContext<C>) -> Fut,
    Fut: Future<Output = anyhow::Result<Started>>,
{
    let state = ServiceState::new(spec);
    let shutdown = CancellationToken::new();
    let config = Arc::new(config);
    let recorder = crate::metrics::install_recorder()?;
    crate::metrics::describe_kit_metrics(&state);
    let metrics = MetricsEndpoint::bind(config.metrics().listen, recorder, state.clone()).await?;
    let token = secrets.get("grpc.auth_token")?.clone();
    let started = start(ServiceContext {
        config: config.clone(),
        state: state.clone(),
        secrets,
        shutdown: shutdown.clone(),
        config_file,
    })
    .await?;
    let grpc =
        GrpcEndpoint::bind(config.grpc().listen, state.clone(), token, started.services).await?;
    tracing::info!(
        grpc = %display_addr(grpc.local_addr()),
        metrics = %display_addr(metrics.local_addr()),
        instance = state.instance_id(),
        version = spec.version,
        "started"
    );
    let grpc_task = tokio::spawn(grpc.serve(shutdown.clone()));
    let metrics_task = tokio::spawn(metrics.serve(shutdown.clone()));
    let renew_task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { resolver.renew_token_until(shutdown).await }
    });
    tokio::spawn(stop_on_signal(shutdown.clone()));
    state.set_lifecycle(State::Running);
    let worker = run_worker(started.worker, &shutdown, &state).await;
    shutdown.cancel();
    let (grpc_result, metrics_result, _) = tokio::join!(grpc_task, metrics_task, renew_task);
    grpc_result??;
    metrics_result??;
    worker
}

async fn run_worker(
    worker: BoxFuture<'static, anyhow::Result<()>>,
    shutdown: &CancellationToken,
    state: &ServiceState,
) -> anyhow::Result<()> {
    let mut worker = tokio::spawn(worker);
    let result = tokio::select! {
        joined = &mut worker => joined,
        () = shutdown.cancelled() => {
            state.set_lifecycle(State::Stopping);
            tracing::info!(grace_seconds = SHUTDOWN_GRACE.as_secs(), "stop requested; finishing work in flight");
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut worker).await {
                Ok(joined) => joined,
                Err(_) => {
                    worker.abort();
                    anyhow::bail!("the work loop did not stop within {} s", SHUTDOWN_GRACE.as_secs());
                }
            }
        }
    };
    let result = result.map_err(|e| anyhow::anyhow!("the work loop panicked: {e}"))?;
    if let Err(e) = &result {
        state.set_lifecycle(State::Failed);
        tracing::error!(error = format!("{e:#}"), "the work loop failed");
    }
    result
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT; a second one exits at once.
async fn stop_on_signal(shutdown: CancellationToken) {
    if let Err(e) = wait_for_signal().await {
        tracing::error!(error = %e, "cannot listen for stop signals");
        return;
    }
    tracing::info!("stop signal received");
    shutdown.cancel();
    if wait_for_signal().await.is_ok() {
        tracing::warn!("second stop signal: exiting without waiting");
        std::process::exit(130);
    }
}

async fn wait_for_signal() -> std::io::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => Ok(()),
        result = tokio::signal::ctrl_c() => result,
    }
}

fn display_addr(addr: Option<std::net::SocketAddr>) -> String {
    addr.map_or_else(|| "unknown".to_owned(), |a| a.to_string())
}
