//! The whole Libredesk API suite (`tests/api_libredesk.rs`) again, with the Libredesk sandbox
//! behind HTTPS: a certificate from a CA the test makes, trusted by each Libredesk connection
//! through `tls.ca_file` and named by `tls.server_name` (the harness does this for test targets
//! named `*_tls`, see `common::tls_target`). Every operation and every error code then travels
//! through pingora's TLS connector and the per-connection trust store.

// Runs against the vendor sandboxes: needs the `sandbox` feature (on by default).
#![cfg(feature = "sandbox")]

// The suite brings its own `mod common;`; this file's check needs the harness too.
#[allow(clippy::duplicate_mod)]
mod common;
#[path = "api_libredesk.rs"]
mod over_https;

use common::*;

/// The suite above really talks TLS: the sandbox serves HTTPS, the connection carries the
/// test CA, and a call goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_libredesk_sandbox_serves_https_here() {
    assert!(tls_target());
    let h = Harness::start().await;
    assert!(h.libredesk.base_url().starts_with("https://127.0.0.1:"));
    let snapshot = h.app.snapshot();
    let support = snapshot.connection("acme", "support").expect("support");
    assert!(support.base_url.tls);
    assert_eq!(support.tls.ca.as_ref().map(|ca| ca.len()), Some(1));
    assert_eq!(support.tls.server_name.as_deref(), Some(LIBREDESK_TLS_NAME));
    let page = h.get_json("/v1/contacts?limit=1", 200).await;
    assert_eq!(page["data"][0]["vendor"], "libredesk");
    assert!(
        h.libredesk.open_connections() >= 1,
        "a pooled HTTPS session"
    );
}
