//! Test harness: a real `redis-server` (Debian package `redis-server`; installed by
//! `scripts/ensure-system-packages.sh test`) on an ephemeral loopback port, with a temporary
//! folder and no persistence, killed when the handle drops. Readiness and every later
//! condition are polled with deadlines, never slept on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::cluster::{ClusterFile, ClusterSettings};
pub(crate) use super::redis::test_server::RedisServer;
use super::redis::RedisHub;

/// Settings with short timeouts (so failures show fast) and a prefix of their own (so tests
/// sharing a server never see each other's keys).
pub(crate) fn settings(server: &RedisServer) -> ClusterSettings {
    settings_with(server, |_| {})
}

pub(crate) fn settings_with(
    server: &RedisServer,
    tweak: impl FnOnce(&mut ClusterFile),
) -> ClusterSettings {
    static N: AtomicU64 = AtomicU64::new(0);
    let mut raw = ClusterFile {
        redis_url: server.url(),
        key_prefix: format!("t{}:", N.fetch_add(1, Ordering::Relaxed)),
        connect_timeout_ms: 300,
        command_timeout_ms: 300,
        health_interval_ms: 100,
        local_share: 0.5,
    };
    tweak(&mut raw);
    ClusterSettings::try_build(std::path::Path::new("test.yaml"), &raw).expect("settings")
}

/// A hub on `settings` (one "replica").
pub(crate) async fn hub(settings: &ClusterSettings) -> Arc<RedisHub> {
    RedisHub::connect(settings.clone(), None)
        .await
        .expect("hub")
}

/// Poll `check` until it holds or `within` passes (then panic with `what`).
pub(crate) async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
