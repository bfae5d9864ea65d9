//! Libredesk adapter (placeholder until the adapter lands).
use async_trait::async_trait;

use super::{Adapter, CallContext, EndpointSpec, OperationSpec};
use crate::api::operation::Vendor;
use crate::api::request::{OperationRequest, Output};
use crate::api::ApiError;

pub struct Libredesk;

#[async_trait]
impl Adapter for Libredesk {
    fn vendor(&self) -> Vendor {
        Vendor::Libredesk
    }
    fn endpoints(&self) -> &'static [EndpointSpec] {
        &[]
    }
    fn operations(&self) -> &'static [OperationSpec] {
        &[]
    }
    async fn execute(&self, _ctx: &mut CallContext<'_>, _r: OperationRequest) -> Result<Output, ApiError> {
        Err(ApiError::unsupported_operation("not yet"))
    }
}
