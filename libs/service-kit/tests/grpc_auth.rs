//! The control endpoint in-process, through a tonic client: health and reflection are open,
//! control calls need the bearer token, and pause/resume change what status reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cdc_service_kit::grpc::{ExtraServices, GrpcEndpoint};
use cdc_service_kit::proto::control_client::ControlClient;
use cdc_service_kit::proto::{GetStatusRequest, PauseRequest, ResumeRequest, State};
use cdc_service_kit::{ServiceSpec, ServiceState};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::Channel;

const SPEC: ServiceSpec = ServiceSpec {
    name: "sample",
    version: "1.2.3",
    default_grpc_port: 0,
    default_metrics_port: 0,
};

struct Running {
    channel: Channel,
    state: ServiceState,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<cdc_service_kit::Result<()>>,
}

async fn start() -> Running {
    let state = ServiceState::new(SPEC);
    state.set_lifecycle(State::Running);
    let endpoint = GrpcEndpoint::bind(
        "127.0.0.1:0".parse().unwrap(),
        state.clone(),
        SecretString::from("s3cret"),
        ExtraServices::default(),
    )
    .await
    .unwrap();
    let addr = endpoint.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(endpoint.serve(shutdown.clone()));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Running {
        channel,
        state,
        shutdown,
        server,
    }
}

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test]
async fn control_calls_without_the_right_token_are_unauthenticated() {
    let running = start().await;
    let mut client = ControlClient::new(running.channel.clone());
    let missing = client.get_status(GetStatusRequest {}).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    let wrong = client
        .pause(with_token(PauseRequest { reason: "x".into() }, "guess"))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert!(
        !running.state.pause_state().paused,
        "a refused pause must not pause"
    );
}

#[tokio::test]
async fn health_answers_without_a_token_and_the_server_stops_on_shutdown() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let running = start().await;
    let mut health = HealthClient::new(running.channel.clone());
    let answer = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(answer.into_inner().status, ServingStatus::Serving as i32);
    let answer = health
        .check(HealthCheckRequest {
            service: "cdc.control.v1.Control".into(),
        })
        .await
        .unwrap();
    assert_eq!(answer.into_inner().status, ServingStatus::Serving as i32);
    running.shutdown.cancel();
    running.server.await.unwrap().unwrap();
}

#[tokio::test]
async fn status_reflects_pause_and_resume() {
    let running = start().await;
    let mut client = ControlClient::new(running.channel.clone());
    let status = client
        .get_status(with_token(GetStatusRequest {}, "s3cret"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (status.service.as_str(), status.version.as_str()),
        ("sample", "1.2.3")
    );
    assert_eq!(status.state, State::Running as i32);
    assert_eq!(status.instance_id, running.state.instance_id());

    let paused = client
        .pause(with_token(
            PauseRequest {
                reason: "rebuilding index".into(),
            },
            "s3cret",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paused.state, State::Paused as i32);
    assert_eq!(paused.pause_reason, "rebuilding index");
    assert!(running.state.pause_state().paused);

    let resumed = client
        .resume(with_token(ResumeRequest {}, "s3cret"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resumed.state, State::Running as i32);
    assert!(!running.state.pause_state().paused);
}
