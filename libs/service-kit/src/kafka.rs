//! The `[kafka]` section every service shares, and a probe that keeps the broker connection's
//! state visible in status.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::config::field_error;
use crate::error::FieldError;
use crate::proto::State;
use crate::state::ServiceState;

/// Connection to the Kafka cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port` separated by commas.
    pub bootstrap_servers: String,
    /// Prefix of every topic name (`<prefix>.raw.…`).
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    /// Extra librdkafka properties (e.g. `security.protocol`), passed through as given.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

fn default_topic_prefix() -> String {
    "cdc".to_owned()
}

impl KafkaConfig {
    /// Checks the section; pushes one error per bad value.
    pub fn validate(&self, errors: &mut Vec<FieldError>) {
        if self
            .bootstrap_servers
            .split(',')
            .any(|s| s.trim().is_empty())
        {
            errors.push(field_error(
                "kafka.bootstrap_servers",
                "expected `host:port[,host:port…]`".to_owned(),
            ));
        }
        if let Err(e) = cdc_model::Topics::new(&self.topic_prefix) {
            errors.push(field_error("kafka.topic_prefix", e.to_string()));
        }
    }

    /// Settings of a transactional producer with id `transactional_id`: batching for
    /// throughput, a bounded local queue, then the service's own `properties` on top.
    pub fn transactional_producer(
        &self,
        transactional_id: &str,
        transaction_timeout_ms: u64,
        properties: &BTreeMap<String, String>,
    ) -> ClientConfig {
        let mut producer = self.client_config();
        producer
            .set("transactional.id", transactional_id)
            .set("transaction.timeout.ms", transaction_timeout_ms.to_string())
            .set("linger.ms", "5")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.kbytes", "262144");
        for (key, value) in properties {
            producer.set(key, value);
        }
        producer
    }

    /// A librdkafka client configuration with the bootstrap servers and extra properties.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }
}

/// The default consumer group of a service's `[consumer]` section.
pub trait DefaultGroup {
    /// The group id used when the configuration gives none.
    const GROUP_ID: &'static str;
}

/// The `[consumer]` section of a service that consumes one stage's table topics as a group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, bound = "")]
pub struct ConsumerConfig<D: DefaultGroup> {
    /// Kafka consumer group; every instance of one pipeline's service shares it.
    #[serde(default = "default_group::<D>")]
    pub group_id: String,
    /// Which table topics, as a regular expression over the escaped table part
    /// `<db>.<schema>.<table>` (librdkafka syntax); default every table.
    #[serde(default = "default_table_pattern")]
    pub table_pattern: String,
    /// Extra librdkafka properties for the group consumer only (e.g. `session.timeout.ms`).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    #[serde(skip)]
    default_group: std::marker::PhantomData<D>,
}

impl<D: DefaultGroup> Default for ConsumerConfig<D> {
    fn default() -> Self {
        ConsumerConfig {
            group_id: default_group::<D>(),
            table_pattern: default_table_pattern(),
            properties: BTreeMap::new(),
            default_group: std::marker::PhantomData,
        }
    }
}

fn default_group<D: DefaultGroup>() -> String {
    D::GROUP_ID.to_owned()
}

fn default_table_pattern() -> String {
    ".*".to_owned()
}

impl<D: DefaultGroup> ConsumerConfig<D> {
    /// Checks the section; pushes one error per bad value.
    pub fn validate(&self, errors: &mut Vec<FieldError>) {
        if self.group_id.trim().is_empty() {
            errors.push(field_error(
                "consumer.group_id",
                "must not be empty".to_owned(),
            ));
        }
        if self.table_pattern.is_empty() {
            errors.push(field_error(
                "consumer.table_pattern",
                "must not be empty (`.*` selects every table)".to_owned(),
            ));
        }
    }

    /// The subscription: `^<prefix>\.<stage>\.<table_pattern>$`.
    pub fn subscription(&self, topic_prefix: &str, stage: &str) -> String {
        format!("^{topic_prefix}\\.{stage}\\.{}$", self.table_pattern)
    }

    /// Adds the extra properties to a consumer's settings, and the defaults every
    /// subscribing stage needs unless they are set.
    pub fn apply_properties(&self, config: &mut ClientConfig) {
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        if config.get("topic.metadata.refresh.interval.ms").is_none() {
            // Subscriptions are patterns and new tables appear as new topics: find them
            // within seconds, not after librdkafka's default of 5 minutes.
            config.set("topic.metadata.refresh.interval.ms", "5000");
        }
    }
}

/// A message's headers by name, values as text (dead-letter headers are text).
pub fn header_map<M: rdkafka::Message>(message: &M) -> std::collections::HashMap<String, String> {
    use rdkafka::message::Headers as _;
    message
        .headers()
        .map(|list| {
            list.iter()
                .map(|h| {
                    let value = h.value.map(|v| String::from_utf8_lossy(v).into_owned());
                    (h.key.to_owned(), value.unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The partition numbers of `topic` (empty when it does not exist).
pub fn topic_partitions<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i32>, String> {
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| format!("cannot read metadata of {topic}: {e}"))?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect())
}

/// Name of the Kafka component in status.
pub const KAFKA_COMPONENT: &str = "kafka";

/// Every `interval`, asks the cluster for its metadata and records the outcome as the `kafka`
/// component of `state`, until `shutdown` fires.
pub async fn probe_until(
    config: KafkaConfig,
    state: ServiceState,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let client_config = config.client_config();
        let probe = tokio::task::spawn_blocking(move || fetch_broker_count(&client_config));
        let outcome = tokio::select! {
            outcome = probe => outcome,
            () = shutdown.cancelled() => return,
        };
        match outcome {
            Ok(Ok(brokers)) => state.set_component(
                KAFKA_COMPONENT,
                State::Running,
                format!("{brokers} broker(s) reachable"),
            ),
            Ok(Err(e)) => state.set_component(KAFKA_COMPONENT, State::Degraded, e),
            Err(e) => state.set_component(KAFKA_COMPONENT, State::Degraded, e.to_string()),
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

fn fetch_broker_count(config: &ClientConfig) -> Result<usize, String> {
    let consumer: BaseConsumer = config
        .create()
        .map_err(|e| format!("cannot create a Kafka client: {e}"))?;
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(5))
        .map_err(|e| format!("cluster unreachable: {e}"))?;
    Ok(metadata.brokers().len())
}

/// A work loop for a service whose data path is not running yet: keeps the Kafka component's
/// status current until shutdown.
pub fn connectivity_worker(
    config: KafkaConfig,
    state: ServiceState,
    shutdown: CancellationToken,
) -> futures::future::BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        probe_until(config, state, Duration::from_secs(10), shutdown).await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Debug)]
    struct Group;

    impl DefaultGroup for Group {
        const GROUP_ID: &'static str = "cdc-test";
    }

    #[test]
    fn a_consumer_section_defaults_its_group_and_builds_its_subscription() {
        let config = ConsumerConfig::<Group>::default();
        assert_eq!(config.group_id, "cdc-test");
        assert_eq!(config.subscription("cdc", "raw"), r"^cdc\.raw\..*$");
        let mut errors = Vec::new();
        config.validate(&mut errors);
        assert!(errors.is_empty());
        let bad = ConsumerConfig::<Group> {
            group_id: " ".into(),
            table_pattern: String::new(),
            ..ConsumerConfig::default()
        };
        bad.validate(&mut errors);
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["consumer.group_id", "consumer.table_pattern"]);
    }
}
