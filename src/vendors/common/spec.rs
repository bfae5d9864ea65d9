//! Const helpers for the tables each adapter declares, so a table reads one line per row:
//!
//! ```text
//! static OPERATIONS: &[OperationSpec] = &[
//!     op(ContactsList, &["contacts.list"]).filters(&[filter_via("q", "contacts.search")]),
//!     op(ContactsGet, &["contacts.get"]),
//! ];
//! ```

use crate::api::operation::Operation;
use crate::api::ApiError;
use crate::vendors::{CallContext, EndpointSpec, FilterSpec, OperationSpec};

/// A vendor call the routes file may configure, and the path placeholders it needs.
pub(crate) const fn ep(name: &'static str, params: &'static [&'static str]) -> EndpointSpec {
    EndpointSpec {
        name,
        params,
        body_envelope: None,
    }
}

impl EndpointSpec {
    /// The same call, with a body envelope the routes file may set (`body_envelope: none |
    /// <key>`); `default` is the key used when it does not (`""` = none).
    pub(crate) const fn body_envelope(self, default: &'static str) -> EndpointSpec {
        EndpointSpec {
            body_envelope: Some(default),
            ..self
        }
    }
}

/// An operation the adapter serves when every vendor call in `needs` is configured (no
/// filters; add them with [`OperationSpec::filters`]).
pub(crate) const fn op(operation: Operation, needs: &'static [&'static str]) -> OperationSpec {
    OperationSpec {
        operation,
        needs,
        filters: &[],
    }
}

/// A list filter the operation's own vendor call honours.
pub(crate) const fn filter(name: &'static str) -> FilterSpec {
    FilterSpec { name, needs: None }
}

/// A list filter that needs another vendor call (a search), offered only when it is configured.
pub(crate) const fn filter_via(name: &'static str, endpoint: &'static str) -> FilterSpec {
    FilterSpec {
        name,
        needs: Some(endpoint),
    }
}

impl OperationSpec {
    /// The same operation with these list filters.
    pub(crate) const fn filters(self, filters: &'static [FilterSpec]) -> OperationSpec {
        OperationSpec { filters, ..self }
    }
}

/// The answer of `execute` for an operation outside the adapter's table. The router never
/// routes one there (it answers the same 501 itself, from the same table); this only keeps
/// `execute` total, with one arm instead of one per missing operation.
pub(crate) fn not_served(ctx: &CallContext<'_>) -> ApiError {
    ApiError::unsupported_operation(format!(
        "{} cannot {}: see GET /v1/capabilities",
        ctx.vendor(),
        ctx.operation
    ))
}
