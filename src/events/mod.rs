//! Events: what happens at the vendor reaches the apps (issue 14, docs/api.md "Events").
//!
//! ```text
//! intake  POST /hooks/{tenant}/{connection}
//!         verify (signing) ─▶ parse (libredesk | caac) ─▶ invalidate cache
//!         ├─ complete payload: normalize ─▶ store.append (durable, fanned out) ─▶ 2xx
//!         └─ partial payload:  store.inbox_put (durable) ─▶ 2xx ─▶ InboxWorker: GET, normalize,
//!                              store.inbox_complete (events + close, one transaction)
//! push    DeliveryWorker (BackgroundService): store.claim_due ─▶ signed POST (sender)
//!         ⟲ Backoff backoff for 24 h ─▶ dead letter ─▶ admin list / replay
//! pull    GET /v1/events: store.list after a cursor (pull::page_json)
//!         GET /v1/events/stream: SSE (pull::sse_frame), woken by store.changes()
//! ```
//!
//! - [`model`]: the envelope, event types, subscriptions (`whsec_` secrets), `events:` settings.
//! - [`store`]: [`store::EventStore`], the state seam, and [`store::SqliteStore`], the embedded
//!   durable default under `data_dir`.
//! - [`redis_store`]: [`redis_store::RedisEventStore`], the store several replicas share (issue
//!   15); [`spill`]: [`spill::SpillStore`], a replica's view of it that keeps accepting events
//!   into a local durable spill while Redis is unreachable.
//! - [`settings`]: one config generation's event settings (per connection intake, agent,
//!   poller; subscriptions; the `events:` block), validated.
//! - [`signing`]: Standard Webhooks signatures out; Libredesk HMAC and CAAC bearer in.
//! - [`delivery`]: backoff schedule and the delivery worker; [`sender`]: the HTTP POST seam and
//!   its pingora implementation.
//! - [`libredesk`], [`caac`]: what a verified vendor body means; the CAAC AI-agent bridge.
//! - [`intake`]: the inbox worker — accepted vendor bodies that need a vendor call become
//!   events afterwards, in arrival order per connection, retried, never lost.
//! - [`poll`]: list differences → events, for vendors without push.
//! - [`pull`]: page and SSE bytes; [`receiver`]: the demo's verifying subscriber.
//! - [`metrics`]: intake, delivery and backlog metrics with bounded labels.
//! - [`clock`]: milliseconds and an injectable clock, so schedules are tested without waiting.

pub mod caac;
pub mod clock;
pub mod delivery;
pub mod intake;
pub mod libredesk;
pub mod metrics;
pub mod model;
pub mod poll;
pub mod pull;
#[cfg(feature = "sandbox")]
pub mod receiver;
pub mod redis_store;
pub mod sender;
pub mod settings;
pub mod signing;
pub mod spill;
pub mod store;
