//! SIGHUP reloads the config. Its own test binary: a signal reaches the whole process.

// Runs against the vendor sandboxes: needs the `sandbox` feature (on by default).
#![cfg(feature = "sandbox")]

mod common;

use std::time::{Duration, Instant};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_config() {
    let h = Harness::start().await;
    let config = |h: &Harness| {
        let request = h.http.get(format!("{}/admin/config", h.admin));
        async move { expect_status(request.send().await.expect("config"), 200).await }
    };
    let before = config(&h).await["generation"].as_u64().expect("generation");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = config(&h).await["generation"].as_u64().expect("generation");
        if now > before {
            break;
        }
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    expect_status(h.get("/v1/capabilities", &h.acme()).await, 200).await;
}
