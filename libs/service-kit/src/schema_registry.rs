//! The schema registry every consumer of change events uses: every table schema published to `<prefix>.schemas`, read from the
//! start of the compacted topic by a thread of its own and kept in memory by fingerprint.
//!
//! A schema is committed to Kafka before (or with) the first event that names it, so an
//! unknown fingerprint means "not read yet": the registry reads the topic to its current end
//! and only then calls the schema missing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use cdc_model::proto::TableSchema;
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// How long a lookup waits for the registry to read the topic to its end.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Why a schema cannot be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SchemaError {
    /// The topic was read to its end and holds no such schema: events naming it cannot be applied.
    #[error("schema {id} is not in {topic} (read to its end)")]
    Missing {
        /// The fingerprint.
        id: String,
        /// The schemas topic.
        topic: String,
    },
    /// The registry could not read the topic in time (Kafka down, topic absent); retrying helps.
    #[error("the schemas topic {topic} could not be read to its end: {reason}")]
    Unavailable {
        /// The schemas topic.
        topic: String,
        /// What failed.
        reason: String,
    },
}

struct SyncRequest {
    reply: oneshot::Sender<Result<(), String>>,
    requested: Instant,
    targets: Option<HashMap<i32, i64>>,
}

struct Shared {
    topic: String,
    schemas: RwLock<HashMap<String, Arc<TableSchema>>>,
    requests: Mutex<Vec<SyncRequest>>,
}

/// Schemas by fingerprint, filled by a background thread.
#[derive(Clone)]
pub struct SchemaRegistry {
    shared: Arc<Shared>,
}

impl SchemaRegistry {
    /// Starts reading `topic` from its beginning on a thread of its own, until `shutdown`.
    pub fn start(
        client_config: ClientConfig,
        topic: String,
        shutdown: CancellationToken,
    ) -> SchemaRegistry {
        let shared = Arc::new(Shared {
            topic,
            schemas: RwLock::new(HashMap::new()),
            requests: Mutex::new(Vec::new()),
        });
        let reader = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("schema-registry".to_owned())
            .spawn(move || read_forever(&reader, &client_config, &shutdown))
            .map_or_else(
                |e| tracing::error!(error = %e, "cannot start the schema registry thread"),
                drop,
            );
        SchemaRegistry { shared }
    }

    /// The schema with fingerprint `id`, reading the topic to its end first when it is not known.
    pub async fn get(&self, id: &str) -> Result<Arc<TableSchema>, SchemaError> {
        if let Some(schema) = self.cached(id) {
            return Ok(schema);
        }
        let (reply, answer) = oneshot::channel();
        if let Ok(mut requests) = self.shared.requests.lock() {
            requests.push(SyncRequest {
                reply,
                requested: Instant::now(),
                targets: None,
            });
        }
        let unavailable = |reason: String| SchemaError::Unavailable {
            topic: self.shared.topic.clone(),
            reason,
        };
        match answer.await {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(unavailable(reason)),
            Err(_) => return Err(unavailable("the registry thread stopped".to_owned())),
        }
        self.cached(id).ok_or_else(|| SchemaError::Missing {
            id: id.to_owned(),
            topic: self.shared.topic.clone(),
        })
    }

    fn cached(&self, id: &str) -> Option<Arc<TableSchema>> {
        self.shared
            .schemas
            .read()
            .ok()
            .and_then(|schemas| schemas.get(id).cloned())
    }
}

