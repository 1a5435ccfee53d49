//! Per-test Kafka topics, deleted when the test ends.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

use crate::Stack;

/// Topics that belong to one test: all names start with a unique prefix.
pub struct TestTopics {
    /// The unique prefix, usable as a topic prefix in service configs.
    pub prefix: String,
    created: Vec<String>,
    admin: AdminClient<DefaultClientContext>,
}

impl TestTopics {
    /// A fresh, unique prefix on the stack's cluster.
    pub fn new(stack: &Stack) -> TestTopics {
        let admin = client_config(stack)
            .create()
            .expect("cannot create a Kafka admin client");
        TestTopics {
            prefix: format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            created: Vec::new(),
            admin,
        }
    }

    /// Creates `<prefix>.<suffix>` with `partitions` partitions and returns its name.
    pub async fn create(&mut self, suffix: &str, partitions: i32) -> String {
        let name = format!("{}.{suffix}", self.prefix);
        let topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = self
            .admin
            .create_topics([&topic], &options)
            .await
            .expect("Kafka did not answer CreateTopics");
        for result in results {
            result.unwrap_or_else(|(topic, e)| panic!("cannot create topic {topic}: {e}"));
        }
        self.created.push(name.clone());
        name
    }
}

impl Drop for TestTopics {
    fn drop(&mut self) {
        if self.created.is_empty() {
            return;
        }
        let names: Vec<&str> = self.created.iter().map(String::as_str).collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        // librdkafka completes admin futures on its own threads, so blocking here is safe
        // even outside a Tokio runtime.
        if let Err(e) = futures::executor::block_on(self.admin.delete_topics(&names, &options)) {
            eprintln!("warning: could not delete test topics {names:?}: {e}");
        }
    }
}

/// Client configuration for the stack's cluster.
pub fn client_config(stack: &Stack) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &stack.kafka_bootstrap);
    config
}
