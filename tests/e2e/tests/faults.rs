//! Fault injection: the whole pipeline, two instances of every service, under a long workload
//! on the sample database (compose/mssql/init.sql, every type of the type map) while faults
//! are injected at seeded random moments: each service killed with SIGKILL several times (one
//! instance of the two, restarted after a pause, as a restart policy would), Kafka crashed and
//! restarted, PostgreSQL restarted, and every SQL Server connection cut. At the end:
//! - the pipeline drains: every table holds as many rows in PostgreSQL as in SQL Server;
//! - the reconciler compares every table and finds no difference;
//! - no change was applied twice: an audit trigger in PostgreSQL records every row version
//!   the loader writes (and every delete, through its tombstones), and no version of a row is
//!   there twice.
//!
//! The short form runs in `make test`; `make chaos` runs the long one (`CDC_CHAOS=long`):
//! more changes, more faults. `CDC_CHAOS_SEED` replays a schedule (the seed is printed).
//! This is the only test of its binary: it restarts the shared stack's Kafka and PostgreSQL,
//! which cargo never does while another test binary runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use cdc_e2e_tests::{Pipeline, PipelineOptions, SA_PASSWORD, SERVICES, Source};
use cdc_test_harness::grpcurl::call;
use cdc_workload::rng::Rng;
use cdc_workload::{ConnectionConfig, Encrypt, WorkloadConfig};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The sample database, as compose starts SQL Server with it.
const SHOP: &str = include_str!("../../../compose/mssql/init.sql");
/// The source tables, as the reconciler and the counts name them.
const TABLES: [&str; 4] = ["customers", "products", "orders", "order_lines"];

/// The audit of every row version the loader writes: an event trigger puts a row trigger on
/// each table the loader creates (the target tables in `public` with their primary key
/// columns, and the loader's tombstones, which record each applied delete).
const AUDIT: &str = r#"
CREATE TABLE public.cdc_apply_audit (
  seq bigserial PRIMARY KEY,
  target text NOT NULL,
  row_key text NOT NULL,
  position bytea NOT NULL
);

CREATE FUNCTION public.cdc_audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  image jsonb := to_jsonb(NEW);
BEGIN
  IF TG_NARGS = 0 THEN
    INSERT INTO public.cdc_apply_audit (target, row_key, position)
    VALUES ('delete ' || (image ->> 'target_table'), image ->> 'row_key', NEW.position);
  ELSE
    INSERT INTO public.cdc_apply_audit (target, row_key, position)
    SELECT TG_TABLE_NAME, string_agg(image ->> key, '|'), NEW._cdc_position
    FROM unnest(TG_ARGV) AS key;
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION public.cdc_audit_attach() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE
  created record;
  keys text;
BEGIN
  FOR created IN
    SELECT * FROM pg_event_trigger_ddl_commands() WHERE object_type = 'table'
  LOOP
    IF created.schema_name = 'public' AND EXISTS (
      SELECT 1 FROM pg_attribute WHERE attrelid = created.objid AND attname = '_cdc_position'
    ) THEN
      SELECT string_agg(quote_literal(a.attname), ', ' ORDER BY array_position(i.indkey::int2[], a.attnum))
      INTO keys
      FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
      WHERE i.indrelid = created.objid AND i.indisprimary;
      EXECUTE format(
        'CREATE TRIGGER cdc_audit AFTER INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION public.cdc_audit_row(%s)',
        created.object_identity, keys);
    ELSIF created.object_identity LIKE '%.tombstones' THEN
      EXECUTE format(
        'CREATE TRIGGER cdc_audit AFTER INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION public.cdc_audit_row()',
        created.object_identity);
    END IF;
  END LOOP;
END $$;

CREATE EVENT TRIGGER cdc_audit_attach ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
  EXECUTE FUNCTION public.cdc_audit_attach();
"#;

/// How big a run is.
#[derive(Debug)]
struct Scale {
    name: &'static str,
    /// Changes per second the workload commits.
    rate: f64,
    /// How long the workload runs.
    workload: Duration,
    /// SIGKILLs of each service.
    kills_per_service: usize,
    kafka_restarts: usize,
    postgres_restarts: usize,
    connection_drops: usize,
    /// How long the pipeline has to catch up once the workload ends.
    drain_timeout: Duration,
}

