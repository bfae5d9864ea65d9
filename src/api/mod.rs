//! The normalized API: resources, operations, IDs, cursors and errors (docs/api.md).

pub mod cursor;
pub mod error;
pub mod ids;
pub mod model;
pub mod operation;
pub mod request;

pub use error::{ApiError, ErrorCode};
pub use operation::{Operation, Vendor};
