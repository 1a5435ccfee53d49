//! The extractor's control API: the tables served here, and snapshots on command.

use tonic::{Request, Response, Status};

use crate::proto::extractor_server::Extractor;
use crate::proto::{
    ListTablesRequest, ListTablesResponse, StartSnapshotRequest, StartSnapshotResponse,
};
use crate::registry::{Registry, SnapshotRequest};

/// The `cdc.extractor.v1.Extractor` service.
pub struct ExtractorControl {
    registry: Registry,
}

impl ExtractorControl {
    /// A control service over the units' shared registry.
    pub fn new(registry: Registry) -> Self {
        ExtractorControl { registry }
    }
}

#[tonic::async_trait]
impl Extractor for ExtractorControl {
    #[tracing::instrument(skip_all)]
    async fn list_tables(
        &self,
        _request: Request<ListTablesRequest>,
    ) -> Result<Response<ListTablesResponse>, Status> {
        Ok(Response::new(ListTablesResponse {
            tables: self.registry.tables(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn start_snapshot(
        &self,
        request: Request<StartSnapshotRequest>,
    ) -> Result<Response<StartSnapshotResponse>, Status> {
        let request = request.into_inner();
        for (field, value) in [
            ("database", &request.database),
            ("schema", &request.schema),
            ("table", &request.table),
        ] {
            if value.trim().is_empty() {
                return Err(Status::invalid_argument(format!("`{field}` is required")));
            }
        }
        let name = format!("{}.{}.{}", request.database, request.schema, request.table);
        let Some((registered, status)) = self.registry.table(&name) else {
            return Err(Status::failed_precondition(format!(
                "table {name} is not served by this instance (ListTables shows what is; \
                 tables are shared between instances by work partition)"
            )));
        };
        for (field, key) in [
            ("after_key", &request.after_key),
            ("up_to_key", &request.up_to_key),
        ] {
            if key
                .iter()
                .any(|v| v.kind.is_none() || cdc_model::value::is_null(v))
            {
                return Err(Status::invalid_argument(format!(
                    "`{field}` has a NULL value; keys are never NULL"
                )));
            }
        }
        let optional = |key: Vec<cdc_model::proto::Value>| (!key.is_empty()).then_some(key);
        self.registry.request_snapshot(
            &registered,
            SnapshotRequest {
                after_key: optional(request.after_key),
                up_to_key: optional(request.up_to_key),
            },
        );
        tracing::info!(table = %registered, "snapshot requested over gRPC");
        Ok(Response::new(StartSnapshotResponse {
            rows_estimated: status.snapshot_rows_estimated,
        }))
    }
}
