//! switchboard: one normalized, JWT-protected API over four customer-conversation vendors,
//! built on pingora. See README.md and docs/architecture.md for the request flow.

pub mod api;
pub mod auth;
pub mod cache;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod config_error;
#[cfg(feature = "sandbox")]
pub mod demo;
pub mod events;
pub mod gateway;
pub mod logging;
pub mod metrics;
#[cfg(test)]
mod module_graph;
pub mod resilience;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod server;
pub mod snapshot;
pub mod state;
pub mod upstream;
pub mod vendors;
