//! A producer whose delivery reports are served on a thread of its own, like rdkafka's
//! `ThreadedProducer`, without that thread's busy wait.
//!
//! `BaseProducer::poll(timeout)` loops until its deadline, handing librdkafka the time left
//! in whole milliseconds: once less than one millisecond is left it polls without waiting,
//! again and again, until the deadline passes. `ThreadedProducer` polls 100 ms at a time, so
//! its thread spun through the end of every one of them: 0.6 – 1 % of a core per producer,
//! idle or not, measured from `/proc/<pid>/task/*/stat` (the extractor runs one producer per
//! work unit). Polling [`DELIVERY_POLL_WINDOW`] at a time spins through one millisecond a
//! second at most. `FutureProducer` has the same thread; [`AwaitingProducer`] stands in for it.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::config::{FromClientConfig, FromClientConfigAndContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message as _, ToBytes};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DefaultProducerContext, FutureRecord, ProducerContext,
};
use rdkafka::{ClientConfig, ClientContext};
use tokio::sync::oneshot;

/// How long one poll for delivery reports may wait. A report is handled as soon as it
/// arrives whatever this is; it bounds how often the thread wakes with nothing to do, and how
/// long a dropped producer lives on (see [`PolledProducer`]'s `Drop`).
pub const DELIVERY_POLL_WINDOW: Duration = Duration::from_secs(1);

/// A [`BaseProducer`] (every producer call goes to it) with a thread that serves its delivery
/// reports.
pub struct PolledProducer<C: ProducerContext + 'static = DefaultProducerContext> {
    producer: Arc<BaseProducer<C>>,
    stop: Arc<AtomicBool>,
}

impl<C: ProducerContext + 'static> Deref for PolledProducer<C> {
    type Target = BaseProducer<C>;

    fn deref(&self) -> &BaseProducer<C> {
        &self.producer
    }
}

impl FromClientConfig for PolledProducer<DefaultProducerContext> {
    fn from_config(config: &ClientConfig) -> KafkaResult<Self> {
        PolledProducer::from_config_and_context(config, DefaultProducerContext)
    }
}

impl<C: ProducerContext + 'static> FromClientConfigAndContext<C> for PolledProducer<C> {
    fn from_config_and_context(config: &ClientConfig, context: C) -> KafkaResult<Self> {
        let producer = Arc::new(BaseProducer::from_config_and_context(config, context)?);
        let stop = Arc::new(AtomicBool::new(false));
        let (polled, stopped) = (Arc::clone(&producer), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("delivery-reports".to_owned())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    polled.poll(DELIVERY_POLL_WINDOW);
                }
                // The last reference, usually: the producer is destroyed here, after
                // `BaseProducer`'s own drop has purged and flushed what it still held.
                drop(polled);
            })
            .map_err(|e| {
                KafkaError::ClientCreation(format!("cannot start the delivery-report thread: {e}"))
            })?;
        Ok(PolledProducer { producer, stop })
    }
}

impl<C: ProducerContext + 'static> Drop for PolledProducer<C> {
    /// Stops the thread without waiting for it: it sees the flag when its current poll ends,
    /// within [`DELIVERY_POLL_WINDOW`], and destroys the producer then. Waiting here would
    /// block the dropping thread (often a runtime worker) for up to that long. Whoever drops a
    /// producer has already committed, aborted or flushed what it cared about; a transactional
    /// id taken over meanwhile by a new producer fences this one, as after a crash.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Where a message sent by an [`AwaitingProducer`] ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// The partition written.
    pub partition: i32,
    /// The message's offset in it.
    pub offset: i64,
}

/// The outcome of one message, sent back to whoever awaits it.
type DeliverySender = oneshot::Sender<Result<Delivered, KafkaError>>;

/// A producer context that hands each delivery report to the task awaiting that message.
pub struct AwaitedDeliveries;

impl ClientContext for AwaitedDeliveries {}

impl ProducerContext for AwaitedDeliveries {
    type DeliveryOpaque = Box<DeliverySender>;

    fn delivery(&self, result: &DeliveryResult<'_>, waiter: Box<DeliverySender>) {
        let outcome = match result {
            Ok(message) => Ok(Delivered {
                partition: message.partition(),
                offset: message.offset(),
            }),
            Err((error, _)) => Err(error.clone()),
        };
        // The waiter may have given up (its task was cancelled); nobody is left to tell.
        let _ = waiter.send(outcome);
    }
}

/// How long [`AwaitingProducer::send`] waits before trying again when the local queue is full.
const QUEUE_FULL_RETRY: Duration = Duration::from_millis(10);

/// A producer whose sends are awaited until Kafka has acknowledged them, in place of rdkafka's
/// `FutureProducer` (see the module's documentation). Cheap to clone: clones share one producer.
#[derive(Clone)]
pub struct AwaitingProducer {
    producer: Arc<PolledProducer<AwaitedDeliveries>>,
}

impl FromClientConfig for AwaitingProducer {
    fn from_config(config: &ClientConfig) -> KafkaResult<Self> {
        let producer = PolledProducer::from_config_and_context(config, AwaitedDeliveries)?;
        Ok(AwaitingProducer {
            producer: Arc::new(producer),
        })
    }
}

