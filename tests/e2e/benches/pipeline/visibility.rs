//! Where the lag accumulates: read_committed consumers on the raw and the clean topic (as the
//! transformer and the loader read them) note, for each change event, how long after its
//! source commit it became visible there.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use cdc_model::proto::{ChangeEvent, Operation};
use prost::Message as _;
use rdkafka::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// A thread reading topics from their current ends until stopped.
pub struct Visibility {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<anyhow::Result<Vec<Vec<f64>>>>,
}

impl Visibility {
    /// Starts reading `topics` (every partition, from the end) on `bootstrap`; only events
    /// committed at or after `since_micros` count.
    pub fn start(
        bootstrap: &str,
        topics: Vec<String>,
        since_micros: i64,
    ) -> anyhow::Result<Visibility> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set(
                "group.id",
                format!("bench-visibility-{}", std::process::id()),
            )
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "20")
            .create()
            .context("creating the visibility consumer")?;
        let mut assignment = TopicPartitionList::new();
        for topic in &topics {
            let metadata = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .with_context(|| format!("reading the partitions of {topic}"))?;
            for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
                assignment.add_partition_offset(topic, partition.id(), Offset::End)?;
            }
        }
        consumer
            .assign(&assignment)
            .context("assigning the topics")?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || read(&consumer, &topics, since_micros, &flag));
        Ok(Visibility { stop, thread })
    }

    /// Stops reading; each topic's delays (seconds), in the order given to [`Visibility::start`].
    pub fn stop(self) -> anyhow::Result<Vec<Vec<f64>>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the visibility thread panicked"))?
    }
}

fn read(
    consumer: &BaseConsumer,
    topics: &[String],
    since_micros: i64,
    stop: &AtomicBool,
) -> anyhow::Result<Vec<Vec<f64>>> {
    let mut delays = vec![Vec::new(); topics.len()];
    while !stop.load(Ordering::Relaxed) {
        let Some(message) = consumer.poll(Duration::from_millis(50)) else {
            continue;
        };
        let message = message.context("reading a watched topic")?;
        let seen = now_micros();
        let Some(index) = topics.iter().position(|t| t == message.topic()) else {
            continue;
        };
        // Anything that is not an insert of the phase is skipped.
        let Ok(event) = ChangeEvent::decode(message.payload().unwrap_or_default()) else {
            continue;
        };
        if event.op == Operation::Insert as i32 && event.commit_time_micros >= since_micros {
            delays[index].push((seen - event.commit_time_micros) as f64 / 1e6);
        }
    }
    Ok(delays)
}

/// Microseconds since the Unix epoch, by this machine's clock.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The `q` quantile (0 to 1) of `values` (sorted here), nearest rank; `None` when empty.
pub fn quantile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}
