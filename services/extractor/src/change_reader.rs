//! Pages of change rows, read on a connection of their own so that the next page of a table
//! can be read while the work unit publishes the page before it and commits its Kafka
//! transaction. Reading is most of the stream's time; with one connection it waited for
//! every commit, and the commit waited for it.
//!
//! A page read ahead is handed out only when the unit then asks for exactly that page: the
//! same table, capture instance, start position and page size, with a bound at least as high
//! as the one it was read with (rows at or before a lower bound come first in the change
//! table's order, so a full page is the same page under the higher bound, and a page that is
//! not full holds every change up to its own bound). Anything else — a capture-instance
//! switch, a retention gap, a table started over — throws the page away and reads again.

use anyhow::anyhow;
use cdc_model::proto::TableId;
use cdc_model::{Lsn, SourcePosition};
use tokio::task::JoinHandle;

use crate::discovery::CaptureInstance;
use crate::source::{self, ChangeRow};
use crate::sql::{Connector, SqlClient, SqlError};

/// What one page read asks for.
#[derive(Debug, Clone)]
pub struct PageRequest {
    /// The table.
    pub table: TableId,
    /// The capture instance whose change table is read.
    pub instance: CaptureInstance,
    /// The position the page starts after.
    pub after: SourcePosition,
    /// The highest commit LSN the page may hold.
    pub upper: Lsn,
    /// The most rows the page holds.
    pub limit: usize,
}

impl PageRequest {
    /// Whether the page read for `self` is the page `wanted` asks for.
    fn serves(&self, wanted: &PageRequest) -> bool {
        self.table == wanted.table
            && self.instance.name == wanted.instance.name
            && self.instance.start_lsn == wanted.instance.start_lsn
            && self.after == wanted.after
            && self.limit == wanted.limit
            && self.upper <= wanted.upper
    }
}

/// A page of change rows.
#[derive(Debug)]
pub struct Page {
    /// The rows, in change-table order.
    pub rows: Vec<ChangeRow>,
    /// The bound the page was read with: when the page is not full it holds every change
    /// after its start up to this commit LSN.
    pub upper: Lsn,
}

type ReadResult = (Option<SqlClient>, Result<Vec<ChangeRow>, SqlError>);

/// A read running ahead of the unit.
struct ReadAhead {
    request: PageRequest,
    task: JoinHandle<ReadResult>,
}

/// Reads pages of change rows of one database, at most one of them ahead.
pub struct ChangeReader {
    connector: Connector,
    database: String,
    /// The connection when no read holds it; `None` before the first read and after a
    /// failed one, which leaves the connection in an unknown state.
    idle: Option<SqlClient>,
    ahead: Option<ReadAhead>,
}

impl ChangeReader {
    /// A reader of `database`; it connects on its first read.
    pub fn new(connector: Connector, database: &str) -> ChangeReader {
        ChangeReader {
            connector,
            database: database.to_owned(),
            idle: None,
            ahead: None,
        }
    }

    /// The page `request` asks for: the one read ahead when it is that page, else read now.
    pub async fn read(&mut self, request: PageRequest) -> anyhow::Result<Page> {
        if let Some(ahead) = self.ahead.take() {
            let (client, result) = ahead
                .task
                .await
                .map_err(|e| anyhow!("reading changes ahead panicked: {e}"))?;
            self.idle = client;
            if ahead.request.serves(&request) {
                return Ok(Page {
                    rows: result?,
                    upper: ahead.request.upper,
                });
            }
            // Not the page wanted: its rows, or its error, no longer matter.
        }
        let (client, result) = read_page(
            self.idle.take(),
            self.connector.clone(),
            self.database.clone(),
            request.clone(),
        )
        .await;
        self.idle = client;
        Ok(Page {
            rows: result?,
            upper: request.upper,
        })
    }

    /// Starts reading the page `request` asks for, to be handed out by the next
    /// [`ChangeReader::read`] that asks for it. A read already ahead is dropped.
    pub fn read_ahead(&mut self, request: PageRequest) {
        self.discard();
        let task = tokio::spawn(read_page(
            self.idle.take(),
            self.connector.clone(),
            self.database.clone(),
            request.clone(),
        ));
        self.ahead = Some(ReadAhead { request, task });
    }

    /// Drops a read running ahead; its connection goes with it.
    fn discard(&mut self) {
        if let Some(ahead) = self.ahead.take() {
            ahead.task.abort();
        }
    }
}

impl Drop for ChangeReader {
    fn drop(&mut self) {
        self.discard();
    }
}

/// Reads one page on `client`, connecting first when there is none; returns the connection
/// unless the read failed.
async fn read_page(
    client: Option<SqlClient>,
    connector: Connector,
    database: String,
    request: PageRequest,
) -> ReadResult {
    let mut client = match client {
        Some(client) => client,
        None => match connector.connect(&database).await {
            Ok(client) => client,
            Err(e) => return (None, Err(e)),
        },
    };
    let result = source::changes(
        &mut client,
        &request.table,
        &request.instance,
        &request.after,
        request.upper,
        request.limit,
    )
    .await;
    match result {
        Ok(rows) => (Some(client), Ok(rows)),
        Err(e) => (None, Err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lsn(last: u8) -> Lsn {
        let mut bytes = [0_u8; 10];
        bytes[9] = last;
        Lsn::new(bytes)
    }

    fn request(after: u8, upper: u8) -> PageRequest {
        PageRequest {
            table: TableId {
                database: "shop".into(),
                schema: "dbo".into(),
                table: "orders".into(),
            },
            instance: CaptureInstance::named("dbo_orders", lsn(1)),
            after: source::end_of(lsn(after)),
            upper: lsn(upper),
            limit: 100,
        }
    }

    #[test]
    fn a_page_read_ahead_serves_the_same_request_and_any_with_a_higher_bound() {
        let ahead = request(1, 5);
        assert!(ahead.serves(&request(1, 5)));
        assert!(ahead.serves(&request(1, 9)));
    }

    #[test]
    fn a_page_read_ahead_does_not_serve_another_start_bound_size_or_instance() {
        let ahead = request(1, 5);
        assert!(!ahead.serves(&request(2, 5)), "another start position");
        assert!(!ahead.serves(&request(1, 4)), "a lower bound");
        let mut smaller = request(1, 5);
        smaller.limit = 50;
        assert!(!ahead.serves(&smaller), "another page size");
        let mut other = request(1, 5);
        other.instance.name = "dbo_orders_v2".into();
        assert!(!ahead.serves(&other), "another capture instance");
        let mut recreated = request(1, 5);
        recreated.instance.start_lsn = lsn(3);
        assert!(
            !ahead.serves(&recreated),
            "the instance dropped and created again"
        );
        let mut table = request(1, 5);
        table.table.table = "customers".into();
        assert!(!ahead.serves(&table), "another table");
    }
}