impl Scale {
    fn from_env() -> Scale {
        match std::env::var("CDC_CHAOS").as_deref() {
            Ok("long") => Scale {
                name: "long",
                rate: 2_500.0,
                workload: Duration::from_secs(240),
                kills_per_service: 4,
                kafka_restarts: 2,
                postgres_restarts: 3,
                connection_drops: 5,
                drain_timeout: Duration::from_secs(600),
            },
            Ok("short") | Err(_) => Scale {
                name: "short",
                rate: 2_000.0,
                workload: Duration::from_secs(75),
                kills_per_service: 2,
                kafka_restarts: 1,
                postgres_restarts: 1,
                connection_drops: 2,
                drain_timeout: Duration::from_secs(300),
            },
            Ok(other) => panic!("CDC_CHAOS is `{other}`, not `short` or `long`"),
        }
    }
}

/// One injected fault.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// SIGKILL instance `.1` of service `.0`, restarted after a pause.
    Kill(&'static str, usize),
    /// Crash the Kafka broker and start it again.
    RestartKafka,
    /// Stop PostgreSQL (fast shutdown) and start it again.
    RestartPostgres,
    /// Cut every SQL Server connection and refuse new ones for a moment.
    DropSqlServerConnections,
}

/// The faults of `scale` in a seeded random order.
fn schedule(scale: &Scale, instances: usize, rng: &mut Rng) -> Vec<Fault> {
    let mut faults = Vec::new();
    for service in SERVICES {
        for _ in 0..scale.kills_per_service {
            let number = 1 + usize::try_from(rng.below(instances as u64)).unwrap();
            faults.push(Fault::Kill(service, number));
        }
    }
    faults.extend(std::iter::repeat_n(
        Fault::RestartKafka,
        scale.kafka_restarts,
    ));
    faults.extend(std::iter::repeat_n(
        Fault::RestartPostgres,
        scale.postgres_restarts,
    ));
    faults.extend(std::iter::repeat_n(
        Fault::DropSqlServerConnections,
        scale.connection_drops,
    ));
    for i in (1..faults.len()).rev() {
        let j = usize::try_from(rng.below(i as u64 + 1)).unwrap();
        faults.swap(i, j);
    }
    faults
}

/// The injector: performs faults and restarts any instance that exits by itself, as a
/// container's restart policy would, remembering each such exit.
struct Injector {
    pipeline: Pipeline,
    rng: Rng,
    started: Instant,
    log: Vec<String>,
    unplanned_exits: Vec<String>,
}

impl Injector {
    fn note(&mut self, what: String) {
        let line = format!("[{:>6.1}s] {what}", self.started.elapsed().as_secs_f64());
        println!("{line}");
        self.log.push(line);
    }

    /// Restarts every instance that has exited without being killed by a fault.
    fn supervise(&mut self) {
        for service in SERVICES {
            for number in 1..=self.pipeline.instances() {
                let Some(status) = self.pipeline.instance_mut(service, number).exited() else {
                    continue;
                };
                let tail =
                    cdc_e2e_tests::tail(&self.pipeline.instance(service, number).output(), 15);
                let what = format!("{service} {number} exited by itself with {status}");
                self.unplanned_exits.push(format!("{what}:\n{tail}"));
                self.note(format!("{what}; restarting it"));
                tokio::task::block_in_place(|| self.pipeline.respawn(service, number));
            }
        }
    }

    async fn inject(&mut self, fault: Fault) {
        match fault {
            Fault::Kill(service, number) => {
                if service == "reconciler" {
                    // Killed in the middle of a comparison, not idle.
                    let addr = self.pipeline.instance(service, number).grpc;
                    let started = call(
                        &self.pipeline.stack,
                        addr,
                        Some(cdc_e2e_tests::CONTROL_TOKEN),
                        "cdc.reconciler.v1.Reconciler/StartRun",
                        r#"{"tables":["shop.dbo.*"]}"#,
                    );
                    assert!(started.success, "StartRun failed: {started:?}");
                    tokio::time::sleep(Duration::from_millis(self.rng.below(500))).await;
                }
                self.pipeline.kill(service, number);
                let pause = Duration::from_millis(500 + self.rng.below(2_500));
                self.note(format!(
                    "SIGKILL {service} {number}; restarting it in {pause:?}"
                ));
                tokio::time::sleep(pause).await;
                tokio::task::block_in_place(|| self.pipeline.respawn(service, number));
                self.note(format!("{service} {number} listens again"));
            }
            Fault::RestartKafka => {
                self.note("Kafka: SIGKILL, 2 s down, start".to_owned());
                stack_script("kafka-restart.sh", &["--kill", "2"]);
                self.note("Kafka is healthy again".to_owned());
            }
            Fault::RestartPostgres => {
                // An immediate shutdown is a crash: the loader's last (asynchronous) commits
                // may be lost, and it must read them again.
                let mode = if self.rng.below(2) == 0 {
                    "fast"
                } else {
                    "immediate"
                };
                self.note(format!("PostgreSQL: {mode} shutdown, 2 s down, start"));
                stack_script("pg-restart.sh", &["2", mode]);
                self.note("PostgreSQL is ready again".to_owned());
            }
            Fault::DropSqlServerConnections => {
                self.pipeline.sim.drop_connections();
                self.pipeline
                    .sim
                    .refuse_connections_for(Duration::from_secs(1));
                self.note("SQL Server: every connection cut, new ones refused for 1 s".to_owned());
            }
        }
    }
}

