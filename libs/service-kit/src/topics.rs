//! Topics created on first use: once per process and topic, with the partitions asked for (or
//! those of a sibling topic, so that keys keep their spread), compacted when asked.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tokio::runtime::Handle;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Creates missing output topics, once per process and topic.
pub struct TopicCreator {
    admin: AdminClient<DefaultClientContext>,
    metadata: BaseConsumer,
    known: Mutex<HashSet<String>>,
    runtime: Handle,
}

impl TopicCreator {
    /// A creator on the cluster of `client_config`.
    pub fn new(client_config: &ClientConfig, runtime: Handle) -> Result<TopicCreator, KafkaError> {
        Ok(TopicCreator {
            admin: client_config.create()?,
            metadata: client_config.create()?,
            known: Mutex::new(HashSet::new()),
            runtime,
        })
    }

    /// Makes sure `topic` exists; when missing it is created with the partitions of `like`
    /// (or one), compacted when asked. Blocks: call it from a blocking thread.
    pub fn ensure(&self, topic: &str, like: Option<&str>, compacted: bool) -> Result<(), String> {
        self.ensure_with(topic, compacted, || match like {
            Some(like) => Ok(i32::try_from(self.partitions(like)?.len())
                .unwrap_or(1)
                .max(1)),
            None => Ok(1),
        })
    }

    /// Makes sure `topic` exists; when missing it is created with `partitions` partitions,
    /// compacted when asked. Blocks: call it from a blocking thread.
    pub fn ensure_partitions(
        &self,
        topic: &str,
        partitions: i32,
        compacted: bool,
    ) -> Result<(), String> {
        self.ensure_with(topic, compacted, || Ok(partitions.max(1)))
    }

    fn ensure_with(
        &self,
        topic: &str,
        compacted: bool,
        partitions: impl FnOnce() -> Result<i32, String>,
    ) -> Result<(), String> {
        if self.known().contains(topic) {
            return Ok(());
        }
        if self.partitions(topic)?.is_empty() {
            self.create(topic, partitions()?, compacted)?;
        }
        self.known().insert(topic.to_owned());
        Ok(())
    }

    fn partitions(&self, topic: &str) -> Result<Vec<i32>, String> {
        crate::kafka::topic_partitions(&self.metadata, topic, METADATA_TIMEOUT)
    }

    fn create(&self, topic: &str, partitions: i32, compacted: bool) -> Result<(), String> {
        let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
        if compacted {
            new = new.set("cleanup.policy", "compact");
        }
        let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
        let results = self
            .runtime
            .block_on(self.admin.create_topics([&new], &options))
            .map_err(|e| format!("cannot create topic {topic}: {e}"))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(format!("cannot create topic {topic}: {code}")),
            }
        }
        tracing::info!(topic, partitions, "created topic");
        Ok(())
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
