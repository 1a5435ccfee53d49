//! Transforming on several threads while order is kept: the loop hands chunks of consumed
//! records to a small pool and takes the results back chunk by chunk, in the order it handed
//! them out. Decoding, the rules and encoding are most of the work per event; producing and
//! the transaction's bookkeeping stay on the loop's thread.

use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rdkafka::message::OwnedHeaders;

use crate::engine::{Engine, Input, TopicRoute, Transformed};
use crate::rules::plan::RuleCounts;

/// A consumed record, owned so that another thread can transform it.
pub struct Owned {
    /// Where its raw topic's events go.
    pub route: Arc<TopicRoute>,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The Kafka key.
    pub key: Option<Vec<u8>>,
    /// The encoded event.
    pub payload: Option<Vec<u8>>,
    /// Its headers (trace context), passed on.
    pub headers: Option<OwnedHeaders>,
}

impl Owned {
    /// The record as the engine reads it.
    pub fn input(&self) -> Input<'_> {
        Input {
            topic: &self.route.raw_topic,
            partition: self.partition,
            offset: self.offset,
            key: self.key.as_deref(),
            payload: self.payload.as_deref(),
        }
    }
}

/// A transformed chunk.
pub struct Done {
    /// Each record with what it became, in consumption order.
    pub items: Vec<(Owned, Transformed)>,
    /// The rules' counters for the chunk.
    pub counts: RuleCounts,
    /// The rule generation the counters belong to.
    pub generation: u64,
}

struct Job {
    items: Vec<Owned>,
    reply: SyncSender<Done>,
}

/// The transform threads.
pub struct Pool {
    jobs: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    /// `threads` transform threads over `engine`.
    pub fn new(engine: &Engine, threads: usize) -> std::io::Result<Pool> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let workers = (0..threads.max(1))
            .map(|n| {
                let queue = Arc::clone(&queue);
                let engine = engine.clone();
                std::thread::Builder::new()
                    .name(format!("transform-{n}"))
                    .spawn(move || work(&engine, &queue))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Pool {
            jobs: Some(jobs),
            workers,
        })
    }

    /// Queues a chunk; its result arrives on the returned receiver.
    pub fn submit(&self, items: Vec<Owned>) -> Receiver<Done> {
        let (reply, result) = mpsc::sync_channel(1);
        if let Some(jobs) = &self.jobs {
            // A send fails only when every worker is gone; the caller then sees a closed
            // receiver and stops.
            let _ = jobs.send(Job { items, reply });
        }
        result
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn work(engine: &Engine, queue: &Mutex<Receiver<Job>>) {
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(Job { items, reply }) = job else {
            return;
        };
        let rules = engine.rules();
        let mut counts = RuleCounts::new(rules.set.rules.len());
        let items = items
            .into_iter()
            .map(|owned| {
                let transformed = if owned.route.transformed {
                    engine.transform(&owned.route, &owned.input(), &mut counts)
                } else {
                    Transformed::PassThrough {
                        topic: Arc::clone(&owned.route.clean_topic),
                    }
                };
                (owned, transformed)
            })
            .collect();
        let _ = reply.send(Done {
            items,
            counts,
            generation: rules.generation,
        });
    }
}
