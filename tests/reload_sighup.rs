//! SIGHUP reloads the config.
//!
//! Its own test binary, on purpose (the one exception to `tests/it`): a signal reaches the
//! whole process, and every gateway the harness starts listens for SIGHUP. In the shared `it`
//! binary it would reload the gateways of whatever tests run beside it, whose reload and
//! generation checks would then fail at random.

// Test code fails loudly: a broken fixture or a wrong answer is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "it/harness/mod.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::*;

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
