//! Cost per call of the shared state's Redis round trips (issue 15, the README's "Running
//! several replicas" figure): one replica's [`RedisStore`] against a `redis-server` on
//! loopback, next to the in-process [`MemoryStore`] the single process uses.
//!
//!     cargo bench --bench redis_state
//!     SWITCHBOARD_BENCH_REDIS_URL=redis://10.0.0.5:6379 cargo bench --bench redis_state
//!
//! Without `SWITCHBOARD_BENCH_REDIS_URL` the bench starts its own `redis-server` (Debian package
//! `redis-server`) on a free loopback port with no persistence, and stops it at the end.
//! Cases:
//! - `acquire`: a tenant-limit check (one `EVALSHA` of the GCRA script);
//! - `begin`: start an idempotent request on a fresh key (one script run, the Started path);
//! - `begin_complete`: the whole idempotency cost of a `POST` with a key (two round trips);
//! - `acquire_x16`: 16 concurrent checks on the multiplexed connection, time per check;
//! - `memory_acquire`: the in-process backend, for comparison.
//!
//! Under `cargo test --all-targets` every case runs once, as a smoke test.

// Test helpers fail loudly: a broken fixture is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use switchboard::state::cluster::ClusterSettings;
use switchboard::state::redis::store::RedisStore;
use switchboard::state::redis::RedisHub;
use switchboard::state::{
    Begin, IdempotencyKey, Limit, LimitKey, MemoryStore, RecordKey, RequestFingerprint, StateStore,
    StoredAnswer,
};
use tokio::runtime::Runtime;

/// A `redis-server` this bench started; killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(dir: &std::path::Path) -> (Server, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port");
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (Debian package redis-server) is needed to run this bench");
    (Server(child), format!("redis://127.0.0.1:{port}"))
}

/// The store under test, and what keeps its server alive.
fn redis_store(rt: &Runtime) -> (RedisStore, Option<(Server, tempfile::TempDir)>) {
    let (url, server) = match std::env::var("SWITCHBOARD_BENCH_REDIS_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let dir = tempfile::tempdir().expect("temp dir");
            let (server, url) = start_server(dir.path());
            (url, Some((server, dir)))
        }
    };
    let settings = ClusterSettings::for_url(&url).expect("a valid Redis URL");
    let store = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let hub = RedisHub::connect(settings.clone(), None)
                .await
                .expect("the hub");
            if hub.is_up() {
                break RedisStore::new(hub);
            }
            assert!(Instant::now() < deadline, "redis at {url} does not answer");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    (store, server)
}

fn limit() -> Limit {
    // Generous: every check is admitted and writes its key, the usual path.
    Limit {
        per_second: 1e9,
        burst: 1_000_000,
    }
}

fn record(n: u64) -> RecordKey {
    RecordKey::new(
        "bench",
        IdempotencyKey::parse(format!("key-{n}").as_bytes()).expect("a valid key"),
    )
}

fn answer() -> StoredAnswer {
    StoredAnswer::new(
        201,
        [(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        )],
        Bytes::from_static(br#"{"id":"msg_01","conversation_id":"cv_01","text":"hello"}"#),
    )
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let (store, _server) = redis_store(&rt);
    let store = Arc::new(store);
    let tenant = LimitKey::Tenant("bench".into());
    let fingerprint = RequestFingerprint::new("POST", "/v1/messages", "desk", b"{}");
    let lease = Duration::from_secs(60);
    let next_key = AtomicU64::new(0);

    let mut group = c.benchmark_group("redis_state");
    group.bench_function("acquire", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(
                        store
                            .acquire(&tenant, limit(), Duration::ZERO)
                            .await
                            .expect("redis answers"),
                    );
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("begin", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let r = record(next_key.fetch_add(1, Ordering::Relaxed));
                    let begun = store.begin(&r, &fingerprint, lease).await;
                    assert!(matches!(begun, Ok(Begin::Started(_))), "{begun:?}");
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("begin_complete", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let r = record(next_key.fetch_add(1, Ordering::Relaxed));
                    let Ok(Begin::Started(held)) = store.begin(&r, &fingerprint, lease).await
                    else {
                        panic!("a fresh key starts");
                    };
                    black_box(store.complete(&held, answer()).await.expect("stored"));
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("acquire_x16", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                let per_task = iters.div_ceil(16);
                let tasks: Vec<_> = (0..16)
                    .map(|_| {
                        let store = store.clone();
                        let tenant = tenant.clone();
                        tokio::spawn(async move {
                            for _ in 0..per_task {
                                black_box(
                                    store
                                        .acquire(&tenant, limit(), Duration::ZERO)
                                        .await
                                        .expect("redis answers"),
                                );
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.expect("a bench task");
                }
                // Time per check: the batch ran per_task × 16 checks.
                start
                    .elapsed()
                    .mul_f64(iters as f64 / (per_task * 16) as f64)
            })
        })
    });
    let memory = MemoryStore::new();
    group.bench_function("memory_acquire", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(
                        memory
                            .acquire(&tenant, limit(), Duration::ZERO)
                            .await
                            .expect("in-process"),
                    );
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