/// Runs one of the stack's scripts to its end; it must succeed.
fn stack_script(name: &str, args: &[&str]) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts/stack")
        .join(name);
    let out = tokio::task::block_in_place(|| Command::new(&script).args(args).output())
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed with {}:\n{}{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Rows per table in SQL Server and in PostgreSQL (`None` while PostgreSQL is unreachable).
async fn counts(pipeline: &Pipeline) -> BTreeMap<&'static str, (i64, Option<i64>)> {
    let mut source = pipeline.sql().await;
    let mut counts = BTreeMap::new();
    for table in TABLES {
        let rows = source
            .simple_query(format!("SELECT COUNT_BIG(*) FROM dbo.{table}"))
            .await
            .unwrap()
            .into_first_result()
            .await
            .unwrap();
        let in_source: i64 = rows[0].get(0).unwrap();
        let in_target = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM public.{table}"
        )))
        .fetch_one(&pipeline.target.pool)
        .await
        .ok();
        counts.insert(table, (in_source, in_target));
    }
    counts
}

/// A reconciliation of every table on reconciler instance 1, watched to its end.
fn reconcile(pipeline: &Pipeline) -> Value {
    let addr = pipeline.instance("reconciler", 1).grpc;
    let token = Some(cdc_e2e_tests::CONTROL_TOKEN);
    let started = call(
        &pipeline.stack,
        addr,
        token,
        "cdc.reconciler.v1.Reconciler/StartRun",
        r#"{"tables":["shop.dbo.*"]}"#,
    );
    assert!(started.success, "StartRun failed: {started:?}");
    let run: Value = serde_json::from_str(&started.stdout).expect("StartRun prints JSON");
    let body = json!({ "run_id": run["runId"] }).to_string();
    let watched = call(
        &pipeline.stack,
        addr,
        token,
        "cdc.reconciler.v1.Reconciler/WatchRun",
        &body,
    );
    assert!(watched.success, "WatchRun failed: {watched:?}");
    let got = call(
        &pipeline.stack,
        addr,
        token,
        "cdc.reconciler.v1.Reconciler/GetRun",
        &body,
    );
    assert!(got.success, "GetRun failed: {got:?}");
    serde_json::from_str(&got.stdout).expect("GetRun prints JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_kills_and_restarts_nothing_is_lost_and_nothing_is_applied_twice() {
    let scale = Scale::from_env();
    let seed = std::env::var("CDC_CHAOS_SEED")
        .ok()
        .map(|s| s.parse::<u64>().expect("CDC_CHAOS_SEED is a number"))
        .unwrap_or_else(|| u64::from(std::process::id()) ^ 0x5eed);
    println!("fault injection, {scale:?}, seed {seed} (CDC_CHAOS_SEED={seed} replays it)");
    let mut rng = Rng::new(seed);
    let instances = 2;
    let faults = schedule(&scale, instances, &mut rng);

    let pipeline = Pipeline::start_with(PipelineOptions {
        source: Source::Script(SHOP),
        instances,
        target_setup: Some(AUDIT),
    })
    .await;
    let connection = ConnectionConfig {
        host: pipeline.sim.addr().ip().to_string(),
        port: pipeline.sim.addr().port(),
        user: "sa".to_owned(),
        password: SA_PASSWORD.to_owned().into(),
        database: "shop".to_owned(),
        encrypt: Encrypt::Off,
        trust_server_certificate: false,
    };
    let workload = WorkloadConfig {
        rows_per_s: scale.rate,
        duration: Some(scale.workload),
        seed,
        transaction_rows: 10,
        rollback_fraction: 0.05,
        report_interval: Duration::from_secs(10),
        ..WorkloadConfig::default()
    };
    let writer = tokio::spawn(async move {
        cdc_workload::run(&connection, &workload, CancellationToken::new()).await
    });

    let mut injector = Injector {
        pipeline,
        rng,
        started: Instant::now(),
        log: Vec::new(),
        unplanned_exits: Vec::new(),
    };
    // Faults spread over 10 %..85 % of the workload, each after the one before has ended.
    let window = scale.workload.mul_f64(0.75);
    let gap = window / u32::try_from(faults.len()).unwrap();
    let first = scale.workload.mul_f64(0.10);
    for (number, fault) in faults.iter().enumerate() {
        let due = first + gap * u32::try_from(number).unwrap();
        while injector.started.elapsed() < due {
            injector.supervise();
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        injector.supervise();
        injector.inject(*fault).await;
    }
    while !writer.is_finished() {
        injector.supervise();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let summary = writer
        .await
        .expect("the workload task panicked")
        .expect("the workload failed");
    injector.note(format!(
        "workload over: {} changes committed ({} inserts, {} updates, {} deletes, {} key updates), {} rolled back, {} failed transactions, {:.0} changes/s",
        summary.changes(),
        summary.inserts,
        summary.updates,
        summary.deletes,
        summary.key_updates,
        summary.rolled_back,
        summary.errors,
        summary.rows_per_second
    ));

    // Drain: every table as big in PostgreSQL as in SQL Server.
    let deadline = Instant::now() + scale.drain_timeout;
    let drained = loop {
        injector.supervise();
        let counts = counts(&injector.pipeline).await;
        if counts.values().all(|(s, t)| Some(*s) == *t) {
            break counts;
        }
        assert!(
            Instant::now() < deadline,
            "the pipeline did not catch up within {:?} of the workload's end: {counts:?}\n{}\n{}",
            scale.drain_timeout,
            injector.log.join("\n"),
            injector.pipeline.output()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    injector.note(format!(
        "drained: rows per table (source, target) {drained:?}"
    ));

    // The reconciler: every row the same on both sides. A row can still be in flight when the
    // counts first match (an update), so a run with differences is tried again a few times.
    let mut runs = Vec::new();
    let clean = loop {
        let run = tokio::task::block_in_place(|| reconcile(&injector.pipeline));
        let state = run["state"].as_str().unwrap_or_default().to_owned();
        runs.push(run);
        if state == "RUN_STATE_CLEAN" || runs.len() == 3 {
            break state == "RUN_STATE_CLEAN";
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    };
    let report = runs.last().unwrap();
    injector.note(format!(
        "reconciliation {} after {} run(s): {}",
        report["state"],
        runs.len(),
        report["tables"]
    ));
    assert!(
        clean,
        "the reconciler found differences: {runs:#?}\n{}\n{}",
        injector.log.join("\n"),
        injector.pipeline.output()
    );
    let compared = report["tables"].as_array().map_or(0, Vec::len);
    assert_eq!(
        compared,
        TABLES.len(),
        "every table is compared: {report:#}"
    );

    // Nothing applied twice: each row version (and each delete) is in the audit once.
    let pool = &injector.pipeline.target.pool;
    let twice: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT target, row_key, count(*) FROM public.cdc_apply_audit \
         GROUP BY target, row_key, position HAVING count(*) > 1 ORDER BY 3 DESC LIMIT 20",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let (versions, deletes): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE target LIKE 'delete %') FROM public.cdc_apply_audit",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    injector.note(format!(
        "applied: {versions} row versions, {deletes} of them deletes; applied twice: {}",
        twice.len()
    ));
    assert!(
        twice.is_empty(),
        "changes applied twice (target, key, times): {twice:?}\n{}",
        injector.log.join("\n")
    );
    let rows: i64 = drained.values().map(|(rows, _)| rows).sum();
    assert!(
        versions >= rows && deletes > 0,
        "the audit saw {versions} versions and {deletes} deletes for {rows} rows: the audit trigger is not on every loader table"
    );

    // Every service kept running by itself through every fault.
    assert!(
        injector.unplanned_exits.is_empty(),
        "instances exited without being killed (restarted, as a restart policy would):\n{}\n{}",
        injector.unplanned_exits.join("\n\n"),
        injector.log.join("\n")
    );
    println!(
        "{}",
        json!({
            "scale": scale.name,
            "seed": seed,
            "changes_committed": summary.changes(),
            "faults": faults.len(),
            "row_versions_applied": versions,
            "deletes_applied": deletes,
            "applied_twice": twice.len(),
            "reconciliation_runs": runs.len(),
            "seconds": injector.started.elapsed().as_secs_f64(),
        })
    );
}