fn read_forever(shared: &Shared, client_config: &ClientConfig, shutdown: &CancellationToken) {
    let mut config = client_config.clone();
    config
        .set("group.id", "cdc-schema-registry")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false");
    let consumer: BaseConsumer = match config.create() {
        Ok(consumer) => consumer,
        Err(e) => {
            tracing::error!(error = %e, "cannot create the schema registry's consumer");
            return;
        }
    };
    let mut assigned: Vec<i32> = Vec::new();
    while !shutdown.is_cancelled() {
        if assigned.is_empty() {
            match assign_all(&consumer, &shared.topic) {
                Ok(partitions) => assigned = partitions,
                Err(reason) => {
                    fail_stale_requests(shared, &reason);
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            }
        }
        match consumer.poll(POLL_INTERVAL) {
            Some(Ok(message)) => remember(shared, message.key(), message.payload()),
            Some(Err(e)) => {
                tracing::warn!(error = %e, topic = %shared.topic, "schema topic read failed")
            }
            None => {}
        }
        answer_requests(shared, &consumer, &assigned);
    }
}

fn assign_all(consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>, String> {
    let partitions = crate::kafka::topic_partitions(consumer, topic, Duration::from_secs(5))?;
    if partitions.is_empty() {
        return Err(format!("topic {topic} does not exist (yet)"));
    }
    let mut assignment = TopicPartitionList::new();
    for partition in &partitions {
        assignment
            .add_partition_offset(topic, *partition, Offset::Beginning)
            .map_err(|e| e.to_string())?;
    }
    consumer.assign(&assignment).map_err(|e| e.to_string())?;
    Ok(partitions)
}

fn remember(shared: &Shared, key: Option<&[u8]>, value: Option<&[u8]>) {
    let (Some(key), Some(value)) = (key, value) else {
        return;
    };
    let id = String::from_utf8_lossy(key).into_owned();
    let schema = match TableSchema::decode(value) {
        Ok(schema) => schema,
        Err(e) => {
            tracing::warn!(schema_id = %id, error = %e, "schema record is not a TableSchema; ignored");
            return;
        }
    };
    let fingerprint = cdc_model::schema::fingerprint(&schema);
    if fingerprint != id {
        tracing::warn!(schema_id = %id, %fingerprint, "schema record's key is not its fingerprint; ignored");
        return;
    }
    if let Err(e) = cdc_model::schema::validate(&schema) {
        tracing::warn!(schema_id = %id, error = %e, "invalid schema record; ignored");
        return;
    }
    if let Ok(mut schemas) = shared.schemas.write() {
        schemas.insert(id, Arc::new(schema));
    }
}

/// Answers every request whose targets (the high watermarks when it was first seen) are read.
fn answer_requests(shared: &Shared, consumer: &BaseConsumer, partitions: &[i32]) {
    let Ok(mut requests) = shared.requests.lock() else {
        return;
    };
    if requests.is_empty() {
        return;
    }
    let positions = positions(consumer, &shared.topic);
    let mut pending = Vec::new();
    for mut request in requests.drain(..) {
        if request.targets.is_none() {
            match high_watermarks(consumer, &shared.topic, partitions) {
                Ok(targets) => request.targets = Some(targets),
                Err(reason) => {
                    let _ = request.reply.send(Err(reason));
                    continue;
                }
            }
        }
        let done = request.targets.as_ref().is_some_and(|targets| {
            targets
                .iter()
                .all(|(p, high)| *high == 0 || positions.get(p).is_some_and(|at| at >= high))
        });
        if done {
            let _ = request.reply.send(Ok(()));
        } else if request.requested.elapsed() > SYNC_TIMEOUT {
            let _ = request
                .reply
                .send(Err(format!("not read to its end within {SYNC_TIMEOUT:?}")));
        } else {
            pending.push(request);
        }
    }
    *requests = pending;
}

fn fail_stale_requests(shared: &Shared, reason: &str) {
    if let Ok(mut requests) = shared.requests.lock() {
        let (stale, fresh): (Vec<_>, Vec<_>) = requests
            .drain(..)
            .partition(|r| r.requested.elapsed() > SYNC_TIMEOUT);
        *requests = fresh;
        for request in stale {
            let _ = request.reply.send(Err(reason.to_owned()));
        }
    }
}

fn high_watermarks(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
) -> Result<HashMap<i32, i64>, String> {
    partitions
        .iter()
        .map(|p| {
            consumer
                .fetch_watermarks(topic, *p, Duration::from_secs(5))
                .map(|(_, high)| (*p, high))
                .map_err(|e| format!("cannot read the end of {topic}/{p}: {e}"))
        })
        .collect()
}

fn positions(consumer: &BaseConsumer, topic: &str) -> HashMap<i32, i64> {
    consumer
        .position()
        .map(|list| {
            list.elements_for_topic(topic)
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(at) => Some((e.partition(), at)),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}
