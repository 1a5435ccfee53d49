//! The live state of a service instance: lifecycle, pause, and per-component status. Shared
//! by the work loops (which report into it and honour pauses) and the control API (which reads
//! and changes it).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::ServiceSpec;
use crate::proto::{ComponentStatus, ServiceStatus, State};

/// Whether work is paused, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pause {
    /// True while paused.
    pub paused: bool,
    /// The operator's reason, kept while paused.
    pub reason: String,
}

/// Cheaply clonable handle to the state of this service instance.
#[derive(Debug, Clone)]
pub struct ServiceState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    spec: ServiceSpec,
    instance_id: String,
    started_at_unix_ms: i64,
    lifecycle: RwLock<State>,
    pause: watch::Sender<Pause>,
    components: RwLock<BTreeMap<String, ComponentStatus>>,
}

impl ServiceState {
    /// New state for a service that is starting.
    pub fn new(spec: ServiceSpec) -> Self {
        let started_at_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Self {
            inner: Arc::new(Inner {
                spec,
                instance_id: uuid::Uuid::new_v4().to_string(),
                started_at_unix_ms,
                lifecycle: RwLock::new(State::Starting),
                pause: watch::Sender::new(Pause::default()),
                components: RwLock::new(BTreeMap::new()),
            }),
        }
    }

    /// The service's identity.
    pub fn spec(&self) -> &ServiceSpec {
        &self.inner.spec
    }

    /// Unique id of this process.
    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    /// Sets the lifecycle state (starting, running, stopping, failed).
    pub fn set_lifecycle(&self, state: State) {
        *write(&self.inner.lifecycle) = state;
    }

    /// Pauses work after the batch in flight; `reason` is shown in status.
    pub fn pause(&self, reason: &str) {
        self.inner.pause.send_replace(Pause {
            paused: true,
            reason: reason.to_owned(),
        });
        tracing::info!(reason, "paused by operator");
    }

    /// Resumes work.
    pub fn resume(&self) {
        self.inner.pause.send_replace(Pause::default());
        tracing::info!("resumed by operator");
    }

    /// The current pause state.
    pub fn pause_state(&self) -> Pause {
        self.inner.pause.borrow().clone()
    }

    /// Waits while paused. Returns false if `shutdown` fired first, true when work may go on.
    /// Work loops call this between batches.
    pub async fn wait_until_resumed(&self, shutdown: &CancellationToken) -> bool {
        let mut receiver = self.inner.pause.subscribe();
        tokio::select! {
            result = receiver.wait_for(|pause| !pause.paused) => result.is_ok(),
            () = shutdown.cancelled() => false,
        }
    }

    /// Records the state of one component (a connection, a consumer, a table).
    pub fn set_component(&self, name: &str, state: State, detail: impl Into<String>) {
        write(&self.inner.components).insert(
            name.to_owned(),
            ComponentStatus {
                name: name.to_owned(),
                state: state as i32,
                detail: detail.into(),
            },
        );
    }

    /// A snapshot for the control API.
    pub fn status(&self) -> ServiceStatus {
        let pause = self.pause_state();
        let lifecycle = *read(&self.inner.lifecycle);
        let state = if pause.paused && lifecycle == State::Running {
            State::Paused
        } else {
            lifecycle
        };
        ServiceStatus {
            service: self.inner.spec.name.to_owned(),
            version: self.inner.spec.version.to_owned(),
            instance_id: self.inner.instance_id.clone(),
            state: state as i32,
            started_at_unix_ms: self.inner.started_at_unix_ms,
            pause_reason: pause.reason,
            components: read(&self.inner.components).values().cloned().collect(),
        }
    }
}

// A poisoned lock only means another thread panicked while holding it; the data (plain status
// values) is still meaningful, so keep serving it rather than cascading the panic.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn spec() -> ServiceSpec {
        ServiceSpec {
            name: "test",
            version: "0.0.0",
            default_grpc_port: 1,
            default_metrics_port: 2,
        }
    }

    #[test]
    fn a_running_service_that_is_paused_reports_paused_with_the_reason() {
        let state = ServiceState::new(spec());
        state.set_lifecycle(State::Running);
        state.pause("maintenance window");
        let status = state.status();
        assert_eq!(status.state, State::Paused as i32);
        assert_eq!(status.pause_reason, "maintenance window");
        state.resume();
        assert_eq!(state.status().state, State::Running as i32);
        assert_eq!(state.status().pause_reason, "");
    }

    #[tokio::test]
    async fn work_waits_while_paused_and_goes_on_after_resume() {
        let state = ServiceState::new(spec());
        let shutdown = CancellationToken::new();
        state.pause("hold");
        let waiter = {
            let (state, shutdown) = (state.clone(), shutdown.clone());
            tokio::spawn(async move { state.wait_until_resumed(&shutdown).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "must wait while paused");
        state.resume();
        assert!(waiter.await.unwrap());
    }

    #[tokio::test]
    async fn shutdown_releases_a_paused_worker() {
        let state = ServiceState::new(spec());
        let shutdown = CancellationToken::new();
        state.pause("hold");
        shutdown.cancel();
        assert!(!state.wait_until_resumed(&shutdown).await);
    }
}
