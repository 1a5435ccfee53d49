//! The gRPC control endpoint: `grpc.health.v1`, reflection, the common `Control` service, and
//! whatever per-service control services a binary adds, behind a bearer-token check.

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::error::{Error, Result};
use crate::proto::control_server::{Control, ControlServer};
use crate::proto::{GetStatusRequest, PauseRequest, ResumeRequest, ServiceStatus};
use crate::state::ServiceState;

/// Encoded descriptor set of the common control API, for reflection.
pub const CONTROL_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("cdc_control_descriptor");

/// Paths that answer without a token: health checks (load balancers, orchestrators) and
/// reflection (grpcurl's discovery). Everything else is a control call and needs the token.
const PUBLIC_PREFIXES: [&str; 3] = [
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// The common control service over a [`ServiceState`].
#[derive(Debug, Clone)]
pub struct ControlService {
    state: ServiceState,
}

impl ControlService {
    /// Serves `state`.
    pub fn new(state: ServiceState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl Control for ControlService {
    #[tracing::instrument(skip_all)]
    async fn get_status(
        &self,
        _request: Request<GetStatusRequest>,
    ) -> Result<Response<ServiceStatus>, Status> {
        Ok(Response::new(self.state.status()))
    }

    #[tracing::instrument(skip_all)]
    async fn pause(
        &self,
        request: Request<PauseRequest>,
    ) -> Result<Response<ServiceStatus>, Status> {
        let reason = request.into_inner().reason;
        let reason = if reason.trim().is_empty() {
            "paused by operator (no reason given)".to_owned()
        } else {
            reason
        };
        self.state.pause(&reason);
        Ok(Response::new(self.state.status()))
    }

    #[tracing::instrument(skip_all)]
    async fn resume(
        &self,
        _request: Request<ResumeRequest>,
    ) -> Result<Response<ServiceStatus>, Status> {
        self.state.resume();
        Ok(Response::new(self.state.status()))
    }
}

/// Tower layer that refuses every call but health and reflection unless it carries
/// `authorization: Bearer <token>`. Deny by default, so a newly added service is protected
/// without anyone remembering to protect it.
#[derive(Clone)]
pub struct BearerAuthLayer {
    token: Arc<SecretString>,
}

impl BearerAuthLayer {
    /// Checks calls against `token`.
    pub fn new(token: SecretString) -> Self {
        Self {
            token: Arc::new(token),
        }
    }
}

impl<S> tower::Layer<S> for BearerAuthLayer {
    type Service = BearerAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth {
            inner,
            token: self.token.clone(),
        }
    }
}

/// The service made by [`BearerAuthLayer`].
#[derive(Clone)]
pub struct BearerAuth<S> {
    inner: S,
    token: Arc<SecretString>,
}

impl<S, ReqBody> tower::Service<http::Request<ReqBody>> for BearerAuth<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Self::Response, Self::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let path = request.uri().path();
        if PUBLIC_PREFIXES.iter().any(|p| path.starts_with(p))
            || presents_token(request.headers(), &self.token)
        {
            Either::Left(self.inner.call(request))
        } else {
            tracing::warn!(path, "control call refused: missing or wrong bearer token");
            let status = Status::unauthenticated("missing or invalid bearer token");
            Either::Right(ready(Ok(status.into_http())))
        }
    }
}

fn presents_token(headers: &http::HeaderMap, token: &SecretString) -> bool {
    let Some(presented) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    constant_time_eq(presented.as_bytes(), token.expose_secret().as_bytes())
}

/// Compares without an early exit, so response timing does not reveal a token prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A bound, not yet serving, control endpoint.
pub struct GrpcEndpoint {
    listener: TcpListener,
    health: HealthReporter,
    routes: Routes,
    token: SecretString,
}

impl GrpcEndpoint {
    /// Binds `addr` and assembles health, reflection, control and `extra` services.
    pub async fn bind(
        addr: SocketAddr,
        state: ServiceState,
        token: SecretString,
        extra: ExtraServices,
    ) -> Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind {
                what: "gRPC",
                addr,
                source,
            })?;
        let (health, health_service) = tonic_health::server::health_reporter();
        let mut reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(CONTROL_DESCRIPTOR_SET);
        let mut reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(CONTROL_DESCRIPTOR_SET);
        for descriptor in &extra.descriptor_sets {
            reflection_v1 = reflection_v1.register_encoded_file_descriptor_set(descriptor);
            reflection_v1alpha =
                reflection_v1alpha.register_encoded_file_descriptor_set(descriptor);
        }
        let reflection_error = |e: tonic_reflection::server::Error| {
            Error::Telemetry(format!("cannot build the reflection service: {e}"))
        };
        let mut routes = extra
            .routes
            .add_service(health_service)
            .add_service(reflection_v1.build_v1().map_err(reflection_error)?)
            .add_service(
                reflection_v1alpha
                    .build_v1alpha()
                    .map_err(reflection_error)?,
            )
            .add_service(ControlServer::new(ControlService::new(state)));
        routes = routes.prepare();
        Ok(Self {
            listener,
            health,
            routes,
            token,
        })
    }

    /// The bound address (useful when the configured port was 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// The health reporter, to mark services serving or not.
    pub fn health(&self) -> HealthReporter {
        self.health.clone()
    }

    /// Serves until `shutdown` fires, then finishes calls in flight.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<()> {
        self.health
            .set_service_status("", ServingStatus::Serving)
            .await;
        self.health
            .set_serving::<ControlServer<ControlService>>()
            .await;
        let health = self.health.clone();
        let stopping = async move {
            shutdown.cancelled().await;
            health
                .set_service_status("", ServingStatus::NotServing)
                .await;
            health
                .set_not_serving::<ControlServer<ControlService>>()
                .await;
        };
        tonic::transport::Server::builder()
            .layer(BearerAuthLayer::new(self.token))
            .add_routes(self.routes)
            .serve_with_incoming_shutdown(TcpIncoming::from(self.listener), stopping)
            .await
            .map_err(Error::Grpc)
    }
}

/// Per-service gRPC services and their descriptor sets (for reflection).
#[derive(Default)]
pub struct ExtraServices {
    routes: Routes,
    descriptor_sets: Vec<&'static [u8]>,
}

impl ExtraServices {
    /// Adds a service and the encoded descriptor set that describes it.
    pub fn add<S>(mut self, service: S, descriptor_set: &'static [u8]) -> Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + tonic::server::NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.routes = self.routes.add_service(service);
        self.descriptor_sets.push(descriptor_set);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_equal_only_when_identical() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn only_a_bearer_header_with_the_exact_token_is_accepted() {
        let token = SecretString::from("s3cret");
        let mut headers = http::HeaderMap::new();
        assert!(!presents_token(&headers, &token));
        headers.insert(http::header::AUTHORIZATION, "Bearer wrong".parse().unwrap());
        assert!(!presents_token(&headers, &token));
        headers.insert(http::header::AUTHORIZATION, "s3cret".parse().unwrap());
        assert!(!presents_token(&headers, &token));
        headers.insert(
            http::header::AUTHORIZATION,
            "Bearer s3cret".parse().unwrap(),
        );
        assert!(presents_token(&headers, &token));
    }
}
