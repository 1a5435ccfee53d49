//! Wiring: builds the transformer's parts from configuration and runs its loop.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cdc_model::Topics;
use cdc_service_kit::grpc::ExtraServices;
use cdc_service_kit::schema_registry::SchemaRegistry;
use cdc_service_kit::{ServiceContext, ServiceSpec, Started};
use rdkafka::ClientConfig;

use crate::config::{HMAC_KEY, TransformerConfig};
use crate::dead_letters::DeadLetterQueue;
use crate::engine::Engine;
use crate::grpc::{RuleLoader, TransformerControl};
use crate::output::{Output, TopicCreator};
use crate::pipeline::PipelineSetup;
use crate::proto::transformer_server::TransformerServer;
use crate::rules::RuleSet;
use crate::rules::values::HmacKey;

/// Identity and default ports of the transformer binary.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "transformer",
    version: env!("CARGO_PKG_VERSION"),
    default_grpc_port: 50052,
    default_metrics_port: 9102,
};

/// Starts the transformer (the kit calls this once configuration and secrets are ready).
pub async fn start(context: ServiceContext<TransformerConfig>) -> anyhow::Result<Started> {
    let config = context.config.clone();
    let hmac_key = match &config.masking {
        Some(_) => Some(
            HmacKey::new(context.secrets.get(HMAC_KEY)?)
                .map_err(|e| anyhow::anyhow!("{HMAC_KEY}: {e}"))?,
        ),
        None => None,
    };
    let rules = RuleSet::from_config(&config.rules, hmac_key.clone())
        .map_err(|errors| anyhow::anyhow!(describe_errors(&errors)))?;
    crate::metrics::describe();
    crate::metrics::zero_counters();
    let topics = Topics::new(&config.kafka.topic_prefix)?;
    let client_config = config.kafka.client_config();
    let runtime = tokio::runtime::Handle::current();
    let registry = SchemaRegistry::start(
        client_config.clone(),
        topics.schemas(),
        context.shutdown.clone(),
    );
    let engine = Engine::new(rules, registry, topics.clone(), runtime.clone());
    let creator = Arc::new(TopicCreator::new(&client_config, runtime)?);
    let transactional_id = config.transactional_id(context.state.instance_id());
    // Two producers take turns so that one commits while the other is filled; the second's
    // id is derived from the first, so both stay stable across restarts.
    let producer_configs = [
        producer_config(&config, &transactional_id),
        producer_config(&config, &format!("{transactional_id}-1")),
    ];
    let outputs: crate::pipeline::OutputFactory = {
        let (creator, topics) = (Arc::clone(&creator), topics.clone());
        Box::new(move || {
            let make_output = |producer: &ClientConfig| {
                Output::new(
                    producer,
                    Arc::clone(&creator),
                    topics.schemas(),
                    topics.dlq_transformer(),
                )
            };
            Ok([
                make_output(&producer_configs[0])?,
                make_output(&producer_configs[1])?,
            ])
        })
    };
    let dead_letters = DeadLetterQueue {
        client_config: client_config.clone(),
        topic: topics.dlq_transformer(),
        replay_group: format!("{}-dlq-replay", config.consumer.group_id),
        replay_transactional_id: format!("{}-dlq-replay", config.consumer.group_id),
    };
    let replay_config = producer_config(&config, &dead_letters.replay_transactional_id);
    let replay_topics = topics.clone();
    let replay_output = Arc::new(move || {
        Output::new(
            &replay_config,
            Arc::clone(&creator),
            replay_topics.schemas(),
            replay_topics.dlq_transformer(),
        )
        .map_err(|e| format!("cannot create the replay producer: {e}"))
    });
    let control = TransformerControl::new(
        engine.clone(),
        rule_loader(
            context.config_file.clone(),
            hmac_key,
            config.masking.is_some(),
        ),
        dead_letters,
        replay_output,
    );
    tracing::info!(%transactional_id, rules = config.rules.len(), "transformer starting");
    let setup = PipelineSetup {
        consumer_config: consumer_config(&config),
        outputs,
        topic_pattern: config
            .consumer
            .subscription(&config.kafka.topic_prefix, "raw"),
        batch: config.batch.clone(),
        engine,
        state: context.state.clone(),
        shutdown: context.shutdown.clone(),
    };
    tokio::spawn(cdc_service_kit::kafka::probe_until(
        config.kafka.clone(),
        context.state.clone(),
        Duration::from_secs(10),
        context.shutdown.clone(),
    ));
    let services = ExtraServices::default().add(
        TransformerServer::new(control),
        crate::proto::FILE_DESCRIPTOR_SET,
    );
    let worker = async move {
        tokio::task::spawn_blocking(move || crate::pipeline::run(setup))
            .await
            .map_err(|e| anyhow::anyhow!("the pipeline thread failed: {e}"))??;
        Ok(())
    };
    Ok(Started {
        services,
        worker: Box::pin(worker),
    })
}

fn consumer_config(config: &TransformerConfig) -> ClientConfig {
    let mut consumer = config.kafka.client_config();
    consumer
        .set("group.id", &config.consumer.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        // Bounded prefetch (per partition): memory stays flat however far behind the
        // transformer is. librdkafka waits fetch.queue.backoff.ms (a second by default) before
        // fetching again once a queue is full; refilled at once, a small queue is enough.
        .set("queued.max.messages.kbytes", "8192")
        .set("fetch.queue.backoff.ms", "10")
        .set("max.partition.fetch.bytes", "8388608");
    config.consumer.apply_properties(&mut consumer);
    consumer
}

fn producer_config(config: &TransformerConfig, transactional_id: &str) -> ClientConfig {
    config.kafka.transactional_producer(
        transactional_id,
        config.producer.transaction_timeout_ms,
        &config.producer.properties,
    )
}

fn describe_errors(errors: &[cdc_service_kit::FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.key, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Reads `[[rules]]` again from the start-up file (and environment), validated like at start.
fn rule_loader(file: Option<PathBuf>, hmac_key: Option<HmacKey>, had_masking: bool) -> RuleLoader {
    Arc::new(move || {
        let config: TransformerConfig =
            cdc_service_kit::config::load(&SPEC, file.as_deref()).map_err(|e| e.to_string())?;
        if config.masking.is_some() != had_masking {
            return Err(
                "[masking] was added or removed; the masking key is read at start-up, so restart instead"
                    .to_owned(),
            );
        }
        RuleSet::from_config(&config.rules, hmac_key.clone())
            .map_err(|errors| describe_errors(&errors))
    })
}
