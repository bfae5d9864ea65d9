//! The upstream client: how switchboard reaches an HTTP server it calls — a vendor API, or an
//! identity provider's JWKS document. It knows addresses ([`BaseUrl`]), TLS ([`tls`]), the
//! pooled pingora connector and how a call fails ([`CallError`]); it knows nothing of
//! connections, routes or adapters, which build an [`UpstreamRequest`] and hand it over.

mod base_url;
mod client;
mod pool;
pub mod proxy;
pub mod tls;

pub use base_url::BaseUrl;
pub use client::{
    outcome_for_status, CallError, UpstreamRequest, VendorBody, VendorClient, VendorResponse,
};
