//! Salesforce connector (stub while being written).
use super::config::BuildContext;
use super::{Connector, ConnectorError, OperationCall, OperationOutput, OperationSpec};
use futures::future::BoxFuture;
use serde::Deserialize;
use std::sync::Arc;
/// Ops.
pub const OPERATIONS: &[OperationSpec] = &[];
/// Def.
#[derive(Debug, Clone, Deserialize)]
pub struct SalesforceDef {}
/// Settings.
#[derive(Debug, Clone)]
pub struct SalesforceSettings {}
impl SalesforceDef {
    /// Build.
    pub fn build(&self, cx: &mut BuildContext<'_>) -> SalesforceSettings {
        let _ = cx;
        SalesforceSettings {}
    }
}
/// Connector.
#[derive(Debug)]
pub struct SalesforceConnector {
    _s: Arc<SalesforceSettings>,
}
impl SalesforceConnector {
    /// New.
    pub fn new(s: SalesforceSettings) -> Self {
        SalesforceConnector { _s: Arc::new(s) }
    }
}
impl Connector for SalesforceConnector {
    fn kind(&self) -> &'static str {
        "salesforce"
    }
    fn operations(&self) -> &'static [OperationSpec] {
        OPERATIONS
    }
    fn call<'a>(&'a self, call: OperationCall<'a>) -> BoxFuture<'a, Result<OperationOutput, ConnectorError>> {
        Box::pin(async move { Err(ConnectorError::UnknownOperation(call.operation.to_string())) })
    }
}