impl AwaitingProducer {
    /// Queues `record`, trying again while the local queue is full for up to `queue_timeout`,
    /// and waits for Kafka's acknowledgement (or the error that ends the message, after
    /// `message.timeout.ms` at most).
    pub async fn send<K, P>(
        &self,
        record: FutureRecord<'_, K, P>,
        queue_timeout: Duration,
    ) -> Result<Delivered, KafkaError>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let deadline = tokio::time::Instant::now() + queue_timeout;
        let (waiter, delivered) = oneshot::channel();
        let mut record = BaseRecord {
            topic: record.topic,
            partition: record.partition,
            payload: record.payload,
            key: record.key,
            timestamp: record.timestamp,
            headers: record.headers,
            delivery_opaque: Box::new(waiter),
        };
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned))
                    if tokio::time::Instant::now() < deadline =>
                {
                    record = returned;
                    tokio::time::sleep(QUEUE_FULL_RETRY).await;
                }
                Err((error, _)) => return Err(error),
            }
        }
        // `self` keeps the producer alive, so the report comes: a dropped sender would mean
        // librdkafka lost a message's opaque, which it does not.
        delivered.await.unwrap_or(Err(KafkaError::Canceled))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use rdkafka::producer::Producer;

    use super::*;

    /// Counts delivery reports, failed ones included.
    #[derive(Clone, Default)]
    struct Reports(Arc<AtomicUsize>);

    impl ClientContext for Reports {}

    impl ProducerContext for Reports {
        type DeliveryOpaque = ();

        fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A broker address nothing listens on, so that every message ends in a report that it
    /// timed out; no Kafka is needed.
    fn unreachable() -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", "127.0.0.1:9")
            .set("message.timeout.ms", "200");
        config
    }

    #[test]
    fn delivery_reports_are_served_without_a_caller_polling() {
        let reports = Reports::default();
        let producer = PolledProducer::from_config_and_context(&unreachable(), reports.clone())
            .expect("a producer");
        for n in 0..3 {
            producer
                .send(BaseRecord::<(), str, ()>::to("t").payload(&format!("m{n}")))
                .map_err(|(e, _)| e)
                .expect("queued");
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while reports.0.load(Ordering::SeqCst) < 3 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            reports.0.load(Ordering::SeqCst),
            3,
            "every message reported"
        );
        assert_eq!(producer.in_flight_count(), 0);
    }

    #[test]
    fn a_dropped_producer_is_destroyed_by_its_thread_within_the_window() {
        let reports = Reports::default();
        let producer = PolledProducer::from_config_and_context(&unreachable(), reports.clone())
            .expect("a producer");
        let weak = Arc::downgrade(&producer.producer);
        drop(producer);
        let deadline = std::time::Instant::now() + DELIVERY_POLL_WINDOW + Duration::from_secs(5);
        while weak.strong_count() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(weak.strong_count(), 0, "the thread let the producer go");
    }

    /// `unreachable()` whose local queue holds one message.
    fn unreachable_with_a_queue_of_one(message_timeout_ms: u32) -> ClientConfig {
        let mut config = unreachable();
        config
            .set("queue.buffering.max.messages", "1")
            .set("message.timeout.ms", message_timeout_ms.to_string());
        config
    }

    /// Queues one message straight away (no task to schedule) and returns its report's receiver.
    fn fill_the_queue(
        producer: &AwaitingProducer,
    ) -> oneshot::Receiver<Result<Delivered, KafkaError>> {
        let (waiter, delivered) = oneshot::channel();
        producer
            .producer
            .send(BaseRecord::<(), str, _>::with_opaque_to("t", Box::new(waiter)).payload("first"))
            .map_err(|(e, _)| e)
            .expect("the first message fits the empty queue");
        delivered
    }

    #[tokio::test]
    async fn an_awaited_message_that_cannot_be_delivered_ends_in_its_error() {
        let producer: AwaitingProducer = unreachable().create().expect("a producer");
        let outcome = producer
            .send(
                FutureRecord::<(), str>::to("t").payload("m"),
                Duration::from_secs(1),
            )
            .await;
        assert_eq!(
            outcome,
            Err(KafkaError::MessageProduction(
                RDKafkaErrorCode::MessageTimedOut
            ))
        );
    }

    #[tokio::test]
    async fn a_full_queue_is_waited_on_until_the_queue_timeout() {
        let producer: AwaitingProducer = unreachable_with_a_queue_of_one(60_000)
            .create()
            .expect("a producer");
        let first = fill_the_queue(&producer);
        let started = std::time::Instant::now();
        let second = producer
            .send(
                FutureRecord::<(), str>::to("t").payload("second"),
                Duration::from_millis(300),
            )
            .await;
        assert_eq!(
            second,
            Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull))
        );
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "gave up after {:?}, before the queue timeout",
            started.elapsed()
        );
        drop(first);
    }

    #[tokio::test]
    async fn a_message_waiting_for_room_is_queued_once_the_queue_frees() {
        // The first message times out after 300 ms and frees the queue; the second, allowed
        // to wait 10 s for room, is then queued and ends in its own timeout, not QueueFull.
        let producer: AwaitingProducer = unreachable_with_a_queue_of_one(300)
            .create()
            .expect("a producer");
        let first = fill_the_queue(&producer);
        let second = producer
            .send(
                FutureRecord::<(), str>::to("t").payload("second"),
                Duration::from_secs(10),
            )
            .await;
        let timed_out = Err(KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageTimedOut,
        ));
        assert_eq!(second, timed_out);
        assert_eq!(first.await.expect("the first message's report"), timed_out);
    }
}
