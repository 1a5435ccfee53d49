//! Dead-letter records, as every stage writes them to `<prefix>.dlq.<stage>`.
//!
//! A dead letter keeps the original record whole (its key and value bytes, unchanged) so that
//! it can be replayed, and says in headers where it came from and why it was refused. Row
//! values never appear in the reason: reasons are logged and shown to operators.

/// Header: the stage that refused the record (`transformer`, `loader`).
pub const STAGE: &str = "cdc.dlq.stage";
/// Header: why, in words, naming the table and column where known.
pub const REASON: &str = "cdc.dlq.reason";
/// Header: an error code where one exists (a PostgreSQL SQLSTATE for the loader).
pub const CODE: &str = "cdc.dlq.code";
/// Header: the table, `database.schema.table` of the source (empty when undecodable).
pub const TABLE: &str = "cdc.dlq.table";
/// Header: topic the record was consumed from.
pub const SOURCE_TOPIC: &str = "cdc.dlq.source.topic";
/// Header: partition it was consumed from (decimal).
pub const SOURCE_PARTITION: &str = "cdc.dlq.source.partition";
/// Header: its offset there (decimal).
pub const SOURCE_OFFSET: &str = "cdc.dlq.source.offset";
/// Header: when it was refused, milliseconds since the Unix epoch (decimal).
pub const REFUSED_AT_MS: &str = "cdc.dlq.refused_at_ms";
/// Header: the rule that refused the record (transformer; absent when no rule was at fault).
pub const RULE: &str = "cdc.dlq.rule";
/// Header: the event's source position, `commit_lsn:command_id:seqval:operation`.
pub const SOURCE_POSITION: &str = "cdc.dlq.source.position";
/// Header: how many times the record was replayed and refused again (decimal; absent: never).
pub const REPLAYS: &str = "cdc.dlq.replays";
