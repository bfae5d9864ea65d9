//! ChatCaptain adapter. (Skeleton: its tables are empty until the adapter lands, so every operation
//! answers 501 and capabilities list nothing.)

use async_trait::async_trait;

use super::{Adapter, CallContext, EndpointSpec, OperationSpec};
use crate::api::operation::Vendor;
use crate::api::request::{OperationRequest, Output};
use crate::api::ApiError;

pub struct ChatCaptain;

#[async_trait]
impl Adapter for ChatCaptain {
    fn vendor(&self) -> Vendor {
        Vendor::ChatCaptain
    }

    fn endpoints(&self) -> &'static [EndpointSpec] {
        &[]
    }

    fn operations(&self) -> &'static [OperationSpec] {
        &[]
    }

    async fn execute(
        &self,
        _ctx: &mut CallContext<'_>,
        _request: OperationRequest,
    ) -> Result<Output, ApiError> {
        Err(ApiError::unsupported_operation(
            "chatcaptain: not implemented yet",
        ))
    }
}
