//! The pipeline as four processes, traced to the stack's Jaeger: one trace follows a batch
//! from the extractor through the transformer to the loader (found through Jaeger's query
//! API), and every metric the alert rules and dashboards use is one the running services
//! export (their live `/metrics`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cdc_e2e_tests::{Pipeline, SERVICES, http, sql};
use serde_json::Value;

const COUNT: &str = "SELECT count(*) FROM public.orders";
const TABLES: &str = "
CREATE TABLE dbo.orders (id int NOT NULL PRIMARY KEY, note nvarchar(100) NULL, amount decimal(12,2) NOT NULL);
EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'orders', @role_name = NULL;
";

/// Inserts orders `ids` in one statement.
async fn insert(pipeline: &Pipeline, ids: std::ops::RangeInclusive<i64>) {
    let rows: Vec<String> = ids
        .map(|id| format!("({id}, N'order {id}', {id}.25)"))
        .collect();
    let mut client = pipeline.sql().await;
    sql(
        &mut client,
        &format!(
            "INSERT INTO dbo.orders (id, note, amount) VALUES {}",
            rows.join(", ")
        ),
    )
    .await;
}

/// One Jaeger trace: its spans' services and operations, and which span is whose child.
struct Trace {
    id: String,
    /// span id -> (service, operation, parent span ids)
    spans: BTreeMap<String, (String, String, Vec<String>)>,
}

impl Trace {
    fn from_json(trace: &Value) -> Trace {
        let services: BTreeMap<&str, &str> = trace["processes"]
            .as_object()
            .map(|processes| {
                processes
                    .iter()
                    .map(|(id, p)| (id.as_str(), p["serviceName"].as_str().unwrap_or("")))
                    .collect()
            })
            .unwrap_or_default();
        let spans = trace["spans"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|span| {
                let service = services
                    .get(span["processID"].as_str().unwrap_or(""))
                    .copied()
                    .unwrap_or("")
                    .to_owned();
                let parents = span["references"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|r| r["refType"] == "CHILD_OF")
                    .filter_map(|r| r["spanID"].as_str().map(str::to_owned))
                    .collect();
                (
                    span["spanID"].as_str().unwrap_or("").to_owned(),
                    (
                        service,
                        span["operationName"].as_str().unwrap_or("").to_owned(),
                        parents,
                    ),
                )
            })
            .collect();
        Trace {
            id: trace["traceID"].as_str().unwrap_or("").to_owned(),
            spans,
        }
    }

    /// A chain extractor batch -> transformer transaction -> loader batch, each span the
    /// parent of the next, when the trace holds one.
    fn pipeline_chain(&self) -> Option<[String; 3]> {
        let operation = |id: &String| self.spans.get(id).map(|(s, o, _)| (s.as_str(), o.as_str()));
        self.spans
            .iter()
            .filter(|(_, (service, operation, _))| {
                service == "cdc-loader" && operation == "loader.batch"
            })
            .find_map(|(load, (_, _, parents))| {
                let transform = parents.iter().find(|p| {
                    operation(p) == Some(("cdc-transformer", "transformer.transaction"))
                })?;
                let extract = self.spans[transform]
                    .2
                    .iter()
                    .find(|p| operation(p) == Some(("cdc-extractor", "extractor.batch")))?;
                Some([extract.clone(), transform.clone(), load.clone()])
            })
    }
}

/// The traces Jaeger holds for `service` that started after `since` (µs since the epoch).
fn traces_of(jaeger: &str, service: &str, since: u128) -> Vec<Trace> {
    let url = format!("{jaeger}/api/traces?service={service}&start={since}&limit=200");
    let Some((200, body)) = http::get(&url) else {
        return Vec::new();
    };
    let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    json["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(Trace::from_json)
        .collect()
}

fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_follows_a_batch_from_the_extractor_through_the_transformer_to_the_loader() {
    let started = now_micros();
    let pipeline = Pipeline::start(TABLES).await;
    insert(&pipeline, 1..=100).await;
    pipeline
        .wait_for_target(
            "SELECT count(*) FROM public.orders",
            100,
            Duration::from_secs(120),
        )
        .await;
    // Streamed changes too, after the snapshot.
    insert(&pipeline, 101..=150).await;
    pipeline
        .wait_for_target(
            "SELECT count(*) FROM public.orders",
            150,
            Duration::from_secs(120),
        )
        .await;

    // The services export in batches (every few seconds); Jaeger stores them at once.
    let jaeger = &pipeline.stack.jaeger_query_url;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (trace, chain) = loop {
        let found = traces_of(jaeger, "cdc-loader", started)
            .into_iter()
            .find_map(|trace| trace.pipeline_chain().map(|chain| (trace, chain)));
        if let Some(found) = found {
            break found;
        }
        let services = http::get(&format!("{jaeger}/api/services")).map(|(_, body)| body);
        assert!(
            Instant::now() < deadline,
            "Jaeger at {jaeger} holds no trace with an extractor batch, a transformer \
             transaction and a loader batch chained parent to child within 60 s \
             (services it knows: {services:?})\n{}",
            pipeline.output()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let services: BTreeSet<&str> = chain.iter().map(|id| trace.spans[id].0.as_str()).collect();
    assert_eq!(
        services,
        BTreeSet::from(["cdc-extractor", "cdc-transformer", "cdc-loader"]),
        "trace {}",
        trace.id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_alerts_and_dashboards_use_is_exported_by_the_running_services() {
    let pipeline = Pipeline::start(TABLES).await;
    insert(&pipeline, 1..=50).await;
    pipeline
        .wait_for_target(
            "SELECT count(*) FROM public.orders",
            50,
            Duration::from_secs(120),
        )
        .await;
    // Streamed changes (snapshot reads carry no commit time, so no lag is measured on them).
    insert(&pipeline, 51..=60).await;
    pipeline
        .wait_for_target(COUNT, 60, Duration::from_secs(120))
        .await;
    // A reconciliation run, so the reconciler's per-run metrics exist too.
    let run = cdc_test_harness::grpcurl::call(
        &pipeline.stack,
        pipeline.service("reconciler").grpc,
        Some(cdc_e2e_tests::CONTROL_TOKEN),
        "cdc.reconciler.v1.Reconciler/StartRun",
        r#"{"tables":["shop.dbo.orders"]}"#,
    );
    assert!(run.success, "StartRun failed: {run:?}");

    let used = cdc_observability_tests::metrics_used();
    assert!(
        !used.is_empty(),
        "the rules and dashboards use no cdc_ metric at all"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut exported = BTreeSet::new();
        for service in SERVICES {
            let response =
                cdc_test_harness::service_contract::scrape(pipeline.service(service).metrics);
            // The exposition is the body, after the HTTP head.
            let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
            exported.extend(cdc_observability_tests::metric_names_in_scrape(body));
        }
        let missing: Vec<(&String, &Vec<String>)> = used
            .iter()
            .filter(|(name, _)| !exported.contains(*name))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "metrics used by alert rules or dashboards that no running service exports \
             (name: where it is used): {missing:#?}\nexported: {exported:#?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
