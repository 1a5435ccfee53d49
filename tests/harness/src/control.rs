//! Talking to a service's control API from tests: a channel whose calls carry the bearer token.

use std::net::SocketAddr;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A channel to a control endpoint with the token on every call.
pub type ControlChannel = InterceptedService<Channel, Bearer>;

/// Connects to `addr`; every call carries `token`. Wrap it in a generated client with
/// `XClient::new(channel)`.
pub async fn connect(addr: SocketAddr, token: &str) -> ControlChannel {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("a socket address is a valid URI")
        .connect()
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the gRPC port {addr}: {e}"));
    let header = format!("Bearer {token}").parse().expect("a token is ASCII");
    InterceptedService::new(channel, Bearer(header))
}
