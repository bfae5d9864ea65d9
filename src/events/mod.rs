//! Events: what happens at the vendor reaches the apps (issue 14, API.md "Events").
//!
//! ```text
//! intake (/hooks/…): verify vendor signature ─▶ parse (libredesk, caac) ─▶ normalize ─▶ store ─▶ 2xx
//! delivery worker:    store.claim_due ─▶ signed POST (signing) ⟲ backoff (delivery) ─▶ dead letter
//! pull / SSE:         store.list after a cursor, woken by store.changes()
//! ```
//!
//! The modules here are the self-contained core; the gateway wires the routes and services.

pub mod caac;
pub mod clock;
pub mod delivery;
pub mod libredesk;
pub mod metrics;
pub mod model;
pub mod sender;
pub mod signing;
pub mod store;
